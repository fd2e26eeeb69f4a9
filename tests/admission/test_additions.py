"""The env annotation form and additions from templates."""

from typing import Any

from webhook.admission import (
    EnvAddition,
    InjectionOptions,
    Plan,
    SecretLookup,
    decide,
    plan_review,
)

from .builders import apply, container, env, patch_paths, pod, review, run, secret_env

ENV = "runai-secrets-webhook/env"
CONTAINERS = "runai-secrets-webhook/containers"
USER_REF = secret_env("DB_USER", "db-creds", "username")
OWN_VALUE_WINS = (
    'container "app" already defines env var "DB_USER", so its own value wins over '
    f"annotation {ENV} line 1"
)


def annotated(
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    annotations: dict[str, str] | None = None,
) -> dict[str, Any]:
    extra = annotations or {}
    return pod(
        *containers,
        init=init,
        annotations={ENV: "DB_USER=SECRET:db-creds,username", **extra},
    )


def test_added_to_every_app_container_shape() -> None:
    obj = annotated(
        container("no-env"),
        {"name": "empty", "image": "busybox", "env": []},
        container("one", env("A", "1")),
        init=[container("init")],
    )
    rv = review(obj)
    decision = run(rv)
    assert patch_paths(decision) == [
        "/spec/containers/0/env",
        "/spec/containers/1/env/-",
        "/spec/containers/2/env/-",
        "/metadata/annotations/runai-secrets-webhook~1injected",
    ]
    admitted = apply(rv, decision)
    assert [c.get("env") for c in admitted["spec"]["containers"]] == [
        [USER_REF],
        [USER_REF],
        [env("A", "1"), USER_REF],
    ]
    assert "env" not in admitted["spec"]["initContainers"][0]
    assert admitted["metadata"]["annotations"]["runai-secrets-webhook/injected"] == (
        "empty/DB_USER,no-env/DB_USER,one/DB_USER"
    )


def test_null_env_gets_whole_array() -> None:
    rv = review(annotated({"name": "app", "env": None}))
    decision = run(rv)
    assert patch_paths(decision)[0] == "/spec/containers/0/env"
    assert apply(rv, decision)["spec"]["containers"][0]["env"] == [USER_REF]


def test_only_named_containers() -> None:
    rv = review(
        annotated(
            container("app"), container("sidecar"), annotations={CONTAINERS: "sidecar"}
        )
    )
    admitted = apply(rv, run(rv))
    assert "env" not in admitted["spec"]["containers"][0]
    assert admitted["spec"]["containers"][1]["env"] == [USER_REF]


def test_unknown_container_is_denied() -> None:
    obj = annotated(
        container("app"), container("sidecar"), annotations={CONTAINERS: "app, trainer"}
    )
    decision = run(review(obj), lookups={})
    assert not decision.allowed
    assert decision.code == 400
    assert decision.message == (
        f'Pod "train": annotation {CONTAINERS} names container "trainer", which is not '
        'one of its app containers ("app", "sidecar"). Fix the name or remove it '
        "from the annotation."
    )


def test_init_container_named_is_denied() -> None:
    obj = annotated(
        container("app"), init=[container("setup")], annotations={CONTAINERS: "setup"}
    )
    decision = run(review(obj), lookups={})
    assert not decision.allowed
    assert decision.code == 400
    assert decision.message == (
        f'Pod "train": annotation {CONTAINERS} names container "setup", which is not '
        'one of its app containers ("app"). It is an init container, and env vars '
        "from annotations go to app containers only. Fix the name or remove it from "
        "the annotation."
    )


def test_init_container_name_is_not_an_app_container() -> None:
    obj = annotated(
        container("app"), init=[container("setup")], annotations={CONTAINERS: "setup"}
    )
    decision = run(review(obj), lookups={})
    assert not decision.allowed
    assert 'names container "setup"' in decision.message


def test_own_env_wins_with_warning() -> None:
    rv = review(annotated(container("app", env("DB_USER", "admin"))))
    decision = run(rv)
    assert decision.allowed
    assert decision.patch == ()
    assert decision.warnings == (OWN_VALUE_WINS,)


def test_own_value_from_wins_with_warning() -> None:
    own = secret_env("DB_USER", "other", "username")
    decision = run(review(annotated(container("app", own))))
    assert decision.patch == ()
    assert len(decision.warnings) == 1


def test_own_matching_secret_key_ref_is_silent() -> None:
    decision = run(review(annotated(container("app", USER_REF))))
    assert decision.patch == ()
    assert decision.warnings == ()


def test_own_matching_placeholder_is_converted_silently() -> None:
    rv = review(annotated(container("app", env("DB_USER", "SECRET:db-creds,username"))))
    decision = run(rv)
    assert decision.warnings == ()
    assert apply(rv, decision)["spec"]["containers"][0]["env"] == [USER_REF]


def test_own_matching_placeholder_kept_under_opt_out_warns() -> None:
    # inject "false" keeps the literal, so the pod would start with the text
    # "SECRET:db-creds,username" while the annotation asked for the secret.
    own = env("DB_USER", "SECRET:db-creds,username")
    opt_out = {"runai-secrets-webhook/inject": "false"}
    rv = review(annotated(container("app", own), annotations=opt_out))

    decision = run(rv)

    assert decision.allowed
    assert decision.patch == ()
    assert decision.warnings == (OWN_VALUE_WINS,)


def test_duplicate_annotation_lines_first_wins() -> None:
    text = "A=SECRET:db-creds,username\nA=SECRET:db-creds,password"
    rv = review(pod(container("app"), annotations={ENV: text}))
    decision = run(rv)
    assert apply(rv, decision)["spec"]["containers"][0]["env"] == [
        secret_env("A", "db-creds", "username")
    ]
    assert decision.warnings == (
        f'env var "A" from annotation {ENV} line 2 is not added to container "app" '
        f"because annotation {ENV} line 1 sets it first",
    )


def test_malformed_annotation_is_denied() -> None:
    rv = review(pod(container("app"), annotations={ENV: "DB_USER"}))
    decision = run(rv, lookups={})
    assert not decision.allowed
    assert decision.code == 400
    assert decision.message.startswith(
        f"Pod \"train\": annotation {ENV} line 1 is invalid: it has no '='"
    )


def test_annotation_references_are_checked() -> None:
    rv = review(pod(container("app"), annotations={ENV: "X=SECRET:db-creds,nokey"}))
    decision = run(rv)
    assert not decision.allowed
    assert decision.message == (
        'Pod "train": Secret "db-creds" in namespace "runai-team-a" has no key '
        '"nokey". It is used by env var "X" in container "app" from annotation '
        f"{ENV} line 1. "
        'Add key "nokey" to the secret or fix the key in the reference.'
    )


def test_template_additions_after_annotation() -> None:
    additions = [
        EnvAddition("DB_USER", "SECRET:db-creds,password", "template admin"),
        EnvAddition("REGION", "eu-west-1", "template admin"),
        EnvAddition("TOKEN", "SECRET:api,token", "template gpu"),
    ]
    rv = review(annotated(container("app")))
    plan = plan_review(rv, InjectionOptions(), additions)
    assert isinstance(plan, Plan)
    assert plan.secret_names == ("api", "db-creds")
    lookups = {
        "db-creds": SecretLookup.found({"username", "password"}),
        "api": SecretLookup.found({"token"}),
    }
    decision = decide(plan, lookups)
    assert apply(rv, decision)["spec"]["containers"][0]["env"] == [
        USER_REF,
        env("REGION", "eu-west-1"),
        secret_env("TOKEN", "api", "token"),
    ]
    assert decision.warnings == (
        'env var "DB_USER" from template admin is not added to container "app" because '
        f"annotation {ENV} line 1 sets it first",
    )


def test_literal_template_addition_needs_no_lookup() -> None:
    rv = review(pod(container("app")))
    outcome = plan_review(
        rv, InjectionOptions(), [EnvAddition("REGION", "eu", "template admin")]
    )
    assert not isinstance(outcome, Plan)
    assert apply(rv, outcome)["spec"]["containers"][0]["env"] == [env("REGION", "eu")]


def test_malformed_template_addition_names_origin() -> None:
    rv = review(pod(container("app")))
    outcome = plan_review(
        rv, InjectionOptions(), [EnvAddition("T", "SECRET:x", "template gpu")]
    )
    assert not isinstance(outcome, Plan)
    assert not outcome.allowed
    assert outcome.message.startswith(
        'Pod "train", env var "T" in container "app" from template gpu: '
    )


def test_opt_out_still_applies_annotation_form() -> None:
    obj = pod(
        container("app", env("RAW", "SECRET:db-creds,password")),
        annotations={
            ENV: "DB_USER=SECRET:db-creds,username",
            "runai-secrets-webhook/inject": "false",
        },
    )
    rv = review(obj)
    assert apply(rv, run(rv))["spec"]["containers"][0]["env"] == [
        env("RAW", "SECRET:db-creds,password"),
        USER_REF,
    ]


def test_empty_containers_annotation_means_all() -> None:
    rv = review(
        annotated(container("app"), container("side"), annotations={CONTAINERS: " , "})
    )
    admitted = apply(rv, run(rv))
    assert [c["env"] for c in admitted["spec"]["containers"]] == [
        [USER_REF],
        [USER_REF],
    ]


def test_lower_case_annotation_line_is_denied() -> None:
    # Every line of the annotation must be a reference, so a lower case
    # prefix is an error there, not a literal value with a warning.
    obj = pod(container("app"), annotations={ENV: "DB_USER=secret:db-creds,username"})

    decision = run(review(obj))

    assert not decision.allowed
    assert decision.code == 400
    assert "does not start with 'SECRET:'" in decision.message


def test_lower_case_template_addition_warns() -> None:
    rv = review(pod(container("app")))

    outcome = plan_review(
        rv, InjectionOptions(), [EnvAddition("T", "Secret:x,y", "template gpu")]
    )

    assert not isinstance(outcome, Plan)
    assert apply(rv, outcome)["spec"]["containers"][0]["env"] == [
        env("T", "Secret:x,y")
    ]
    (warning,) = outcome.warnings
    assert 'env var "T" in container "app" from template gpu starts with' in warning


def test_equal_plain_value_under_opt_out_is_silent() -> None:
    obj = pod(
        container("app", env("LOG_LEVEL", "info")),
        annotations={"runai-secrets-webhook/inject": "false"},
    )
    addition = EnvAddition("LOG_LEVEL", "info", "template admin line 1")

    decision = run(review(obj), additions=[addition])

    assert decision.allowed
    assert decision.warnings == ()
