"""Command line options shared by the benchmark tools that load servers in rounds."""

from __future__ import annotations

import argparse
from pathlib import Path

RESULTS = Path(__file__).with_name("results")


def add_load_options(
    parser: argparse.ArgumentParser,
    rounds: int,
    seconds: int,
    spin_help: str,
    results_file: str,
) -> None:
    """Add --spin-us, --rounds, --seconds and --results with these defaults."""
    parser.add_argument(
        "--spin-us", type=float, default=20.0, help=f"{spin_help} (default 20)"
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=rounds,
        help=f"wrk rounds per server (default {rounds})",
    )
    parser.add_argument(
        "--seconds",
        type=int,
        default=seconds,
        help=f"seconds of load per round, a whole number (default {seconds})",
    )
    parser.add_argument(
        "--results",
        type=Path,
        default=RESULTS,
        help=f"directory for {results_file} (default bench/results/)",
    )
