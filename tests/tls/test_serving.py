"""The background tasks of ServingCertificates: crash, restart, close."""

from __future__ import annotations

import asyncio
import logging

import pytest

from tests.tls.support import new_ca, new_leaf
from webhook.tls.pairs import ServingPair
from webhook.tls.serving import ServingCertificates

RESTART_DELAY = 0.01


class FlakyRunner:
    """A certificate task that crashes `crashes` times, then runs until cancelled."""

    def __init__(self, crashes: int) -> None:
        self.crashes = crashes
        self.starts = 0
        self.running = asyncio.Event()

    async def run(self) -> None:
        self.starts += 1
        if self.starts <= self.crashes:
            raise RuntimeError(f"crash {self.starts}")
        self.running.set()
        await asyncio.Event().wait()


def _serving() -> ServingCertificates:
    serving = ServingCertificates(restart_delay=RESTART_DELAY)
    leaf = new_leaf(new_ca())
    serving.install(ServingPair(leaf.cert_pem, leaf.key_pem, (leaf.cert,)))
    return serving


async def test_crashed_task_restarted_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    serving = _serving()
    runner = FlakyRunner(crashes=2)
    serving.add_runner(runner.run)

    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        await serving.start()
        await asyncio.wait_for(runner.running.wait(), timeout=5)
        assert serving.ready()
        await serving.close()

    assert runner.starts == 3
    errors = [r for r in caplog.records if r.levelno == logging.ERROR]
    assert [r.getMessage() for r in errors] == [
        "certificate task crashed; restarting it"
    ] * 2
    assert [r.__dict__["retry_seconds"] for r in errors] == [
        RESTART_DELAY,
        RESTART_DELAY * 2,
    ]
    assert all(r.__dict__["task"] == "FlakyRunner.run" for r in errors)
    assert errors[0].exc_info is not None
    assert "crash 1" in str(errors[0].exc_info[1])


async def test_returned_task_restarted(caplog: pytest.LogCaptureFixture) -> None:
    serving = _serving()
    starts: list[int] = []

    async def returns_once() -> None:
        starts.append(1)
        if len(starts) > 1:
            await asyncio.Event().wait()

    serving.add_runner(returns_once)
    with caplog.at_level(logging.ERROR, logger="webhook.tls"):
        await serving.start()
        for _ in range(100):
            if len(starts) == 2:
                break
            await asyncio.sleep(RESTART_DELAY)
        await serving.close()

    assert len(starts) == 2
    assert "certificate task returned; restarting it" in caplog.messages
