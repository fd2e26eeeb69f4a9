"""The `propagate` command line: flags, environment variables, settings."""

from __future__ import annotations

import argparse
import logging
import re
import socket
from pathlib import Path

import pytest
import urllib3
import yaml
from kubernetes.client import ApiClient, Configuration, CoreV1Api

from webhook.propagation import command
from webhook.propagation.command import add_propagate_command, settings_from_args


def parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_propagate_command(parser.add_subparsers(dest="command", required=True))
    return parser.parse_args(["propagate", *argv])


def test_defaults_match_documentation() -> None:
    settings = settings_from_args(parse([]))

    assert settings.source_namespace == "runai"
    assert settings.project_label == "runai/queue"
    assert settings.marks.prefix == "runai-secrets-webhook"
    assert settings.copy_labels == ()
    assert settings.resync_period == 300.0
    assert settings.lease.duration == 15.0
    assert settings.lease.renew_deadline == 10.0
    assert settings.lease.retry_period == 2.0
    assert settings.watch.server_timeout == 300
    assert settings.watch.client_margin == 15.0
    assert settings.watch.idle_timeout == 90.0


def test_environment_sets_flags(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_PROJECT_LABEL", "example.com/project")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_COPY_LABELS", "team, example.com/*")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_LEASE_DURATION", "30")

    settings = settings_from_args(parse(["--lease-duration", "20"]))

    assert settings.project_label == "example.com/project"
    assert settings.copy_labels == ("team", "example.com/*")
    assert settings.lease.duration == 20.0


def test_invalid_lease_timing_rejected() -> None:
    args = parse(["--renew-deadline", "20", "--lease-duration", "15"])

    with pytest.raises(ValueError, match=re.escape("renew deadline 20.0 s")):
        settings_from_args(args)


def unused_client() -> ApiClient:
    # Building a controller makes no request; the port is never contacted.
    configuration = Configuration()
    configuration.host = "https://127.0.0.1:9"
    return ApiClient(configuration)


def test_lease_namespace_from_service_account(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    namespace_file = tmp_path / "namespace"
    namespace_file.write_text("runai-secrets-webhook\n")
    monkeypatch.setattr(command, "SERVICE_ACCOUNT_NAMESPACE", namespace_file)

    controller = command.controller_from_args(
        parse(["--identity", "pod-1"]), unused_client()
    )

    assert controller.elector.identity == "pod-1"
    assert controller.elector.namespace == "runai-secrets-webhook"


def test_missing_lease_namespace_explained(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(command, "SERVICE_ACCOUNT_NAMESPACE", tmp_path / "absent")

    with pytest.raises(SystemExit, match="pass --lease-namespace NAMESPACE"):
        command.controller_from_args(parse([]), unused_client())


@pytest.mark.parametrize(
    ("flag", "value"),
    [
        ("--resync-period", "0"),
        ("--conflict-retry", "-5"),
        ("--request-timeout", "0"),
        ("--watch-timeout", "0"),
        ("--metrics-port", "-1"),
    ],
)
def test_non_positive_setting_rejected(
    flag: str,
    value: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as from_flag:
        parse([flag, value])
    assert from_flag.value.code == 2

    variable = "RUNAI_SECRETS_WEBHOOK_" + flag[2:].replace("-", "_").upper()
    monkeypatch.setenv(variable, value)
    capsys.readouterr()
    with pytest.raises(SystemExit) as from_environment:
        parse([])

    assert from_environment.value.code == 2
    assert variable in capsys.readouterr().err


def test_invalid_log_level_rejected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as from_flag:
        parse(["--log-level", "verbose"])
    assert from_flag.value.code == 2
    assert "DEBUG, INFO, WARNING, ERROR" in capsys.readouterr().err

    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_LOG_LEVEL", "verbose")
    with pytest.raises(SystemExit) as from_environment:
        parse([])

    assert from_environment.value.code == 2
    assert "RUNAI_SECRETS_WEBHOOK_LOG_LEVEL" in capsys.readouterr().err


def test_log_level_any_case() -> None:
    assert parse(["--log-level", "debug"]).log_level == "DEBUG"


def test_invalid_annotation_prefix_rejected(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(["--annotation-prefix", "Bad Prefix/"])

    assert exit_info.value.code == 2
    assert "annotation prefix 'Bad Prefix/' is not valid" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["--source-namespace", "Runai"], "invalid namespace 'Runai'"),
        (["--project-label", "bad key"], "invalid label key 'bad key'"),
    ],
)
def test_invalid_namespace_or_label_rejected(
    argv: list[str], error: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        parse(argv)

    assert exit_info.value.code == 2
    assert error in capsys.readouterr().err


def _kubeconfig(path: Path, server: str) -> Path:
    cluster = {"name": "down", "cluster": {"server": server}}
    context = {"name": "down", "context": {"cluster": "down", "user": "down"}}
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [cluster],
        "users": [{"name": "down", "user": {"token": "test-token"}}],
        "contexts": [context],
        "current-context": "down",
    }
    path.write_text(yaml.safe_dump(config))
    return path


def test_client_does_not_retry_in_urllib3(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    # A bound socket that never listens: every connection to it is refused,
    # as to an API server that is down, and no other process can take it.
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        port = closed.getsockname()[1]
        kubeconfig = _kubeconfig(tmp_path / "kubeconfig", f"http://127.0.0.1:{port}")
        client = command.load_client(str(kubeconfig))

        with caplog.at_level(logging.WARNING, logger="urllib3"):
            with pytest.raises(urllib3.exceptions.MaxRetryError):
                CoreV1Api(client).list_namespace(_request_timeout=2)

    retries = [r.getMessage() for r in caplog.records if "Retrying" in r.getMessage()]
    assert retries == []
    assert client.configuration.retries == 0
    assert client.configuration.host == f"http://127.0.0.1:{port}"


def test_load_client_outside_cluster_names_fix() -> None:
    # tests/conftest.py removes the KUBERNETES_* variables, so the in-cluster
    # config is missing, as on a laptop.
    with pytest.raises(SystemExit) as raised:
        command.load_client(None)

    message = str(raised.value)
    assert "in-cluster" in message
    assert "pass --kubeconfig FILE" in message


def test_load_client_malformed_kubeconfig_hides_contents(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text("sentinel-token-5c1e\n")

    with pytest.raises(SystemExit) as raised:
        command.load_client(str(kubeconfig))

    message = str(raised.value)
    assert f"no usable Kubernetes configuration in {str(kubeconfig)!r}" in message
    assert "--kubeconfig" in message
    assert "sentinel-token-5c1e" not in message
