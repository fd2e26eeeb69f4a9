"""The webhook as a subprocess, started the way a deployment starts it."""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import TracebackType

import orjson

REPOSITORY = Path(__file__).resolve().parents[2]


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class ServiceProcess:
    """`python -m webhook serve` on 127.0.0.1 with its logs in a file."""

    def __init__(self, workdir: Path, ca_file: Path, *args: str) -> None:
        self.workdir = workdir
        self.ca_file = ca_file
        self.port = free_port()
        self.log_path = workdir / f"webhook-{self.port}.log"
        self.args = [
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(self.port),
            "--log-format",
            "json",
            "--log-level",
            "DEBUG",
            *args,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self, ready_within: float = 15.0) -> ServiceProcess:
        environment = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("KUBERNETES_", "RUNAI_SECRETS_WEBHOOK_"))
        }
        environment["PYTHONPATH"] = str(REPOSITORY)
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", "webhook", *self.args],
                cwd=self.workdir,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=environment,
            )
        self.wait_ready(ready_within)
        return self

    def ssl_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=str(self.ca_file))

    def get(self, path: str) -> tuple[int, str]:
        """GET a path over HTTPS, verifying the server; return status and text."""
        try:
            with urllib.request.urlopen(
                self.url + path, context=self.ssl_context(), timeout=5
            ) as response:
                return response.status, response.read().decode()
        except urllib.error.HTTPError as error:
            return error.code, error.read().decode()

    def wait_ready(self, seconds: float) -> None:
        give_up = time.monotonic() + seconds
        while time.monotonic() < give_up:
            assert self.process is not None
            if self.process.poll() is not None:
                raise RuntimeError(f"webhook exited early:\n{self.logs_text()}")
            try:
                if self.get("/readyz")[0] == 200:
                    return
            except (OSError, ssl.SSLError):
                pass
            time.sleep(0.1)
        raise RuntimeError(f"webhook not ready after {seconds} s:\n{self.logs_text()}")

    def terminate(self, timeout: float = 20.0) -> int:
        """Send SIGTERM and wait for the exit status."""
        assert self.process is not None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        return self.process.wait(timeout)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        try:
            self.terminate(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def logs_text(self) -> str:
        return (
            self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        )

    def log_lines(self) -> list[dict[str, object]]:
        """Return the JSON log lines; a line that is not JSON fails the test."""
        return [orjson.loads(line) for line in self.logs_text().splitlines() if line]

    def __enter__(self) -> ServiceProcess:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()
