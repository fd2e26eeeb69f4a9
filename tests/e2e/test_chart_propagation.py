"""The chart's propagation controller, run with the rendered arguments.

`runai-secrets-webhook propagate` starts with the exact arguments of the
chart's propagation Deployment, with only the metrics port replaced and a
kubeconfig added. It must copy a cluster-wide secret into a project
namespace, and every API request it makes must be allowed by the roles the
chart binds to the controller's own ServiceAccount.
"""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.chart.fixtures import helm  # noqa: F401
from tests.chart.helm import NAMESPACE, RELEASE, REPO_ROOT, Manifest, find, render
from tests.chart.rbac import granted_rules, unauthorized
from tests.harness.fakekube import FakeKube
from tests.harness.kubestatus import ApiError

CONTROLLER = f"{RELEASE}-propagation"
PROJECT = "runai-team-a"
BLOCKED = "runai-team-b"
SOURCE = "runai"
# Seconds to wait for the copy; the controller makes it well within one.
COPY_DEADLINE = 20.0


@pytest.fixture(scope="module")
def manifests(helm: Path) -> list[Manifest]:  # noqa: F811
    return render(helm, {"propagation": {"enabled": True}})


@pytest.fixture(scope="module")
def fake_api() -> Iterator[FakeKube]:
    with FakeKube() as kube:
        kube.add_namespace(NAMESPACE)
        kube.add_namespace(PROJECT, {"runai/queue": "team-a"})
        # A project whose own secret of that name blocks the copy, which the
        # controller reports with an Event on the source.
        kube.add_namespace(BLOCKED, {"runai/queue": "team-b"})
        kube.add_secret(BLOCKED, "regcred", {"token": "own"})
        kube.add_secret(
            SOURCE, "regcred", {"token": "t0ken"}, labels={"runai/cluster-wide": "true"}
        )
        yield kube


@pytest.fixture(scope="module")
def controller(
    manifests: list[Manifest],
    fake_api: FakeKube,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[subprocess.Popen[bytes]]:
    deployment = find(manifests, "Deployment", CONTROLLER)
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    directory = tmp_path_factory.mktemp("controller")
    kubeconfig = fake_api.write_kubeconfig(directory / "kubeconfig")
    kept = [arg for arg in args if not arg.startswith("--metrics-port=")]
    command = [
        sys.executable, "-m", "webhook", *kept,
        "--metrics-port", "0",
        "--kubeconfig", str(kubeconfig),
    ]  # fmt: skip
    with (directory / "controller.log").open("wb") as log:
        process = subprocess.Popen(
            command, cwd=REPO_ROOT, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        yield process
    finally:
        process.terminate()
        process.wait(15)


def wait_for_copy(kube: FakeKube, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + COPY_DEADLINE
    while time.monotonic() < deadline:
        assert process.poll() is None, "the controller exited"
        try:
            return kube.get("v1", "secrets", PROJECT, "regcred")
        except ApiError:
            time.sleep(0.1)
    raise AssertionError(
        f"no copy of runai/regcred in {PROJECT} after {COPY_DEADLINE} s"
    )


def wait_for_request(kube: FakeKube, verb: str, resource: str) -> None:
    deadline = time.monotonic() + COPY_DEADLINE
    while kube.count(verb=verb, resource=resource) == 0:
        assert time.monotonic() < deadline, f"no {verb} on {resource} was made"
        time.sleep(0.1)


def test_copy_made_with_chart_arguments(
    controller: subprocess.Popen[bytes], fake_api: FakeKube
) -> None:
    copy = wait_for_copy(fake_api, controller)
    source = fake_api.get("v1", "secrets", SOURCE, "regcred")
    assert copy["data"] == source["data"]
    assert copy["metadata"]["labels"]["app.kubernetes.io/managed-by"] == RELEASE


def test_blocked_project_untouched(
    controller: subprocess.Popen[bytes], fake_api: FakeKube
) -> None:
    wait_for_request(fake_api, "create", "events")
    own = fake_api.get("v1", "secrets", BLOCKED, "regcred")
    assert "app.kubernetes.io/managed-by" not in own["metadata"].get("labels", {})


def test_lease_named_by_chart(
    controller: subprocess.Popen[bytes], fake_api: FakeKube
) -> None:
    wait_for_copy(fake_api, controller)
    lease = fake_api.get("coordination.k8s.io/v1", "leases", NAMESPACE, CONTROLLER)
    assert lease["spec"]["holderIdentity"]


def test_requests_within_chart_rbac(
    controller: subprocess.Popen[bytes], fake_api: FakeKube, manifests: list[Manifest]
) -> None:
    wait_for_copy(fake_api, controller)
    # The leader renews its Lease every --retry-period (2 s by default); wait
    # for one renewal, and for the conflict Event, so that both are checked.
    wait_for_request(fake_api, "update", "leases")
    wait_for_request(fake_api, "create", "events")
    made = fake_api.requests
    assert {(record.verb, record.resource) for record in made} >= {
        ("watch", "secrets"),
        ("watch", "namespaces"),
        ("create", "secrets"),
        ("create", "leases"),
        ("update", "leases"),
        ("create", "events"),
    }
    assert unauthorized(made, granted_rules(manifests, CONTROLLER)) == []
