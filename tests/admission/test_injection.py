"""Pod CREATE reviews: what is converted, what is left alone, and the patch."""

import json

import pytest

from webhook.admission import InjectionOptions, Plan, SecretLookup, plan_review
from webhook.admission.reviews import build_response

from .builders import (
    DB_CREDS,
    apply,
    container,
    env,
    patch_paths,
    pod,
    review,
    run,
    secret_env,
)

MARKER = "runai-secrets-webhook/injected"


def test_placeholder_becomes_secret_key_ref() -> None:
    obj = pod(
        container("app", env("A", "1"), env("DB_USER", "SECRET:db-creds,username"))
    )
    rv = review(obj)
    decision = run(rv)
    assert decision.allowed
    admitted = apply(rv, decision)
    assert admitted["spec"]["containers"][0]["env"] == [
        env("A", "1"),
        secret_env("DB_USER", "db-creds", "username"),
    ]
    assert admitted["metadata"]["annotations"] == {MARKER: "app/DB_USER"}
    assert decision.audit_annotations == {"injected-env-count": "1"}


def test_plan_lists_secrets_to_look_up() -> None:
    obj = pod(
        container(
            "app", env("A", "SECRET:db-creds,username"), env("B", "SECRET:api,token")
        ),
        container("side", env("C", "SECRET:db-creds,password")),
    )
    plan = plan_review(review(obj), InjectionOptions())
    assert isinstance(plan, Plan)
    assert plan.secret_names == ("api", "db-creds")
    assert plan.namespace == "runai-team-a"
    assert {(ref.secret, ref.key) for ref in plan.references} == {
        ("db-creds", "username"),
        ("db-creds", "password"),
        ("api", "token"),
    }


def test_init_container_only_placeholder() -> None:
    obj = pod(
        container("app"),
        init=[container("init", env("DB_PASS", "SECRET:db-creds,password"))],
    )
    rv = review(obj)
    decision = run(rv)
    assert patch_paths(decision) == [
        "/spec/initContainers/0/env/0",
        "/metadata/annotations",
    ]
    admitted = apply(rv, decision)
    assert admitted["spec"]["initContainers"][0]["env"] == [
        secret_env("DB_PASS", "db-creds", "password")
    ]
    assert admitted["spec"]["containers"] == [container("app")]


def test_own_value_from_entries_are_untouched() -> None:
    optional = {
        "name": "OLD",
        "valueFrom": {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
    }
    obj = pod(container("app", optional, env("DB_USER", "SECRET:db-creds,username")))
    plan = plan_review(review(obj), InjectionOptions())
    assert isinstance(plan, Plan)
    assert plan.secret_names == ("db-creds",)
    rv = review(obj)
    admitted = apply(rv, run(rv))
    assert admitted["spec"]["containers"][0]["env"] == [
        optional,
        secret_env("DB_USER", "db-creds", "username"),
    ]


def test_value_from_with_placeholder_value_is_untouched() -> None:
    odd = {
        "name": "X",
        "value": "SECRET:nope,key",
        "valueFrom": {"fieldRef": {"fieldPath": "x"}},
    }
    decision = run(review(pod(container("app", odd))), lookups={})
    assert decision.allowed
    assert decision.patch == ()


def test_pod_without_placeholders_is_allowed_without_lookups() -> None:
    for version in ("admission.k8s.io/v1", "admission.k8s.io/v1beta1"):
        rv = review(pod(container("app", env("A", "plain value"))), api_version=version)
        outcome = plan_review(rv, InjectionOptions())
        assert not isinstance(outcome, Plan)
        assert build_response(rv, outcome) == {
            "apiVersion": version,
            "kind": "AdmissionReview",
            "response": {"uid": rv["request"]["uid"], "allowed": True},
        }


def test_kube_system_pod_needs_no_lookup() -> None:
    rv = review(pod(container("coredns", env("A", "1"))), namespace="kube-system")
    outcome = plan_review(rv, InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()


def test_marker_lands_beside_other_annotations() -> None:
    annotations = {"team.example.com/owner": "ml-platform", "odd~key": "1"}
    obj = pod(
        container("app", env("A", "SECRET:db-creds,username")), annotations=annotations
    )
    rv = review(obj)
    decision = run(rv)
    assert (
        patch_paths(decision)[-1]
        == "/metadata/annotations/runai-secrets-webhook~1injected"
    )
    assert apply(rv, decision)["metadata"]["annotations"] == {
        **annotations,
        MARKER: "app/A",
    }


def test_marker_on_pod_without_annotations() -> None:
    rv = review(pod(container("app", env("A", "SECRET:db-creds,username"))))
    decision = run(rv)
    assert decision.patch[-1] == {
        "op": "add",
        "path": "/metadata/annotations",
        "value": {MARKER: "app/A"},
    }


def test_lookup_uses_request_namespace_only() -> None:
    obj = pod(
        container("app", env("A", "SECRET:db-creds,username")), namespace="runai-team-b"
    )
    plan = plan_review(review(obj, namespace="runai-team-a"), InjectionOptions())
    assert isinstance(plan, Plan)
    assert plan.namespace == "runai-team-a"


def test_generate_name_pod_with_owner() -> None:
    owner = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "name": "train",
        "uid": "1",
        "controller": True,
    }
    obj = pod(
        container("app", env("A", "SECRET:db-creds,nokey")),
        name=None,
        generateName="train-",
        ownerReferences=[owner],
    )
    rv = review(obj)
    assert "name" not in rv["request"]
    decision = run(rv)
    assert not decision.allowed
    assert decision.message.startswith('Pod with generateName "train-": ')
    allowed = run(
        review(
            pod(
                container("app", env("A", "SECRET:db-creds,username")),
                name=None,
                generateName="train-",
            )
        )
    )
    assert allowed.allowed


def test_unknown_fields_are_not_in_patch() -> None:
    sidecar = container(
        "proxy",
        env("TOKEN", "SECRET:db-creds,password"),
        restartPolicy="Always",
        futureField={"nested": True},
    )
    obj = pod(container("app"), init=[sidecar])
    rv = review(obj)
    decision = run(rv)
    for operation in decision.patch:
        assert "restartPolicy" not in str(operation["value"])
        assert "futureField" not in str(operation["value"])
    admitted = apply(rv, decision)
    assert admitted["spec"]["initContainers"][0]["restartPolicy"] == "Always"
    assert admitted["spec"]["initContainers"][0]["futureField"] == {"nested": True}


def test_dry_run_gets_identical_response() -> None:
    obj = pod(container("app", env("A", "SECRET:db-creds,username")))
    wet = build_response(review(obj), run(review(obj)))
    dry = build_response(review(obj, dry_run=True), run(review(obj, dry_run=True)))
    assert dry == wet


def test_second_pass_changes_nothing() -> None:
    obj = pod(
        container("app", env("A", "SECRET:db-creds,username")),
        annotations={"runai-secrets-webhook/env": "B=SECRET:db-creds,password"},
    )
    rv = review(obj)
    admitted = apply(rv, run(rv))
    again = plan_review(review(admitted), InjectionOptions())
    assert not isinstance(again, Plan)
    assert again.allowed
    assert again.patch == ()
    assert again.warnings == ()


def test_reinvocation_converts_only_new_container() -> None:
    first = pod(container("app", env("A", "SECRET:db-creds,username")))
    converted = apply(review(first), run(review(first)))
    converted["spec"]["containers"].append(
        container("vault-agent", env("B", "SECRET:db-creds,password"))
    )
    rv = review(converted)
    decision = run(rv)
    assert patch_paths(decision) == [
        "/spec/containers/1/env/0",
        "/metadata/annotations/runai-secrets-webhook~1injected",
    ]
    admitted = apply(rv, decision)
    assert admitted["spec"]["containers"][0] == converted["spec"]["containers"][0]
    assert admitted["spec"]["containers"][1]["env"] == [
        secret_env("B", "db-creds", "password")
    ]
    assert admitted["metadata"]["annotations"][MARKER] == "app/A,vault-agent/B"


def test_opt_out_leaves_literal_values() -> None:
    obj = pod(
        container("app", env("A", "SECRET:db-creds,username")),
        annotations={"runai-secrets-webhook/inject": "false"},
    )
    outcome = plan_review(review(obj), InjectionOptions())
    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()


def test_opt_out_does_not_check_malformed_values() -> None:
    obj = pod(
        container("app", env("A", "SECRET:not valid")),
        annotations={"runai-secrets-webhook/inject": "false"},
    )
    assert run(review(obj), lookups={}).allowed


def test_custom_prefix() -> None:
    options = InjectionOptions(annotation_prefix="secrets.example.com")
    obj = pod(
        container("app"),
        annotations={"secrets.example.com/env": "A=SECRET:db-creds,username"},
    )
    rv = review(obj)
    admitted = apply(rv, run(rv, options=options))
    assert admitted["spec"]["containers"][0]["env"] == [
        secret_env("A", "db-creds", "username")
    ]
    assert (
        admitted["metadata"]["annotations"]["secrets.example.com/injected"] == "app/A"
    )


def test_malformed_reference_names_everything() -> None:
    obj = pod(container("app", env("DB_PASS", "SECRET:db-creds password")))
    decision = run(review(obj), lookups={})
    assert not decision.allowed
    assert decision.code == 400
    assert decision.message == (
        'Pod "train", env var "DB_PASS" in container "app": value '
        '"SECRET:db-creds password" is not a valid secret reference because it has 0 '
        "commas, but needs exactly one between secret and key. Use the form "
        "SECRET:<secret-name>,<secret-key>, for example SECRET:db-creds,password."
    )


def test_malformed_value_with_newline_is_escaped() -> None:
    obj = pod(container("app", env("X", "SECRET:a,b\nc")))
    message = run(review(obj), lookups={}).message
    assert "\n" not in message
    assert '"SECRET:a,b\\nc"' in message


def test_request_without_namespace_is_denied() -> None:
    obj = pod(container("app", env("A", "SECRET:db-creds,username")))
    decision = run(review(obj, namespace=None))
    assert not decision.allowed
    assert decision.code == 400
    assert (
        decision.message
        == 'Pod "train": the request has no namespace to look secrets up in'
    )


def test_large_env_is_converted() -> None:
    entries = [
        env(f"V{index}", "SECRET:db-creds,username" if index % 2 else "x")
        for index in range(10_000)
    ]
    rv = review(pod(container("app", *entries)))
    decision = run(rv, lookups=DB_CREDS)
    assert len(decision.patch) == 5_001
    assert decision.audit_annotations == {"injected-env-count": "5000"}
    admitted = apply(rv, decision)
    assert admitted["spec"]["containers"][0]["env"][9_999] == secret_env(
        "V9999", "db-creds", "username"
    )
    assert len(admitted["metadata"]["annotations"][MARKER]) <= 1024


def test_found_in_other_namespace_counts_as_found() -> None:
    lookups = {"db-creds": SecretLookup.found({"username"}, namespace="runai")}
    decision = run(
        review(pod(container("app", env("A", "SECRET:db-creds,username")))), lookups
    )
    assert decision.allowed


def test_object_namespace_never_replaces_request_namespace() -> None:
    obj = pod(
        container("app", env("A", "SECRET:db-creds,username")), namespace="runai-team-b"
    )
    decision = run(review(obj, namespace=None))
    assert not decision.allowed
    assert decision.code == 400


UPPER_CASE = "Write SECRET: in upper case to refer to a secret"
START_WITH = "Start the value with SECRET: to refer to a secret"


@pytest.mark.parametrize(
    ("value", "prefix", "fix"),
    [
        ("secret:db-creds,password", "secret:", UPPER_CASE),
        ("Secret:db-creds,password", "Secret:", UPPER_CASE),
        ("SECRETS:db-creds,password", "SECRETS:", START_WITH),
        ("SECRET;db-creds,password", "SECRET;", START_WITH),
        ("Secret=db-creds,password", "Secret=", START_WITH),
        ("SECRETS;db-creds,password", "SECRETS;", START_WITH),
        ("secrets: db-creds,password", "secrets:", START_WITH),
        # A long run of white space is not quoted, so the fix stays readable.
        ("SECRETS:" + " " * 1000 + "db-creds,password", "SECRETS:", START_WITH),
    ],
)
def test_misspelled_prefix_is_kept_with_warning(
    value: str, prefix: str, fix: str
) -> None:
    rv = review(pod(container("app", env("DB_PASSWORD", value))))

    outcome = plan_review(rv, InjectionOptions())

    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.patch == ()
    (warning,) = outcome.warnings
    assert 'env var "DB_PASSWORD" in container "app"' in warning
    assert f"starts with {json.dumps(prefix)}" in warning
    assert fix in warning
    assert "SECRET:<secret-name>,<secret-key>" in warning
    # Only the prefix is quoted: the rest may be a literal value.
    assert "db-creds,password" not in warning


@pytest.mark.parametrize(
    "value",
    [
        "Secretary",
        "SECRET_KEY_BASE",
        "SECRETS: none",
        "SECRET;",
        "Secrets are listed in the docs",
        "SECRETS:db-creds,bad key",
        "SECRETS:db-creds,password,extra",
        "SECRETSdb-creds,password",
        "SECRET db-creds,password",
        "secret agent,007",
        "secret/data/app",
    ],
)
def test_plain_value_like_prefix_is_silent(value: str) -> None:
    rv = review(pod(container("app", env("A", value))))

    outcome = plan_review(rv, InjectionOptions())

    assert not isinstance(outcome, Plan)
    assert outcome.allowed
    assert outcome.warnings == ()


def test_lower_case_prefix_beside_reference_warns_once() -> None:
    obj = pod(
        container(
            "app",
            env("A", "secret:db-creds,username"),
            env("B", "SECRET:db-creds,username"),
            env("C", "secretary"),
        )
    )

    decision = run(review(obj), lookups=DB_CREDS)

    assert decision.allowed
    assert patch_paths(decision) == [
        "/spec/containers/0/env/1",
        "/metadata/annotations",
    ]
    assert len(decision.warnings) == 1
    assert 'env var "A"' in decision.warnings[0]


def test_opt_out_skips_lower_case_warning() -> None:
    obj = pod(
        container("app", env("A", "secret:db-creds,username")),
        annotations={"runai-secrets-webhook/inject": "false"},
    )

    outcome = plan_review(review(obj), InjectionOptions())

    assert not isinstance(outcome, Plan)
    assert outcome.warnings == ()
