"""The check that match conditions let every object reach the admin template."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.chart.helm import find, render
from tests.templates.builders import loaded_store, template
from webhook.templates.scope import AdminTemplateScopeCheck, skipping_conditions

ADMIN = template("template-admin", "MYPASSWORD=SECRET:my-secret,cred-pass")


def chart_configuration(helm: Path, templates: bool) -> dict[str, Any]:
    """Render the chart's MutatingWebhookConfiguration with templates on or off."""
    manifests = render(helm, {"templates": {"enabled": templates}})
    return find(manifests, "MutatingWebhookConfiguration")


@pytest.fixture(scope="module")
def skipping(helm: Path) -> dict[str, Any]:
    """The chart's configuration with templates off, which skips plain pods."""
    return chart_configuration(helm, templates=False)


def configuration(*conditions: tuple[str, str]) -> dict[str, Any]:
    webhook: dict[str, Any] = {"name": "runai-secrets-webhook.run.ai"}
    if conditions:
        webhook["matchConditions"] = [
            {"name": name, "expression": expression} for name, expression in conditions
        ]
    return {"kind": "MutatingWebhookConfiguration", "webhooks": [webhook]}


def test_chart_skip_condition_is_found(skipping: dict[str, Any]) -> None:
    found = skipping_conditions(skipping)

    assert [item.condition for item in found] == ["has-placeholder-or-annotation"]
    assert found[0].webhook == "inject.runai-secrets-webhook.io"
    assert "false" in found[0].reason


def test_chart_with_templates_skips_nothing(helm: Path) -> None:
    assert skipping_conditions(chart_configuration(helm, templates=True)) == []


def test_no_conditions_skip_nothing() -> None:
    assert skipping_conditions(configuration()) == []


def test_true_condition_skips_nothing() -> None:
    config = configuration(("not-dry-run", "!request.dryRun"))

    assert skipping_conditions(config) == []


def test_condition_that_fails_counts_as_skipping() -> None:
    config = configuration(
        ("authz", "authorizer.group('').resource('pods').check('get')")
    )

    found = skipping_conditions(config)

    assert len(found) == 1
    assert "failed to evaluate" in found[0].reason


class Reader:
    """A stand-in for the API read of the configuration, counting calls."""

    def __init__(self, result: Mapping[str, Any] | Exception) -> None:
        self.result = result
        self.calls = 0

    def __call__(self) -> Mapping[str, Any]:
        self.calls += 1
        if isinstance(self.result, Exception):
            raise self.result
        return self.result


def errors(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno == logging.ERROR]


def test_admin_template_with_skip_logs_error_once(
    caplog: pytest.LogCaptureFixture, skipping: dict[str, Any]
) -> None:
    reader = Reader(skipping)
    check = AdminTemplateScopeCheck(reader, "runai-secrets-webhook")
    store = loaded_store(ADMIN)

    with caplog.at_level(logging.WARNING):
        check(store)
        check(store)

    assert reader.calls == 1
    assert len(errors(caplog)) == 1
    record = errors(caplog)[0]
    assert record.condition == "has-placeholder-or-annotation"  # type: ignore[attr-defined]
    assert record.configuration == "runai-secrets-webhook"  # type: ignore[attr-defined]


def test_error_again_after_admin_template_returns(
    caplog: pytest.LogCaptureFixture, skipping: dict[str, Any]
) -> None:
    reader = Reader(skipping)
    check = AdminTemplateScopeCheck(reader, "runai-secrets-webhook")

    with caplog.at_level(logging.WARNING):
        check(loaded_store(ADMIN))
        check(loaded_store())
        check(loaded_store(ADMIN))

    assert len(errors(caplog)) == 2


def test_no_admin_template_reads_nothing(
    caplog: pytest.LogCaptureFixture, skipping: dict[str, Any]
) -> None:
    reader = Reader(skipping)
    check = AdminTemplateScopeCheck(reader, "runai-secrets-webhook")

    with caplog.at_level(logging.WARNING):
        check(loaded_store(template("other", "A=1")))
        check(loaded_store(template("template-admin")))

    assert reader.calls == 0
    assert errors(caplog) == []


def test_configuration_without_skip_logs_nothing(
    caplog: pytest.LogCaptureFixture,
) -> None:
    check = AdminTemplateScopeCheck(Reader(configuration()), "runai-secrets-webhook")

    with caplog.at_level(logging.WARNING):
        check(loaded_store(ADMIN))

    assert caplog.records == []


def test_failed_read_warns_and_retries(caplog: pytest.LogCaptureFixture) -> None:
    reader = Reader(ApiException(status=403, reason="Forbidden"))
    check = AdminTemplateScopeCheck(reader, "runai-secrets-webhook")

    with caplog.at_level(logging.WARNING):
        check(loaded_store(ADMIN))
        check(loaded_store(ADMIN))

    assert reader.calls == 2
    warnings = [
        record for record in caplog.records if record.levelno == logging.WARNING
    ]
    assert len(warnings) == 2
    assert warnings[0].error == "HTTP 403 Forbidden"  # type: ignore[attr-defined]
