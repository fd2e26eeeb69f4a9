"""`python -m webhook serve` as a subprocess, for end-to-end TLS tests."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from tests.harness.service import free_port

REPOSITORY = Path(__file__).resolve().parents[2]


@dataclass
class Service:
    process: subprocess.Popen[bytes]
    port: int
    log_file: Path

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_file.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"message": line})
        return lines

    def log_text(self) -> str:
        return self.log_file.read_text()

    def wait_listening(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"serve exited early:\n{self.log_text()}")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise AssertionError(
            f"serve did not listen within {timeout} s:\n{self.log_text()}"
        )

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def _environment(home: Path) -> dict[str, str]:
    # Nothing from the caller's shell: no kubeconfig, proxy or in-cluster
    # variables can point the service at a real cluster.
    return {
        "PATH": os.environ.get("PATH", ""),
        "HOME": str(home),
        "KUBECONFIG": str(home / "no-such-kubeconfig"),
        "PYTHONPATH": str(REPOSITORY),
        "NO_PROXY": "127.0.0.1,localhost,::1",
    }


def start_service(workdir: Path, *flags: str) -> Service:
    """Start `serve` on a free loopback port in workdir, without waiting."""
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "secrets").mkdir(exist_ok=True)
    port = free_port()
    log_file = workdir / f"serve-{port}.log"
    command = [
        sys.executable, "-m", "webhook", "serve",
        "--host", "127.0.0.1", "--port", str(port),
        "--log-format", "json", "--log-level", "DEBUG",
        *flags,
    ]  # fmt: skip
    if "--kubeconfig" not in flags:
        command += ["--secrets-dir", str(workdir / "secrets")]
    with log_file.open("wb") as log:
        process = subprocess.Popen(
            command, cwd=workdir, env=_environment(workdir), stdout=log, stderr=log
        )
    return Service(process, port, log_file)


@contextmanager
def running_services(*specs: tuple[Path, Sequence[str]]) -> Iterator[list[Service]]:
    """Start one `serve` per (workdir, flags) at once; stop them afterwards."""
    services = [start_service(workdir, *flags) for workdir, flags in specs]
    try:
        for service in services:
            service.wait_listening()
        yield services
    finally:
        for service in services:
            service.stop()


@contextmanager
def running_service(workdir: Path, *flags: str) -> Iterator[Service]:
    """Start `serve` in workdir and wait until it listens; stop it afterwards."""
    with running_services((workdir, flags)) as services:
        yield services[0]
