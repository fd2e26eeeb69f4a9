"""The cost of a microsecond of our own work to a server under load.

    python -m bench.calibrate [--spin-us 20] [--rounds 4] [--seconds 4] [--results DIR]

A second reference server runs a Python busy loop of `--spin-us` before
each response. wrk loads the reference, the spinning reference and the
webhook in turns, and each round reads the CPU time each server used from
/proc. The spinning reference shows how much server CPU time one
microsecond of added work costs per review under load, which is more than
one microsecond: the time the event loop, TLS and the socket calls take
around it grows too. With that factor, the throughput target turns into a
budget of in-process CPU time for everything the webhook adds to a review,
which `python -m bench.stages` measures.
"""

from __future__ import annotations

import argparse
import json
import statistics
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import bodies
from bench.options import add_load_options, make_results_directory, run_tool
from bench.services import (
    Server,
    running_stack,
    start_spinning_reference,
    stop_server,
    tree_cpu_seconds,
)
from bench.throughput import EXPECTED_REFERENCE, EXPECTED_WEBHOOK, MUTATE_PATH
from bench.wrk import run_wrk, wrk_available

TARGET_RATIO = 0.7


@dataclass
class Rounds:
    """Rate and CPU time per review of one server, one entry per round."""

    name: str
    rates: list[float] = field(default_factory=list)
    cpu_us: list[float] = field(default_factory=list)

    def rate(self) -> float:
        return statistics.median(self.rates)

    def cpu(self) -> float:
        return statistics.median(self.cpu_us)


def load_round(
    server: Server, body: Path, expected: str, seconds: float
) -> tuple[float, float]:
    """Run wrk for `seconds`; return (rate, CPU us per review)."""
    before = tree_cpu_seconds(server.pid)
    result = run_wrk(server.url + MUTATE_PATH, body, expected, seconds)
    used = tree_cpu_seconds(server.pid) - before
    if result.failed or result.socket_errors:
        raise RuntimeError(
            f"{server.name}: {result.failed} reviews failed and "
            f"{result.socket_errors} socket errors happened under load"
        )
    return result.rate, used / result.requests * 1e6


def calibrate(spin_us: float, rounds: int, seconds: int) -> dict[str, Any]:
    with running_stack() as stack:
        body = stack.workdir / "review.json"
        body.write_bytes(bodies.training_review())
        spinning = start_spinning_reference(stack, spin_us)
        try:
            series = load_in_turns(
                [
                    ("reference", stack.reference, EXPECTED_REFERENCE),
                    ("reference+spin", spinning, EXPECTED_REFERENCE),
                    ("webhook", stack.ours, EXPECTED_WEBHOOK),
                ],
                body,
                rounds,
                seconds,
            )
        finally:
            stop_server(spinning)
    return summarize(spin_us, series)


def load_in_turns(
    servers: list[tuple[str, Server, str]], body: Path, rounds: int, seconds: float
) -> list[Rounds]:
    """Load each (name, server, expected text) in turns, after a 1 s warm-up each."""
    series = [Rounds(name) for name, _, _ in servers]
    for _, server, expected in servers:
        load_round(server, body, expected, 1)
    for _ in range(rounds):
        for rounds_of, (_, server, expected) in zip(series, servers, strict=True):
            rate, cpu = load_round(server, body, expected, seconds)
            rounds_of.rates.append(rate)
            rounds_of.cpu_us.append(cpu)
    return series


def summarize(spin_us: float, series: list[Rounds]) -> dict[str, Any]:
    reference, spinning, ours = series
    # Server CPU time per review per microsecond of added in-process work.
    factor = (spinning.cpu() - reference.cpu()) / spin_us
    if factor <= 0:
        raise RuntimeError(
            f"the reference with {spin_us} us of busy loop used "
            f"{spinning.cpu():.1f} us of CPU per review, no more than the plain "
            f"reference's {reference.cpu():.1f} us, so the machine is too noisy "
            "to calibrate. Run again on a quieter machine or with more --rounds."
        )
    allowed_cpu = reference.cpu() / TARGET_RATIO
    return {
        "spin_us": spin_us,
        "servers": {
            s.name: {
                "rate": round(s.rate(), 1),
                "cpu_us_per_review": round(s.cpu(), 1),
                "rounds": [
                    {"rate": round(r, 1), "cpu_us": round(c, 1)}
                    for r, c in zip(s.rates, s.cpu_us, strict=True)
                ],
            }
            for s in series
        },
        "cost_per_added_us": round(factor, 2),
        "webhook_added_cpu_us": round(ours.cpu() - reference.cpu(), 1),
        "target_added_cpu_us": round(allowed_cpu - reference.cpu(), 1),
        "target_in_process_us": round((allowed_cpu - reference.cpu()) / factor, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.calibrate",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(
        parser,
        rounds=4,
        seconds=4,
        spin_help="microseconds of busy loop the second reference adds",
        results_file="calibration.json",
    )
    args = parser.parse_args(argv)
    if args.spin_us <= 0 or args.rounds < 1 or args.seconds < 1:
        parser.error("--spin-us must be above 0, --rounds and --seconds at least 1")

    if not wrk_available():
        return 2
    make_results_directory(parser, args.results)
    figures = calibrate(args.spin_us, args.rounds, args.seconds)
    (args.results / "calibration.json").write_text(json.dumps(figures, indent=2))
    for name, server in figures["servers"].items():
        print(
            f"{name:15s} {server['rate']:9,.0f} reviews/s "
            f"{server['cpu_us_per_review']:7.1f} us CPU per review"
        )
    print(
        f"each us of added work costs {figures['cost_per_added_us']} us of server "
        f"CPU; the webhook adds {figures['webhook_added_cpu_us']} us per review, "
        f"a ratio of {TARGET_RATIO} allows {figures['target_added_cpu_us']} us, "
        f"that is {figures['target_in_process_us']} us measured in process"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
