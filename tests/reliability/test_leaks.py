"""No secret value, key list, token or object body leaves the service.

Every secret the fake API serves carries a random sentinel value. The
service runs at DEBUG with JSON logs; its logs, /metrics, every raw
response, warning and denial message are searched for the sentinel.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.harness.apiserver import AdmissionResult
from tests.harness.fakekube import FakeKube
from tests.harness.service import WebhookService
from tests.reliability.calls import client_for, pod_review, post
from tests.reliability.cluster import (
    HIDDEN_KEY,
    SENTINEL_FORMS,
    TEAM_A,
    pod,
    running_service,
)

ENV_ANNOTATION = "runai-secrets-webhook/env"

# The only secret reads allowed: a DNS-1123 name in the request's namespace.
SECRET_PATH = re.compile(
    r"/api/v1/namespaces/team-a/secrets/[a-z0-9]([-a-z0-9.]*[a-z0-9])?"
)

# Spellings that could smuggle a secret of namespace team-b into a review in
# team-a, if a parser split, decoded or normalised them.
CROSS_NAMESPACE_SPELLINGS = [
    "team-b/db",
    "/team-b/db",
    "db.team-b",
    "db.team-b.svc",
    "../team-b/db",
    "..%2Fteam-b%2Fdb",
    "team-b%2Fdb",
    "team-b%2fdb",
    "team-b\\db",
    "namespaces/team-b/secrets/db",
    "team-b:db",
    "db@team-b",
    "team-b\uff0fdb",  # fullwidth solidus
    "team-b\u2215db",  # division slash
    "team\u2010b/db",  # hyphen
    "\uff54\uff45\uff41\uff4d-b/db",  # fullwidth letters
    " team-b/db",
    "team-b/db ",
    "team-b /db",
    "team-b\t/db",
    "team-b\n/db",
    "db\u200b",
    "only-in-b",
    "only-in-b.team-b",
    "",
    ".",
    "..",
]


def result_texts(result: AdmissionResult) -> list[str]:
    """Return the message, warnings and responses that one admission returns."""
    texts = [result.message, *result.warnings]
    texts += [str(call.response) for call in result.calls]
    return texts


def assert_no_sentinel(texts: list[str], where: str) -> None:
    for text in texts:
        for form in SENTINEL_FORMS:
            assert form not in text, f"secret value found in {where}: {text[:300]!r}"


def secret_refs(result: AdmissionResult) -> list[dict[str, Any]]:
    obj = result.object or {}
    env = obj.get("spec", {}).get("containers", [{}])[0].get("env", [])
    return [
        entry["valueFrom"]["secretKeyRef"]
        for entry in env
        if isinstance(entry.get("valueFrom"), dict)
        and "secretKeyRef" in entry["valueFrom"]
    ]


def test_sentinel_absent_everywhere(
    kube: FakeKube, service: WebhookService, tmp_path: Path
) -> None:
    # The shared service's logs may hold lines of earlier tests; all must be clean.
    caller = service.caller(kube=kube)
    results = [
        caller.admit(pod("SECRET:db,password", "SECRET:api,token"), namespace=TEAM_A),
        caller.admit(pod("SECRET:db,absent"), namespace=TEAM_A),
        caller.admit(pod("SECRET:absent,password"), namespace=TEAM_A),
        caller.admit(pod("SECRET:db"), namespace=TEAM_A),
        caller.admit(
            pod(annotations={ENV_ANNOTATION: "EXTRA=SECRET:db,user"}), namespace=TEAM_A
        ),
    ]
    kube.add_fault(resource="secrets", status=500, times=1)
    results.append(caller.admit(pod("SECRET:db,password"), namespace=TEAM_A))
    kube.deny("get", "secrets", TEAM_A)
    results.append(caller.admit(pod("SECRET:api,token"), namespace=TEAM_A))
    metrics = service.get("/metrics")[1].decode()

    with running_service(kube, tmp_path / "warn", ["--on-missing", "warn"]) as warn:
        kube.clear_denials()
        warn_caller = warn.caller(kube=kube)
        warned = warn_caller.admit(pod("SECRET:db,absent"), namespace=TEAM_A)
        results.append(warned)
        warn_metrics = warn.get("/metrics")[1].decode()
    warn_logs = warn.logs()

    assert results[0].allowed, results[0].message
    assert not results[1].allowed
    assert warned.allowed
    assert warned.warnings, "the warn mode must warn about the missing key"
    assert kube.count(verb="get", resource="secrets") >= 8
    for result in results:
        assert_no_sentinel(result_texts(result), "a response")
        # No response lists a key that the request did not name.
        assert all(HIDDEN_KEY not in text for text in result_texts(result))
    assert_no_sentinel([metrics, warn_metrics], "/metrics")
    assert_no_sentinel([service.logs(), warn_logs], "the logs")
    assert "DEBUG" in service.logs(), "the test needs DEBUG lines to mean anything"


def test_metrics_name_no_secret(kube: FakeKube, service: WebhookService) -> None:
    # Names unlike any label value, for secrets found, missing and failing.
    found, missing = "metrics-probe-found", "metrics-probe-missing"
    kube.add_secret(TEAM_A, found, {"probe-key": b"x"})
    caller = service.caller(kube=kube)
    caller.admit(pod(f"SECRET:{found},probe-key"), namespace=TEAM_A)
    caller.admit(pod(f"SECRET:{found},probe-absent-key"), namespace=TEAM_A)
    caller.admit(pod(f"SECRET:{missing},probe-key"), namespace=TEAM_A)
    kube.add_fault(resource="secrets", status=500, times=1)
    caller.admit(pod("SECRET:metrics-probe-failing,probe-key"), namespace=TEAM_A)

    metrics = service.get("/metrics")[1].decode()

    assert "runai_secrets_webhook_reviews_total" in metrics
    for name in ("metrics-probe", "probe-key", "probe-absent-key"):
        assert name not in metrics


def test_token_never_logged(kube: FakeKube, service: WebhookService) -> None:
    kube.add_fault(resource="secrets", status=401, times=1)
    service.caller(kube=kube).admit(pod("SECRET:db,password"), namespace=TEAM_A)
    service.caller(kube=kube).admit(pod("SECRET:db,password"), namespace=TEAM_A)

    assert kube.count(resource="secrets", token=kube.token) >= 2
    assert kube.token not in service.logs()


def test_denial_lists_no_key_names(kube: FakeKube, service: WebhookService) -> None:
    result = service.caller(kube=kube).admit(pod("SECRET:db,absent"), namespace=TEAM_A)

    assert not result.allowed
    assert '"absent"' in result.message
    for other_key in (HIDDEN_KEY, "password", "user"):
        assert other_key not in result.message
    assert HIDDEN_KEY not in service.logs()


def test_object_body_never_logged(kube: FakeKube, service: WebhookService) -> None:
    marker = "object-body-marker-5e2b"
    obj = pod("SECRET:db,password", f"plain-{marker}", labels={"team": marker})
    obj["spec"]["containers"][0]["image"] = f"registry.example/{marker}:1"
    obj["metadata"]["annotations"] = {"note": marker}

    allowed = service.caller(kube=kube).admit(obj, namespace=TEAM_A)
    obj["spec"]["containers"][0]["env"].append({"name": "BAD", "value": "SECRET:x"})
    denied = service.caller(kube=kube).admit(obj, namespace=TEAM_A)

    assert allowed.allowed, allowed.message
    assert not denied.allowed
    assert marker not in service.logs()


@pytest.mark.parametrize("spelling", CROSS_NAMESPACE_SPELLINGS)
def test_other_namespace_never_read(
    kube: FakeKube, service: WebhookService, spelling: str
) -> None:
    caller = service.caller(kube=kube)
    kube.clear_log()

    in_env = caller.admit(pod(f"SECRET:{spelling},password"), namespace=TEAM_A)
    in_annotation = caller.admit(
        pod(annotations={ENV_ANNOTATION: f"X=SECRET:{spelling},password"}),
        namespace=TEAM_A,
    )

    for result in (in_env, in_annotation):
        # Allowed only if the name, as written, is a secret of team-a.
        for reference in secret_refs(result):
            assert reference["name"] in {"db"}, reference
    reads = [r for r in kube.requests if r.resource == "secrets"]
    assert all(record.namespace == TEAM_A for record in reads), reads
    for record in reads:
        assert SECRET_PATH.fullmatch(record.path), record.path


def test_object_namespace_ignored_for_lookup(
    kube: FakeKube, service: WebhookService
) -> None:
    # The object claims namespace team-b; only the request's namespace counts.
    # kube-apiserver rejects such a request before any webhook, so only a
    # review posted directly can carry it.
    kube.clear_log()
    review = pod_review(pod("SECRET:only-in-b,token", namespace="team-b"), TEAM_A)
    with client_for(service) as client:
        reply = post(client, orjson.dumps(review))

    assert reply.status == 200
    assert orjson.loads(reply.body)["response"]["allowed"] is False
    reads = [r for r in kube.requests if r.resource == "secrets"]
    assert reads, "the reference should have been looked up"
    assert {record.namespace for record in reads} == {TEAM_A}


def test_raw_responses_carry_no_sentinel(service: WebhookService) -> None:
    bodies = [
        pod_review(pod("SECRET:db,password"), TEAM_A),
        pod_review(pod("SECRET:db,absent"), TEAM_A),
        pod_review(pod("SECRET:api,token", "SECRET:db,user"), TEAM_A),
    ]
    with client_for(service) as client:
        replies = [post(client, orjson.dumps(body)) for body in bodies]

    assert [reply.status for reply in replies] == [200, 200, 200]
    assert_no_sentinel([reply.body.decode() for reply in replies], "a raw response")


def test_direct_caller_learns_key_existence(service: WebhookService) -> None:
    # NOTE: without --client-ca-file, anyone who reaches the port can send a
    # review naming any namespace and learn whether a secret and key exist
    # there (never a value). This test records that exposure; the mitigations
    # are mutual TLS and a NetworkPolicy.
    existing = pod_review(pod("SECRET:only-in-b,token"), "team-b")
    missing = pod_review(pod("SECRET:only-in-b,absent"), "team-b")

    with client_for(service) as client:
        found = post(client, orjson.dumps(existing)).json()["response"]
        absent = post(client, orjson.dumps(missing)).json()["response"]

    assert found["allowed"] is True
    assert absent["allowed"] is False
    assert 'has no key "absent"' in absent["status"]["message"]
    assert "token" not in absent["status"]["message"]


@pytest.mark.parametrize(
    ("where", "text"),
    [
        ("env", "SECRET:typed-credential-9f3a"),
        ("annotation", "DB_PASSWORD=SECRET:typed-credential-9f3a"),
    ],
)
def test_malformed_value_shown_not_logged(
    kube: FakeKube, service: WebhookService, where: str, text: str
) -> None:
    """A credential typed after SECRET: by mistake reaches the author only."""
    if where == "env":
        obj = pod(text)
    else:
        obj = pod("SECRET:db,password")
        obj["metadata"]["annotations"] = {"runai-secrets-webhook/env": text}

    denied = service.caller(kube=kube).admit(obj, namespace=TEAM_A)

    assert not denied.allowed
    assert denied.code == 400
    assert "typed-credential-9f3a" in denied.message
    denials = [
        record
        for record in service.log_records()
        if record.get("message") == "review denied"
    ]
    assert denials, "no review denied line was logged"
    assert "not logged" in str(denials[-1].get("reason"))
    assert "typed-credential-9f3a" not in service.logs()


@pytest.mark.parametrize(
    "text", ["typed-credential-9f3a", "DB_PASSWORD=typed-credential-9f3a"]
)
def test_annotation_literal_not_shown(
    kube: FakeKube, service: WebhookService, text: str
) -> None:
    """Keep annotation text that is no reference out of the denial and the log."""
    obj = pod("SECRET:db,password")
    obj["metadata"]["annotations"] = {"runai-secrets-webhook/env": text}

    denied = service.caller(kube=kube).admit(obj, namespace=TEAM_A)

    assert not denied.allowed
    assert denied.code == 400
    assert "line 1 is invalid" in denied.message
    assert "typed-credential-9f3a" not in denied.message
    assert "typed-credential-9f3a" not in service.logs()
