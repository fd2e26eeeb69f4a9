"""`serve --workers N`: N worker processes that share one listening socket.

The supervisor binds the port, starts the workers with the `spawn` method
and hands each the socket, so the kernel spreads new connections over them.
Each worker is a whole service: its own secret cache and single-flight (so
up to N API calls for one cold secret), its own certificate reload and its
own templates. Metrics use prometheus-client's multiprocess mode: the
workers write their samples to files in one directory, and /metrics on any
worker adds up all of them. Gauges appear once per worker, with a `pid`
label; process metrics such as memory are not exported in this mode.

A worker that exits on its own stops the others and the supervisor, so
that the pod restarts instead of running with fewer workers than asked.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import shutil
import signal
import socket
import tempfile
import threading
from collections.abc import Callable, Sequence
from multiprocessing.process import BaseProcess
from types import FrameType

from prometheus_client import multiprocess

from webhook.server.listener import GRACEFUL_SHUTDOWN_SECONDS
from webhook.server.metrics import MULTIPROCESS_DIR_VARIABLE
from webhook.settings import ServeSettings

logger = logging.getLogger(__name__)

# How long a worker may take to stop after SIGTERM before it is killed.
STOP_TIMEOUT_SECONDS = GRACEFUL_SHUTDOWN_SECONDS + 5

# Run in each worker: serve on the given sockets, return the exit status.
WorkerMain = Callable[[ServeSettings, Sequence[socket.socket]], int]


def bind_socket(host: str, port: int) -> socket.socket:
    """Bind and listen on host:port; IPv6 addresses get an IPv6 socket."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    listener = socket.socket(family, socket.SOCK_STREAM)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind((host, port))
    listener.listen(2048)
    listener.set_inheritable(True)
    return listener


def multiprocess_directory() -> tuple[str, bool]:
    """Return the metrics directory and whether this process created it."""
    configured = os.environ.get(MULTIPROCESS_DIR_VARIABLE)
    if configured:
        return configured, False
    return tempfile.mkdtemp(prefix="runai-secrets-webhook-metrics-"), True


def _run_worker(
    main: WorkerMain, settings: ServeSettings, listener: socket.socket
) -> None:
    raise SystemExit(main(settings, [listener]))


class Supervisor:
    """The parent process of the workers: starts them, forwards stop signals, waits."""

    def __init__(self, settings: ServeSettings, main: WorkerMain) -> None:
        self.settings = settings
        self.main = main
        self.stopping = threading.Event()
        self.workers: list[BaseProcess] = []

    def run(self) -> int:
        listener = bind_socket(self.settings.host, self.settings.port)
        directory, created = multiprocess_directory()
        # Set before the workers start: each imports prometheus-client anew.
        os.environ[MULTIPROCESS_DIR_VARIABLE] = directory
        handled = (signal.SIGINT, signal.SIGTERM)
        previous = {sig: signal.signal(sig, self._on_signal) for sig in handled}
        try:
            self._start(listener)
            return self._wait()
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            listener.close()
            if created:
                shutil.rmtree(directory, ignore_errors=True)

    def _start(self, listener: socket.socket) -> None:
        context = multiprocessing.get_context("spawn")
        for _ in range(self.settings.workers):
            worker = context.Process(
                target=_run_worker,
                args=(self.main, self.settings, listener),
                name="webhook-worker",
            )
            worker.start()
            self.workers.append(worker)
        logger.info(
            "workers started",
            extra={
                "workers": len(self.workers),
                "pids": [worker.pid for worker in self.workers],
                "metrics_dir": os.environ[MULTIPROCESS_DIR_VARIABLE],
            },
        )

    def _on_signal(self, sig: int, frame: FrameType | None) -> None:
        self.stopping.set()

    def _wait(self) -> int:
        # Wake up on a stop signal or when any worker exits.
        while not self.stopping.is_set():
            if any(not worker.is_alive() for worker in self.workers):
                break
            self.stopping.wait(0.5)

        failed = [w for w in self.workers if not w.is_alive()]
        if failed and not self.stopping.is_set():
            logger.error(
                "worker exited, stopping the others",
                extra={"pid": failed[0].pid, "exit_code": failed[0].exitcode},
            )
        self._stop_all()
        logger.info("workers stopped")
        return 0 if self.stopping.is_set() and not failed else 1

    def _stop_all(self) -> None:
        for worker in self.workers:
            if worker.is_alive() and worker.pid is not None:
                os.kill(worker.pid, signal.SIGTERM)
        for worker in self.workers:
            worker.join(STOP_TIMEOUT_SECONDS)
            if worker.is_alive():
                logger.error("worker did not stop in time", extra={"pid": worker.pid})
                worker.kill()
                worker.join()
            if worker.pid is not None:
                multiprocess.mark_process_dead(  # type: ignore[no-untyped-call]
                    worker.pid, os.environ[MULTIPROCESS_DIR_VARIABLE]
                )
