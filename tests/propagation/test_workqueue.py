"""The work queue holds each source name once and never runs it twice at once."""

from __future__ import annotations

from webhook.propagation.workqueue import WorkQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_queue_deduplicates() -> None:
    queue = WorkQueue()
    for name in ("a", "b", "a", "a"):
        queue.add(name)

    assert queue.get(0) == "a"
    assert queue.get(0) == "b"
    assert queue.get(0) is None


def test_queue_requeues_name_added_while_active() -> None:
    queue = WorkQueue()
    queue.add("a")
    assert queue.get(0) == "a"

    queue.add("a")
    assert queue.get(0) is None
    queue.done("a")
    assert queue.get(0) == "a"


def test_queue_add_after_waits() -> None:
    clock = FakeClock()
    queue = WorkQueue(clock=clock)
    queue.add_after("a", 5.0)

    assert queue.get(0) is None
    clock.now = 5.0
    assert queue.get(0) == "a"


def test_queue_close_wakes_getter() -> None:
    queue = WorkQueue()
    queue.close()

    assert queue.get(10) is None
