"""A rotated service account token is read again after the API returns 401.

The fake API accepts only the newest token once it rotates. The lookup must
re-read the token file, both from a kubeconfig's `tokenFile` and from the
in-cluster service account directory, and succeed within the same call.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.harness.fakekube import FakeKube
from webhook.admission.lookups import LookupStatus
from webhook.kube.config import load_configuration, reload_credentials
from webhook.kube.secrets import ClusterSecrets

NEW_TOKEN = "rotated-token-5c7e"


@pytest.fixture
def fake() -> Iterator[FakeKube]:
    with FakeKube() as kube:
        kube.add_secret("team-a", "db", {"password": "x"})
        yield kube


def from_kubeconfig(fake: FakeKube, tmp_path: Path, reload: bool) -> ClusterSecrets:
    kubeconfig = str(fake.write_kubeconfig(tmp_path / "kubeconfig", token_file=True))
    api_client = client.ApiClient(load_configuration(kubeconfig))
    if not reload:
        return ClusterSecrets(api_client)
    return ClusterSecrets(
        api_client, lambda: reload_credentials(api_client, kubeconfig)
    )


def test_kubeconfig_token_file_read_again(fake: FakeKube, tmp_path: Path) -> None:
    secrets = from_kubeconfig(fake, tmp_path, reload=True)
    before = secrets.fetch("team-a", "db", 2.0)

    fake.rotate_token(NEW_TOKEN)
    after = secrets.fetch("team-a", "db", 2.0)

    assert before.status is LookupStatus.FOUND
    assert after.status is LookupStatus.FOUND
    assert fake.count(resource="secrets", status=401) == 1
    assert fake.count(resource="secrets", token=NEW_TOKEN, status=200) == 1


def test_without_reload_rotation_fails(fake: FakeKube, tmp_path: Path) -> None:
    secrets = from_kubeconfig(fake, tmp_path, reload=False)

    fake.rotate_token(NEW_TOKEN)
    after = secrets.fetch("team-a", "db", 2.0)

    assert after.status is LookupStatus.ERROR
    assert "HTTP 401" in after.detail


def test_in_cluster_token_read_again(fake: FakeKube, tmp_path: Path) -> None:
    account = tmp_path / "serviceaccount"
    account.mkdir()
    (account / "token").write_text(fake.token)
    (account / "ca.crt").write_bytes(fake.ca_pem)
    environ = {
        "KUBERNETES_SERVICE_HOST": "127.0.0.1",
        "KUBERNETES_SERVICE_PORT": str(fake.port),
    }
    api_client = client.ApiClient(load_configuration(None, environ, account))
    secrets = ClusterSecrets(
        api_client, lambda: reload_credentials(api_client, None, environ, account)
    )
    before = secrets.fetch("team-a", "db", 2.0)

    fake.rotate_token(NEW_TOKEN)
    # The kubelet replaces the file atomically, as here.
    (account / "token.new").write_text(NEW_TOKEN)
    os.replace(account / "token.new", account / "token")
    after = secrets.fetch("team-a", "db", 2.0)

    assert before.status is LookupStatus.FOUND
    assert after.status is LookupStatus.FOUND, after.detail
    assert fake.count(resource="secrets", token=NEW_TOKEN, status=200) == 1


def test_failed_reload_is_clear_error(fake: FakeKube, tmp_path: Path) -> None:
    secrets = from_kubeconfig(fake, tmp_path, reload=True)

    fake.rotate_token(NEW_TOKEN)
    (tmp_path / "kubeconfig").unlink()
    after = secrets.fetch("team-a", "db", 2.0)

    assert after.status is LookupStatus.ERROR
    assert "HTTP 401" in after.detail
    assert "no new token" in after.detail
