"""A fake cluster with sentinel secret values, and the service started against it.

Every secret value served by the fake API contains `SENTINEL`, so a test can
search logs, metrics and responses for it. Namespace `team-a` is the
requester's project; `team-b` is another project whose secrets must never be
read on behalf of `team-a`.
"""

from __future__ import annotations

import base64
import secrets
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService

# Random per test run, so that no constant in the code can match it by chance.
SENTINEL = f"sentinel-value-{secrets.token_hex(8)}"
SENTINEL_FORMS = (
    SENTINEL,
    base64.b64encode(SENTINEL.encode()).decode(),
    # A fragment of the base64 form catches values embedded at other offsets.
    base64.b64encode(SENTINEL.encode()).decode()[4:24],
)

TEAM_A = "team-a"
TEAM_B = "team-b"
PROJECT_LABEL = "runai/queue"

# Key names that a requester must never see listed in a message.
HIDDEN_KEY = "hidden-key-name-7d1c"
SECRETS = {
    TEAM_A: {
        "db": {
            "password": f"a-{SENTINEL}",
            "user": f"u-{SENTINEL}",
            HIDDEN_KEY: SENTINEL,
        },
        "api": {"token": SENTINEL},
    },
    TEAM_B: {
        "db": {"password": f"b-{SENTINEL}"},
        "only-in-b": {"token": SENTINEL},
    },
}


def populate(kube: FakeKube) -> None:
    """Create both project namespaces and their secrets in `kube`."""
    for namespace, by_name in SECRETS.items():
        kube.add_namespace(namespace, {PROJECT_LABEL: namespace})
        for name, data in by_name.items():
            kube.add_secret(namespace, name, data)


@contextmanager
def running_service(
    kube: FakeKube, directory: Path, args: Sequence[str] = (), token_file: bool = False
) -> Iterator[WebhookService]:
    """Run the service against `kube` with JSON logs at DEBUG and no cache.

    `args` come last and may override these defaults.
    """
    directory.mkdir(parents=True, exist_ok=True)
    kubeconfig = kube.write_kubeconfig(directory / "kubeconfig", token_file=token_file)
    flags = ["--log-format", "json", "--log-level", "DEBUG", "--cache-ttl", "0"]
    service = WebhookService(
        [*flags, *args], kubeconfig=kubeconfig, directory=directory / "service"
    )
    with service:
        yield service


def pod(*values: str, namespace: str | None = None, **metadata: Any) -> dict[str, Any]:
    """Return a Pod whose container `main` has env vars V0, V1, ... set to `values`."""
    meta: dict[str, Any] = {"generateName": "job-", **metadata}
    if namespace is not None:
        meta["namespace"] = namespace
    env = [{"name": f"V{index}", "value": value} for index, value in enumerate(values)]
    container = {"name": "main", "image": "busybox", "env": env}
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": meta,
        "spec": {"containers": [container]},
    }
