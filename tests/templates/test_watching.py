"""The template watch against the fake Kubernetes API."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator

import pytest
from kubernetes import client

from tests.harness.fakekube import FakeKube
from tests.harness.fixtures import fake_kube  # noqa: F401 - pytest fixture
from tests.harness.kubestore import resource
from tests.templates.builders import template_configmap
from webhook.templates.entries import read_template
from webhook.templates.store import TemplateStore
from webhook.templates.watching import TemplateWatcher

CONFIGMAPS = resource("", "v1", "configmaps")

# Seconds a test waits for the watch to deliver a change. Delivery takes
# milliseconds; the margin covers a loaded CI machine.
DELIVERY_SECONDS = 5.0


def wait_until(
    condition: Callable[[], bool], seconds: float = DELIVERY_SECONDS
) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.02)
    return condition()


@pytest.fixture
def watched(fake_kube: FakeKube) -> Iterator[tuple[FakeKube, TemplateStore]]:  # noqa: F811
    """Start a watcher on namespace runai of the fake API, after one template."""
    fake_kube.preload([template_configmap("template-admin", ["A=1"])])
    store = TemplateStore()
    api = client.CoreV1Api(fake_kube.api_client())
    watcher = TemplateWatcher(api, store, "runai", read_template)
    watcher.start()
    assert store.wait_loaded(DELIVERY_SECONDS)
    yield fake_kube, store
    watcher.stop()


def entries_of(store: TemplateStore, name: str) -> list[tuple[str, str]] | None:
    template = store.get(name)
    if template is None:
        return None
    return [(entry.name, entry.value) for entry in template.entries]


def lists(kube: FakeKube) -> int:
    return kube.count(verb="list", resource="configmaps")


def test_initial_list_fills_store(watched: tuple[FakeKube, TemplateStore]) -> None:
    _, store = watched

    assert store.names() == ["template-admin"]
    assert entries_of(store, "template-admin") == [("A", "1")]


def test_edit_reaches_store_without_relist(
    watched: tuple[FakeKube, TemplateStore],
) -> None:
    kube, store = watched
    listed = lists(kube)

    kube.store.put(template_configmap("template-admin", ["A=2", "OPTS=a=b"]))

    assert wait_until(
        lambda: entries_of(store, "template-admin") == [("A", "2"), ("OPTS", "a=b")]
    )
    assert lists(kube) == listed


def test_create_and_delete_reach_store(watched: tuple[FakeKube, TemplateStore]) -> None:
    kube, store = watched

    kube.store.put(template_configmap("gpu", ["LOG_LEVEL=debug"]))
    assert wait_until(lambda: store.get("gpu") is not None)
    kube.store.remove(CONFIGMAPS, "runai", "gpu")

    assert wait_until(lambda: store.get("gpu") is None)
    assert store.names() == ["template-admin"]


def test_unlabelled_configmap_is_ignored(
    watched: tuple[FakeKube, TemplateStore],
) -> None:
    kube, store = watched
    plain = template_configmap("plain", ["A=1"])
    del plain["metadata"]["labels"]

    kube.store.put(plain)
    kube.store.put(template_configmap("marker", ["B=1"]))

    assert wait_until(lambda: store.get("marker") is not None)
    assert store.get("plain") is None


def test_removed_label_looks_deleted(watched: tuple[FakeKube, TemplateStore]) -> None:
    kube, store = watched
    unlabelled = template_configmap("template-admin", ["A=1"])
    unlabelled["metadata"]["labels"] = {"runai/template": "false"}

    kube.store.put(unlabelled)

    assert wait_until(lambda: store.get("template-admin") is None)


def test_invalid_template_is_kept_with_error(
    watched: tuple[FakeKube, TemplateStore],
) -> None:
    kube, store = watched

    kube.store.put(template_configmap("bad", values="environments: [BROKEN]\n"))

    assert wait_until(lambda: store.get("bad") is not None)
    template = store.get("bad")
    assert template is not None
    assert template.error is not None
    assert template.error.line == 1


def test_expired_watch_lists_again(watched: tuple[FakeKube, TemplateStore]) -> None:
    kube, store = watched
    listed = lists(kube)

    # The change and the compaction happen under the store's lock, so the
    # open watch finds its resourceVersion compacted away and gets 410.
    with kube.store.changed:
        kube.store.put(template_configmap("after-compaction", ["C=3"]))
        kube.store.compact()

    assert wait_until(lambda: store.get("after-compaction") is not None)
    assert lists(kube) == listed + 1


def test_failed_list_is_retried(fake_kube: FakeKube) -> None:  # noqa: F811
    fake_kube.preload([template_configmap("template-admin", ["A=1"])])
    fake_kube.add_fault(verb="list", resource="configmaps", status=500, times=2)
    store = TemplateStore()
    watcher = TemplateWatcher(
        client.CoreV1Api(fake_kube.api_client()), store, "runai", read_template
    )

    watcher.start()
    try:
        assert store.wait_loaded(DELIVERY_SECONDS)
    finally:
        watcher.stop()

    assert fake_kube.count(verb="list", resource="configmaps") == 3
    assert entries_of(store, "template-admin") == [("A", "1")]


def test_change_listener_runs_after_each_change(fake_kube: FakeKube) -> None:  # noqa: F811
    seen: list[list[str]] = []
    store = TemplateStore()
    watcher = TemplateWatcher(
        client.CoreV1Api(fake_kube.api_client()),
        store,
        "runai",
        read_template,
        on_change=lambda changed: seen.append(changed.names()),
    )
    fake_kube.add_namespace("runai")

    watcher.start()
    try:
        assert store.wait_loaded(DELIVERY_SECONDS)
        fake_kube.store.put(template_configmap("template-admin", ["A=1"]))
        assert wait_until(lambda: len(seen) == 2)
    finally:
        watcher.stop()

    assert seen == [[], ["template-admin"]]


def test_stop_logs_no_failure(
    watched: tuple[FakeKube, TemplateStore], caplog: pytest.LogCaptureFixture
) -> None:
    kube, store = watched
    watcher = TemplateWatcher(
        client.CoreV1Api(kube.api_client()), store, "runai", read_template
    )
    # Set before the start, so that an earlier test's level cannot hide a
    # warning. The INFO lines of a start and a stop are expected.
    caplog.set_level(logging.WARNING, logger="webhook.templates.watching")
    watcher.start()
    assert wait_until(lambda: kube.count(verb="watch", resource="configmaps") >= 2)

    watcher.stop()

    problems = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert problems == []
