"""Several server processes on one port, for `serve --workers N`.

The parent binds the listening socket once and starts N processes that
each run the whole service on it, so the kernel spreads connections across
them. The parent forwards SIGTERM and SIGINT as SIGTERM, so each worker
finishes its in-flight reviews, and exits when all workers have exited.

Metrics use prometheus-client's multiprocess mode: the workers write their
samples to files in one directory, and /metrics on any worker adds up all
of them. Gauges appear once per worker with a `pid` label, and process
metrics such as memory are not exported in this mode.

NOTE: prometheus-client cannot remove a label set in multiprocess mode, so
after a certificate reload the expiry gauge keeps the replaced
certificate's series beside the new one until the worker restarts. Alerts
on it should take the max per role.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import replace
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from types import FrameType

from prometheus_client import multiprocess

from webhook.server.certificates import certificate_files
from webhook.server.metrics import MULTIPROCESS_DIR_VARIABLE
from webhook.settings import ServeSettings

logger = logging.getLogger(__name__)

# Runs one server on an already bound socket and returns its exit status.
ServeOne = Callable[[ServeSettings, socket.socket | None], int]

# Pending connections the kernel queues for the shared socket, as uvicorn's
# default backlog.
BACKLOG = 2048


def bind(host: str, port: int) -> socket.socket:
    """Bind the socket that the server, or every worker, accepts connections on.

    Raises `OSError` naming --host, --port, the reason and the fix.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind((host, port))
        listener.listen(BACKLOG)
    except OSError as error:
        listener.close()
        raise OSError(
            error.errno,
            f"cannot listen on --host {host} --port {port}: {error.strerror}; "
            "pass a free port and an address of this machine",
        ) from None
    listener.set_inheritable(True)
    return listener


def _worker(
    serve_one: ServeOne, settings: ServeSettings, listener: socket.socket
) -> None:
    sys.exit(serve_one(settings, listener))


def with_certificate_files(settings: ServeSettings) -> ServeSettings:
    """Make development certificates once in the parent, not once per worker.

    With --self-managed-certs every worker runs the self-managed CA loop on
    its own, and the workers share the CA in the Secret as replicas do.
    """
    if settings.self_managed_certs or (
        settings.tls_cert_file and settings.tls_key_file
    ):
        return settings
    cert_file, key_file = certificate_files(settings)
    return replace(settings, tls_cert_file=str(cert_file), tls_key_file=str(key_file))


def run_workers(settings: ServeSettings, serve_one: ServeOne) -> int:
    """Run `settings.workers` processes of `serve_one`; return the exit status."""
    try:
        settings = with_certificate_files(settings)
        listener = bind(settings.host, settings.port)
    except (OSError, ValueError) as error:
        logger.error("startup failed", extra={"error": str(error)})
        return 1

    # Set before the workers start, because each imports prometheus-client
    # anew and picks the mode then. An admin's own directory is kept.
    metrics_dir = os.environ.get(MULTIPROCESS_DIR_VARIABLE) or tempfile.mkdtemp(
        prefix="runai-secrets-webhook-metrics-"
    )
    created = MULTIPROCESS_DIR_VARIABLE not in os.environ
    os.environ[MULTIPROCESS_DIR_VARIABLE] = metrics_dir
    try:
        return _start_and_supervise(settings, serve_one, listener)
    finally:
        if created:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _start_and_supervise(
    settings: ServeSettings, serve_one: ServeOne, listener: socket.socket
) -> int:
    context = multiprocessing.get_context("spawn")
    workers = [
        context.Process(
            target=_worker,
            args=(serve_one, settings, listener),
            name=f"worker-{number}",
        )
        for number in range(settings.workers)
    ]
    for worker in workers:
        worker.start()
    logger.info(
        "workers started",
        extra={
            "workers": [worker.pid for worker in workers],
            "metrics_dir": os.environ[MULTIPROCESS_DIR_VARIABLE],
        },
    )
    return supervise(workers)


def supervise(workers: Sequence[BaseProcess]) -> int:
    """Forward stop signals and wait; stop all when one worker fails."""
    stopping = False

    def forward(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        for worker in workers:
            if worker.pid is not None and worker.exitcode is None:
                os.kill(worker.pid, signal.SIGTERM)

    signal.signal(signal.SIGTERM, forward)
    signal.signal(signal.SIGINT, forward)

    running = list(workers)
    while running:
        wait([worker.sentinel for worker in running])
        for worker in [w for w in running if w.exitcode is not None]:
            running.remove(worker)
            if worker.pid is not None:
                multiprocess.mark_process_dead(worker.pid)  # type: ignore[no-untyped-call]
            if worker.exitcode != 0 and not stopping:
                # A half-sized server would look healthy; stop so the pod restarts.
                logger.error(
                    "worker failed, stopping the others",
                    extra={"worker": worker.pid, "exit_code": worker.exitcode},
                )
                forward(signal.SIGTERM, None)
    # A worker still starting when the stop signal came dies of it (-SIGTERM)
    # before its own handler is installed, which is a clean stop too.
    clean = {0, -signal.SIGTERM} if stopping else {0}
    failed = [worker.pid for worker in workers if worker.exitcode not in clean]
    logger.info("workers stopped", extra={"failed": failed})
    return 1 if failed else 0
