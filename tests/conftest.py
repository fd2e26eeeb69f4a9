"""Settings shared by every test.

Each test runs with an environment that cannot reach a real cluster: no
in-cluster variables, $KUBECONFIG and $HOME pointing into an empty temporary
directory, and no RUNAI_SECRETS_WEBHOOK_* variables from the caller's shell.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest


@pytest.fixture(autouse=True)
def isolated_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path_factory: pytest.TempPathFactory
) -> None:
    home = tmp_path_factory.mktemp("home")
    for name in list(os.environ):
        if name.startswith(("KUBERNETES_", "RUNAI_SECRETS_WEBHOOK_")):
            monkeypatch.delenv(name)
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("KUBECONFIG", str(home / "no-such-kubeconfig"))
    for proxy in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.delenv(proxy, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost,::1")


@pytest.fixture
def repository_root() -> Path:
    return Path(__file__).resolve().parent.parent
