"""Watches that go silent, expire or lose their history are re-established."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import REGISTRY

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import CLUSTER_WIDE, PROJECT, secret, wait_for
from webhook.propagation.settings import WatchTiming
from webhook.propagation.watching import Watcher, WatchSource

Start = Callable[..., Any]


def restarts(watch: str, reason: str) -> float:
    labels = {"watch": watch, "reason": reason}
    name = "runai_secrets_webhook_propagation_watch_restarts_total"
    return REGISTRY.get_sample_value(name, labels) or 0.0


def namespace_watches(kube: FakeKube) -> int:
    return kube.count(verb="watch", resource="namespaces")


def test_silent_namespace_watch_is_restarted(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    idle_before = restarts("namespaces", "idle")
    # The first namespace watch stays open and sends nothing, not even bookmarks.
    fake_kube.add_fault(verb="watch", resource="namespaces", silent_watch=True, times=1)
    run_controller()
    wait_for(lambda: namespace_watches(fake_kube) == 1, message="the silent watch")

    fake_kube.add_namespace("runai-late", PROJECT)

    # Only a new watch can bring the namespace: the idle timeout is 2 s.
    wait_for(
        lambda: secret(fake_kube, "runai-late", "regcred"),
        timeout=6,
        message="the copy after the watch restart",
    )
    assert namespace_watches(fake_kube) >= 2
    assert restarts("namespaces", "idle") >= idle_before + 1


def test_gone_watch_lists_again(fake_kube: FakeKube, run_controller: Start) -> None:
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    gone_before = restarts("namespaces", "gone")
    # A silent first watch keeps the client at the list's resourceVersion.
    fake_kube.add_fault(verb="watch", resource="namespaces", silent_watch=True, times=1)
    run_controller()
    wait_for(lambda: namespace_watches(fake_kube) == 1, message="the silent watch")
    lists_before = fake_kube.count(verb="list", resource="namespaces")

    # Compaction drops the history, so that resourceVersion is now too old.
    fake_kube.add_namespace("runai-after-compaction", PROJECT)
    fake_kube.store.compact()

    wait_for(
        lambda: secret(fake_kube, "runai-after-compaction", "regcred"),
        timeout=6,
        message="the copy after the relist",
    )
    assert fake_kube.count(verb="list", resource="namespaces") == lists_before + 1
    assert restarts("namespaces", "gone") >= gone_before + 1


def test_watch_errors_back_off_and_recover(
    fake_kube: FakeKube, run_controller: Start
) -> None:
    fake_kube.add_secret("runai", "regcred", {"auth": "x"}, CLUSTER_WIDE)
    errors_before = restarts("namespaces", "error")
    # Faults apply in order: a silent watch, three 500s, a reset connection.
    fake_kube.add_fault(verb="watch", resource="namespaces", silent_watch=True, times=1)
    fake_kube.add_fault(verb="watch", resource="namespaces", status=500, times=3)
    fake_kube.add_fault(verb="watch", resource="namespaces", reset=True, times=1)
    run_controller()

    fake_kube.add_namespace("runai-late", PROJECT)

    wait_for(
        lambda: secret(fake_kube, "runai-late", "regcred"),
        timeout=15,
        message="the copy after the watch errors",
    )
    # urllib3 retries the reset connection itself, so only the 500s count.
    assert restarts("namespaces", "error") >= errors_before + 3
    assert namespace_watches(fake_kube) >= 6


def test_watches_are_scoped(fake_kube: FakeKube, run_controller: Start) -> None:
    run_controller()

    secret_watches = [
        r
        for r in fake_kube.requests
        if r.resource == "secrets" and r.verb in ("watch", "list")
    ]
    assert secret_watches
    for record in secret_watches:
        scoped_to_source = record.namespace == "runai"
        by_label = (
            "app.kubernetes.io/managed-by=runai-secrets-webhook"
            in record.query.get("labelSelector", "")
        )
        assert scoped_to_source or by_label, record.path
    watches = [r for r in fake_kube.requests if r.verb == "watch"]
    assert all(r.query.get("allowWatchBookmarks") == "true" for r in watches)
    assert all(r.query.get("timeoutSeconds") == "30" for r in watches)


class EmptyWatchClient:
    """A client list method whose watches end at once with an empty body."""

    def __init__(self) -> None:
        self.watches = 0

    def __call__(self, **kwargs: Any) -> Any:
        if kwargs.get("watch"):
            self.watches += 1
            return EmptyStream()
        return ListPage()


class ListPage:
    data = b'{"items": [], "metadata": {"resourceVersion": "1"}}'


class EmptyStream:
    def stream(self, amount: int, decode_content: bool) -> Iterator[bytes]:
        return iter(())

    def release_conn(self) -> None:
        pass


def test_short_watches_back_off() -> None:
    client = EmptyWatchClient()
    timing = WatchTiming(backoff_initial=0.1, backoff_max=0.4)
    watcher = Watcher(
        WatchSource("empty", client), timing, lambda items: None, lambda k, o: None
    )
    stop = threading.Event()
    thread = threading.Thread(target=watcher.run, args=(stop,))

    thread.start()
    time.sleep(1.5)
    stop.set()
    thread.join(2)

    # Without the backoff this loop reopens the watch thousands of times.
    assert 3 <= client.watches <= 15
    assert restarts("empty", "short") >= 3
