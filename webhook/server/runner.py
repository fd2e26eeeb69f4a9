"""Run the service on uvicorn: HTTPS only, graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import REGISTRY

from webhook.kube.config import new_api_client
from webhook.kube.lookups import SecretKeyLookups
from webhook.kube.secrets import ClusterSecrets, DirectorySecrets
from webhook.server.app import create_app
from webhook.server.certificates import serving_certificates
from webhook.server.logs import configure_logging
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.pipeline import build_reviewer
from webhook.server.readiness import Readiness
from webhook.settings import ServeSettings
from webhook.tls.serving import ServingCertificates

logger = logging.getLogger(__name__)

# kube-apiserver keeps idle connections for up to 90 s and does not retry a
# POST on a connection the server closed, so the server waits longer.
KEEP_ALIVE_SECONDS = 120

# On SIGTERM in-flight reviews may run this long; kube-apiserver's largest
# webhook timeoutSeconds is 30 s.
GRACEFUL_SHUTDOWN_SECONDS = 35

# Threads for blocking Kubernetes API calls; at most this many calls run at
# once, more wait in the pool's queue.
LOOKUP_THREADS = 16

# How often the Kubernetes API is probed until it has responded once.
PROBE_INTERVAL_SECONDS = 2.0
PROBE_TIMEOUT_SECONDS = 5.0

SecretSource = ClusterSecrets | DirectorySecrets


class GracefulServer(uvicorn.Server):
    """A uvicorn server that reports not ready as soon as a stop signal arrives."""

    def __init__(self, config: uvicorn.Config, readiness: Readiness) -> None:
        super().__init__(config)
        self.readiness = readiness

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        if not self.readiness.stopping:
            logger.info(
                "stopping: finishing in-flight reviews",
                extra={"signal": signal.Signals(sig).name},
            )
        self.readiness.stopping = True
        super().handle_exit(sig, frame)

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # uvicorn's own version raises the signal again after shutdown, which
        # ends the process with status 143 instead of 0 and skips the last log.
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self.handle_exit) for sig in handled}
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)


def build_source(settings: ServeSettings) -> SecretSource:
    """Open the secrets directory, or a client for the Kubernetes API."""
    if settings.secrets_dir:
        return DirectorySecrets(Path(settings.secrets_dir))
    return ClusterSecrets(new_api_client(settings.kubeconfig))


async def probe_until_answered(
    source: SecretSource, executor: ThreadPoolExecutor
) -> None:
    """Call the API until it responds once, so that /readyz can turn true."""
    loop = asyncio.get_running_loop()
    while not await loop.run_in_executor(executor, source.probe, PROBE_TIMEOUT_SECONDS):
        logger.warning("secret source not reachable, retrying")
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    logger.info("secret source responded")


async def serve(
    server: GracefulServer,
    source: SecretSource,
    executor: ThreadPoolExecutor,
    certificates: ServingCertificates,
) -> None:
    """Serve until stopped, with certificate reloads and the API probe alongside."""
    await certificates.start()
    probe = asyncio.create_task(probe_until_answered(source, executor))
    try:
        await server.serve()
    finally:
        probe.cancel()
        await certificates.close()


def run(settings: ServeSettings) -> int:
    """Run the service until SIGTERM or SIGINT; return the exit status."""
    configure_logging(settings.log_format, settings.log_level)
    metrics = new_metrics(REGISTRY)
    try:
        source = build_source(settings)
        certificates = serving_certificates(settings, metrics.registry)
    except (OSError, ValueError) as error:
        logger.error("startup failed", extra={"error": str(error)})
        return 1

    executor = ThreadPoolExecutor(LOOKUP_THREADS, thread_name_prefix="secret-lookup")
    readiness = Readiness(
        source_answered=lambda: source.answered,
        certificate_ready=certificates.ready,
    )
    lookups = SecretKeyLookups(
        source, executor, settings.cache_ttl, metrics.count_lookup
    )
    endpoint = MutateEndpoint(build_reviewer(settings, lookups), metrics)
    app = create_app(endpoint, readiness, metrics)

    config = uvicorn.Config(
        app,
        host=settings.host,
        port=settings.port,
        timeout_keep_alive=KEEP_ALIVE_SECONDS,
        timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
        log_config=None,
        access_log=False,
        server_header=False,
    )
    # The contract with webhook.tls: load() first, then our own context.
    config.load()
    config.ssl = certificates.ssl_context
    logger.info(
        "listening",
        extra={
            "host": settings.host,
            "port": settings.port,
            "on_missing": settings.on_missing,
        },
    )
    asyncio.run(
        serve(GracefulServer(config, readiness), source, executor, certificates)
    )
    executor.shutdown(wait=False, cancel_futures=True)
    logger.info("stopped")
    return 0
