"""Cost growth: time per review as the pod's env and the object grow.

Each size is sent one review at a time on one keep-alive connection,
`repeats` times in a row, and the whole series of sizes runs `SWEEPS`
times, so that a slow spell of the machine during one sweep does not
decide a figure. The fastest repetition is the cost figure, because other
work on the machine only ever adds time, and the median is kept beside
it. The time is measured at the client, so it includes TLS, the transfer
and the JSON work on both sides. The time per env entry is the time above
a pod with one env entry (one reference) divided by the number of further
entries, which removes the fixed cost of one call.

Each review also goes through the webhook's admission calls in this
process as many times, with every secret confirmed: parse, then the quick
path, which responds to these pods, or else plan, decide and encode. That
figure grows with the pod alone: it leaves out
TLS, the transfer and the HTTP server, whose cost for a body of hundreds
of kilobytes moves by milliseconds from run to run on a shared machine.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Collection, Mapping
from typing import Any

import httpx
import orjson

from bench import bodies
from bench.services import Stack
from bench.stages import confirming_lookups
from bench.throughput import MUTATE_PATH
from webhook.admission.injection import InjectionOptions, Plan, decide, plan_review
from webhook.admission.quick import decode_pod_review, quick_response
from webhook.admission.reviews import encode_response, parse_review

ENV_SIZES = (10, 100, 1_000, 10_000)
LARGE_OBJECT_BYTES = 3 * 1024 * 1024
HEADERS = {"Content-Type": "application/json"}
# The key of the 3 MiB object among the env sizes.
LARGE = "large"
# Times the whole series of sizes is measured.
SWEEPS = 3


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


def confirm_every_secret(
    namespace: str, required: Mapping[str, Collection[str]]
) -> bool:
    """Confirm every secret with every key, as a warm cache of the pod's secrets."""
    return True


def timed_admission(body: bytes, options: InjectionOptions) -> float:
    """Run the admission calls on `body` in this process; return the seconds."""
    started = time.perf_counter()
    decoded = decode_pod_review(body)
    if (
        decoded is None
        or quick_response(decoded, options, confirm_every_secret) is None
    ):
        review = parse_review(body)
        outcome = plan_review(review, options)
        if isinstance(outcome, Plan):
            outcome = decide(outcome, confirming_lookups(outcome))
        encode_response(review, outcome)
    return time.perf_counter() - started


def growth_bodies() -> dict[int | str, bytes]:
    """Return the review of each size: env entries, then the 3 MiB object."""
    reviews: dict[int | str, bytes] = {
        entries: bodies.encode(bodies.review_of(bodies.pod_with_env(entries)))
        for entries in (1, *ENV_SIZES)
    }
    large = bodies.pod_of_size(LARGE_OBJECT_BYTES)
    reviews[LARGE] = bodies.encode(bodies.review_of(large))
    return reviews


def measure(stack: Stack, repeats: int) -> dict[str, Any]:
    """Return the time per review for each env size and the 3 MiB object."""
    url = stack.ours.url + MUTATE_PATH
    options = InjectionOptions()
    reviews = growth_bodies()
    wire: dict[int | str, list[float]] = {size: [] for size in reviews}
    in_process: dict[int | str, list[float]] = {size: [] for size in reviews}
    with stack.client() as client:
        for _ in range(SWEEPS):
            for size, body in reviews.items():
                timed_review(client, url, body)  # warms the caches for this body
                for _ in range(repeats):
                    wire[size].append(timed_review(client, url, body))
                for _ in range(repeats):
                    in_process[size].append(timed_admission(body, options))

    base, base_in_process = min(wire[1]), min(in_process[1])
    rows: list[dict[str, Any]] = [
        {
            "entries": entries,
            "body_bytes": len(reviews[entries]),
            "review_ms": round(min(wire[entries]) * 1e3, 3),
            "median_ms": round(statistics.median(wire[entries]) * 1e3, 3),
            "per_entry_us": per_entry_us(min(wire[entries]), base, entries),
            "in_process_ms": round(min(in_process[entries]) * 1e3, 4),
            "in_process_per_entry_us": per_entry_us(
                min(in_process[entries]), base_in_process, entries
            ),
        }
        for entries in ENV_SIZES
    ]
    by_size = {row["entries"]: row for row in rows}
    return {
        "one_entry_pod_ms": round(base * 1e3, 3),
        "one_entry_pod_in_process_ms": round(base_in_process * 1e3, 4),
        "env": rows,
        "per_entry_ratio_10000_to_1000": entry_ratio(by_size, "per_entry_us"),
        "in_process_per_entry_ratio_10000_to_1000": entry_ratio(
            by_size, "in_process_per_entry_us"
        ),
        "large_object": {
            "body_bytes": len(reviews[LARGE]),
            "review_ms": round(min(wire[LARGE]) * 1e3, 1),
            "median_ms": round(statistics.median(wire[LARGE]) * 1e3, 1),
            "in_process_ms": round(min(in_process[LARGE]) * 1e3, 1),
        },
    }


def per_entry_us(seconds: float, base: float, entries: int) -> float:
    """Return the time per env entry above the one-entry pod, in us."""
    return round((seconds - base) / (entries - 1) * 1e6, 3)


def entry_ratio(by_size: dict[int, dict[str, Any]], field: str) -> float:
    """Return the time per entry at 10,000 entries over that at 1,000."""
    ratio: float = by_size[10_000][field] / by_size[1_000][field]
    return round(ratio, 2)
