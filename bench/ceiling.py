"""The distance between lean Python code and the reference on this stack.

    python -m bench.ceiling [--rounds 4] [--seconds 5] [--count 10000]
                            [--results DIR]

wrk loads the reference, the floor servers of `bench.floors` and the
webhook in turns, each on the benchmark's review, and each round reads the
CPU time every server used from /proc. The floor servers return the
webhook's patch (for `rewrite`, without its annotation) on the same
uvicorn settings and TLS context. Their ratios to the reference show
roughly where the ceiling for an implementation in Python lies: `minimal`
for one that checks the references of this review, `rewrite` for one that
checks nothing at all, and `bare` for the webhook's full path (plan,
decide, encode) with no service around it. `service-minimal`
(`bench.servicefloor`) is the service itself with `minimal`'s handler, so
its distance from `minimal` is what the service around a handler costs.
The webhook itself responds to this review on its quick path.

After the load, each server's app is also called in this process, as
`bench.stages` does, `--count` times in each of 5 repetitions. The CPU
time it adds to the reference there, next to what it adds under load,
shows how much a microsecond measured in process costs on the wire.
`ceiling.json` also records the rounds, the seconds per round and the
machine's load at the start and the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry

from bench import bodies, stages
from bench.calibrate import TARGET_RATIO, Rounds, load_in_turns
from bench.floors import FLOORS, benchmark_keys, floor_app, minimal_app
from bench.options import add_load_options, make_results_directory, run_tool
from bench.reference import app as reference_app
from bench.report import machine
from bench.services import (
    SERVICE_FLOOR,
    Server,
    floor_server_name,
    running_stack,
    start_floor,
    start_service_floor,
    stop_server,
)
from bench.throughput import EXPECTED_REFERENCE, EXPECTED_WEBHOOK
from bench.wrk import wrk_available
from webhook.server.app import ReviewEndpoint, create_app
from webhook.server.metrics import new_metrics
from webhook.server.readiness import Readiness
from webhook.settings import DEFAULT_MAX_IN_FLIGHT, DEFAULT_MAX_IN_FLIGHT_BYTES


def measure(rounds: int, seconds: int) -> list[Rounds]:
    """Load the reference, each floor server and the webhook in turns."""
    with running_stack() as stack:
        body = stack.workdir / "review.json"
        body.write_bytes(bodies.training_review())
        floors: list[Server] = []
        try:
            for name in FLOORS:
                floors.append(start_floor(stack, name))
            floors.append(start_service_floor(stack))
            return load_in_turns(
                [
                    ("reference", stack.reference, EXPECTED_REFERENCE),
                    *((server.name, server, EXPECTED_WEBHOOK) for server in floors),
                    ("webhook", stack.ours, EXPECTED_WEBHOOK),
                ],
                body,
                rounds,
                seconds,
            )
        finally:
            for server in floors:
                stop_server(server)


# Repetitions of the in-process timing; each figure is the fastest.
IN_PROCESS_REPEATS = 5


def time_in_process(count: int) -> dict[str, float]:
    """Return each server's app's CPU time per review called in this process, in us.

    The keys are the server names of `measure`. The webhook's app is the
    service's app with its /mutate endpoint, whose cache confirms every
    secret; `service-minimal`'s is the same app with the `minimal` floor's
    handler as the endpoint.
    """
    body = bodies.training_review()
    apps: dict[str, stages.ASGICallable] = {
        "reference": reference_app,
        **{floor_server_name(name): floor_app(name) for name in FLOORS},
        SERVICE_FLOOR: service_app(minimal_app(benchmark_keys())),
        "webhook": service_app(stages.patching_endpoint(body)),
    }
    return stages.time_apps(apps, body, count, IN_PROCESS_REPEATS)


def service_app(endpoint: ReviewEndpoint) -> stages.ASGICallable:
    """Serve `endpoint` in the service's app, with the default in-flight limits."""
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    return create_app(
        endpoint,
        readiness,
        new_metrics(CollectorRegistry()),
        max_in_flight=DEFAULT_MAX_IN_FLIGHT,
        max_in_flight_bytes=DEFAULT_MAX_IN_FLIGHT_BYTES,
    )


def summarize(series: list[Rounds], in_process: dict[str, float]) -> dict[str, Any]:
    """Give each server's rate and CPU time, and its ratios to the reference.

    `series` starts with the reference. A ratio is the median of the
    per-round ratios, as in `python -m bench`. `in_process` contains each
    server's CPU time per review called in process, from `time_in_process`.
    `wire_per_in_process` is the CPU time a server adds to the reference
    under load divided by what it adds in process.
    """
    reference = series[0]
    reference_in_process = in_process[reference.name]
    return {
        "target_ratio": TARGET_RATIO,
        "servers": {
            s.name: {
                "rate": round(s.rate(), 1),
                "cpu_us_per_review": round(s.cpu(), 1),
                "ratio": round(
                    statistics.median(
                        rate / reference_rate
                        for rate, reference_rate in zip(
                            s.rates, reference.rates, strict=True
                        )
                    ),
                    3,
                ),
                "added_cpu_us": round(s.cpu() - reference.cpu(), 1),
                "in_process_us": round(in_process[s.name], 1),
                "added_in_process_us": round(
                    in_process[s.name] - reference_in_process, 1
                ),
                "wire_per_in_process": wire_per_in_process(
                    s.cpu() - reference.cpu(),
                    in_process[s.name] - reference_in_process,
                ),
                "rounds": [
                    {"rate": round(r, 1), "cpu_us": round(c, 1)}
                    for r, c in zip(s.rates, s.cpu_us, strict=True)
                ],
            }
            for s in series
        },
    }


def wire_per_in_process(on_wire: float, in_process: float) -> float | None:
    """Divide the CPU time added under load by that added in process.

    None when the time added in process, rounded to 0.1 us as it is printed
    and recorded, is under 1 us, as for the reference itself, where the
    quotient would be noise.
    """
    if round(in_process, 1) < 1.0:
        return None
    return round(on_wire / in_process, 2)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(
        parser, rounds=4, seconds=5, spin_help=None, results_file="ceiling.json"
    )
    parser.add_argument(
        "--count",
        type=int,
        default=10000,
        help="calls per repetition of the in-process timing (default 10000)",
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1 or args.count < 1:
        parser.error("--rounds, --seconds and --count must be at least 1")
    if not wrk_available():
        return 2

    make_results_directory(parser, args.results)
    at_start = machine()
    series = measure(args.rounds, args.seconds)
    figures = summarize(series, time_in_process(args.count))
    figures.update(
        rounds=args.rounds,
        seconds=args.seconds,
        in_process_calls=args.count,
        in_process_repeats=IN_PROCESS_REPEATS,
        machine_at_start=at_start,
        machine_at_end=machine(),
    )
    path: Path = args.results / "ceiling.json"
    path.write_text(json.dumps(figures, indent=2))
    print(
        f"{'server':15s} {'reviews/s':>9s} {'CPU us':>7s} {'added':>6s} "
        f"{'in proc':>7s} {'wire/proc':>9s} ratio"
    )
    for name, server in figures["servers"].items():
        factor = server["wire_per_in_process"]
        print(
            f"{name:15s} {server['rate']:9,.0f} {server['cpu_us_per_review']:7.1f} "
            f"{server['added_cpu_us']:6.1f} {server['added_in_process_us']:7.1f} "
            f"{'' if factor is None else f'{factor:.2f}':>9s} {server['ratio']:.3f}"
        )
    print(f"target ratio {TARGET_RATIO}; figures in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
