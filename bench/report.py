"""Write the results: JSON with every figure, a Markdown summary, a PNG plot."""

from __future__ import annotations

import json
import os
import platform
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")  # no display on servers and in CI
import matplotlib.pyplot as plt

from bench.throughput import Series


def machine() -> dict[str, Any]:
    """Describe the machine and its load when the figures were taken."""
    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "load_average": [round(value, 2) for value in os.getloadavg()],
        "time": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def plot_latency(reference: Series, ours: Series, path: Path) -> None:
    """Plot each round's latency percentiles for both servers on a log axis."""
    figure, axes = plt.subplots(figsize=(8, 5))
    for series, color in ((reference, "tab:gray"), (ours, "tab:blue")):
        for index, result in enumerate(series.rounds):
            points = sorted(result.latency_ms)
            axes.plot(
                [result.latency_ms[point] for point in points],
                points,
                color=color,
                alpha=0.7,
                label=series.name if index == 0 else None,
            )
    axes.set_xscale("log")
    axes.set_xlabel("latency (ms, log scale)")
    axes.set_ylabel("percentile of reviews")
    axes.set_title("Latency at 32 connections, one line per round (wrk, closed-loop)")
    axes.axvline(10, color="tab:red", linestyle="--", linewidth=1, label="10 ms")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def write_json(results: dict[str, Any], path: Path) -> None:
    path.write_text(json.dumps(results, indent=2) + "\n")


def summary_lines(results: dict[str, Any]) -> list[str]:
    """Return a short Markdown summary of the figures."""
    host = results["machine"]
    throughput = results["throughput"]
    ref, ours, ratio = (
        throughput["reference"],
        throughput["webhook"],
        throughput["ratio"],
    )
    lines = [
        f"Taken {host['time']} on {host['cpu']} ({host['cores']} cores), "
        f"Python {host['python']}, load average {host['load_average']} at the end; "
        f"mode {results['mode']}, webhook workers {results['workers']}.",
        "",
        "| server | reviews/s | p50 ms | p99 ms | p99.9 ms | peak RSS MiB | failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in (("reference", ref), ("webhook", ours)):
        lines.append(
            f"| {name} | {row['rate']} | {row['p50_ms']} | {row['p99_ms']} | "
            f"{row['p99_9_ms']} | {row['peak_rss_mib']} | {row['failed']} |"
        )
    lines.append(
        f"| ratio | {ratio['rate']} | {ratio['p50']} | {ratio['p99']} | "
        f"{ratio['p99_9']} | {ratio['peak_rss']} | |"
    )
    return lines
