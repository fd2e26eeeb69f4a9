"""A template ConfigMap of the wrong shape is rejected, not a crash.

Cases found by the generated reviews in test_fuzz_templates.
"""

from __future__ import annotations

from typing import Any

import pytest

from webhook.templates.validating import review_template


def request_for(data: Any) -> Any:
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "t", "labels": {"runai/template": "true"}},
        "data": data,
    }
    return {
        "uid": "u-1",
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "namespace": "runai",
        "operation": "CREATE",
        "object": configmap,
    }


@pytest.mark.parametrize("data", [1, "values", ["values"], True])
def test_data_not_a_map_is_invalid(data: Any) -> None:
    decision = review_template(request_for(data), "runai")

    assert not decision.allowed
    assert decision.code == 422
    assert "data must be a map of string values" in decision.message


def test_data_null_is_empty_template() -> None:
    decision = review_template(request_for(None), "runai")

    assert decision.allowed
