"""Parsing kube-apiserver's ?timeout= and the lookup budget."""

from __future__ import annotations

import pytest

from webhook.server.deadlines import parse_go_duration, review_budget


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("10s", 10.0), ("9.5s", 9.5), ("750ms", 0.75), ("1m0s", 60.0), ("1h2m3s", 3723.0)],
)
def test_go_durations_parsed(text: str, seconds: float) -> None:
    assert parse_go_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "10", "s", "10x", "-1s", "ten seconds"])
def test_invalid_durations_rejected(text: str) -> None:
    assert parse_go_duration(text) is None


def test_budget_leaves_margin() -> None:
    assert review_budget("10s") == pytest.approx(9.0)
    assert review_budget("30s") == pytest.approx(29.0)
    assert review_budget("1s") == pytest.approx(0.8)


def test_budget_defaults_to_ten_seconds() -> None:
    assert review_budget(None) == pytest.approx(9.0)
    assert review_budget("garbage") == pytest.approx(9.0)
    assert review_budget("0s") == pytest.approx(9.0)
