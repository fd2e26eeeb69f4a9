"""The distance between lean Python code and the reference on this stack.

    python -m bench.ceiling [--rounds 4] [--seconds 5] [--results DIR]

wrk loads the reference, the three floor servers of `bench.floors` and the
webhook in turns, each on the benchmark's review, and each round reads the
CPU time every server used from /proc. The floor servers run lean code
that returns the webhook's patch (for `rewrite`, without its annotation),
on the same uvicorn settings and TLS context. Their ratios to the
reference show roughly where the ceiling for an implementation in Python
lies: `minimal` for one that checks the references of this review, and
`rewrite` for one that checks nothing at all. `ceiling.json` also records
the rounds, the seconds per round and the machine's load at the start and
the end.
"""

from __future__ import annotations

import argparse
import json
import statistics
from pathlib import Path
from typing import Any

from bench import bodies
from bench.calibrate import TARGET_RATIO, Rounds, load_in_turns
from bench.floors import FLOORS
from bench.options import add_load_options, make_results_directory, run_tool
from bench.report import machine
from bench.services import Server, running_stack, start_floor, stop_server
from bench.throughput import EXPECTED_REFERENCE, EXPECTED_WEBHOOK
from bench.wrk import wrk_available


def measure(rounds: int, seconds: int) -> list[Rounds]:
    """Load the reference, each floor server and the webhook in turns."""
    with running_stack() as stack:
        body = stack.workdir / "review.json"
        body.write_bytes(bodies.training_review())
        floors: list[Server] = []
        try:
            for name in FLOORS:
                floors.append(start_floor(stack, name))
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


def summarize(series: list[Rounds]) -> dict[str, Any]:
    """Give each server's rate and CPU time, and its ratios to the reference.

    `series` starts with the reference. A ratio is the median of the
    per-round ratios, as in `python -m bench`.
    """
    reference = series[0]
    return {
        "target_ratio": TARGET_RATIO,
        "servers": {
            s.name: {
                "rate": round(s.rate(), 1),
                "cpu_us_per_review": round(s.cpu(), 1),
                "ratio": round(
                    statistics.median(
                        rate / base
                        for rate, base in zip(s.rates, reference.rates, strict=True)
                    ),
                    3,
                ),
                "added_cpu_us": round(s.cpu() - reference.cpu(), 1),
                "rounds": [
                    {"rate": round(r, 1), "cpu_us": round(c, 1)}
                    for r, c in zip(s.rates, s.cpu_us, strict=True)
                ],
            }
            for s in series
        },
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.ceiling",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(
        parser, rounds=4, seconds=5, spin_help=None, results_file="ceiling.json"
    )
    args = parser.parse_args(argv)
    if args.rounds < 1 or args.seconds < 1:
        parser.error("--rounds and --seconds must be at least 1")
    if not wrk_available():
        return 2

    make_results_directory(parser, args.results)
    at_start = machine()
    figures = summarize(measure(args.rounds, args.seconds))
    figures.update(
        rounds=args.rounds,
        seconds=args.seconds,
        machine_at_start=at_start,
        machine_at_end=machine(),
    )
    path: Path = args.results / "ceiling.json"
    path.write_text(json.dumps(figures, indent=2))
    print(f"{'server':15s} {'reviews/s':>9s} {'CPU us':>7s} {'added':>6s} ratio")
    for name, server in figures["servers"].items():
        print(
            f"{name:15s} {server['rate']:9,.0f} {server['cpu_us_per_review']:7.1f} "
            f"{server['added_cpu_us']:6.1f} {server['ratio']:.3f}"
        )
    print(f"target ratio {TARGET_RATIO}; figures in {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
