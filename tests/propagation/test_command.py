"""The `propagate` command line: flags, environment variables, settings."""

from __future__ import annotations

import argparse
import re

import pytest

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
