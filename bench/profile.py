"""The split of each server's CPU time under load by the code that ran.

    python -m bench.profile [--rounds 3] [--seconds 5] [--spin-us 20]
                            [--frequency 999] [--symbols 8] [--results DIR]

wrk loads the reference, the reference with a busy loop of `--spin-us`
before each response (as in `python -m bench.calibrate`; 0 leaves it out)
and the webhook in turns, while `perf record` samples the server's
process. Each sample counts against the shared object it ran in: the
Python interpreter, the kernel, OpenSSL, orjson and msgspec, uvloop and so
on. The server's CPU time per review in the round, read from /proc, is
then split in the same proportions. The split printed is that of the round with the
median CPU time, so each server's areas add up to its total.

Where the webhook differs from the reference shows what its code costs on
the wire. That is more than `python -m bench.stages` measures in process,
because the event loop, TLS and the kernel around the code take longer
too. The busy loop shows how much of that any slower server pays, whatever
its code does.

It needs `perf` (Debian's linux-perf) and the right to profile the server
processes and the kernel: root, or kernel.perf_event_paranoid at 1 or
lower for processes of the same user, because at 2 perf samples user space
only. The figures are printed and written to `profile.json`.
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import tempfile
from collections.abc import Iterable
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

PERF_STOP_SECONDS = 30.0

# Areas of the stack, each named by the start of its shared objects' file
# names. The first match wins, and anything else counts as "other".
AREAS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Python interpreter", ("libpython", "python3")),
    ("kernel", ("[kernel",)),
    ("TLS (OpenSSL)", ("libssl", "libcrypto", "_ssl.")),
    # msgspec's extension is msgspec/_core, the only compiled module named
    # `_core` that the servers load.
    ("JSON (orjson, msgspec)", ("orjson.", "_core.")),
    ("event loop and HTTP parser", ("loop.", "parser.", "url_parser.", "_asyncio.")),
    ("C library", ("libc.", "libm.")),
)
OTHER = "other"


class ProfileError(RuntimeError):
    """perf is missing, not allowed, or wrote no samples."""


def area_of(shared_object: str) -> str:
    """Return the area of the stack that a shared object belongs to."""
    for area, prefixes in AREAS:
        if shared_object.startswith(prefixes):
            return area
    return OTHER


def parse_report(text: str) -> dict[str, float]:
    """Read `perf report --stdio` output into {row name: percent of samples}.

    A row is a percentage followed by its sort keys, such as
    `  44.51%  libpython3.11.so.1.0` or, sorted by dso and symbol,
    `  11.06%  [kernel.kallsyms]  [k] _raw_spin_unlock_irqrestore`.
    Comments and blank lines are skipped.
    """
    rows: dict[str, float] = {}
    for line in text.splitlines():
        fields = line.split(None, 1)
        if len(fields) != 2 or not fields[0].endswith("%"):
            continue
        try:
            percent = float(fields[0][:-1])
        except ValueError:
            continue
        name = " ".join(fields[1].split())
        rows[name] = rows.get(name, 0.0) + percent
    return rows


def by_area(shares: dict[str, float], server: str) -> dict[str, float]:
    """Add up percentages per shared object of `server` into fractions per area."""
    total = sum(shares.values())
    if total <= 0:
        raise ProfileError(
            f"perf recorded no samples of {server}, although wrk loaded it. "
            "Check that `perf record -p PID` of a busy process on this machine "
            "writes samples that `perf report` shows, then run again."
        )
    areas = {area: 0.0 for area, _ in AREAS} | {OTHER: 0.0}
    for shared_object, percent in shares.items():
        areas[area_of(shared_object)] += percent / total
    return areas


@dataclass
class Profile:
    """One server's rounds: CPU time per review split by area and by symbol."""

    name: str
    cpu_us: list[float] = field(default_factory=list)
    areas: list[dict[str, float]] = field(default_factory=list)
    symbols: list[dict[str, float]] = field(default_factory=list)

    def area_us(self) -> dict[str, float]:
        """Return each area's us per review in the round of median CPU time.

        The split of one round, not a median per area, so that the areas add
        up to the median total. With an even number of rounds the two middle
        rounds are averaged, as `statistics.median` does with the totals.
        """
        order = sorted(range(len(self.cpu_us)), key=self.cpu_us.__getitem__)
        middle = len(order) // 2
        picked = (
            order[middle - 1 : middle + 1] if len(order) % 2 == 0 else [order[middle]]
        )
        return {
            name: statistics.fmean(self.cpu_us[i] * self.areas[i][name] for i in picked)
            for name in self.areas[0]
        }

    def top_symbols(self, count: int) -> list[tuple[str, float]]:
        """Return the `count` symbols with the most us per review (round medians)."""
        names = {name for symbols in self.symbols for name in symbols}
        medians = {
            name: statistics.median(
                cpu * symbols.get(name, 0.0) / 100
                for cpu, symbols in zip(self.cpu_us, self.symbols, strict=True)
            )
            for name in names
        }
        return sorted(medians.items(), key=lambda item: -item[1])[:count]


def perf_path() -> str:
    """Return the perf executable, raising `ProfileError` with the fix if missing."""
    found = shutil.which("perf")
    if found is None:
        raise ProfileError(
            "perf was not found on PATH. Install it (Debian: apt-get install "
            "linux-perf) and run python -m bench.profile again."
        )
    return found


def run_perf(perf: str, arguments: list[str], failure: str) -> str:
    """Run a perf subcommand and return its output, raising `ProfileError` on failure.

    `failure` starts the error message, for example "perf report failed".
    """
    result = subprocess.run(
        [perf, *arguments], capture_output=True, text=True, check=False
    )
    if result.returncode != 0:
        raise ProfileError(f"{failure}: {result.stderr.strip()}")
    return result.stdout


def perf_report(perf: str, data: Path, sort: str) -> str:
    arguments = ["report", "-i", str(data), "--sort", sort, "--stdio"]
    return run_perf(perf, arguments, "perf report failed")


def check_kernel_sampled(perf: str, data: Path, server: str) -> None:
    """Raise `ProfileError` if `data` contains user-space samples only.

    Without the right to profile the kernel, perf samples user space alone
    and reports it only in a warning. The kernel's share of the CPU time read
    from /proc would then be split among the other areas.
    """
    events = run_perf(
        perf,
        ["evlist", "-v", "-i", str(data)],
        f"perf evlist failed on the samples of {server}",
    )
    if "exclude_kernel: 1" in events:
        raise ProfileError(
            f"perf sampled only the user space of {server}, so the kernel's CPU "
            "time would be counted in the other areas. Run as root, or set "
            "kernel.perf_event_paranoid to 1 or lower."
        )


def check_recorded(data: Path, status: int, errors: str, server: str) -> None:
    """Raise `ProfileError` if `perf record` left no data file, or an empty one."""
    if data.exists() and data.stat().st_size > 0:
        return
    error_output = errors.strip() or "nothing on stderr"
    raise ProfileError(
        f"perf record wrote no samples of {server} (exit status {status}, "
        f"{error_output}). Check that `perf record -p PID` writes a file on this "
        "machine: run as root, or set kernel.perf_event_paranoid to 1 or lower."
    )


def stop_recorder(recorder: subprocess.Popen[str], server: str) -> str:
    """Stop `perf record` with SIGINT, so that it finishes its file; return stderr.

    A perf that does not stop within `PERF_STOP_SECONDS` is killed, so that
    none outlives the run.
    """
    recorder.send_signal(signal.SIGINT)
    try:
        _, errors = recorder.communicate(timeout=PERF_STOP_SECONDS)
    except subprocess.TimeoutExpired:
        recorder.kill()
        recorder.communicate()
        raise ProfileError(
            f"perf record of {server} did not stop within {PERF_STOP_SECONDS:g} s "
            "of SIGINT and was killed. Check that `perf record -p PID` stops on "
            "Ctrl-C on this machine, then run again."
        ) from None
    return errors


def profile_round(
    perf: str,
    server: Server,
    body: Path,
    expected: str,
    seconds: int,
    frequency: int,
    workdir: Path,
) -> tuple[float, str, str]:
    """Load `server` under perf; return (CPU us per review, dso report, symbols)."""
    data = workdir / f"{server.name}.perf.data"
    recorder = subprocess.Popen(
        [perf, "record", "-F", str(frequency), "-p", str(server.pid), "-o", data],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        before = tree_cpu_seconds(server.pid)
        result = run_wrk(server.url + MUTATE_PATH, body, expected, seconds)
        used = tree_cpu_seconds(server.pid) - before
    except BaseException:
        # wrk failed or the run was interrupted, so perf must not outlive it.
        recorder.kill()
        recorder.communicate()
        raise
    errors = stop_recorder(recorder, server.name)

    check_recorded(data, recorder.returncode, errors, server.name)
    check_kernel_sampled(perf, data, server.name)
    if result.failed or result.socket_errors:
        raise ProfileError(
            f"{server.name}: {result.failed} reviews failed and "
            f"{result.socket_errors} socket errors happened under load"
        )

    per_review = used / result.requests * 1e6
    return (
        per_review,
        perf_report(perf, data, "dso"),
        perf_report(perf, data, "dso,sym"),
    )


def profile(
    perf: str, rounds: int, seconds: int, frequency: int, spin_us: float
) -> list[Profile]:
    with running_stack() as stack, tempfile.TemporaryDirectory() as scratch:
        body = stack.workdir / "review.json"
        body.write_bytes(bodies.training_review())
        servers = [(Profile("reference"), stack.reference, EXPECTED_REFERENCE)]
        spinning = start_spinning_reference(stack, spin_us) if spin_us else None
        try:
            if spinning is not None:
                spin = Profile(f"reference+{spin_us:g}us")
                servers.append((spin, spinning, EXPECTED_REFERENCE))
            servers.append((Profile("webhook"), stack.ours, EXPECTED_WEBHOOK))
            for _, server, expected in servers:
                run_wrk(server.url + MUTATE_PATH, body, expected, 1)
            for _ in range(rounds):
                for series, server, expected in servers:
                    cpu, dsos, symbols = profile_round(
                        perf, server, body, expected, seconds, frequency, Path(scratch)
                    )
                    series.cpu_us.append(cpu)
                    series.areas.append(by_area(parse_report(dsos), server.name))
                    series.symbols.append(parse_report(symbols))
        finally:
            if spinning is not None:
                stop_server(spinning)
    return [series for series, _, _ in servers]


def summarize(series: Iterable[Profile], symbols: int) -> dict[str, Any]:
    return {
        s.name: {
            "cpu_us_per_review": round(statistics.median(s.cpu_us), 1),
            "areas_us": {name: round(us, 1) for name, us in s.area_us().items()},
            "top_symbols_us": [
                {"symbol": name, "us": round(us, 2)}
                for name, us in s.top_symbols(symbols)
            ],
            "rounds_cpu_us": [round(cpu, 1) for cpu in s.cpu_us],
        }
        for s in series
    }


def print_summary(figures: dict[str, Any]) -> None:
    """Print each area's us per review per server, then what each adds to the first."""
    names = list(figures)
    width = max(len(name) for name in names) + 2
    first = figures[names[0]]
    rows = [(area, figures_of_area(figures, area)) for area in first["areas_us"]]
    rows.append(("total", {n: f["cpu_us_per_review"] for n, f in figures.items()}))
    print(f"{'us of CPU per review':28s}" + "".join(f"{n:>{width}s}" for n in names))
    for label, values in rows:
        print(f"{label:28s}" + "".join(f"{values[n]:{width}.1f}" for n in names))
    print(f"\nadded to the {names[0]}")
    for label, values in rows:
        added = "".join(
            f"{values[n] - values[names[0]]:+{width}.1f}" for n in names[1:]
        )
        print(f"{label:28s}" + " " * width + added)
    for name, server in figures.items():
        if not server["top_symbols_us"]:
            continue
        print(f"\n{name}: symbols with the most CPU per review")
        for row in server["top_symbols_us"]:
            print(f"  {row['us']:6.2f} us  {row['symbol']}")


def figures_of_area(figures: dict[str, Any], area: str) -> dict[str, float]:
    return {name: server["areas_us"][area] for name, server in figures.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.profile",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_load_options(
        parser,
        rounds=3,
        seconds=5,
        spin_help="microseconds of busy loop the second reference adds, 0 for none",
        results_file="profile.json",
    )
    parser.add_argument(
        "--frequency", type=int, default=999, help="samples per second (default 999)"
    )
    parser.add_argument(
        "--symbols", type=int, default=8, help="symbols listed per server (default 8)"
    )
    args = parser.parse_args(argv)

    if min(args.rounds, args.seconds, args.frequency) < 1:
        parser.error("--rounds, --seconds and --frequency must be at least 1")
    if args.symbols < 0 or args.spin_us < 0:
        parser.error("--symbols and --spin-us must not be negative")
    if not wrk_available():
        return 2

    try:
        perf = perf_path()
        make_results_directory(parser, args.results)
        series = profile(perf, args.rounds, args.seconds, args.frequency, args.spin_us)
    except ProfileError as error:
        parser.exit(1, f"python -m bench.profile: {error}\n")

    figures = summarize(series, args.symbols)
    (args.results / "profile.json").write_text(json.dumps(figures, indent=2))
    print_summary(figures)
    return 0


if __name__ == "__main__":
    raise SystemExit(run_tool(main))
