"""The serving certificates of one server process, as the HTTP edge uses them.

`ServingCertificates` owns the SSLContext handed to uvicorn, the task that
keeps its certificate current (file reload or the self-managed CA), the
readiness value for /readyz and the expiry gauge.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import ssl
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from kubernetes import client as k8s
from prometheus_client import CollectorRegistry

from webhook.tls.cluster import ClusterClient
from webhook.tls.context import ContextSwitch
from webhook.tls.metrics import ExpiryGauge
from webhook.tls.pairs import ServingPair
from webhook.tls.reload import DEFAULT_POLL_INTERVAL, Clock, FileReloader, utc_now
from webhook.tls.selfmanaged import SelfManagedCertificates, SelfManagedOptions

logger = logging.getLogger(__name__)

Runner = Callable[[], Coroutine[Any, Any, None]]

# Seconds before a crashed certificate task is first restarted. The wait
# doubles with each crash in a row up to MAX_RESTART_DELAY, and a task that
# ran longer than MAX_RESTART_DELAY before it crashed starts over at
# RESTART_DELAY.
RESTART_DELAY = 1.0
MAX_RESTART_DELAY = 60.0


class ServingCertificates:
    """The server's SSLContext and the background work that keeps it valid."""

    def __init__(
        self,
        client_ca_file: Path | None = None,
        *,
        clock: Clock = utc_now,
        registry: CollectorRegistry | None = None,
        restart_delay: float = RESTART_DELAY,
    ) -> None:
        self._switch = ContextSwitch(client_ca_file)
        self._restart_delay = restart_delay
        self._clock = clock
        self._gauge = ExpiryGauge(registry)
        self._runners: list[Runner] = []
        self._serves_trusted = False
        self._tasks: list[asyncio.Task[None]] = []

    @classmethod
    def from_files(
        cls,
        cert_file: Path,
        key_file: Path,
        client_ca_file: Path | None = None,
        *,
        poll_interval: float = DEFAULT_POLL_INTERVAL,
        registry: CollectorRegistry | None = None,
        service_host: str | None = None,
    ) -> ServingCertificates:
        """Serve the pair in the files and reload it when the files change.

        Raises CertificateFilesError if the files cannot be served now, and
        ClientCAFileError if client_ca_file cannot be used. A pair that does
        not name `service_host` is served with a WARNING line.
        """
        serving = cls(client_ca_file, registry=registry)
        reloader = FileReloader(
            cert_file,
            key_file,
            serving.install,
            poll_interval=poll_interval,
            service_host=service_host,
        )
        reloader.load()
        serving.add_runner(reloader.run)
        return serving

    @classmethod
    def self_managed(
        cls,
        options: SelfManagedOptions,
        api_client: k8s.ApiClient,
        client_ca_file: Path | None = None,
        *,
        clock: Clock = utc_now,
        registry: CollectorRegistry | None = None,
    ) -> ServingCertificates:
        """Serve leaves of the shared CA in the cluster; see webhook.tls.selfmanaged."""
        serving = cls(client_ca_file, clock=clock, registry=registry)
        cluster = ClusterClient(
            api_client, options.service_namespace, options.ca_secret_name
        )
        manager = SelfManagedCertificates(
            options, cluster, serving.install, clock=clock
        )
        manager.install_bootstrap()
        serving.add_runner(manager.run)
        return serving

    @property
    def ssl_context(self) -> ssl.SSLContext:
        """The context to give uvicorn (config.ssl after config.load())."""
        return self._switch.ssl_context

    @property
    def served(self) -> ServingPair | None:
        return self._switch.served

    def add_runner(self, runner: Runner) -> None:
        """Run runner as a task between start() and close()."""
        self._runners.append(runner)

    def install(
        self,
        pair: ServingPair,
        ca_certs: Sequence[x509.Certificate] = (),
        trusted: bool = True,
    ) -> None:
        """Serve pair to new connections and publish its expiry.

        trusted=False marks a placeholder that kube-apiserver cannot verify:
        it is served, so probes can connect, but ready() stays false.
        """
        self._switch.install(pair)
        self._serves_trusted = trusted
        self._gauge.show("serving", [pair.leaf])
        if ca_certs:
            self._gauge.show("ca", ca_certs)

    def ready(self) -> bool:
        """Return whether a certificate that is valid now is being served.

        A crashed certificate task does not change this while its restart
        is pending, because the certificate served until then stays valid.
        """
        pair = self._switch.served
        if pair is None or not self._serves_trusted:
            return False
        now = self._clock()
        return pair.leaf.not_valid_before_utc <= now < pair.leaf.not_valid_after_utc

    async def start(self) -> None:
        """Start the background tasks; call once the event loop runs."""
        for runner in self._runners:
            supervised = _restarting(runner, self._restart_delay)
            self._tasks.append(asyncio.create_task(supervised))

    async def close(self) -> None:
        """Stop the background tasks; connections keep their certificate."""
        for task in self._tasks:
            task.cancel()
        for task in self._tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        self._gauge.clear()


async def _restarting(runner: Runner, first_delay: float) -> None:
    """Run runner until cancelled, restarting it with backoff when it ends.

    A crashed runner leaves the last certificate in use without reload or
    renewal, so it is logged with its traceback and started again.
    """
    loop = asyncio.get_running_loop()
    delay = first_delay
    while True:
        started = loop.time()
        crash: Exception | None = None
        try:
            await runner()
        except asyncio.CancelledError:
            raise
        except Exception as error:  # noqa: BLE001
            # Any bug in a runner must end in a restart, not a dead task.
            crash = error

        if loop.time() - started > MAX_RESTART_DELAY:
            delay = first_delay
        fields = {"task": runner.__qualname__, "retry_seconds": delay}
        if crash is None:
            logger.error("certificate task returned; restarting it", extra=fields)
        else:
            logger.error(
                "certificate task crashed; restarting it", exc_info=crash, extra=fields
            )
        await asyncio.sleep(delay)
        delay = min(delay * 2, MAX_RESTART_DELAY)
