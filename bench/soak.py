"""Soak: a fixed load at half the measured maximum rate, watching memory.

Debian has no fixed-rate load generator (wrk2), so the soak uses wrk with a
think time: each of the 32 connections waits a fixed number of milliseconds
after a response before it sends the next request. That holds the rate near
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
from bench.wrk import run_wrk

CONNECTIONS = 32
CALIBRATION_SECONDS = 5.0
# The think time is probed again until the rate is this close to the target.
RATE_TOLERANCE = 0.02
MAX_PROBES = 4
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


def find_think_ms(target_rate: float, probe: Callable[[float], float]) -> float:
    """Adjust the think time until `probe` gives a rate near `target_rate`.

    `probe(think_ms)` returns the rate measured with that think time. After
    each probe more than RATE_TOLERANCE off the target, the think time
    changes by the difference between the cycle length (think time plus
    latency) the target needs and the one measured. It stops after
    MAX_PROBES probes.
    """
    target_cycle_ms = CONNECTIONS * 1000 / target_rate
    think_ms = think_ms_for(target_rate, 1.0)
    for _ in range(MAX_PROBES):
        rate = probe(think_ms)
        if abs(rate / target_rate - 1) <= RATE_TOLERANCE:
            break
        measured_cycle_ms = CONNECTIONS * 1000 / rate
        think_ms = max(0.0, think_ms + target_cycle_ms - measured_cycle_ms)
    return think_ms


def window_median(samples: list[tuple[float, int]], start: float, end: float) -> float:
    values = [rss for moment, rss in samples if start <= moment < end]
    return statistics.median(values)


def measure(
    stack: Stack, body: Path, target_rate: float, seconds: float
) -> dict[str, Any]:
    """Run the soak and return the achieved rate, failures and RSS growth."""
    url = stack.ours.url + MUTATE_PATH
    think_ms = calibrate(url, body, target_rate)
    with RssSampler(stack.ours.pid, interval=1.0) as sampler:
        result = run_wrk(
            url, body, EXPECTED_WEBHOOK, seconds, CONNECTIONS, think_ms=think_ms
        )

    started = sampler.samples[0][0]
    baseline = window_median(
        sampler.samples,
        started + WARM_UP_SECONDS,
        started + WARM_UP_SECONDS + WINDOW_SECONDS,
    )
    final = window_median(
        sampler.samples, started + seconds - WINDOW_SECONDS, started + seconds
    )
    return {
        "target_rate": round(target_rate, 1),
        "think_ms": round(think_ms, 1),
        "seconds": round(result.seconds, 1),
        "rate": round(result.rate, 1),
        "reviews": result.requests,
        "failed": result.failed + result.socket_errors,
        "p50_ms": result.percentile(50),
        "p99_ms": result.percentile(99),
        "p99_9_ms": result.percentile(99.9),
        "rss_after_warm_up_mib": round(baseline / 2**20, 1),
        "rss_at_end_mib": round(final / 2**20, 1),
        "rss_growth_percent": round((final / baseline - 1) * 100, 2),
        "warm_up_s": WARM_UP_SECONDS,
    }
