"""Run the webhook service as a subprocess and build its webhook configuration.

    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kc")
    with WebhookService(["--on-missing", "deny"], kubeconfig=kubeconfig) as service:
        caller = service.caller(kube=fake_kube)
        result = caller.admit(pod, namespace="team-a")
    assert service.exit_code == 0
    assert "secret value" not in service.logs()

The service runs as `sys.executable -m webhook serve` on a free port of
127.0.0.1, in its own directory and with an environment that cannot reach a
real cluster. Its stdout and stderr go to files, so a chatty service never
blocks on a full pipe, and `logs()` reads them at any time.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from types import TracebackType
from typing import Any

from tests.harness import certs
from tests.harness.apiserver import AdmissionCaller
from tests.harness.certs import ServingCertificate

SERVICE = "runai-secrets-webhook"
NAMESPACE = "runai-secrets-webhook"
WEBHOOK_NAME = "inject.runai-secrets-webhook.io"
CONFIGURATION_NAME = "runai-secrets-webhook"
PROJECT_LABEL = "runai/queue"
PREFIX = "runai-secrets-webhook"

REPOSITORY = Path(__file__).resolve().parents[2]
# Flags that make every log line a JSON object a test can parse.
JSON_DEBUG_LOGS = ("--log-format", "json", "--log-level", "DEBUG")


class ServiceFailed(RuntimeError):
    """The service exited or never became ready; the message carries its logs."""


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def isolated_environment(home: Path) -> dict[str, str]:
    """Return this process's environment without any way to reach a real cluster.

    In-cluster and RUNAI_SECRETS_WEBHOOK_* variables and proxies are dropped,
    and $HOME and $KUBECONFIG point into `home`, where no kubeconfig exists.
    Services started by module-scoped fixtures need this, because the
    per-test isolation in tests/conftest.py is not in force yet for them.
    """
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("KUBERNETES_", "RUNAI_SECRETS_WEBHOOK_"))
        and not key.lower().endswith("_proxy")
    }
    environment["HOME"] = str(home)
    environment["KUBECONFIG"] = str(home / "no-such-kubeconfig")
    environment["NO_PROXY"] = "127.0.0.1,localhost,::1"
    environment["PYTHONPATH"] = str(REPOSITORY)
    return environment


class WebhookService:
    """One `webhook serve` process with its own directory and log files."""

    def __init__(
        self,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        certificate: ServingCertificate | None = None,
        tls_files: bool = True,
        ca_file: Path | None = None,
        kubeconfig: Path | None = None,
        secrets_dir: Path | None = None,
        ready_path: str | None = "/readyz",
        startup_seconds: float = 20.0,
        directory: Path | None = None,
    ) -> None:
        """Prepare the command; `start()` or `with` runs it.

        With `tls_files` the service serves `certificate`, a new one for its
        DNS names and 127.0.0.1 unless given. Without it the runner passes no
        TLS flags, so `args` name the files or the service makes its own,
        and `get()` trusts `ca_file`. `ready_path=None` waits only until the
        port accepts connections, for a service whose certificate comes later.
        `args` go after the flags set here, so they may override them. `env`
        is added to `isolated_environment(directory)`.
        """
        self.port = free_port()
        self.directory = directory or Path(tempfile.mkdtemp(prefix="webhook-service-"))
        self.directory.mkdir(parents=True, exist_ok=True)
        self._certificate: ServingCertificate | None = None
        self.command = [
            sys.executable, "-m", "webhook", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
        ]  # fmt: skip
        if tls_files:
            self._certificate = certificate or certs.issue(
                *certs.service_names(SERVICE, NAMESPACE), "127.0.0.1"
            )
            cert_file, key_file, _ = self._certificate.write(self.directory / "tls")
            self.command += ["--tls-cert-file", str(cert_file)]
            self.command += ["--tls-key-file", str(key_file)]
        if kubeconfig is not None:
            self.command += ["--kubeconfig", str(kubeconfig)]
        if secrets_dir is not None:
            self.command += ["--secrets-dir", str(secrets_dir)]
        self.command += list(args)
        self.env = {**isolated_environment(self.directory), **(env or {})}
        self.ca_file = ca_file
        self.ready_path = ready_path
        self.startup_seconds = startup_seconds
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def certificate(self) -> ServingCertificate:
        """The certificate the runner made the service serve (with `tls_files`)."""
        if self._certificate is None:
            raise ServiceFailed(
                "the runner made no certificate because tls_files is False; "
                "pass ca_file to trust the service's CA"
            )
        return self._certificate

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def launch(self) -> None:
        """Start the process without waiting for it; `start()` also waits."""
        stdout = (self.directory / "stdout.log").open("wb")
        stderr = (self.directory / "stderr.log").open("wb")
        with stdout, stderr:
            self._process = subprocess.Popen(
                self.command,
                cwd=self.directory,
                stdout=stdout,
                stderr=stderr,
                env=self.env,
            )

    def start(self, seconds: float | None = None) -> WebhookService:
        self.launch()
        self.wait_ready(seconds)
        return self

    def wait_ready(self, seconds: float | None = None) -> None:
        """Poll `ready_path` until it returns 200, or wait for the port if it is None.

        Raise ServiceFailed, with the logs, if the service exits first or
        `seconds` (default `startup_seconds`) pass.
        """
        if self.ready_path is None:
            self.wait_listening(seconds)
            return
        limit = self.startup_seconds if seconds is None else seconds
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self._raise_if_exited(f"{self.ready_path} answered 200")
            if self.get(self.ready_path)[0] == 200:
                return
            time.sleep(0.05)
        raise ServiceFailed(
            f"service not ready: {self.ready_path} did not answer 200 within "
            f"{limit} s; logs:\n{self.logs()}"
        )

    def wait_listening(self, seconds: float | None = None) -> None:
        """Wait until the port accepts TCP connections, raising as `wait_ready` does."""
        limit = self.startup_seconds if seconds is None else seconds
        deadline = time.monotonic() + limit
        while time.monotonic() < deadline:
            self._raise_if_exited("it listened")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                time.sleep(0.05)
        raise ServiceFailed(
            f"service did not listen on port {self.port} within {limit} s; "
            f"logs:\n{self.logs()}"
        )

    def _raise_if_exited(self, waiting_for: str) -> None:
        if self._process is not None and self._process.poll() is not None:
            self.exit_code = self._process.returncode
            raise ServiceFailed(
                f"service exited with {self.exit_code} before {waiting_for}; "
                f"logs:\n{self.logs()}"
            )

    def ca_pem(self) -> bytes:
        """Return the PEM CA certificate that `get()` and `caller()` trust."""
        if self.ca_file is not None:
            return self.ca_file.read_bytes()
        return self.certificate.ca_pem

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """GET a path over verified TLS.

        Status 0 means no connection, or a `ca_file` that the service has
        not written yet.
        """
        try:
            context = ssl.create_default_context(cadata=self.ca_pem().decode())
            with urllib.request.urlopen(
                self.url + path, timeout=timeout, context=context
            ) as response:
                return int(response.status), bytes(response.read())
        except urllib.error.HTTPError as error:
            return int(error.code), bytes(error.read())
        except (urllib.error.URLError, OSError):
            return 0, b""

    def stop(self, timeout: float = 10.0) -> int:
        """Send SIGTERM, wait for the exit and return the exit code.

        A service still running after `timeout` seconds is killed and
        ServiceFailed is raised, because a clean shutdown is part of its job.
        """
        process = self._process
        if process is None:
            raise ServiceFailed("the service was never started")
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
                raise ServiceFailed(
                    f"service ignored SIGTERM for {timeout} s; logs:\n{self.logs()}"
                ) from None
        self.exit_code = process.returncode
        return self.exit_code

    def __enter__(self) -> WebhookService:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self.running():
            self.stop()

    # Logs.

    def stdout(self) -> str:
        return _read(self.directory / "stdout.log")

    def stderr(self) -> str:
        return _read(self.directory / "stderr.log")

    def logs(self) -> str:
        return self.stderr() + self.stdout()

    def log_records(self, strict: bool = False) -> list[dict[str, Any]]:
        """Return the log lines that are JSON objects (with `--log-format json`).

        Other lines are skipped, unless `strict`, which raises ValueError on
        the first line that is not a JSON object.
        """
        records = []
        lines = self.stderr().splitlines() + self.stdout().splitlines()
        for line in filter(None, lines):
            try:
                record = json.loads(line)
            except ValueError:
                if strict:
                    raise
                continue
            if isinstance(record, dict):
                records.append(record)
            elif strict:
                raise ValueError(f"log line is not a JSON object: {line!r}")
        return records

    # Admission.

    def caller(self, **options: Any) -> AdmissionCaller:
        """Return an AdmissionCaller for this service and `mutating_configuration`.

        `options` go to AdmissionCaller, e.g. `kube=` or `namespaces=`.
        """
        ca_bundle = base64.b64encode(self.ca_pem()).decode()
        options.setdefault("mutating", [mutating_configuration(ca_bundle)])
        services = {f"{SERVICE}.{NAMESPACE}.svc:443": ("127.0.0.1", self.port)}
        return AdmissionCaller(services=services, **options)


@contextmanager
def running_services(*services: WebhookService) -> Iterator[list[WebhookService]]:
    """Launch all services at once, wait until each is ready, stop all afterwards."""
    with ExitStack() as stack:
        for service in services:
            service.launch()
            stack.push(service)
        for service in services:
            service.wait_ready()
        yield list(services)


def _read(path: Path) -> str:
    return path.read_text(errors="replace") if path.exists() else ""


def mutating_configuration(
    ca_bundle: str,
    *,
    release_namespace: str = NAMESPACE,
    project_label: str = PROJECT_LABEL,
    prefix: str = PREFIX,
    timeout_seconds: int = 5,
) -> dict[str, Any]:
    """Build the MutatingWebhookConfiguration that the Helm chart installs by default.

    NOTE: this copy is written by hand from the chart's template and leaves
    out the chart's Run:AI rules and match conditions. `chart_configuration`
    renders the chart itself when helm is present, and a test compares the
    shared fields of the two.
    """
    rule_sets = [
        (["CREATE"], "", ["pods"]),
        (["UPDATE"], "", ["pods/ephemeralcontainers"]),
        (["CREATE"], "batch", ["jobs"]),
        (["CREATE", "UPDATE"], "batch", ["cronjobs"]),
        (
            ["CREATE", "UPDATE"],
            "apps",
            ["deployments", "statefulsets", "replicasets", "daemonsets"],
        ),
    ]
    rules = [
        {
            "operations": operations,
            "apiGroups": [group],
            "apiVersions": ["v1"],
            "resources": resources,
            "scope": "Namespaced",
        }
        for operations, group, resources in rule_sets
    ]
    webhook = {
        "name": WEBHOOK_NAME,
        "admissionReviewVersions": ["v1", "v1beta1"],
        "clientConfig": {
            "service": {
                "name": SERVICE,
                "namespace": release_namespace,
                "path": "/mutate",
                "port": 443,
            },
            "caBundle": ca_bundle,
        },
        "failurePolicy": "Fail",
        "timeoutSeconds": timeout_seconds,
        "sideEffects": "None",
        "reinvocationPolicy": "IfNeeded",
        "matchPolicy": "Equivalent",
        "rules": rules,
        "namespaceSelector": {
            "matchExpressions": [
                {"key": project_label, "operator": "Exists"},
                {
                    "key": "kubernetes.io/metadata.name",
                    "operator": "NotIn",
                    "values": [release_namespace, "kube-system"],
                },
            ]
        },
        "objectSelector": {
            "matchExpressions": [
                {"key": f"{prefix}/inject", "operator": "NotIn", "values": ["false"]},
                # The webhook's own pods never wait for themselves.
                {
                    "key": "app.kubernetes.io/name",
                    "operator": "NotIn",
                    "values": [SERVICE],
                },
            ]
        },
    }
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": "MutatingWebhookConfiguration",
        "metadata": {"name": CONFIGURATION_NAME},
        "webhooks": [webhook],
    }


def chart_configuration(
    ca_bundle: str, values: Mapping[str, Any] | None = None
) -> dict[str, Any] | None:
    """Render the chart's MutatingWebhookConfiguration with helm.

    Return None when helm or the chart's render helper is missing.

    The CA goes in through the chart's `secret` certificate mode, the one mode
    whose manifest carries `caBundle`.
    """
    try:
        from tests.chart import helm as chart_helm  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        return None
    binary = chart_helm.find_helm()
    if binary is None:
        return None
    chosen: dict[str, Any] = {
        "certificates": {
            "mode": "secret",
            "secret": {"name": "runai-secrets-webhook-tls", "caBundle": ca_bundle},
        }
    }
    chosen.update(values or {})
    for manifest in chart_helm.render(binary, chosen, namespace=NAMESPACE):
        if manifest.get("kind") == "MutatingWebhookConfiguration":
            return dict(manifest)
    return None
