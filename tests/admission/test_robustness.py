"""Objects of any shape get a decision, never an exception."""

from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.admission import (
    Decision,
    InjectionOptions,
    MalformedReview,
    Plan,
    SecretLookup,
    decide,
    parse_review,
    plan_review,
)

from .builders import KINDS

json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.sampled_from(["SECRET:db-creds,username", "SECRET:bad", "x", "", "a/b~c"]),
    lambda children: (
        st.lists(children, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                ["name", "env", "value", "valueFrom", "containers", "spec"]
            ),
            children,
            max_size=4,
        )
    ),
    max_leaves=20,
)
env_lists = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries({"name": json_values, "value": json_values}),
    ),
    max_size=4,
)
containers = st.lists(
    st.one_of(
        json_values,
        st.fixed_dictionaries(
            {
                "name": st.one_of(st.sampled_from(["app", "side"]), json_values),
                "env": st.one_of(env_lists, json_values),
            }
        ),
    ),
    max_size=3,
)
annotation_values = st.one_of(
    json_values,
    st.sampled_from(["A=SECRET:db-creds,username", "x", "=", "a,b", "app", "side"]),
)
annotations = st.one_of(
    json_values,
    st.dictionaries(
        st.sampled_from(
            [
                "runai-secrets-webhook/env",
                "runai-secrets-webhook/containers",
                "runai-secrets-webhook/inject",
                "runai-secrets-webhook/injected",
            ]
        ),
        annotation_values,
    ),
)


@st.composite
def objects(draw: st.DrawFn) -> Any:
    pod_spec = draw(
        st.one_of(
            json_values,
            st.fixed_dictionaries(
                {
                    "containers": containers,
                    "initContainers": containers,
                    "ephemeralContainers": containers,
                },
            ),
        )
    )
    metadata = draw(
        st.one_of(json_values, st.fixed_dictionaries({"annotations": annotations}))
    )
    shape = draw(st.sampled_from(["pod", "template", "environment", "any"]))
    if shape == "pod":
        spec: Any = pod_spec
    elif shape == "template":
        spec = {"template": {"spec": pod_spec}}
    elif shape == "environment":
        spec = {"environment": {"items": draw(json_values)}}
    else:
        spec = draw(json_values)
    return {"metadata": metadata, "spec": spec}


def review_body(
    kind: str, operation: str, obj: Any, old: Any, sub_resource: str
) -> bytes:
    group, version, resource = KINDS[kind]
    request = {
        "uid": "u",
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "operation": operation,
        "namespace": "runai-team-a",
        "object": obj,
        "oldObject": old,
        "subResource": sub_resource,
    }
    envelope = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    return orjson.dumps({**envelope, "request": request})


@settings(max_examples=250, deadline=None)
@given(
    st.sampled_from(sorted(KINDS)),
    st.sampled_from(["CREATE", "UPDATE"]),
    objects(),
    st.one_of(st.none(), objects()),
    st.sampled_from(["", "ephemeralcontainers", "status"]),
)
def test_any_object_gets_decision(
    kind: str, operation: str, obj: Any, old: Any, sub_resource: str
) -> None:
    try:
        review = parse_review(review_body(kind, operation, obj, old, sub_resource))
    except MalformedReview:
        return
    outcome = plan_review(review, InjectionOptions())
    if isinstance(outcome, Plan):
        lookups = {
            name: SecretLookup.found({"username"}) for name in outcome.secret_names
        }
        outcome = decide(outcome, lookups)
    assert isinstance(outcome, Decision)
    if not outcome.allowed:
        assert outcome.code >= 400
        assert outcome.message


def test_non_string_container_names_with_selection() -> None:
    obj = {
        "metadata": {
            "annotations": {
                "runai-secrets-webhook/env": "A=SECRET:db-creds,username",
                "runai-secrets-webhook/containers": "app",
            }
        },
        "spec": {"containers": [{"name": "app"}, {"name": {"odd": 1}}, {"name": [1]}]},
    }
    review = parse_review(review_body("Pod", "CREATE", obj, None, ""))
    plan = plan_review(review, InjectionOptions())
    assert isinstance(plan, Plan)
    assert [use.container for use in plan.uses] == ["app"]


def test_non_string_ephemeral_names() -> None:
    old = {"spec": {"ephemeralContainers": [{"name": {"odd": 1}}, {"name": ["x"]}]}}
    new = {
        "spec": {
            "ephemeralContainers": [
                *old["spec"]["ephemeralContainers"],
                {
                    "name": "debug",
                    "env": [{"name": "A", "value": "SECRET:db-creds,username"}],
                },
            ]
        }
    }
    body = review_body("Pod", "UPDATE", new, old, "ephemeralcontainers")
    plan = plan_review(parse_review(body), InjectionOptions())
    assert isinstance(plan, Plan)
    assert [operation["path"] for operation in plan.operations] == [
        "/spec/ephemeralContainers/2/env/0"
    ]
