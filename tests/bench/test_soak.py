"""The soak's think time: its calibration and its correction per segment."""

from __future__ import annotations

from bench import soak
from bench.wrk import WrkResult


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


def fake_result(length: float, rate: float) -> WrkResult:
    requests = round(rate * length)
    return WrkResult(requests, length, 0, 0, {50.0: 1.0, 99.0: 2.0, 99.9: 3.0}, 4.0)


def test_segments_follow_a_drifting_server() -> None:
    """Latency grows by 0.1 ms per segment, and the rate stays on target."""
    target = 3000.0
    latencies = iter(1.0 + 0.1 * segment for segment in range(100))
    calls: list[tuple[float, float]] = []

    def run(length: float, think_ms: float) -> WrkResult:
        calls.append((length, think_ms))
        cycle_ms = think_ms + next(latencies)
        return fake_result(length, soak.CONNECTIONS * 1000 / cycle_ms)

    think_ms = soak.think_ms_for(target, 1.0)
    segments = soak.run_segments(target, think_ms, 100.0, run)

    assert [length for length, _ in calls] == [30.0, 30.0, 30.0, 10.0]
    # Each segment after the first corrects for the previous one's latency.
    rates = [segment.rate for segment in segments]
    assert abs(rates[0] / target - 1) < 0.01
    for rate in rates[1:]:
        assert abs(rate / target - 1) <= soak.RATE_TOLERANCE
    thinks = [think for _, think in calls]
    assert thinks == sorted(thinks, reverse=True)


def test_segments_cover_short_soak_once() -> None:
    calls: list[float] = []

    def run(length: float, think_ms: float) -> WrkResult:
        calls.append(length)
        return fake_result(length, 3000.0)

    soak.run_segments(3000.0, 9.0, 5.0, run)

    assert calls == [5.0]


def test_segment_without_requests_keeps_think_time() -> None:
    """A stalled server sends no response for a whole segment, and the soak goes on."""
    rates = iter([3000.0, 0.0, 3000.0])
    calls: list[float] = []

    def run(length: float, think_ms: float) -> WrkResult:
        calls.append(think_ms)
        return fake_result(length, next(rates))

    segments = soak.run_segments(3000.0, 9.0, 90.0, run)

    assert [segment.requests for segment in segments] == [90000, 0, 90000]
    # No response gives no cycle to correct by, so the think time stays.
    assert calls[2] == calls[1]


def test_probe_without_requests_keeps_think_time() -> None:
    first = soak.think_ms_for(3000.0, 1.0)

    think_ms = soak.find_think_ms(3000.0, lambda think: 0.0)

    assert think_ms == first
