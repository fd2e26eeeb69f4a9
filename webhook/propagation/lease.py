"""Leader election on a coordination.k8s.io/v1 Lease.

One replica at a time holds the Lease and may write. The holder renews it
every retry period. Every write first calls `LeaseElector.check()`, which
uses the local monotonic clock: leadership counts from the moment the last
successful renew request was sent, and lasts `renew_deadline` seconds, less
than the `duration` other replicas wait before they take over. A failed
renew ends leadership at once. Other replicas take over a Lease whose record
has not changed for its `leaseDurationSeconds`, measured on their own clock
from when they first saw that record, so no clocks need to agree.
"""

from __future__ import annotations

import datetime
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from typing import Any

import orjson
from kubernetes.client import ApiException

from webhook.propagation import metrics
from webhook.propagation.api import API_FAILURES, KubeApi, describe
from webhook.propagation.copies import Object
from webhook.propagation.settings import LeaseTiming

logger = logging.getLogger(__name__)


class NotLeaderError(Exception):
    """Raised before a write when this replica does not hold a valid Lease."""

    def __str__(self) -> str:
        return "this replica does not hold the propagation Lease; write skipped"


def _now() -> str:
    # MicroTime: RFC 3339 with microseconds, in UTC.
    return datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaseElector:
    def __init__(
        self,
        api: KubeApi,
        namespace: str,
        name: str,
        identity: str,
        timing: LeaseTiming,
        on_started: Callable[[], None],
        on_stopped: Callable[[], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        timing.validate()
        self._api = api
        self._namespace = namespace
        self._name = name
        self.identity = identity
        self._timing = timing
        self._on_started = on_started
        self._on_stopped = on_stopped
        self._clock = clock
        self._lock = threading.Lock()
        self._leading = False
        self._valid_until = 0.0
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0

    def is_leader(self) -> bool:
        with self._lock:
            return self._leading and self._clock() < self._valid_until

    def check(self) -> None:
        """Raise NotLeaderError unless this replica may write now.

        NOTE: a process frozen between this check and the request it guards
        still sends that one request when it resumes, because the API server
        has no fencing token to reject it. Updates and deletes carry a
        resourceVersion, so they fail with 409 if the new leader changed the
        object; a late create adds at most a copy that the next reconcile
        removes if it is not wanted.
        """
        if not self.is_leader():
            raise NotLeaderError

    def run(self, stop: threading.Event) -> None:
        """Acquire and renew the Lease until `stop` is set, then release it."""
        logger.info("lease election started")
        while not stop.is_set():
            if self._try_acquire_or_renew():
                self._set_leading(True)
                stop.wait(self._timing.retry_period)
                continue
            self._set_leading(False)
            # Jitter keeps candidates that started together from colliding.
            stop.wait(self._timing.retry_period * random.uniform(1.0, 1.2))  # noqa: S311
        self._set_leading(False, stopping=True)
        self.release()

    def _set_leading(self, leading: bool, stopping: bool = False) -> None:
        with self._lock:
            changed = leading != self._leading
            self._leading = leading
        if not changed:
            return
        metrics.LEADER.set(1 if leading else 0)
        if leading:
            logger.info("lease acquired", extra={"identity": self.identity})
            self._on_started()
        else:
            if stopping:
                logger.info("leadership ended", extra={"identity": self.identity})
            else:
                logger.warning("lease lost", extra={"identity": self.identity})
            self._on_stopped()

    def _try_acquire_or_renew(self) -> bool:
        started = self._clock()
        try:
            written = self._write_record(started)
        except API_FAILURES as error:
            metrics.API_ERRORS.labels(operation="lease").inc()
            logger.warning("lease update failed", extra={"error": describe(error)})
            return False
        if written:
            with self._lock:
                self._valid_until = started + self._timing.renew_deadline
        return written

    def _write_record(self, started: float) -> bool:
        lease = self._read()
        if lease is None:
            return self._create()

        spec = lease.get("spec") or {}
        holder = spec.get("holderIdentity") or ""
        record = (holder, spec.get("renewTime"), spec.get("leaseDurationSeconds"))
        if record != self._observed:
            self._observed = record
            self._observed_at = started

        duration = spec.get("leaseDurationSeconds") or self._timing.duration
        held_by_other = holder not in ("", self.identity)
        if held_by_other and started < self._observed_at + duration:
            return False
        # A process frozen (SIGSTOP, a long GC pause) between the read and
        # the update would act on an old record: another replica may have
        # taken over meanwhile, so a read older than the retry period is
        # not used.
        if self._clock() - started > self._timing.retry_period:
            return False
        return self._replace(lease, holder)

    def _read(self) -> Object | None:
        try:
            response = self._api.coordination.read_namespaced_lease(
                self._name, self._namespace, **self._request_options()
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        lease: Object = orjson.loads(response.data)
        return lease

    def _request_options(self) -> dict[str, Any]:
        timeout = min(self._api.timeout, self._timing.renew_deadline)
        return {"_preload_content": False, "_request_timeout": timeout}

    def _spec(self, acquire_time: str, transitions: int) -> Object:
        return {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": math.ceil(self._timing.duration),
            "acquireTime": acquire_time,
            "renewTime": _now(),
            "leaseTransitions": transitions,
        }

    def _create(self) -> bool:
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": self._name, "namespace": self._namespace},
            "spec": self._spec(_now(), 0),
        }
        try:
            self._api.coordination.create_namespaced_lease(
                self._namespace, body, **self._request_options()
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def _replace(self, lease: Object, holder: str) -> bool:
        spec = lease.get("spec") or {}
        transitions = int(spec.get("leaseTransitions") or 0)
        if holder == self.identity:
            new_spec = self._spec(spec.get("acquireTime") or _now(), transitions)
        else:
            new_spec = self._spec(_now(), transitions + 1)
        return self._put(lease, new_spec)

    def _put(self, lease: Object, spec: Object) -> bool:
        # The resourceVersion makes the update fail with 409 Conflict when
        # another replica wrote the Lease since it was read.
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": self._name,
                "namespace": self._namespace,
                "resourceVersion": lease["metadata"]["resourceVersion"],
            },
            "spec": spec,
        }
        try:
            self._api.coordination.replace_namespaced_lease(
                self._name, self._namespace, body, **self._request_options()
            )
        except ApiException as error:
            if error.status == 409:
                return False
            raise
        return True

    def release(self) -> None:
        """Clear holderIdentity if this replica still holds the Lease.

        The others can then take over at once instead of after the lease
        duration. The update carries the resourceVersion just read, so it
        cannot clear a Lease another replica has taken meanwhile.
        """
        try:
            lease = self._read()
            if lease is None:
                return
            spec = dict(lease.get("spec") or {})
            if spec.get("holderIdentity") != self.identity:
                return
            spec["holderIdentity"] = None
            spec["leaseDurationSeconds"] = 1
            spec["renewTime"] = _now()
            if self._put(lease, spec):
                logger.info("lease released", extra={"identity": self.identity})
        except API_FAILURES as error:
            metrics.API_ERRORS.labels(operation="lease").inc()
            logger.warning("lease release failed", extra={"error": describe(error)})
