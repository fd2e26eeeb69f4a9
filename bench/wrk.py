"""Load from wrk: a keep-alive HTTPS POST loop with a Lua script.

wrk is closed-loop: each connection sends its next request when the previous
response arrives, so its latency percentiles leave out the time a request
would have waited behind a slow one (coordinated omission). The throughput
figure is the rate at which the server kept up with 32 busy connections.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SCRIPT = Path(__file__).with_name("post.lua")
MARKER = "BENCH-JSON "


class WrkMissing(RuntimeError):
    """wrk is not installed and could not be installed."""


def ensure_wrk() -> str:
    """Return the path of wrk, installing the Debian package when apt is usable."""
    found = shutil.which("wrk")
    if found:
        return found
    if shutil.which("apt-get") and os.geteuid() == 0:
        # A fresh image has no package lists yet; update once and retry.
        install = ["apt-get", "install", "-y", "-q", "wrk"]
        if subprocess.run(install, check=False).returncode != 0:
            subprocess.run(["apt-get", "update", "-q"], check=False)
            subprocess.run(install, check=False)
        found = shutil.which("wrk")
        if found:
            return found
    raise WrkMissing(
        "wrk was not found on PATH; install it (Debian/Ubuntu: apt-get install wrk)"
    )


def wrk_available() -> bool:
    """Tell whether wrk can run, printing why to stderr when it cannot.

    Call it before any server starts. `ensure_wrk` installs wrk when it can,
    and otherwise the tool stops at once instead of after minutes of setup.
    """
    try:
        ensure_wrk()
    except WrkMissing as error:
        print(f"error: {error}", file=sys.stderr)
        return False
    return True


@dataclass(frozen=True)
class WrkResult:
    """One wrk run, with latencies in milliseconds."""

    requests: int
    seconds: float
    failed: int
    socket_errors: int
    latency_ms: dict[float, float]
    max_ms: float

    @property
    def rate(self) -> float:
        return self.requests / self.seconds

    def percentile(self, point: float) -> float:
        return self.latency_ms[point]

    def to_json(self) -> dict[str, Any]:
        return {
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "rate": round(self.rate, 1),
            "failed": self.failed,
            "socket_errors": self.socket_errors,
            "p50_ms": self.percentile(50),
            "p99_ms": self.percentile(99),
            "p99_9_ms": self.percentile(99.9),
            "max_ms": self.max_ms,
        }


def parse_output(text: str) -> WrkResult:
    """Read the `BENCH-JSON` line that post.lua prints when wrk ends.

    Raises `ValueError` when the line is missing or wrk got no response.
    """
    for line in text.splitlines():
        if line.startswith(MARKER):
            data = json.loads(line[len(MARKER) :])
            break
    else:
        raise ValueError(f"wrk output has no {MARKER.strip()} line:\n{text}")

    if data["requests"] == 0:
        # With no response there is no rate, latency or CPU time per review.
        raise ValueError(
            f"wrk got no response in {data['duration_us'] / 1e6:.1f} s of load. "
            "Check that the server is running and responds within wrk's timeout."
        )
    errors = data["errors"]
    latency = data["latency_us"]
    # Non-2xx responses are counted by post.lua as failed already.
    socket_errors = sum(
        errors[name] for name in ("connect", "read", "write", "timeout")
    )
    return WrkResult(
        requests=data["requests"],
        seconds=data["duration_us"] / 1e6,
        failed=data["failed"] + data["requests"] - data["checked"],
        socket_errors=socket_errors,
        latency_ms={
            float(point): micros / 1000
            for point, micros in latency["percentiles"].items()
        },
        max_ms=latency["max"] / 1000,
    )


def run_wrk(
    url: str,
    body_file: Path,
    expected: str,
    seconds: float,
    connections: int = 32,
    threads: int = 1,
    think_ms: float = 0.0,
) -> WrkResult:
    """Run wrk against `url` and return its figures; `expected` must be in each body."""
    command = [
        ensure_wrk(),
        f"--threads={threads}",
        f"--connections={connections}",
        f"--duration={max(1, round(seconds))}s",
        "--timeout=10s",
        f"--script={SCRIPT}",
        url,
        "--",
        str(body_file),
        expected,
    ]
    env = os.environ | {"BENCH_THINK_MS": str(think_ms)}
    completed = subprocess.run(
        command, capture_output=True, text=True, env=env, check=True
    )
    return parse_output(completed.stdout)
