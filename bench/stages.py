"""The CPU time of each step of one review, measured in process without TLS or HTTP.

    python -m bench.stages [--count 20000] [--repeats 5] [--results DIR]

Each stage runs on the benchmark's Run:AI pod review, with every secret
confirmed from the cache, so no API call is made. `endpoint` is the whole
`MutateEndpoint` called with an in-memory ASGI receive and send, and
`reference` is the reference app called the same way. Their difference is
the CPU time our code adds to a review. The endpoint responds to this review
on its quick path (`webhook.admission.quick`): `decode` reads the members
of the body that the quick path needs, and `quick` builds the response.
`endpoint-full` is the same endpoint without the quick path, as every
review that the quick path leaves is handled: planning, deciding and
encoding, timed alone as `plan`, `decide` and `encode`. `bare` is the
floor server of that name in `bench.floors`: it makes only those
admission calls with none of the service around them, no deadline,
limit, metrics or logger. Its time minus the reference's is the part of
the full path's added time that the admission logic takes. `plan-plain`
and `plan-empty` plan the same pod with its references turned into plain
values, and with every env list empty. The figures are the fastest of
several repetitions of CPU time (`time.process_time`), in microseconds,
and `stages.json` in `--results` keeps them with the machine's load at
the start and the end.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import time
from collections.abc import Awaitable, Callable, Collection, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from bench import bodies, floors
from bench.options import RESULTS, make_results_directory, run_tool
from bench.reference import app as reference_app
from bench.report import machine
from webhook.admission.injection import InjectionOptions, Plan, decide, plan_review
from webhook.admission.lookups import SecretLookup
from webhook.admission.quick import decode_pod_review, quick_response
from webhook.admission.reviews import Review, encode_response, parse_review
from webhook.kube.lookups import SecretKeyLookups
from webhook.server.metrics import new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.pipeline import build_reviewer

Message = dict[str, Any]
ASGICallable = Callable[[Message, Any, Any], Awaitable[None]]


def confirming_lookups(plan: Plan) -> dict[str, SecretLookup]:
    """Return a lookup of every secret of `plan`, found with the keys it uses."""
    return {secret: SecretLookup.found(keys) for secret, keys in plan.keys.items()}


def best_of(repeats: int, count: int, run: Callable[[int], None]) -> float:
    """Return the fastest CPU time of `run(count)` over `repeats`, per call in us."""
    times = []
    for _ in range(repeats):
        started = time.process_time()
        run(count)
        times.append(time.process_time() - started)
    return min(times) / count * 1e6


def timed(function: Callable[[], object]) -> Callable[[int], None]:
    def run(count: int) -> None:
        for _ in range(count):
            function()

    return run


def timed_asgi(
    loop: asyncio.AbstractEventLoop,
    app: ASGICallable,
    body: bytes,
) -> Callable[[int], None]:
    """Time `app` on POST /mutate?timeout=10s with `body`, as uvicorn calls it."""
    scope: Message = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "query_string": b"timeout=10s",
        "headers": [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ],
    }
    request = {"type": "http.request", "body": body, "more_body": False}

    async def receive() -> Message:
        return request

    async def send(message: Message) -> None:
        return None

    async def calls(count: int) -> None:
        for _ in range(count):
            await app(scope, receive, send)

    return lambda count: loop.run_until_complete(calls(count))


def new_event_loop() -> asyncio.AbstractEventLoop:
    """Return a loop of the kind `serve` runs on: uvloop when it is installed."""
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    return uvloop.new_event_loop()


def confirmed_plan(body: bytes) -> tuple[Plan, dict[str, SecretLookup]]:
    """Plan the review in `body`; return the plan and lookups that confirm it."""
    plan = plan_review(parse_review(body), InjectionOptions())
    if not isinstance(plan, Plan):
        raise RuntimeError("the benchmark review has no secret references to plan")
    return plan, confirming_lookups(plan)


# Seconds a cached secret stays fresh in the endpoint that `patching_endpoint`
# builds: longer than any timing, so no call refetches. Under `serve` an
# entry expires every --cache-ttl seconds and one review refetches it.
TIMING_CACHE_TTL = 24 * 3600.0


class _KeyTableSource:
    """A `KeySource` that returns key names from the benchmark's table of secrets."""

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        keys = floors.benchmark_keys().get((namespace, name))
        return SecretLookup.not_found() if keys is None else SecretLookup.found(keys)


def patching_endpoint(body: bytes, quick: bool = True) -> MutateEndpoint:
    """Return a /mutate endpoint wired as `serve` wires it, its cache warm.

    The cache is the service's own `SecretKeyLookups` with its metrics
    hook, filled before the first call with every secret of `body`, so the
    calls find each secret in it as a warm `serve` does, and none reaches
    the key source. With `quick` false, every review takes the full path.
    """
    plan, _ = confirmed_plan(body)
    metrics = new_metrics(CollectorRegistry())
    # Left running, so that a review with another secret or key looks it up
    # in the table, as `serve` would in the API, instead of failing.
    executor = ThreadPoolExecutor(1, thread_name_prefix="bench-lookup")
    lookups = SecretKeyLookups(
        _KeyTableSource(), executor, TIMING_CACHE_TTL, metrics.count_lookup
    )

    async def fill() -> None:
        deadline = time.monotonic() + 10
        for secret, keys in plan.keys.items():
            await lookups.lookup(plan.namespace, secret, keys, deadline)

    asyncio.run(fill())
    reviewer = build_reviewer(InjectionOptions(), lookups)
    return MutateEndpoint(reviewer, metrics, quick=reviewer.quick if quick else None)


def time_apps(
    apps: dict[str, ASGICallable], body: bytes, count: int, repeats: int
) -> dict[str, float]:
    """Return each app's CPU time per call on `body`, in us, timed as `measure` does."""
    loop = new_event_loop()
    try:
        return {
            name: best_of(repeats, count, timed_asgi(loop, app, body))
            for name, app in apps.items()
        }
    finally:
        loop.close()


def pod_variant(body: bytes, keep: str) -> Review:
    """Parse the review in `body` with less in its pod's env lists.

    `keep` is "plain" to turn each `SECRET:` value into a plain value, or
    "none" to empty every env list. Planning these shows what a pod costs
    before its env vars, and what its plain env vars cost.
    """
    document = orjson.loads(body)
    spec = document["request"]["object"]["spec"]
    for field in ("initContainers", "containers"):
        for container in spec.get(field, []):
            if keep == "none":
                container["env"] = []
                continue
            for entry in container.get("env", []):
                if str(entry.get("value", "")).startswith("SECRET:"):
                    entry["value"] = "plain"
    return parse_review(orjson.dumps(document))


def measure(count: int, repeats: int) -> dict[str, float]:
    """Return the CPU time of each stage of one review, in microseconds."""
    body = bodies.training_review()
    options = InjectionOptions()
    review = parse_review(body)
    decoded = decode_pod_review(body)
    if decoded is None:
        raise RuntimeError("the benchmark review does not decode for the quick path")
    plain = pod_variant(body, "plain")
    empty = pod_variant(body, "none")
    plan, lookups = confirmed_plan(body)
    decision = decide(plan, lookups)
    endpoint = patching_endpoint(body)
    full_endpoint = patching_endpoint(body, quick=False)
    table = floors.benchmark_keys()

    def confirm(namespace: str, required: Mapping[str, Collection[str]]) -> bool:
        return all(
            (namespace, secret) in table and table[namespace, secret].issuperset(keys)
            for secret, keys in required.items()
        )

    loop = new_event_loop()
    try:
        stages = {
            "json": timed(lambda: orjson.loads(body)),
            "parse": timed(lambda: parse_review(body)),
            "plan": timed(lambda: plan_review(review, options)),
            "plan-plain": timed(lambda: plan_review(plain, options)),
            "plan-empty": timed(lambda: plan_review(empty, options)),
            "decide": timed(lambda: decide(plan, lookups)),
            "encode": timed(lambda: encode_response(review, decision)),
            "decode": timed(lambda: decode_pod_review(body)),
            "quick": timed(lambda: quick_response(decoded, options, confirm)),
            "reference": timed_asgi(loop, reference_app, body),
            "bare": timed_asgi(loop, floors.bare_app(floors.benchmark_keys()), body),
            "endpoint": timed_asgi(loop, endpoint, body),
            "endpoint-full": timed_asgi(loop, full_endpoint, body),
        }
        return {name: best_of(repeats, count, run) for name, run in stages.items()}
    finally:
        loop.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.stages",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--count", type=int, default=20000, help="calls per repetition (default 20000)"
    )
    parser.add_argument(
        "--repeats", type=int, default=5, help="repetitions (default 5)"
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help="directory for stages.json (default bench/results/)",
    )
    args = parser.parse_args(argv)
    if args.count < 1 or args.repeats < 1:
        parser.error("--count and --repeats must be at least 1")
    make_results_directory(parser, args.results)
    print(f"stages: {args.repeats} repetitions of {args.count} calls", flush=True)
    at_start = machine()
    figures = measure(args.count, args.repeats)
    added = figures["endpoint"] - figures["reference"]
    added_full = figures["endpoint-full"] - figures["reference"]
    logic = figures["bare"] - figures["reference"]
    record = {
        "stages_us": {name: round(micros, 2) for name, micros in figures.items()},
        "added_us": round(added, 2),
        "added_full_path_us": round(added_full, 2),
        "admission_calls_us": round(logic, 2),
        "count": args.count,
        "repeats": args.repeats,
        "machine_at_start": at_start,
        "machine_at_end": machine(),
    }
    path: Path = args.results / "stages.json"
    path.write_text(json.dumps(record, indent=2))
    for name, micros in figures.items():
        print(f"{name:13s} {micros:7.2f} us")
    print(f"{'ours':13s} {added:7.2f} us added")
    print(f"{'ours, full':13s} {added_full:7.2f} us added without the quick path")
    print(f"{'logic':13s} {logic:7.2f} us of that by the admission calls alone")
    print(f"figures in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
