"""The processes under test: the fake Kubernetes API, the webhook, the reference.

The fake API server runs in this process, so that the benchmark can count
the calls it receives. The webhook and the reference run as subprocesses on
127.0.0.1 with the same certificate. Nothing here reads the caller's
kubeconfig or contacts any other host.
"""

from __future__ import annotations

import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import trustme

from bench import bodies
from tests.harness.fakekube import FakeKube

REPOSITORY = Path(__file__).resolve().parent.parent
READY_TIMEOUT_SECONDS = 30.0
STOP_TIMEOUT_SECONDS = 10.0
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolated_environment(home: Path) -> dict[str, str]:
    """Return an environment without cluster settings, proxies or our flags.

    $HOME and $KUBECONFIG point into `home`, so no default falls back to a
    real kubeconfig or to in-cluster configuration.
    """
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.startswith(("KUBERNETES_", "RUNAI_SECRETS_WEBHOOK_"))
        and name.lower() not in {"http_proxy", "https_proxy", "all_proxy"}
    }
    env["HOME"] = str(home)
    env["KUBECONFIG"] = str(home / "no-such-kubeconfig")
    env["NO_PROXY"] = "127.0.0.1,localhost,::1"
    # The subprocesses run in a temporary directory but import this checkout.
    env["PYTHONPATH"] = str(REPOSITORY)
    return env


def fill_fake(kube: FakeKube) -> None:
    """Create the secrets that the benchmark bodies reference."""
    for name, keys in bodies.SECRETS.items():
        kube.add_secret(bodies.NAMESPACE, name, {key: "placeholder" for key in keys})
    bulk = {f"key-{index}": "placeholder" for index in range(bodies.BULK_KEYS)}
    kube.add_secret(bodies.NAMESPACE, bodies.BULK_SECRET, bulk)


def process_tree(pid: int) -> list[int]:
    """Return `pid` and the pids of all its living descendants."""
    found: list[int] = []
    pending = [pid]
    while pending:
        current = pending.pop()
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    pending.extend(int(child) for child in children.read().split())
        except (FileNotFoundError, ProcessLookupError):
            continue
        found.append(current)
    return found


def _proc_files(pid: int, name: str) -> Iterator[str]:
    """Yield /proc/<pid>/`name` of `pid` and each living descendant."""
    for current in process_tree(pid):
        try:
            with open(f"/proc/{current}/{name}") as proc_file:
                yield proc_file.read()
        except (FileNotFoundError, ProcessLookupError):
            continue


def tree_rss_bytes(pid: int) -> int:
    """Return the resident set size of `pid` and all its descendants, in bytes."""
    return sum(
        int(statm.split()[1]) * PAGE_BYTES for statm in _proc_files(pid, "statm")
    )


def tree_cpu_seconds(pid: int) -> float:
    """Return the CPU time, user and system, of `pid` and its descendants."""
    ticks = 0
    for stat in _proc_files(pid, "stat"):
        # Fields after the command name, which may contain spaces; utime and
        # stime are the 14th and 15th of the whole line.
        fields = stat.rsplit(")", 1)[1].split()
        ticks += int(fields[11]) + int(fields[12])
    return ticks / CLOCK_TICKS


@dataclass
class RssSampler:
    """Sampler of a process tree's RSS, on a thread every `interval` seconds."""

    pid: int
    interval: float = 0.1
    samples: list[tuple[float, int]] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def __enter__(self) -> RssSampler:
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic(), tree_rss_bytes(self.pid)))
            self._stop.wait(self.interval)

    @property
    def peak(self) -> int:
        return max((rss for _, rss in self.samples), default=0)


@dataclass
class Server:
    """A server subprocess listening on https://127.0.0.1:`port`."""

    name: str
    process: subprocess.Popen[bytes]
    port: int
    log: Path

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Stack:
    """Everything one benchmark run talks to."""

    kube: FakeKube
    ours: Server
    reference: Server
    ca_file: Path
    workdir: Path

    def tls_context(self) -> ssl.SSLContext:
        """Return a client context that trusts the servers' test CA."""
        return ssl.create_default_context(cafile=self.ca_file)

    def client(self, connections: int = 1) -> httpx.Client:
        limits = httpx.Limits(max_connections=connections)
        return httpx.Client(verify=self.tls_context(), limits=limits, timeout=30.0)


def wait_ready(server: Server, ca_file: Path) -> None:
    deadline = time.monotonic() + READY_TIMEOUT_SECONDS
    with httpx.Client(
        verify=ssl.create_default_context(cafile=ca_file), timeout=2.0
    ) as client:
        while time.monotonic() < deadline:
            if server.process.poll() is not None:
                break
            try:
                if client.get(server.url + "/readyz").status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.1)
    raise RuntimeError(
        f"{server.name} did not become ready within {READY_TIMEOUT_SECONDS} s; "
        f"its log is {server.log}"
    )


def start_server(
    name: str, args: Sequence[str], port: int, workdir: Path, env: dict[str, str]
) -> Server:
    log = workdir / f"{name}.log"
    with log.open("wb") as output:
        process = subprocess.Popen(
            [sys.executable, *args],
            stdout=output,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=workdir,
        )
    return Server(name, process, port, log)


def stop_server(server: Server) -> None:
    if server.process.poll() is not None:
        return
    server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(STOP_TIMEOUT_SECONDS)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def serve_args(
    port: int, cert: Path, key: Path, kubeconfig: Path, extra: Sequence[str]
) -> list[str]:
    return [
        "-m",
        "webhook",
        "serve",
        "--host=127.0.0.1",
        f"--port={port}",
        f"--tls-cert-file={cert}",
        f"--tls-key-file={key}",
        f"--kubeconfig={kubeconfig}",
        "--log-format=json",
        *extra,
    ]


def reference_args(
    port: int, cert: Path, key: Path, extra: Sequence[str] = ()
) -> list[str]:
    return [
        "-m",
        "bench.reference",
        f"--port={port}",
        f"--tls-cert-file={cert}",
        f"--tls-key-file={key}",
        *extra,
    ]


def start_spinning_reference(stack: Stack, spin_us: float) -> Server:
    """Start a reference that busy-loops `spin_us` per request; wait until ready."""
    return start_another_reference(stack, "reference-spin", [f"--spin-us={spin_us}"])


def start_floor(stack: Stack, name: str) -> Server:
    """Start the floor server `name` of bench.floors and wait until it is ready."""
    return start_another_reference(stack, floor_server_name(name), [f"--app={name}"])


def floor_server_name(name: str) -> str:
    """Return the server name under which the floor server `name` is reported."""
    return f"floor-{name}"


SERVICE_FLOOR = "service-minimal"


def start_service_floor(stack: Stack) -> Server:
    """Start `bench.servicefloor`, the service with the `minimal` floor's handler."""
    port = free_port()
    kubeconfig = stack.workdir / "kubeconfig"
    args = serve_args(
        port, stack.workdir / "tls.crt", stack.workdir / "tls.key", kubeconfig, ()
    )
    # serve_args starts with `-m webhook serve`; bench.servicefloor adds `serve`.
    args = ["-m", "bench.servicefloor", *args[3:]]
    return start_beside(stack, SERVICE_FLOOR, args, port)


def start_another_reference(stack: Stack, name: str, extra: Sequence[str]) -> Server:
    """Start `python -m bench.reference` with `extra` options beside the stack."""
    port = free_port()
    args = reference_args(
        port, stack.workdir / "tls.crt", stack.workdir / "tls.key", extra
    )
    return start_beside(stack, name, args, port)


def start_beside(stack: Stack, name: str, args: Sequence[str], port: int) -> Server:
    """Start `python ARGS`, which listens on `port`, and wait until it is ready."""
    server = start_server(
        name, args, port, stack.workdir, isolated_environment(stack.workdir)
    )
    try:
        wait_ready(server, stack.ca_file)
    except BaseException:
        stop_server(server)
        raise
    return server


@contextmanager
def running_stack(serve_extra: Sequence[str] = ()) -> Iterator[Stack]:
    """Start the fake API, the webhook and the reference; stop them on exit."""
    with tempfile.TemporaryDirectory(prefix="bench-") as directory:
        workdir = Path(directory)
        env = isolated_environment(workdir)
        ca = trustme.CA()
        leaf = ca.issue_cert("127.0.0.1", "localhost")
        cert, key, ca_file = (
            workdir / "tls.crt",
            workdir / "tls.key",
            workdir / "ca.crt",
        )
        leaf.private_key_pem.write_to_path(str(key))
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        ca.cert_pem.write_to_path(str(ca_file))

        with FakeKube() as kube:
            fill_fake(kube)
            kubeconfig = kube.write_kubeconfig(workdir / "kubeconfig")
            ours_port, reference_port = free_port(), free_port()
            ours = start_server(
                "webhook",
                serve_args(ours_port, cert, key, kubeconfig, serve_extra),
                ours_port,
                workdir,
                env,
            )
            reference = start_server(
                "reference",
                reference_args(reference_port, cert, key),
                reference_port,
                workdir,
                env,
            )
            try:
                wait_ready(ours, ca_file)
                wait_ready(reference, ca_file)
                yield Stack(kube, ours, reference, ca_file, workdir)
            finally:
                stop_server(ours)
                stop_server(reference)
