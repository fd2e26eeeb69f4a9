"""The propagation controller: watches, a work queue, one worker and a Lease.

Watches run in every replica so a new leader starts with warm caches; only
the Lease holder reconciles. Every event only queues the name of the source
it concerns. A full resync queues every source and every source named by an
existing copy, at start, on becoming leader, after a watch lists again, and
every `resync_period` seconds.
"""

from __future__ import annotations

import logging
import random
import threading
import time

from kubernetes.client import ApiClient

from webhook.propagation import metrics
from webhook.propagation.api import API_FAILURES, KubeApi, describe
from webhook.propagation.copies import Object, is_cluster_wide, labels_of
from webhook.propagation.lease import LeaseElector, NotLeaderError
from webhook.propagation.reconciler import Outcome, Reconciler
from webhook.propagation.settings import PropagationSettings
from webhook.propagation.targets import NamespaceInfo
from webhook.propagation.watching import Watcher, WatchSource
from webhook.propagation.workqueue import WorkQueue

logger = logging.getLogger(__name__)

# Delay before a source whose copy lost a write race (409) is reconciled again.
RACE_RETRY_SECONDS = 0.2
MAX_ERROR_RETRY_SECONDS = 60.0


class Controller:
    def __init__(
        self,
        client: ApiClient,
        settings: PropagationSettings,
        lease_namespace: str,
        lease_name: str,
        identity: str,
    ) -> None:
        self._settings = settings
        self._api = KubeApi(client, settings.request_timeout)
        self._queue = WorkQueue()
        self._lock = threading.Lock()
        self._namespaces: dict[str, NamespaceInfo] = {}
        # Secrets in the source namespace: name -> carries the cluster-wide label.
        self._sources: dict[str, bool] = {}
        self._failures: dict[str, int] = {}
        self._resync = threading.Event()
        self._states = metrics.CopyStates()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        self.elector = LeaseElector(
            self._api,
            lease_namespace,
            lease_name,
            identity,
            settings.lease,
            on_started=self._resync.set,
            on_stopped=self._states.clear,
        )
        self._reconciler = Reconciler(
            self._api, settings, self._namespace_list, self.elector.check
        )
        self._watchers = self._make_watchers()

    def _make_watchers(self) -> list[Watcher]:
        core = self._api.core
        settings = self._settings
        timing = settings.watch
        sources = WatchSource(
            "sources", core.list_namespaced_secret, (settings.source_namespace,)
        )
        copies = WatchSource(
            "copies",
            core.list_secret_for_all_namespaces,
            label_selector=settings.marks.copies_selector(),
        )
        namespaces = WatchSource("namespaces", core.list_namespace)
        return [
            Watcher(sources, timing, self._on_sources_list, self._on_source_event),
            Watcher(copies, timing, self._on_copies_list, self._on_copy_event),
            Watcher(
                namespaces, timing, self._on_namespaces_list, self._on_namespace_event
            ),
        ]

    # Lifecycle

    def start(self) -> None:
        """Run the controller in background threads until `stop()`."""
        targets = [(f"watch-{w.source.name}", w.run) for w in self._watchers]
        targets += [("lease", self.elector.run), ("worker", self._work)]
        for name, target in targets:
            thread = threading.Thread(
                target=target,
                args=(self._stop,),
                name=f"propagation-{name}",
                daemon=True,
            )
            thread.start()
            self._threads.append(thread)
        logger.info(
            "propagation controller started",
            extra={"identity": self.elector.identity},
        )

    def stop(self, timeout: float = 10.0) -> None:
        """Stop writing, close the watches and release the Lease."""
        self._stop.set()
        self._queue.close()
        for watcher in self._watchers:
            watcher.close()
        deadline = time.monotonic() + timeout
        for thread in self._threads:
            thread.join(max(deadline - time.monotonic(), 0.0))
        logger.info("propagation controller stopped")

    def run(self, stop: threading.Event) -> None:
        """Run until `stop` is set; for callers that own the thread."""
        self.start()
        stop.wait()
        self.stop()

    # Watch callbacks: they update the caches and queue source names only.

    def _on_sources_list(self, items: list[Object]) -> None:
        with self._lock:
            self._sources = {i["metadata"]["name"]: is_cluster_wide(i) for i in items}
        self._resync.set()

    def _on_source_event(self, kind: str, obj: Object) -> None:
        name = obj["metadata"]["name"]
        with self._lock:
            if kind == "DELETED":
                self._sources.pop(name, None)
            else:
                self._sources[name] = is_cluster_wide(obj)
        self._queue.add(name)

    def _on_copies_list(self, items: list[Object]) -> None:
        self._resync.set()

    def _on_copy_event(self, kind: str, obj: Object) -> None:
        source = labels_of(obj).get(self._settings.marks.source_label)
        if source:
            self._queue.add(source)

    def _on_namespaces_list(self, items: list[Object]) -> None:
        infos = [NamespaceInfo.from_object(item) for item in items]
        with self._lock:
            self._namespaces = {info.name: info for info in infos}
        self._resync.set()

    def _on_namespace_event(self, kind: str, obj: Object) -> None:
        info = NamespaceInfo.from_object(obj)
        with self._lock:
            if kind == "DELETED":
                self._namespaces.pop(info.name, None)
            else:
                self._namespaces[info.name] = info
            labelled = [name for name, wide in self._sources.items() if wide]
        for name in labelled:
            self._queue.add(name)

    def _namespace_list(self) -> list[NamespaceInfo]:
        with self._lock:
            return list(self._namespaces.values())

    # The worker

    def _caches_synced(self) -> bool:
        return all(watcher.synced.is_set() for watcher in self._watchers)

    def _work(self, stop: threading.Event) -> None:
        next_periodic = time.monotonic() + self._settings.resync_period
        while not stop.is_set():
            # An empty namespace cache would read as "no targets" and delete
            # every copy, so nothing runs before the first lists arrived.
            if not self.elector.is_leader() or not self._caches_synced():
                stop.wait(0.1)
                continue
            if time.monotonic() >= next_periodic:
                next_periodic = time.monotonic() + self._settings.resync_period
                self._resync.set()
            if self._resync.is_set():
                self._full_resync()
                continue
            name = self._queue.get(timeout=0.2)
            if name is not None:
                try:
                    self._process(name)
                finally:
                    self._queue.done(name)

    def _full_resync(self) -> None:
        self._resync.clear()
        try:
            copies = self._api.list_copies(self._settings.marks.copies_selector())
        except API_FAILURES as error:
            metrics.API_ERRORS.labels(operation="list_copies").inc()
            logger.warning("full resync failed", extra={"error": describe(error)})
            self._resync.set()
            time.sleep(1.0)
            return
        names = {labels_of(c).get(self._settings.marks.source_label) for c in copies}
        with self._lock:
            names.update(self._sources)
        for name in sorted(n for n in names if n):
            self._queue.add(name)
        metrics.LAST_FULL_RESYNC.set(time.time())
        logger.info("full resync queued", extra={"sources": len(names)})

    def _process(self, name: str) -> None:
        try:
            outcome = self._reconciler.reconcile(name)
        except NotLeaderError:
            metrics.RECONCILES.labels(result="not_leader").inc()
            return
        except API_FAILURES as error:
            metrics.RECONCILES.labels(result="error").inc()
            metrics.API_ERRORS.labels(operation="reconcile").inc()
            logger.warning(
                "reconcile failed", extra={"source": name, "error": describe(error)}
            )
            self._retry_later(name)
            return
        metrics.RECONCILES.labels(result="success").inc()
        self._record(name, outcome)

    def _record(self, name: str, outcome: Outcome) -> None:
        self._states.set(
            name,
            {
                "synced": outcome.synced,
                "conflict": len(outcome.conflicts),
                "failed": outcome.failed,
            },
        )
        if outcome.failed:
            self._retry_later(name)
            return
        self._failures.pop(name, None)
        if outcome.retry:
            self._queue.add_after(name, RACE_RETRY_SECONDS)
        elif outcome.conflicts:
            self._queue.add_after(name, self._settings.conflict_retry)

    def _retry_later(self, name: str) -> None:
        failures = self._failures.get(name, 0) + 1
        self._failures[name] = failures
        cap = min(MAX_ERROR_RETRY_SECONDS, 0.5 * 2**failures)
        self._queue.add_after(name, random.uniform(cap / 2, cap))  # noqa: S311
