"""Soak: a fixed load at half the measured maximum rate, watching memory.

Debian has no fixed-rate load generator (wrk2), so the soak uses wrk with a
think time: each of the 32 connections waits a number of milliseconds after
a response before it sends the next request. The think time is calibrated
first, then corrected after each segment of 30 s. That keeps the rate near
the target but is still closed-loop: if the server slows down, the rate
drops instead of requests queueing. The achieved rate is reported.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.services import RssSampler, Stack
from bench.throughput import EXPECTED_WEBHOOK, MUTATE_PATH
from bench.wrk import WrkResult, run_wrk

CONNECTIONS = 32
CALIBRATION_SECONDS = 5.0
# The think time is probed again until the rate is this close to the target.
RATE_TOLERANCE = 0.02
MAX_PROBES = 4
# The soak runs wrk in segments of this length and corrects the think time
# after each one.
SEGMENT_SECONDS = 30.0
# RSS before this point is warm-up (allocator pools, caches, first GCs).
WARM_UP_SECONDS = 60.0
WINDOW_SECONDS = 10.0


def think_ms_for(rate: float, latency_ms: float) -> float:
    """Return the per-connection wait that gives `rate` with this latency."""
    return max(0.0, CONNECTIONS * 1000 / rate - latency_ms)


def calibrate(url: str, body: Path, target_rate: float) -> float:
    """Find the think time that gives about `target_rate` reviews per second."""

    def probe(think_ms: float) -> float:
        return run_wrk(
            url,
            body,
            EXPECTED_WEBHOOK,
            CALIBRATION_SECONDS,
            CONNECTIONS,
            think_ms=think_ms,
        ).rate

    return find_think_ms(target_rate, probe)


def corrected_think_ms(think_ms: float, target_rate: float, rate: float) -> float:
    """Return the think time that moves `rate`, measured with `think_ms`, to the target.

    Each connection's cycle is think time plus latency, so the think time
    changes by the difference between the cycle the target needs and the
    one measured. A run without a single response has no cycle to measure,
    so the think time then stays as it was.
    """
    if rate <= 0:
        return think_ms
    target_cycle_ms = CONNECTIONS * 1000 / target_rate
    measured_cycle_ms = CONNECTIONS * 1000 / rate
    return max(0.0, think_ms + target_cycle_ms - measured_cycle_ms)


def find_think_ms(target_rate: float, probe: Callable[[float], float]) -> float:
    """Adjust the think time until `probe` gives a rate near `target_rate`.

    `probe(think_ms)` returns the rate measured with that think time. It
    stops at the first probe within RATE_TOLERANCE of the target, or after
    MAX_PROBES probes.
    """
    think_ms = think_ms_for(target_rate, 1.0)
    for _ in range(MAX_PROBES):
        rate = probe(think_ms)
        if abs(rate / target_rate - 1) <= RATE_TOLERANCE:
            break
        think_ms = corrected_think_ms(think_ms, target_rate, rate)
    return think_ms


def run_segments(
    target_rate: float,
    think_ms: float,
    seconds: float,
    run: Callable[[float, float], WrkResult],
) -> list[WrkResult]:
    """Load for `seconds` in segments, correcting the think time after each.

    `run(segment_seconds, think_ms)` runs wrk once. The server's rate drifts
    over minutes (caches, allocator, the machine's other load), so one
    calibration at the start does not keep it near the target.
    """
    segments = []
    remaining = seconds
    while remaining > 0:
        length = min(SEGMENT_SECONDS, remaining)
        result = run(length, think_ms)
        segments.append(result)
        remaining -= length
        think_ms = corrected_think_ms(think_ms, target_rate, result.rate)
    return segments


def window_median(samples: list[tuple[float, int]], start: float, end: float) -> float:
    values = [rss for moment, rss in samples if start <= moment < end]
    return statistics.median(values)


def measure(
    stack: Stack, body: Path, target_rate: float, seconds: float
) -> dict[str, Any]:
    """Run the soak and return the achieved rate, failures and RSS growth."""
    url = stack.ours.url + MUTATE_PATH
    think_ms = calibrate(url, body, target_rate)

    def run(length: float, think: float) -> WrkResult:
        return run_wrk(url, body, EXPECTED_WEBHOOK, length, CONNECTIONS, think_ms=think)

    with RssSampler(stack.ours.pid, interval=1.0) as sampler:
        segments = run_segments(target_rate, think_ms, seconds, run)

    started = sampler.samples[0][0]
    baseline = window_median(
        sampler.samples,
        started + WARM_UP_SECONDS,
        started + WARM_UP_SECONDS + WINDOW_SECONDS,
    )
    # The segments' wrk start-ups make the soak last a little over `seconds`.
    ended = sampler.samples[-1][0]
    final = window_median(sampler.samples, ended - WINDOW_SECONDS, ended + 1)
    requests = sum(segment.requests for segment in segments)
    elapsed = sum(segment.seconds for segment in segments)
    return {
        "target_rate": round(target_rate, 1),
        "think_ms": round(think_ms, 1),
        "segments": len(segments),
        "seconds": round(elapsed, 1),
        "rate": round(requests / elapsed, 1),
        "segment_rates": [round(segment.rate, 1) for segment in segments],
        "reviews": requests,
        "failed": sum(segment.failed + segment.socket_errors for segment in segments),
        # Percentiles cannot be merged across wrk runs, so the soak reports the
        # median of the segments' p50 and the highest p99 and p99.9.
        "p50_ms": statistics.median(segment.percentile(50) for segment in segments),
        "p99_ms": max(segment.percentile(99) for segment in segments),
        "p99_9_ms": max(segment.percentile(99.9) for segment in segments),
        "rss_after_warm_up_mib": round(baseline / 2**20, 1),
        "rss_at_end_mib": round(final / 2**20, 1),
        "rss_growth_percent": round((final / baseline - 1) * 100, 2),
        "warm_up_s": WARM_UP_SECONDS,
    }
