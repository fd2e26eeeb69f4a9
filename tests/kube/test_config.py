"""Which client configuration is loaded, and that tests never reach a cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.kube.config import (
    MAX_CONCURRENT_CALLS,
    KubeconfigError,
    default_kubeconfig,
    load_configuration,
    runs_in_cluster,
)

KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters:
- name: fake
  cluster:
    server: https://127.0.0.1:6443
    insecure-skip-tls-verify: true
contexts:
- name: fake
  context: {cluster: fake, user: fake}
current-context: fake
users:
- name: fake
  user: {token: test-token}
"""


def test_explicit_kubeconfig_wins(tmp_path: Path) -> None:
    path = tmp_path / "config"
    path.write_text(KUBECONFIG)

    configuration = load_configuration(
        str(path), environ={"KUBERNETES_SERVICE_HOST": "x"}
    )

    assert configuration.host == "https://127.0.0.1:6443"
    assert configuration.retries == 0
    assert configuration.connection_pool_maxsize == MAX_CONCURRENT_CALLS


def test_default_is_kubeconfig_variable(tmp_path: Path) -> None:
    assert default_kubeconfig({"KUBECONFIG": "/a:/b", "HOME": "/h"}) == "/a:/b"
    assert default_kubeconfig({"HOME": str(tmp_path)}) == str(
        tmp_path / ".kube" / "config"
    )


def test_in_cluster_needs_host_and_token(tmp_path: Path) -> None:
    token = tmp_path / "token"

    assert not runs_in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, token)
    token.write_text("t")
    assert runs_in_cluster({"KUBERNETES_SERVICE_HOST": "10.0.0.1"}, token)
    assert not runs_in_cluster({}, token)


def test_test_environment_has_no_cluster() -> None:
    # The autouse fixture in tests/conftest.py points $KUBECONFIG at a file
    # that does not exist, so a forgotten --kubeconfig fails loudly.
    with pytest.raises(Exception, match=r"no-such-kubeconfig|Invalid kube-config"):
        load_configuration(None)


def test_missing_kubeconfig_names_path_and_fix(tmp_path: Path) -> None:
    missing = tmp_path / "absent-kubeconfig"

    with pytest.raises(KubeconfigError) as raised:
        load_configuration(str(missing), environ={})

    message = str(raised.value)
    assert str(missing) in message
    assert "--kubeconfig" in message
    assert "--secrets-dir" in message


def test_unparsable_kubeconfig_hides_contents(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("token: sentinel-token-3f9a\n")

    with pytest.raises(KubeconfigError) as raised:
        load_configuration(str(kubeconfig), environ={})

    assert "sentinel-token-3f9a" not in str(raised.value)


MALFORMED_KUBECONFIGS = {
    # Each loads with an error other than the client's ConfigException.
    "not-yaml": "users:\n- name: u\n  user: {token: sentinel-token-3f9a: x}\n",
    "not-a-mapping": "sentinel-token-3f9a\n",
    "bad-ca-base64": (
        "current-context: c\n"
        "contexts: [{name: c, context: {cluster: k, user: u}}]\n"
        "clusters: [{name: k, cluster: {server: 'https://127.0.0.1:1',"
        " certificate-authority-data: abcde}}]\n"
        "users: [{name: u, user: {token: sentinel-token-3f9a}}]\n"
    ),
}


@pytest.mark.parametrize("name", sorted(MALFORMED_KUBECONFIGS))
def test_malformed_kubeconfig_names_path(tmp_path: Path, name: str) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(MALFORMED_KUBECONFIGS[name])

    with pytest.raises(KubeconfigError) as raised:
        load_configuration(str(kubeconfig), environ={})

    message = str(raised.value)
    assert f"no usable Kubernetes configuration in {str(kubeconfig)!r}" in message
    assert "--kubeconfig" in message
    assert "sentinel-token-3f9a" not in message
