"""Cost growth: time per review as the pod's env and the object grow.

Each size is sent one review at a time on one keep-alive connection. The
fastest repetition is the cost figure, because other work on the machine
only ever adds time, and the median is kept beside it. The time is measured
at the client, so it includes TLS, the transfer and the JSON work on both
sides. The time per env entry is the time above a pod with one env entry
(one reference) divided by the number of further entries, which removes the
fixed cost of one call.
"""

from __future__ import annotations

import statistics
import time
from typing import Any

import httpx
import orjson

from bench import bodies
from bench.services import Stack
from bench.throughput import MUTATE_PATH

ENV_SIZES = (10, 100, 1_000, 10_000)
LARGE_OBJECT_BYTES = 3 * 1024 * 1024
HEADERS = {"Content-Type": "application/json"}


def timed_review(client: httpx.Client, url: str, body: bytes) -> float:
    """Send one review and return its duration in seconds; it must be patched."""
    started = time.perf_counter()
    response = client.post(url, content=body, headers=HEADERS)
    elapsed = time.perf_counter() - started
    response.raise_for_status()
    answer = orjson.loads(response.content)["response"]
    if not answer["allowed"] or "patch" not in answer:
        raise RuntimeError(f"review of {len(body)} bytes was not patched: {answer}")
    return elapsed


def repeats_for(entries: int, repeats: int) -> int:
    """Fewer repetitions for the largest bodies, which take longest."""
    return repeats if entries <= 1_000 else max(3, repeats // 4)


def review_seconds(
    client: httpx.Client, url: str, body: bytes, repeats: int
) -> tuple[float, float]:
    """Return the fastest and the median time of `repeats` reviews of `body`."""
    timed_review(client, url, body)  # warms the secret cache for this body
    times = [timed_review(client, url, body) for _ in range(repeats)]
    return min(times), statistics.median(times)


def measure(stack: Stack, repeats: int) -> dict[str, Any]:
    """Return the time per review for each env size and the 3 MiB object."""
    url = stack.ours.url + MUTATE_PATH
    with stack.client() as client:
        smallest = bodies.encode(bodies.review_of(bodies.pod_with_env(1)))
        base, _ = review_seconds(client, url, smallest, repeats)
        rows = []
        for entries in ENV_SIZES:
            body = bodies.encode(bodies.review_of(bodies.pod_with_env(entries)))
            fastest, median = review_seconds(
                client, url, body, repeats_for(entries, repeats)
            )
            rows.append(
                {
                    "entries": entries,
                    "body_bytes": len(body),
                    "review_ms": round(fastest * 1e3, 3),
                    "median_ms": round(median * 1e3, 3),
                    "per_entry_us": round((fastest - base) / (entries - 1) * 1e6, 3),
                }
            )
        large = bodies.encode(bodies.review_of(bodies.pod_of_size(LARGE_OBJECT_BYTES)))
        large_fastest, large_median = review_seconds(
            client, url, large, repeats_for(LARGE_OBJECT_BYTES, repeats)
        )

    by_size = {row["entries"]: row["per_entry_us"] for row in rows}
    return {
        "one_entry_pod_ms": round(base * 1e3, 3),
        "env": rows,
        "per_entry_ratio_10000_to_1000": round(by_size[10_000] / by_size[1_000], 2),
        "large_object": {
            "body_bytes": len(large),
            "review_ms": round(large_fastest * 1e3, 1),
            "median_ms": round(large_median * 1e3, 1),
        },
    }
