"""The soak's search for the think time that gives half the maximum rate."""

from __future__ import annotations

from bench import soak


def test_think_time_corrects_for_latency() -> None:
    """A server with 2.3 ms of latency is slower than the first guess assumes."""
    target = 3000.0
    probes: list[float] = []

    def probe(think_ms: float) -> float:
        probes.append(think_ms)
        return soak.CONNECTIONS * 1000 / (think_ms + 2.3)

    think_ms = soak.find_think_ms(target, probe)

    assert len(probes) == 2
    assert abs(probe(think_ms) / target - 1) <= soak.RATE_TOLERANCE
    assert think_ms == probes[-1]


def test_think_time_stops_after_max_probes() -> None:
    """A server whose rate does not follow the think time ends the search."""
    probes: list[float] = []

    def probe(think_ms: float) -> float:
        probes.append(think_ms)
        return 1000.0

    think_ms = soak.find_think_ms(3000.0, probe)

    assert len(probes) == soak.MAX_PROBES
    assert think_ms >= 0.0


def test_first_guess_within_tolerance_is_kept() -> None:
    target = 3000.0
    first = soak.think_ms_for(target, 1.0)

    think_ms = soak.find_think_ms(target, lambda think: target * 1.01)

    assert think_ms == first
