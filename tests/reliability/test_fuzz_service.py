"""Generated AdmissionReviews, plausible to hostile, sent to the running service.

Each response must be a 4xx for a malformed call or a well-formed
AdmissionReview with the request's uid and a patch that applies; never a
5xx, a crash denial or a traceback in the logs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.harness.service import WebhookService
from tests.reliability.calls import client_for, pod_review, post
from tests.reliability.checks import check_reply
from tests.reliability.cluster import TEAM_A, pod
from tests.reliability.strategies import hostile_values, reviews

# Each example is one HTTPS call; the engine test covers volume.
SERVICE_EXAMPLES = 150
FUZZ_SETTINGS = settings(
    max_examples=SERVICE_EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@pytest.fixture(scope="module")
def http(service: WebhookService) -> Iterator[httpx.Client]:
    with client_for(service) as client:
        yield client


def encode(document: Any) -> bytes:
    # json, not orjson: orjson refuses nesting deeper than 255 levels.
    return json.dumps(document).encode()


@FUZZ_SETTINGS
@given(document=reviews())
def test_generated_review_answered(
    http: httpx.Client, service: WebhookService, document: Any
) -> None:
    reply = post(http, encode(document))

    check_reply(document, reply)


@FUZZ_SETTINGS
@given(document=hostile_values | st.dictionaries(st.text(max_size=8), hostile_values))
def test_non_review_rejected_with_4xx(http: httpx.Client, document: Any) -> None:
    reply = post(http, encode(document))

    assert 400 <= reply.status < 500, (reply.status, reply.body[:200])


@settings(max_examples=40, deadline=None)
@given(
    body=st.binary(max_size=200),
    content_type=st.sampled_from(["application/json", "text/plain", ""]),
    timeout=st.sampled_from(["5s", "", "x", "-1s", "1h", "0.5s", "999999999999s"]),
)
def test_raw_bytes_never_5xx(
    http: httpx.Client, body: bytes, content_type: str, timeout: str
) -> None:
    reply = post(http, body, timeout, content_type)

    assert reply.status != 0, reply.error
    assert reply.status < 500, (reply.status, reply.body[:200])


def test_no_traceback_in_logs(service: WebhookService) -> None:
    # Runs after the generated calls of this module, against the same service.
    logs = service.logs()

    assert "Traceback" not in logs
    assert '"level":"ERROR"' not in logs


def odd_bodies() -> dict[str, bytes]:
    """Return JSON texts that decoders disagree on, keyed by what is odd."""
    base = json.dumps(pod_review(pod("SECRET:db,password"), TEAM_A))
    deep = "[" * 5000 + "]" * 5000
    return {
        "nesting past the decoder's depth limit": base.replace(
            '"dryRun": false', f'"dryRun": {deep}'
        ).encode(),
        "NaN literal": base.replace('"dryRun": false', '"dryRun": NaN').encode(),
        "duplicate kind key": base.replace(
            '"kind": "AdmissionReview"', '"kind": "AdmissionReview", "kind": "X"'
        ).encode(),
        "byte order mark": b"\xef\xbb\xbf" + base.encode(),
        "UTF-16": base.encode("utf-16"),
        "lone surrogate": base.replace('"alice"', '"\\ud800"').encode(),
    }


@pytest.mark.parametrize("case", sorted(odd_bodies()))
def test_odd_json_rejected_with_400(http: httpx.Client, case: str) -> None:
    reply = post(http, odd_bodies()[case])

    assert reply.status == 400, reply.body[:200]
    assert orjson.loads(reply.body)["message"]
