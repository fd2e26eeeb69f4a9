"""Run the webhook service as a subprocess and build its webhook configuration.

    kubeconfig = fake_kube.write_kubeconfig(tmp_path / "kc")
    with WebhookService(["--on-missing", "deny"], kubeconfig=kubeconfig) as service:
        caller = service.caller(kube=fake_kube)
        result = caller.admit(pod, namespace="team-a")
    assert service.exit_code == 0
    assert "secret value" not in service.logs()

The service runs as `sys.executable -m webhook serve` on a free port of
127.0.0.1. Its stdout and stderr go to files, so a chatty service never
blocks on a full pipe, and `logs()` reads them at any time.
"""

from __future__ import annotations

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
from collections.abc import Mapping, Sequence
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


class ServiceFailed(RuntimeError):
    """The service exited or never became ready; the message carries its logs."""


def free_port() -> int:
    """Return a TCP port that was free on 127.0.0.1 a moment ago."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class WebhookService:
    """One `webhook serve` process with its own certificate and log files."""

    def __init__(
        self,
        args: Sequence[str] = (),
        env: Mapping[str, str] | None = None,
        *,
        certificate: ServingCertificate | None = None,
        kubeconfig: Path | None = None,
        ready_path: str = "/readyz",
        startup_seconds: float = 20.0,
        directory: Path | None = None,
    ) -> None:
        """Prepare the command; `start()` or `with` runs it.

        `args` go after the flags set here (host, port, TLS files and
        `--kubeconfig`), so they may override them. `env` is added to this
        process's environment.
        """
        self.port = free_port()
        self.certificate = certificate or certs.issue(
            *certs.service_names(SERVICE, NAMESPACE), "127.0.0.1"
        )
        self.directory = directory or Path(tempfile.mkdtemp(prefix="webhook-service-"))
        cert_file, key_file, _ = self.certificate.write(self.directory / "tls")
        self.command = [
            sys.executable, "-m", "webhook", "serve",
            "--host", "127.0.0.1",
            "--port", str(self.port),
            "--tls-cert-file", str(cert_file),
            "--tls-key-file", str(key_file),
        ]  # fmt: skip
        if kubeconfig is not None:
            self.command += ["--kubeconfig", str(kubeconfig)]
        self.command += list(args)
        self.env = {**os.environ, **(env or {})}
        self.ready_path = ready_path
        self.startup_seconds = startup_seconds
        self.exit_code: int | None = None
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process else None

    def start(self) -> WebhookService:
        stdout = (self.directory / "stdout.log").open("wb")
        stderr = (self.directory / "stderr.log").open("wb")
        with stdout, stderr:
            self._process = subprocess.Popen(
                self.command, stdout=stdout, stderr=stderr, env=self.env
            )
        self.wait_ready()
        return self

    def wait_ready(self) -> None:
        """Poll `ready_path` until it returns 200.

        Raise ServiceFailed, with the logs, if the service exits first or
        `startup_seconds` pass.
        """
        deadline = time.monotonic() + self.startup_seconds
        while time.monotonic() < deadline:
            if self._process is not None and self._process.poll() is not None:
                self.exit_code = self._process.returncode
                raise ServiceFailed(
                    f"service exited with {self.exit_code} before {self.ready_path} "
                    f"answered 200; logs:\n{self.logs()}"
                )
            if self.get(self.ready_path)[0] == 200:
                return
            time.sleep(0.05)
        raise ServiceFailed(
            f"{self.ready_path} did not answer 200 within {self.startup_seconds} s; "
            f"logs:\n{self.logs()}"
        )

    def get(self, path: str, timeout: float = 2.0) -> tuple[int, bytes]:
        """GET a path over verified TLS; status 0 means no connection."""
        context = ssl.create_default_context(cadata=self.certificate.ca_pem.decode())
        try:
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
        if self._process is not None and self._process.poll() is None:
            self.stop()

    # Logs.

    def stdout(self) -> str:
        return _read(self.directory / "stdout.log")

    def stderr(self) -> str:
        return _read(self.directory / "stderr.log")

    def logs(self) -> str:
        return self.stderr() + self.stdout()

    def log_records(self) -> list[dict[str, Any]]:
        """Return the log lines that are JSON objects (with `--log-format json`)."""
        records = []
        for line in self.logs().splitlines():
            try:
                record = json.loads(line)
            except ValueError:
                continue
            if isinstance(record, dict):
                records.append(record)
        return records

    # Admission.

    def caller(self, **options: Any) -> AdmissionCaller:
        """Return an AdmissionCaller for this service and `mutating_configuration`.

        `options` go to AdmissionCaller, e.g. `kube=` or `namespaces=`.
        """
        options.setdefault(
            "mutating", [mutating_configuration(self.certificate.ca_bundle)]
        )
        services = {f"{SERVICE}.{NAMESPACE}.svc:443": ("127.0.0.1", self.port)}
        return AdmissionCaller(services=services, **options)


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

    NOTE: written by hand from the chart's template; `chart_configuration`
    renders the chart itself when helm and the chart are present, and a test
    compares the two.
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
        "certificates": {"mode": "secret", "secret": {"caBundle": ca_bundle}}
    }
    chosen.update(values or {})
    for manifest in chart_helm.render(binary, chosen, namespace=NAMESPACE):
        if manifest.get("kind") == "MutatingWebhookConfiguration":
            return dict(manifest)
    return None
