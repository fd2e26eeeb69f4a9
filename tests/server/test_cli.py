"""The command line: flags, environment variables, help text."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from webhook.cli import build_parser
from webhook.server.pipeline import injection_options
from webhook.settings import SERVE_FLAGS, ServeSettings, env_name


def serve_settings(argv: list[str]) -> ServeSettings:
    return ServeSettings.from_namespace(build_parser().parse_args(["serve", *argv]))


def test_serve_defaults_as_documented() -> None:
    settings = serve_settings([])

    assert settings.host == "0.0.0.0"
    assert settings.port == 8443
    assert settings.log_format == "json"
    assert settings.on_missing == "deny"
    assert settings.annotation_prefix == "runai-secrets-webhook"
    assert settings.cache_ttl == 5.0
    assert settings.kubeconfig is None


def test_environment_sets_flag(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_PORT", "9443")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_CACHE_TTL", "0.5")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_ON_MISSING", "warn")

    settings = serve_settings([])

    assert settings.port == 9443
    assert settings.cache_ttl == 0.5
    assert settings.on_missing == "warn"


def test_command_line_wins_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_PORT", "9443")

    assert serve_settings(["--port", "10443"]).port == 10443


def test_env_names_follow_flags() -> None:
    assert env_name("--tls-cert-file") == "RUNAI_SECRETS_WEBHOOK_TLS_CERT_FILE"


def test_invalid_values_rejected() -> None:
    with pytest.raises(SystemExit):
        serve_settings(["--log-format", "xml"])
    with pytest.raises(SystemExit):
        serve_settings(["--cache-ttl", "-1"])
    with pytest.raises(SystemExit):
        serve_settings(["--port", "70000"])


def test_help_names_every_env_var() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "serve", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"COLUMNS": "200", "PATH": ""},
    )

    for flag in SERVE_FLAGS:
        assert flag.name in result.stdout
        assert env_name(flag.name) in result.stdout
    assert "Default: 8443" in result.stdout
    assert "SECONDS" in result.stdout


def test_cert_without_key_rejected() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "serve", "--tls-cert-file", "x.pem"],
        capture_output=True,
        text=True,
        env={"PATH": "", "KUBECONFIG": "/nonexistent"},
    )

    assert result.returncode == 2
    assert "--tls-key-file" in result.stderr


def test_readme_documents_every_flag(repository_root: Path) -> None:
    readme = (repository_root / "README.md").read_text()

    for flag in SERVE_FLAGS:
        assert f"`{flag.name}`" in readme
        assert f"`{env_name(flag.name)}`" in readme


def test_every_subcommand_registered() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "--help"],
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": ""},
    )

    assert "{serve,certs,propagate}" in result.stdout


@pytest.mark.parametrize(
    ("variable", "value", "allowed"),
    [
        ("ON_MISSING", "Warn", "deny, warn"),
        ("LOG_FORMAT", "JSON", "json, text"),
        ("LOG_LEVEL", "verbose", "DEBUG, INFO, WARNING, ERROR"),
        ("PORT", "abc", "whole number"),
        ("CACHE_TTL", "-1", ">= 0"),
        ("CACHE_TTL", "nan", "number of seconds"),
        ("WORKERS", "0", ">= 1"),
        ("CERT_RELOAD_INTERVAL", "0", "> 0"),
        ("TEMPLATES", "maybe", "true or false"),
        ("ANNOTATION_PREFIX", "Bad Prefix/", "DNS-1123 subdomain"),
        ("SOURCE_NAMESPACE", "Runai", "at most 63 lower case letters"),
        ("TEMPLATE_NAMESPACE", "runai.templates", "at most 63 lower case letters"),
        ("PROJECT_LABEL", "runai/queue/x", "such as runai/queue"),
    ],
)
def test_invalid_environment_value_exits_2(
    variable: str,
    value: str,
    allowed: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv(f"RUNAI_SECRETS_WEBHOOK_{variable}", value)

    with pytest.raises(SystemExit) as exit_info:
        serve_settings([])

    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert f"RUNAI_SECRETS_WEBHOOK_{variable}" in error
    assert repr(value) in error
    assert allowed in error
    assert "Traceback" not in error


def test_valid_environment_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_TEMPLATES", "true")

    assert serve_settings([]).templates is True
    assert serve_settings(["--no-templates"]).templates is False


def test_command_line_wins_over_bad_environment(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_ON_MISSING", "Warn")

    assert serve_settings(["--on-missing", "warn"]).on_missing == "warn"


@pytest.mark.parametrize(
    "argv",
    [
        ["--workers", "0"],
        ["--port", "-1"],
        ["--cert-reload-interval", "0"],
        ["--cache-ttl", "inf"],
        ["--source-namespace", ""],
        ["--template-namespace", "runai-"],
        ["--project-label", "Runai.IO/queue"],
        ["--project-label", "runai/"],
        ["--project-label", "a" * 64],
    ],
)
def test_out_of_range_flag_rejected(
    argv: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        serve_settings(argv)

    assert exit_info.value.code == 2
    assert argv[1] in capsys.readouterr().err


@pytest.mark.parametrize(
    "label", ["runai/queue", "queue", "run.ai/Queue_1", f"{'a' * 253}/{'b' * 63}"]
)
def test_valid_project_label_accepted(label: str) -> None:
    assert serve_settings(["--project-label", label]).project_label == label


def test_invalid_environment_from_process() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "webhook", "serve"],
        capture_output=True,
        text=True,
        env={"PATH": "", "RUNAI_SECRETS_WEBHOOK_ON_MISSING": "Warn"},
    )

    assert result.returncode == 2
    assert "RUNAI_SECRETS_WEBHOOK_ON_MISSING" in result.stderr
    assert "'Warn'" in result.stderr
    assert "deny, warn" in result.stderr


def test_unknown_on_missing_not_treated_as_deny() -> None:
    with pytest.raises(ValueError, match="'Warn'"):
        injection_options(ServeSettings(on_missing="Warn"))
