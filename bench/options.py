"""Command line options shared by the benchmark tools that load servers in rounds."""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

RESULTS = Path(__file__).with_name("results")

# The exit status of a process that SIGINT ended: 128 + 2.
INTERRUPTED = 130


def run_tool(main: Callable[[], int]) -> int:
    """Run a tool's `main`, turning Ctrl-C into one line and exit status 130.

    Each tool writes its results only after its last measurement, and the
    servers it started stop on the way out, so an interrupted run leaves
    the files of the last complete run as they were.
    """
    try:
        return main()
    except KeyboardInterrupt:
        print(
            "interrupted: no results were written; the files of the last "
            "complete run are unchanged",
            file=sys.stderr,
        )
        return INTERRUPTED


def finite_float(text: str) -> float:
    """Parse a number for argparse, rejecting nan and infinity."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"{text!r} is not a finite number")
    return value


def add_load_options(
    parser: argparse.ArgumentParser,
    rounds: int,
    seconds: int,
    spin_help: str | None,
    results_file: str,
) -> None:
    """Add --rounds, --seconds and --results with these defaults.

    With a `spin_help`, --spin-us (default 20) too.
    """
    if spin_help is not None:
        parser.add_argument(
            "--spin-us",
            type=finite_float,
            default=20.0,
            help=f"{spin_help} (default 20)",
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


def make_results_directory(parser: argparse.ArgumentParser, directory: Path) -> None:
    """Create the --results directory, exiting with a usage error if it cannot be.

    Called before any load runs, so that a bad path fails at once and not
    after minutes of measurement.
    """
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as error:
        parser.error(
            f"--results {directory} cannot be created ({error.strerror}); "
            "pass a directory that can be created and written"
        )
    # Create and remove a file, because os.access grants root write access
    # to every directory, even /sys and /proc, where root cannot create files.
    try:
        with tempfile.NamedTemporaryFile(dir=directory, prefix=".write-check-"):
            pass
    except OSError as error:
        parser.error(
            f"--results {directory} is not writable ({error.strerror}); "
            "pass a writable directory"
        )
