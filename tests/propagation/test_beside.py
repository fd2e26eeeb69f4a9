"""The controller run beside the webhook: stop with it, and stop it on failure."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Iterator
from types import FrameType

import pytest

from tests.harness.fakekube import FakeKube
from tests.propagation.conftest import LEASE_NAMESPACE, fast_settings, wait_for
from webhook.propagation.beside import serve_with_controller
from webhook.propagation.controller import Controller


@pytest.fixture
def controller(fake_kube: FakeKube) -> Controller:
    fake_kube.add_namespace(LEASE_NAMESPACE)
    return Controller(
        fake_kube.api_client(),
        fast_settings(),
        lease_namespace=LEASE_NAMESPACE,
        lease_name="propagation",
        identity="beside",
    )


@pytest.fixture
def sigterm() -> Iterator[threading.Event]:
    """Catch SIGTERM in this process, as the server does while it serves."""
    received = threading.Event()

    def handle(signum: int, frame: FrameType | None) -> None:
        received.set()

    previous = signal.signal(signal.SIGTERM, handle)
    yield received
    signal.signal(signal.SIGTERM, previous)


def test_serve_status_returned(controller: Controller) -> None:
    def serve() -> int:
        wait_for(controller.elector.is_leader, message="the controller to lead")
        return 0

    assert serve_with_controller(controller, serve) == 0
    # Stopping the controller released the Lease.
    assert not controller.elector.is_leader()


def test_failure_stops_serve_with_status_1(
    controller: Controller,
    sigterm: threading.Event,
    caplog: pytest.LogCaptureFixture,
) -> None:
    def serve() -> int:
        wait_for(controller.elector.is_leader, message="the controller to lead")
        # What Controller sets when one of its threads raised.
        controller.failed.set()
        # Poll as the server's main loop does: a signal that arrives just
        # before a long blocking wait would run its handler only afterwards.
        deadline = time.monotonic() + 5.0
        while not sigterm.is_set() and time.monotonic() < deadline:
            time.sleep(0.05)
        assert sigterm.is_set(), "the failure did not send SIGTERM"
        return 0

    with caplog.at_level(logging.ERROR):
        status = serve_with_controller(controller, serve)

    assert status == 1
    assert "propagation controller failed; stopping the webhook" in caplog.text
    assert "exiting because the propagation controller failed" in caplog.text
