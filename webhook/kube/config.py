"""Configuration of the official Kubernetes client."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

import yaml
from kubernetes import client
from kubernetes.config import incluster_config, kube_config
from kubernetes.config.config_exception import ConfigException

SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")

# Threads for blocking Kubernetes API calls in the server. At most this many
# calls run at once, and more wait in the thread pool's queue.
MAX_CONCURRENT_CALLS = 16


def runs_in_cluster(
    environ: Mapping[str, str], token_file: Path = SERVICE_ACCOUNT_DIR / "token"
) -> bool:
    """Tell whether the process runs in a pod with a service account token."""
    return bool(environ.get("KUBERNETES_SERVICE_HOST")) and token_file.is_file()


def default_kubeconfig(environ: Mapping[str, str]) -> str:
    """Return $KUBECONFIG (possibly a colon-separated list) or ~/.kube/config."""
    explicit = environ.get("KUBECONFIG", "")
    if explicit:
        return explicit
    home = environ.get("HOME") or str(Path.home())
    return str(Path(home) / ".kube" / "config")


# Errors of the client's kubeconfig loader for a file it cannot use. Besides
# its own ConfigException, a malformed file raises a YAML, base64
# (ValueError) or type error from the parsing underneath.
_KUBECONFIG_ERRORS = (
    ConfigException,
    OSError,
    ValueError,
    TypeError,
    AttributeError,
    yaml.YAMLError,
)


class KubeconfigError(ValueError):
    """No usable Kubernetes client configuration was found."""


def load_configuration(
    kubeconfig: str | None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> client.Configuration:
    """Build a client configuration without touching the client's global default.

    An explicit `kubeconfig` wins; otherwise the in-cluster service account
    in `service_account_dir` is used when present, else $KUBECONFIG or
    ~/.kube/config. Raises KubeconfigError when none of them is usable.
    """
    env = os.environ if environ is None else environ
    configuration = client.Configuration()
    token_file = service_account_dir / "token"
    if kubeconfig is None and runs_in_cluster(env, token_file):
        loader = incluster_config.InClusterConfigLoader(  # type: ignore[no-untyped-call]
            token_filename=str(token_file),
            cert_filename=str(service_account_dir / "ca.crt"),
            environ=env,
        )
        try:
            loader.load_and_set(configuration)  # type: ignore[no-untyped-call]
        except ConfigException as error:
            raise KubeconfigError(
                f"the in-cluster service account in {service_account_dir} is not "
                "usable; check the pod's service account token mount, or pass "
                "--kubeconfig FILE"
            ) from error
    else:
        load_kubeconfig_file(
            kubeconfig or default_kubeconfig(env),
            configuration,
            "pass --kubeconfig FILE, set KUBECONFIG, run in a pod with a service "
            "account, or serve from a folder of Secret manifests with "
            "--secrets-dir DIR",
        )

    # A retry could outlive the review's deadline; the caller decides instead.
    configuration.retries = 0
    # One pooled connection per lookup thread, so that none is opened and
    # discarded under load (urllib3 keeps at most this many per host).
    configuration.connection_pool_maxsize = MAX_CONCURRENT_CALLS
    return configuration


def load_kubeconfig_file(
    path: str, configuration: client.Configuration, fix: str
) -> None:
    """Load the kubeconfig file `path` into `configuration`.

    Raises KubeconfigError naming the path, the error type and `fix`.
    """
    try:
        kube_config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=path,
            client_configuration=configuration,
            persist_config=False,
        )
    except _KUBECONFIG_ERRORS as error:
        # The client's own message may quote a kubeconfig line, token
        # included, so only the path and the error type are reported.
        raise KubeconfigError(
            f"no usable Kubernetes configuration in {path!r} "
            f"({type(error).__name__}); {fix}"
        ) from error


def new_api_client(kubeconfig: str | None) -> client.ApiClient:
    """Return an API client for `kubeconfig` (see `load_configuration`)."""
    return client.ApiClient(configuration=load_configuration(kubeconfig))


def reload_credentials(
    api_client: client.ApiClient,
    kubeconfig: str | None,
    environ: Mapping[str, str] | None = None,
    service_account_dir: Path = SERVICE_ACCOUNT_DIR,
) -> None:
    """Read the bearer token again from where `load_configuration` found it.

    The kubelet rotates a pod's service account token on disk, and a
    kubeconfig's `tokenFile` may be rewritten the same way. The kubernetes
    client (version 37) reads a `tokenFile` only when the configuration is
    loaded and the in-cluster token again only after a minute, so after a 401
    the caller reloads here and retries.
    """
    fresh = load_configuration(kubeconfig, environ, service_account_dir)
    configuration = api_client.configuration
    # The hook must be replaced too: the old one writes the old token back.
    configuration.api_key = fresh.api_key
    configuration.refresh_api_key_hook = fresh.refresh_api_key_hook
