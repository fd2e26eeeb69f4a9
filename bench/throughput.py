"""Throughput and latency at 32 connections, the webhook against the reference.

The two servers take turns (reference, webhook, reference, webhook ...), so
that a change in the machine's load hits both about equally. Each figure is
the median over the rounds; the ratios are webhook / reference.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench.services import RssSampler, Server, Stack
from bench.wrk import WrkResult, run_wrk

# kube-apiserver sends the webhook's timeoutSeconds as a Go duration.
MUTATE_PATH = "/mutate?timeout=10s"

# Every response must admit the pod; the webhook's must also carry a patch.
EXPECTED_REFERENCE = '"allowed":true'
EXPECTED_WEBHOOK = '"patchType":"JSONPatch"'


@dataclass
class Series:
    """The rounds of one server."""

    name: str
    rounds: list[WrkResult] = field(default_factory=list)
    peak_rss: int = 0

    def rate(self) -> float:
        """Return the median reviews per second."""
        return statistics.median(result.rate for result in self.rounds)

    def latency(self, point: float) -> float:
        """Return the median of the rounds' `point` percentiles, in milliseconds."""
        return statistics.median(result.percentile(point) for result in self.rounds)

    @property
    def failed(self) -> int:
        return sum(r.failed + r.socket_errors for r in self.rounds)

    def to_json(self) -> dict[str, Any]:
        return {
            "rate": round(self.rate(), 1),
            "p50_ms": round(self.latency(50), 3),
            "p99_ms": round(self.latency(99), 3),
            "p99_9_ms": round(self.latency(99.9), 3),
            "peak_rss_mib": round(self.peak_rss / 2**20, 1),
            "failed": self.failed,
            "rounds": [r.to_json() for r in self.rounds],
        }


def measure_round(
    server: Server, body: Path, expected: str, seconds: float, connections: int
) -> tuple[WrkResult, int]:
    with RssSampler(server.pid) as sampler:
        result = run_wrk(server.url + MUTATE_PATH, body, expected, seconds, connections)
    return result, sampler.peak


def compare(
    stack: Stack, body: Path, rounds: int, seconds: float, connections: int = 32
) -> tuple[Series, Series]:
    """Run `rounds` alternating wrk runs of `seconds` each on both servers."""
    reference, ours = Series("reference"), Series("webhook")
    # A short run on each first: connections, caches and allocator warm up.
    for server in (stack.reference, stack.ours):
        run_wrk(server.url + MUTATE_PATH, body, EXPECTED_REFERENCE, 1, connections)

    for _ in range(rounds):
        for series, server, expected in (
            (reference, stack.reference, EXPECTED_REFERENCE),
            (ours, stack.ours, EXPECTED_WEBHOOK),
        ):
            result, peak = measure_round(server, body, expected, seconds, connections)
            series.rounds.append(result)
            series.peak_rss = max(series.peak_rss, peak)
    return reference, ours


def ratios(reference: Series, ours: Series) -> dict[str, float]:
    """Return webhook / reference for each figure; each pair of rounds gives one."""
    pairs = list(zip(reference.rounds, ours.rounds, strict=True))
    rate = statistics.median(o.rate / r.rate for r, o in pairs)
    result = {"rate": round(rate, 3)}
    for label, point in (("p50", 50.0), ("p99", 99.0), ("p99_9", 99.9)):
        values = [o.percentile(point) / r.percentile(point) for r, o in pairs]
        result[label] = round(statistics.median(values), 2)
    result["peak_rss"] = round(ours.peak_rss / reference.peak_rss, 2)
    return result
