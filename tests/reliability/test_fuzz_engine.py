"""Generated AdmissionReviews through the pure admission logic, in volume.

The same reviews as test_fuzz_service, without HTTP, so many more fit in a
few seconds. Each goes the way /mutate takes it: parse, plan, look up,
decide, encode; the response must carry the request's uid and its patch must apply.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from webhook.admission import (
    Decision,
    InjectionOptions,
    LookupStatus,
    MalformedReview,
    SecretLookup,
    decide,
    encode_response,
    parse_review,
    plan_review,
)

from .checks import check_review
from .strategies import reviews

KEYS = {"db": {"password", "user"}, "api": {"token"}}
FAILURES = {
    LookupStatus.FORBIDDEN: "secrets is forbidden",
    LookupStatus.TIMEOUT: "the API call timed out",
    LookupStatus.ERROR: "the API answered HTTP 500",
}


def lookup_for(secret: str, failure: LookupStatus | None) -> SecretLookup:
    if failure is not None:
        return SecretLookup.failed(failure, FAILURES[failure])
    if secret in KEYS:
        return SecretLookup.found(KEYS[secret])
    return SecretLookup.not_found()


def answer(document: Any, options: InjectionOptions, failure: Any) -> Any:
    """Run `document` the way /mutate does; return the response or None if malformed."""
    body = json.dumps(document).encode()
    try:
        review = parse_review(body, "application/json")
    except MalformedReview as error:
        assert 400 <= error.status < 500
        assert error.message
        return None
    outcome = plan_review(review, options)
    if not isinstance(outcome, Decision):
        secrets = {reference.secret for reference in outcome.references}
        lookups = {name: lookup_for(name, failure) for name in secrets}
        outcome = decide(outcome, lookups)
    return orjson.loads(encode_response(review, outcome))


@pytest.mark.parametrize("on_missing", ["deny", "warn"])
@settings(
    max_examples=250,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(
    document=reviews(),
    failure=st.none() | st.sampled_from(list(FAILURES)),
)
def test_generated_review_decided(on_missing: Any, document: Any, failure: Any) -> None:
    options = InjectionOptions(on_missing=on_missing)

    response = answer(document, options, failure)

    if response is not None:
        check_review(document, response)
