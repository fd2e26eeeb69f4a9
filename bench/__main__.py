"""Run the benchmark: `python -m bench [--quick] [--results DIR]`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from bench import bodies, coldpath, growth, report, soak, throughput
from bench.options import RESULTS, make_results_directory, run_tool
from bench.services import running_stack
from bench.wrk import wrk_available

# (rounds per server, seconds per round, growth repetitions) for each mode.
MODES = {"quick": (2, 5.0, 5), "full": (5, 15.0, 20)}
SOAK_SECONDS = 300.0


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="short rounds and no soak, about a minute; for checks, not for records",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=None,
        help="directory for results.json, summary.md and latency.png "
        "(default bench/results/, or bench/results/quick/ with --quick)",
    )
    parser.add_argument(
        "--no-soak", action="store_true", help="skip the five-minute soak in full mode"
    )
    parser.add_argument(
        "--workers",
        type=int,
        default=1,
        help="start the webhook with `serve --workers N` (the targets are for 1)",
    )
    args = parser.parse_args(argv)
    if args.workers < 1:
        parser.error(f"--workers must be at least 1, not {args.workers}")
    if args.results is None:
        # Quick figures are checks, so they never replace the recorded ones.
        args.results = RESULTS / "quick" if args.quick else RESULTS
    make_results_directory(parser, args.results)
    return args


def run(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], tuple[throughput.Series, throughput.Series]]:
    """Measure everything; return the results and the two servers' rounds."""
    mode = "quick" if args.quick else "full"
    rounds, seconds, repeats = MODES[mode]
    results: dict[str, Any] = {"mode": mode, "workers": args.workers}
    results["machine_at_start"] = report.machine()
    with running_stack([f"--workers={args.workers}"]) as stack:
        body = stack.workdir / "review.json"
        body.write_bytes(bodies.training_review())
        results["review_bytes"] = body.stat().st_size

        print(f"throughput: {rounds} rounds of {seconds:.0f} s per server", flush=True)
        reference, ours = throughput.compare(stack, body, rounds, seconds)
        results["throughput"] = {
            "connections": 32,
            "reference": reference.to_json(),
            "webhook": ours.to_json(),
            "ratio": throughput.ratios(reference, ours),
        }

        print("cost growth", flush=True)
        results["growth"] = growth.measure(stack, repeats)
        print("cold path", flush=True)
        results["cold_path"] = coldpath.measure(stack)
        if mode == "full" and not args.no_soak:
            print(f"soak: {SOAK_SECONDS:.0f} s at half the webhook's rate", flush=True)
            results["soak"] = soak.measure(stack, body, ours.rate() / 2, SOAK_SECONDS)
    results["machine"] = report.machine()
    return results, (reference, ours)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if not wrk_available():
        return 2
    results, (reference, ours) = run(args)
    # Every file is written after the last measurement, so a run that fails
    # or is interrupted leaves the recorded figures and plot consistent.
    report.plot_latency(reference, ours, args.results / "latency.png")
    report.write_json(results, args.results / "results.json")
    summary = "\n".join(report.summary_lines(results)) + "\n"
    (args.results / "summary.md").write_text(summary)
    print(summary)
    return 0


if __name__ == "__main__":
    sys.exit(run_tool(main))
