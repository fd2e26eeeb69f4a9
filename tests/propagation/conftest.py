"""Shared helpers: fast timings, a fake API server and a running controller."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube  # noqa: F401
from tests.harness.kubestatus import ApiError
from tests.harness.kubestore import find_resource
from webhook.propagation.controller import Controller
from webhook.propagation.settings import LeaseTiming, PropagationSettings, WatchTiming

LEASE_NAMESPACE = "runai-secrets-webhook"
PROJECT = {"runai/queue": "team"}
CLUSTER_WIDE = {"runai/cluster-wide": "true"}

# Short timings keep each test to a few seconds; the fake sends a bookmark
# every 0.2 s, well inside the idle timeout.
FAST_LEASE = LeaseTiming(duration=2.0, renew_deadline=1.5, retry_period=0.3)
FAST_WATCH = WatchTiming(
    server_timeout=30,
    client_margin=2.0,
    idle_timeout=2.0,
    connect_timeout=2.0,
    backoff_initial=0.1,
    backoff_max=1.0,
)


def fast_settings(**overrides: Any) -> PropagationSettings:
    values: dict[str, Any] = {
        "lease": FAST_LEASE,
        "watch": FAST_WATCH,
        "resync_period": 60.0,
        "conflict_retry": 0.5,
        "request_timeout": 5.0,
    }
    values.update(overrides)
    return PropagationSettings(**values)


def wait_for(
    condition: Callable[[], Any], timeout: float = 10.0, message: str = ""
) -> Any:
    """Poll `condition` until it returns a true value; fail after `timeout` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = condition()
        if result:
            return result
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout} s waiting for {message}")


SECRETS = find_resource("", "v1", "secrets")
NAMESPACES = find_resource("", "v1", "namespaces")


def secret(kube: FakeKube, namespace: str, name: str) -> dict[str, Any] | None:
    try:
        return kube.get("v1", "secrets", namespace, name)
    except ApiError:
        return None


def wait_for_copy(
    kube: FakeKube,
    namespace: str,
    name: str = "regcred",
    where: Callable[[dict[str, Any]], bool] = lambda copy: True,
    message: str = "the copy",
    timeout: float = 10.0,
) -> dict[str, Any]:
    """Wait until a secret exists in `namespace` and `where` holds for it; return it."""

    def found() -> dict[str, Any] | None:
        current = secret(kube, namespace, name)
        return current if current is not None and where(current) else None

    result: dict[str, Any] = wait_for(found, timeout, f"{message} in {namespace}")
    return result


def delete_secret(kube: FakeKube, namespace: str, name: str) -> None:
    assert SECRETS is not None
    kube.store.remove(SECRETS, namespace, name)


def set_labels(
    kube: FakeKube,
    api_version: str,
    plural: str,
    namespace: str,
    name: str,
    labels: dict[str, str | None],
) -> None:
    """Set labels on a stored object; None removes a label."""
    obj = kube.get(api_version, plural, namespace, name)
    current = obj["metadata"].setdefault("labels", {})
    for key, value in labels.items():
        if value is None:
            current.pop(key, None)
        else:
            current[key] = value
    kube.store.put(obj)


def writes(kube: FakeKube, token: str | None = None) -> list[Any]:
    """Return logged create, update, patch and delete requests, optionally by token."""
    return [
        record
        for record in kube.requests
        if record.verb in ("create", "update", "patch", "delete")
        and (token is None or record.token == token)
    ]


def start_controller(
    kube: FakeKube, settings: PropagationSettings, identity: str = "test"
) -> Controller:
    kube.add_namespace(LEASE_NAMESPACE)
    controller = Controller(
        kube.api_client(),
        settings,
        lease_namespace=LEASE_NAMESPACE,
        lease_name="propagation",
        identity=identity,
    )
    controller.start()
    return controller


@pytest.fixture
def run_controller(
    fake_kube: FakeKube,  # noqa: F811
) -> Iterator[Callable[..., Controller]]:
    """Start a controller in this process with fast timings; stop it afterwards."""
    started: list[Controller] = []

    def start(**overrides: Any) -> Controller:
        controller = start_controller(fake_kube, fast_settings(**overrides))
        started.append(controller)
        wait_for(controller.elector.is_leader, message="the controller to lead")
        return controller

    yield start
    for controller in started:
        controller.stop()
