"""Run the service on uvicorn: HTTPS only, graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import signal
import socket
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import FrameType

import uvicorn
from prometheus_client import REGISTRY, CollectorRegistry

from webhook.kube.config import (
    MAX_CONCURRENT_CALLS,
    new_api_client,
    reload_credentials,
)
from webhook.kube.lookups import SecretKeyLookups
from webhook.kube.secrets import ClusterSecrets, DirectorySecrets
from webhook.propagation.clusterwide import (
    ClusterWideLookups,
    build_cluster_wide_lookups,
)
from webhook.server.app import create_app
from webhook.server.certificates import serving_certificates
from webhook.server.listener import (
    GRACEFUL_SHUTDOWN_SECONDS,
    run_on_loop,
    uvicorn_config,
)
from webhook.server.logs import configure_logging
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.pipeline import build_reviewer, injection_options
from webhook.server.readiness import Readiness
from webhook.server.templates_route import templates_router
from webhook.server.workers import bind, run_workers
from webhook.settings import ServeSettings
from webhook.templates.service import TemplateService
from webhook.tls.serving import ServingCertificates

logger = logging.getLogger(__name__)

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
                extra={
                    "signal": signal.Signals(sig).name,
                    "grace_seconds": GRACEFUL_SHUTDOWN_SECONDS,
                },
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
    api_client = new_api_client(settings.kubeconfig)
    return ClusterSecrets(
        api_client, lambda: reload_credentials(api_client, settings.kubeconfig)
    )


def build_templates(
    settings: ServeSettings, registry: CollectorRegistry
) -> TemplateService | None:
    """Set up templates when --templates is on; they need the Kubernetes API."""
    if not settings.templates:
        return None
    conflict = settings.secrets_dir_conflict()
    if conflict:
        raise ValueError(conflict)
    return TemplateService(
        new_api_client(settings.kubeconfig),
        settings.template_namespace,
        registry,
        settings.webhook_configuration_name,
    )


def build_cluster_wide(
    settings: ServeSettings, source: SecretSource, executor: ThreadPoolExecutor
) -> ClusterWideLookups | None:
    """Set up the cluster-wide secret lookups when --cluster-wide-secrets is on.

    They share the client of `source`, so a token that a 401 made `source`
    read again serves them too.
    """
    if not settings.cluster_wide_secrets:
        return None
    conflict = settings.secrets_dir_conflict()
    if conflict or not isinstance(source, ClusterSecrets):
        raise ValueError(conflict or "--cluster-wide-secrets needs the Kubernetes API")
    return build_cluster_wide_lookups(
        source.api_client,
        executor,
        source_namespace=settings.source_namespace,
        project_label=settings.project_label,
        annotation_prefix=settings.annotation_prefix,
        copy_on_admission=settings.cluster_wide_copy_on_admission,
    )


async def probe_until_answered(
    source: SecretSource, executor: ThreadPoolExecutor
) -> None:
    """Call the API until it responds once, so that /readyz can turn true.

    Each failed attempt is logged with the API address and the error, because
    /readyz stays false until then and the log is where an admin looks.
    """
    loop = asyncio.get_running_loop()
    attempts = 0
    while True:
        result = await loop.run_in_executor(
            executor, source.probe, PROBE_TIMEOUT_SECONDS
        )
        if result.answered:
            break
        attempts += 1
        logger.warning(
            "secret source not reachable, retrying",
            extra={
                "source": source.location,
                "error": result.problem,
                "attempt": attempts,
            },
        )
        await asyncio.sleep(PROBE_INTERVAL_SECONDS)
    if result.problem:
        # Ready anyway, as documented for /readyz, but every lookup will fail
        # the same way (a 401 from a wrong token, say) until this is fixed.
        logger.warning(
            "secret source responded with an error",
            extra={"source": source.location, "error": result.problem},
        )
    else:
        logger.info("secret source responded", extra={"source": source.location})


def freeze_startup_objects() -> None:
    """Exclude the objects alive after startup from later garbage collections.

    The kubernetes client, FastAPI and pydantic leave about 130,000 objects
    that live as long as the process. A full collection walked all of them
    in about 56 ms, several times a second under load, and those pauses made
    up most of the p99 latency (measured with `python -m bench`).
    """
    gc.collect()
    gc.freeze()


async def serve(
    server: GracefulServer,
    source: SecretSource,
    executor: ThreadPoolExecutor,
    certificates: ServingCertificates,
    listener: socket.socket | None = None,
) -> None:
    """Serve until stopped, with certificate reloads and the API probe alongside."""
    await certificates.start()
    probe = asyncio.create_task(probe_until_answered(source, executor))
    try:
        await server.serve(sockets=[listener] if listener else None)
    finally:
        probe.cancel()
        await certificates.close()


def run(settings: ServeSettings, listener: socket.socket | None = None) -> int:
    """Run the service until SIGTERM or SIGINT; return the exit status.

    With `listener`, serve on that bound socket, as a worker of `--workers`.
    """
    configure_logging(settings.log_format, settings.log_level)
    if listener is None and settings.workers > 1:
        return run_workers(settings, run)

    metrics = new_metrics(REGISTRY)
    executor = ThreadPoolExecutor(
        MAX_CONCURRENT_CALLS, thread_name_prefix="secret-lookup"
    )
    try:
        # First, so that a bad option stops `serve` before any file is written.
        options = injection_options(settings)
        source = build_source(settings)
        certificates = serving_certificates(settings, metrics.registry)
        templates = build_templates(settings, REGISTRY)
        cluster_wide = build_cluster_wide(settings, source, executor)
        # Bound here, not by uvicorn, so that a port in use or a bad address
        # stops `serve` with the flags named before "listening" is logged.
        if listener is None:
            listener = bind(settings.host, settings.port)
    except (OSError, ValueError) as error:
        logger.error("startup failed", extra={"error": str(error)})
        return 1

    readiness = Readiness(
        source_answered=lambda: source.answered,
        certificate_ready=certificates.ready,
        templates_loaded=(lambda: templates.loaded) if templates else None,
    )
    lookups = SecretKeyLookups(
        source, executor, settings.cache_ttl, metrics.count_lookup
    )
    reviewer = build_reviewer(options, lookups, templates, cluster_wide)
    kinds = {kind for _, _, kind in reviewer.options.kinds}
    # Without the quick path, /mutate does not decode a body for it.
    quick = reviewer.quick if reviewer.quick_enabled else None
    endpoint = MutateEndpoint(reviewer, metrics, kinds, quick)
    routers = [templates_router(settings.template_namespace)] if templates else []
    app = create_app(
        endpoint,
        readiness,
        metrics,
        routers,
        settings.max_in_flight,
        settings.max_in_flight_bytes,
    )

    # The contract with webhook.tls: load() first, then our own context;
    # uvicorn_config does both.
    config = uvicorn_config(app, settings.host, settings.port, certificates.ssl_context)
    logger.info(
        "listening",
        extra={
            "host": settings.host,
            "port": listener.getsockname()[1],
            "on_missing": settings.on_missing,
        },
    )
    server = GracefulServer(config, readiness)
    if templates:
        templates.start()
    freeze_startup_objects()
    run_on_loop(config, serve(server, source, executor, certificates, listener))
    if templates:
        templates.stop()
    executor.shutdown(wait=False, cancel_futures=True)
    logger.info("stopped")
    return 0
