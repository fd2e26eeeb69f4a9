"""Run the propagation controller beside the webhook, for `serve --propagate`.

The controller runs in threads of the serving process. `serve` rejects
`--propagate` with `--workers` above 1, because the worker processes serve
/metrics and the controller's metrics would not reach it. A controller
thread that fails leaves the copies unmanaged while the webhook looks
healthy, so a failure stops the whole process with a non-zero status and
Kubernetes restarts the pod.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable

from webhook.propagation.controller import Controller

logger = logging.getLogger(__name__)

# How often the watchdog looks at the controller, in seconds.
CHECK_INTERVAL_SECONDS = 0.5


def _stop_on_failure(controller: Controller, done: threading.Event) -> None:
    """Ask the process to stop, as SIGTERM does, once the controller fails."""
    while not done.is_set():
        if controller.failed.wait(CHECK_INTERVAL_SECONDS):
            logger.error("propagation controller failed; stopping the webhook")
            # The server's own SIGTERM handling finishes in-flight reviews
            # before run() returns.
            # Sent to the main thread, because Python runs signal handlers
            # there and only a signal delivered there interrupts a blocking wait.
            main_thread = threading.main_thread().ident
            if main_thread is not None:  # None only before the thread starts
                signal.pthread_kill(main_thread, signal.SIGTERM)
            return


def serve_with_controller(controller: Controller, serve: Callable[[], int]) -> int:
    """Start `controller`, run `serve` until it returns, then stop the controller.

    Returns 1 when the controller failed, else the status of `serve`.
    Stopping the controller releases its Lease, so a standby replica takes
    over at once.
    """
    done = threading.Event()
    watchdog = threading.Thread(
        target=_stop_on_failure,
        args=(controller, done),
        name="propagation-watchdog",
        daemon=True,
    )
    controller.start()
    watchdog.start()
    try:
        status = serve()
    finally:
        done.set()
        controller.stop()

    if controller.failed.is_set():
        logger.error("exiting because the propagation controller failed")
        return 1
    return status
