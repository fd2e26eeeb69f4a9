"""The admission fast paths give the results of the documented rules.

`decide` skips the problem grouping when every secret was found in the
request's namespace with its keys, and `parse_reference` keeps valid
parses. The properties compare both with a model written from the rules
in `webhook.admission.injection`. A missing secret or key denies with 403
under `on_missing="deny"`. A forbidden lookup denies with 500, and a timed
out or failed one with 503. Anything else is allowed with warnings.
"""

from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from webhook.admission import (
    Decision,
    InjectionOptions,
    Plan,
    SecretLookup,
    decide,
    injection,
    plan_review,
)
from webhook.admission.lookups import LookupStatus
from webhook.admission.messages import MAX_PROBLEMS
from webhook.admission.references import InvalidReference, SecretRef, parse_reference
from webhook.admission.scanning import MAX_SECRETS_PER_REVIEW

from .builders import NAMESPACE, container, env, pod, review

SECRET_NAMES = ("db", "api", "cache")
KEY_NAMES = ("user", "password", "token")
OTHER_NAMESPACE = "runai-shared"

Use = tuple[str, str]

uses_strategy = st.lists(
    st.tuples(st.sampled_from(SECRET_NAMES), st.sampled_from(KEY_NAMES)),
    min_size=1,
    max_size=8,
)
key_sets = st.frozensets(st.sampled_from(KEY_NAMES))
lookup_strategy = st.one_of(
    st.builds(SecretLookup.found, key_sets),
    st.builds(lambda keys: SecretLookup.found(keys, NAMESPACE), key_sets),
    st.builds(lambda keys: SecretLookup.found(keys, OTHER_NAMESPACE), key_sets),
    st.just(SecretLookup.not_found('secrets "x" not found')),
    st.just(SecretLookup.failed(LookupStatus.FORBIDDEN, "403 from the API")),
    st.just(SecretLookup.failed(LookupStatus.TIMEOUT, "no answer in time")),
    st.just(SecretLookup.failed(LookupStatus.ERROR, "500 from the API")),
)
# A secret left out of the lookups is a caller bug, decided as an ERROR.
lookups_strategy = st.dictionaries(st.sampled_from(SECRET_NAMES), lookup_strategy)
on_missing_strategy = st.sampled_from(["deny", "warn"])


def plan_for(uses: list[Use], on_missing: str) -> Plan:
    entries = [
        env(f"V{index}", f"SECRET:{secret},{key}")
        for index, (secret, key) in enumerate(uses)
    ]
    options = InjectionOptions(on_missing=on_missing)  # type: ignore[arg-type]
    planned = plan_review(review(pod(container("main", *entries))), options)
    assert isinstance(planned, Plan)
    return planned


def is_elsewhere(lookup: SecretLookup) -> bool:
    return lookup.namespace not in (None, "", NAMESPACE)


def model(
    uses: list[Use], lookups: dict[str, SecretLookup], on_missing: str
) -> dict[str, Any]:
    """Compute the outcome that the rules give for these uses and lookups.

    The result has `allowed`, `code`, the secrets a denial must name, and
    for an allowed review the warning and missing counts. Failed lookups
    concern at most the three secrets of `SECRET_NAMES`, below `MAX_PROBLEMS`.
    """
    missing: dict[tuple[str, str | None], None] = {}
    failed: dict[LookupStatus, set[str]] = {}
    for secret, key in uses:
        lookup = lookups.get(secret)
        status = lookup.status if lookup else LookupStatus.ERROR
        if lookup is not None and status is LookupStatus.FOUND:
            if key not in lookup.keys:
                missing[(secret, key)] = None
        elif status is LookupStatus.NOT_FOUND:
            missing[(secret, None)] = None
        else:
            failed.setdefault(status, set()).add(secret)

    if missing and on_missing == "deny":
        # The denial lists the first problems in order of use and counts the rest.
        listed = list(missing)[:MAX_PROBLEMS]
        return {"allowed": False, "code": 403, "named": {s for s, _ in listed}}
    if LookupStatus.FORBIDDEN in failed:
        return {
            "allowed": False,
            "code": 500,
            "named": failed[LookupStatus.FORBIDDEN],
        }
    unavailable = failed.get(LookupStatus.TIMEOUT, set()) | failed.get(
        LookupStatus.ERROR, set()
    )
    if unavailable:
        return {"allowed": False, "code": 503, "named": unavailable}

    elsewhere = {
        secret
        for secret, _ in uses
        if secret in lookups
        and lookups[secret].status is LookupStatus.FOUND
        and is_elsewhere(lookups[secret])
    }
    return {
        "allowed": True,
        "code": 200,
        "missing": len(missing),
        "elsewhere": elsewhere,
        "warnings": len(missing) + len(elsewhere),
    }


def check_against_model(
    decision: Decision, plan: Plan, expected: dict[str, Any], uses: list[Use]
) -> None:
    assert decision.allowed is expected["allowed"], decision
    assert decision.code == expected["code"], decision
    if not decision.allowed:
        assert decision.patch == ()
        for secret in expected["named"]:
            assert f'"{secret}"' in decision.message, (secret, decision.message)
        return

    assert decision.patch == tuple(plan.operations)
    # One replace per use, and the marker annotation.
    assert len(decision.patch) == len(uses) + 1
    assert len(decision.warnings) == expected["warnings"], decision.warnings
    for secret in expected["elsewhere"]:
        assert any(f'"{secret}"' in text for text in decision.warnings), secret
    audit = dict(decision.audit_annotations)
    assert audit.pop("injected-env-count") == str(len(uses))
    if expected["missing"]:
        assert audit.pop("missing-secret-reference-count") == str(expected["missing"])
    assert audit == {}


@settings(max_examples=300, deadline=None)
@given(uses_strategy, lookups_strategy, on_missing_strategy)
# Six missing keys: the denial lists five and counts the sixth, whose
# secret "db" it then does not name.
@example(
    uses=[
        *(("api", key) for key in KEY_NAMES),
        ("cache", "user"),
        ("cache", "password"),
        ("db", "user"),
    ],
    lookups={secret: SecretLookup.found(frozenset()) for secret in SECRET_NAMES},
    on_missing="deny",
)
def test_decide_matches_rules_model(
    uses: list[Use], lookups: dict[str, SecretLookup], on_missing: str
) -> None:
    plan = plan_for(uses, on_missing)
    decision = decide(plan, lookups)
    check_against_model(decision, plan, model(uses, lookups, on_missing), uses)

    # The fast path, when taken, gives exactly what the full path gives.
    with mock.patch.object(injection, "_all_confirmed", return_value=False):
        full = decide(plan, lookups)
    assert decision == full


def test_fast_path_taken_when_all_found() -> None:
    uses = [("db", "user"), ("db", "password"), ("api", "token")]
    plan = plan_for(uses, "deny")
    lookups = {
        "db": SecretLookup.found({"user", "password", "extra"}),
        "api": SecretLookup.found({"token"}, NAMESPACE),
    }
    with mock.patch.object(
        injection, "_problems", side_effect=AssertionError("slow path")
    ):
        decision = decide(plan, lookups)
    assert decision.allowed
    assert decision.warnings == ()


@pytest.mark.parametrize(
    "lookup",
    [
        SecretLookup.found({"user"}, OTHER_NAMESPACE),
        SecretLookup.found({"password"}),
        SecretLookup.not_found(),
    ],
)
def test_fast_path_skipped_otherwise(lookup: SecretLookup) -> None:
    plan = plan_for([("db", "user")], "warn")
    decision = decide(plan, {"db": lookup})
    assert decision.allowed
    assert len(decision.warnings) == 1


values = st.one_of(
    st.text(max_size=40).map(lambda text: "SECRET:" + text),
    st.from_regex(r"SECRET:[a-z0-9.-]{1,20},[A-Za-z0-9._-]{1,20}", fullmatch=True),
    st.text(max_size=20),
)


def parse_uncached(value: str) -> SecretRef | str:
    try:
        return parse_reference.__wrapped__(value)
    except InvalidReference as error:
        return error.reason


def parse_cached(value: str) -> SecretRef | str:
    try:
        return parse_reference(value)
    except InvalidReference as error:
        return error.reason


@settings(max_examples=300, deadline=None)
@given(values)
def test_cached_parse_equals_uncached(value: str) -> None:
    first = parse_cached(value)
    second = parse_cached(value)
    assert first == parse_uncached(value)
    assert second == first


def test_valid_parse_cached() -> None:
    parse_reference.cache_clear()
    value = "SECRET:db-creds,password"

    first = parse_reference(value)
    second = parse_reference(value)

    assert first == parse_reference.__wrapped__(value)
    assert second == first
    info = parse_reference.cache_info()
    assert info.currsize == 1
    assert info.hits == 1


@pytest.mark.parametrize(
    "value", ["SECRET:", "SECRET:db", "SECRET:Db_Creds,key", "SECRET:db,", "x"]
)
def test_invalid_parse_never_cached(value: str) -> None:
    parse_reference.cache_clear()

    for _ in range(2):
        with pytest.raises(InvalidReference):
            parse_reference(value)

    info = parse_reference.cache_info()
    assert info.currsize == 0
    assert info.hits == 0


def secrets_pod(count: int, keys_each: int = 1) -> dict[str, Any]:
    entries = [
        env(f"V{number}_{key}", f"SECRET:s{number},k{key}")
        for number in range(count)
        for key in range(keys_each)
    ]
    return pod(container("main", *entries))


def test_limit_counts_distinct_secrets() -> None:
    # Many keys of one secret count once toward the limit.
    planned = plan_review(
        review(secrets_pod(MAX_SECRETS_PER_REVIEW, keys_each=2)), InjectionOptions()
    )
    assert isinstance(planned, Plan)
    assert len(planned.keys) == MAX_SECRETS_PER_REVIEW
    assert len(planned.uses) == 2 * MAX_SECRETS_PER_REVIEW


def test_secret_past_limit_denied() -> None:
    planned = plan_review(
        review(secrets_pod(MAX_SECRETS_PER_REVIEW + 1)), InjectionOptions()
    )
    assert isinstance(planned, Decision)
    assert not planned.allowed
    assert planned.code == 400
    assert f"more than {MAX_SECRETS_PER_REVIEW} different secrets" in planned.message
    assert 'Pod "train"' in planned.message
