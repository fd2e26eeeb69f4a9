"""The Lease elector: one leader, release on stop, no writes once renewal fails."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import FAST_LEASE, LEASE_NAMESPACE, wait_for
from webhook.propagation.api import KubeApi
from webhook.propagation.lease import LeaseElector, NotLeaderError


class Candidate:
    """An elector running in a thread, with counters for its callbacks."""

    def __init__(
        self, kube: FakeKube, identity: str, clock: Any = time.monotonic
    ) -> None:
        self.started = 0
        self.stopped = 0
        self.stop = threading.Event()
        self.elector = LeaseElector(
            KubeApi(kube.api_client(), timeout=2.0),
            LEASE_NAMESPACE,
            "propagation",
            identity,
            FAST_LEASE,
            on_started=self._on_started,
            on_stopped=self._on_stopped,
            clock=clock,
        )
        self.thread = threading.Thread(
            target=self.elector.run, args=(self.stop,), daemon=True
        )

    def _on_started(self) -> None:
        self.started += 1

    def _on_stopped(self) -> None:
        self.stopped += 1

    def halt(self) -> None:
        self.stop.set()
        self.thread.join(5)


@pytest.fixture
def candidates(fake_kube: FakeKube) -> Iterator[list[Candidate]]:
    fake_kube.add_namespace(LEASE_NAMESPACE)
    running: list[Candidate] = []
    yield running
    for candidate in running:
        candidate.halt()


def holder(kube: FakeKube) -> str | None:
    lease = kube.get("coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, "propagation")
    value: str | None = lease["spec"].get("holderIdentity")
    return value


def test_one_leader_at_a_time(fake_kube: FakeKube, candidates: list[Candidate]) -> None:
    candidates.extend(Candidate(fake_kube, name) for name in ("a", "b", "c"))
    for candidate in candidates:
        candidate.thread.start()

    wait_for(lambda: any(c.elector.is_leader() for c in candidates), message="a leader")
    time.sleep(FAST_LEASE.duration)

    leaders = [c for c in candidates if c.elector.is_leader()]
    assert len(leaders) == 1
    assert holder(fake_kube) == leaders[0].elector.identity
    assert sum(c.started for c in candidates) == 1


def test_release_lets_standby_take_over(
    fake_kube: FakeKube, candidates: list[Candidate]
) -> None:
    first = Candidate(fake_kube, "first")
    candidates.append(first)
    first.thread.start()
    wait_for(first.elector.is_leader, message="first to lead")
    second = Candidate(fake_kube, "second")
    candidates.append(second)
    second.thread.start()
    time.sleep(0.5)

    released_at = time.monotonic()
    first.halt()

    assert holder(fake_kube) != "first"
    assert first.stopped == 1
    wait_for(second.elector.is_leader, message="second to lead")
    # Without the release the standby would wait the full lease duration.
    assert time.monotonic() - released_at < FAST_LEASE.duration
    lease = fake_kube.get(
        "coordination.k8s.io/v1", "leases", LEASE_NAMESPACE, "propagation"
    )
    assert lease["spec"]["leaseTransitions"] == 1


def test_failed_renew_stops_writes_at_once(
    fake_kube: FakeKube, candidates: list[Candidate]
) -> None:
    leader = Candidate(fake_kube, "leader")
    candidates.append(leader)
    leader.thread.start()
    wait_for(leader.elector.is_leader, message="the leader")

    fake_kube.add_fault(verb="update", resource="leases", status=500)
    failed_at = time.monotonic()
    wait_for(
        lambda: not leader.elector.is_leader(), timeout=3, message="leadership lost"
    )

    assert time.monotonic() - failed_at < FAST_LEASE.renew_deadline
    assert leader.stopped == 1
    with pytest.raises(NotLeaderError):
        leader.elector.check()


def test_stale_local_clock_blocks_writes(
    fake_kube: FakeKube, candidates: list[Candidate]
) -> None:
    now = [1000.0]
    leader = Candidate(fake_kube, "leader", clock=lambda: now[0])
    candidates.append(leader)
    leader.thread.start()
    wait_for(leader.elector.is_leader, message="the leader")
    leader.elector.check()

    # As after a freeze: the renew deadline passed before the next renew ran.
    now[0] += FAST_LEASE.renew_deadline

    with pytest.raises(NotLeaderError):
        leader.elector.check()


def test_standby_waits_for_unrenewed_lease(
    fake_kube: FakeKube, candidates: list[Candidate]
) -> None:
    fake_kube.store.put(
        {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": "propagation", "namespace": LEASE_NAMESPACE},
            "spec": {
                "holderIdentity": "crashed",
                "leaseDurationSeconds": 2,
                "renewTime": "2026-01-01T00:00:00.000000Z",
            },
        }
    )
    standby = Candidate(fake_kube, "standby")
    candidates.append(standby)
    started = time.monotonic()
    standby.thread.start()

    wait_for(standby.elector.is_leader, timeout=5, message="the standby to lead")

    # The standby measures the lease on its own clock, from when it first saw
    # the record, and ignores the holder's renewTime.
    assert time.monotonic() - started >= 2.0
    assert holder(fake_kube) == "standby"
