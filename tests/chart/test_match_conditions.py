"""The CEL match condition, evaluated with a CEL library on sample objects.

The apiserver calls the webhook only when the condition is true, so a false
result on an object that needs the webhook would let a raw placeholder
through, and an error rejects the request under failurePolicy Fail. Both
directions are checked, on hand-written objects and on generated ones
against a plain Python statement of the rule.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import cel
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.chart.helm import find, render
from webhook.admission.scanning import MISSPELLED_PREFIXES

PREFIX = "runai-secrets-webhook/"
POD_SPEC_FIELDS = ("containers", "initContainers", "ephemeralContainers")


@pytest.fixture(scope="module")
def expression(helm: Path) -> str:
    entry = find(render(helm), "MutatingWebhookConfiguration")["webhooks"][0]
    (condition,) = entry["matchConditions"]
    assert condition["name"] == "has-placeholder-or-annotation"
    return str(condition["expression"])


def evaluate(expression: str, obj: dict[str, Any]) -> bool:
    result = cel.evaluate(expression, {"object": obj})
    assert isinstance(result, bool)
    return result


def container(*env: dict[str, Any]) -> dict[str, Any]:
    return {"name": "main", "image": "busybox", "env": list(env)}


def pod(
    spec: dict[str, Any], annotations: dict[str, str] | None = None
) -> dict[str, Any]:
    metadata: dict[str, Any] = {"generateName": "job-"}
    if annotations is not None:
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


def workload(kind: str, template: dict[str, Any]) -> dict[str, Any]:
    api = {"Job": "batch/v1", "RunaiJob": "run.ai/v1"}.get(kind, "apps/v1")
    return {
        "apiVersion": api,
        "kind": kind,
        "metadata": {"name": "w"},
        "spec": {"template": template},
    }


def cronjob(template: dict[str, Any]) -> dict[str, Any]:
    return {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {"name": "nightly"},
        "spec": {
            "schedule": "0 0 * * *",
            "jobTemplate": {"spec": {"template": template}},
        },
    }


def runai_workload(kind: str, items: dict[str, Any]) -> dict[str, Any]:
    # Run:AI v2alpha1 workloads keep env vars as a map of name to {value: ...}.
    return {
        "apiVersion": "run.ai/v2alpha1",
        "kind": kind,
        "metadata": {"name": "t"},
        "spec": {"environment": {"items": items}},
    }


PLACEHOLDER = {"name": "PASSWORD", "value": "SECRET:db,password"}
PLAIN = {"name": "MODE", "value": "fast"}
FROM_SECRET = {
    "name": "TOKEN",
    "valueFrom": {"secretKeyRef": {"name": "t", "key": "k"}},
}
WITH_PLACEHOLDER = {"containers": [container(PLAIN, PLACEHOLDER)]}
WITHOUT_PLACEHOLDER = {"containers": [container(PLAIN, FROM_SECRET)]}

CALLED = {
    "pod container env": pod(WITH_PLACEHOLDER),
    "pod initContainer env": pod(
        {"containers": [container()], "initContainers": [container(PLACEHOLDER)]}
    ),
    "pod ephemeralContainer env": pod(
        {"containers": [container()], "ephemeralContainers": [container(PLACEHOLDER)]}
    ),
    "pod second container": pod(
        {"containers": [container(PLAIN), container(PLACEHOLDER)]}
    ),
    "pod env annotation only": pod(
        {"containers": [{"name": "main"}]}, {PREFIX + "env": "A=SECRET:s,k"}
    ),
    "pod opt-out annotation": pod(WITHOUT_PLACEHOLDER, {PREFIX + "inject": "false"}),
    "deployment template env": workload("Deployment", {"spec": WITH_PLACEHOLDER}),
    "statefulset template env": workload("StatefulSet", {"spec": WITH_PLACEHOLDER}),
    "daemonset template env": workload("DaemonSet", {"spec": WITH_PLACEHOLDER}),
    "replicaset template env": workload("ReplicaSet", {"spec": WITH_PLACEHOLDER}),
    "job template env": workload("Job", {"spec": WITH_PLACEHOLDER}),
    "runaijob template env": workload("RunaiJob", {"spec": WITH_PLACEHOLDER}),
    "deployment template annotation": workload(
        "Deployment",
        {
            "metadata": {"annotations": {PREFIX + "env": "A=SECRET:s,k"}},
            "spec": WITHOUT_PLACEHOLDER,
        },
    ),
    "deployment own annotation": {
        **workload("Deployment", {"spec": WITHOUT_PLACEHOLDER}),
        "metadata": {"name": "w", "annotations": {PREFIX + "templates": "gpu"}},
    },
    "cronjob template env": cronjob({"spec": WITH_PLACEHOLDER}),
    "cronjob template annotation": cronjob(
        {
            "metadata": {"annotations": {PREFIX + "env": "A=SECRET:s,k"}},
            "spec": WITHOUT_PLACEHOLDER,
        }
    ),
    "trainingworkload environment item": runai_workload(
        "TrainingWorkload",
        {"MODE": {"value": "x"}, "PASSWORD": {"value": "SECRET:db,pw"}},
    ),
    # The service warns about values that start with a lower case spelling.
    "pod lower case secret": pod(
        {"containers": [container({"name": "E", "value": "secret:a,b"})]}
    ),
    "pod capitalised secret": pod(
        {"containers": [container({"name": "E", "value": "Secret:a,b"})]}
    ),
    "trainingworkload lower case item": runai_workload(
        "TrainingWorkload", {"PASSWORD": {"value": "secret:db,pw"}}
    ),
    # ... and about misspelled prefixes such as the plural.
    "pod plural prefix": pod(
        {"containers": [container({"name": "E", "value": "SECRETS:a,b"})]}
    ),
    "pod semicolon prefix": pod(
        {"containers": [container({"name": "E", "value": "Secret;a,b"})]}
    ),
    "distributedworkload environment item": runai_workload(
        "DistributedWorkload", {"PASSWORD": {"value": "SECRET:db,pw"}}
    ),
    "interactiveworkload annotation": {
        **runai_workload("InteractiveWorkload", {}),
        "metadata": {"name": "t", "annotations": {PREFIX + "env": "A=SECRET:s,k"}},
    },
    # Kinds added through workloadKinds have layouts the expression does not
    # know, so they are always sent.
    "kind added by workloadKinds": {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "p"},
        "spec": {},
    },
}

SKIPPED = {
    "pod without env": pod({"containers": [{"name": "main", "image": "busybox"}]}),
    "pod plain and secretKeyRef env": pod(WITHOUT_PLACEHOLDER),
    "pod empty env list": pod({"containers": [container()]}),
    "pod empty value": pod({"containers": [container({"name": "E", "value": ""})]}),
    "pod lower case secret inside a value": pod(
        {"containers": [container({"name": "E", "value": "no secret:a,b"})]}
    ),
    "pod foreign annotations": pod(
        WITHOUT_PLACEHOLDER,
        {
            "runai-secrets-webhook-other/env": "x",
            "example.com/runai-secrets-webhook": "y",
        },
    ),
    "pod without spec": {"apiVersion": "v1", "kind": "Pod", "metadata": {}},
    "pod without metadata": {
        "apiVersion": "v1",
        "kind": "Pod",
        "spec": WITHOUT_PLACEHOLDER,
    },
    "pod empty annotations": pod(WITHOUT_PLACEHOLDER, {}),
    "deployment without placeholder": workload(
        "Deployment", {"spec": WITHOUT_PLACEHOLDER}
    ),
    "deployment template without metadata or spec": workload("Deployment", {}),
    "job without template": {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {},
        "spec": {},
    },
    "trainingworkload plain items": runai_workload(
        "TrainingWorkload", {"MODE": {"value": "x"}, "EMPTY": {}}
    ),
    "trainingworkload without environment": {
        "apiVersion": "run.ai/v2alpha1",
        "kind": "TrainingWorkload",
        "metadata": {"name": "t"},
        "spec": {"image": {"value": "busybox"}},
    },
    "cronjob without placeholder": cronjob({"spec": WITHOUT_PLACEHOLDER}),
    "cronjob without jobTemplate spec": {
        "apiVersion": "batch/v1",
        "kind": "CronJob",
        "metadata": {},
        "spec": {"jobTemplate": {}},
    },
}


@pytest.mark.parametrize("case", CALLED)
def test_called(expression: str, case: str) -> None:
    assert evaluate(expression, CALLED[case]) is True


@pytest.mark.parametrize("case", SKIPPED)
def test_skipped(expression: str, case: str) -> None:
    assert evaluate(expression, SKIPPED[case]) is False


def test_placeholder_anywhere_in_value(expression: str) -> None:
    # Leading spaces still reach the webhook, which decides.
    spaced = pod({"containers": [container({"name": "E", "value": "  SECRET:a,b"})]})
    assert evaluate(expression, spaced) is True


# A plain statement of the rule for the built-in kinds, to compare with the
# CEL on generated objects.
def needs_webhook(obj: dict[str, Any]) -> bool:
    templates = [obj, obj.get("spec", {}).get("template", {})]
    templates.append(
        obj.get("spec", {}).get("jobTemplate", {}).get("spec", {}).get("template", {})
    )
    for template in templates:
        annotations = template.get("metadata", {}).get("annotations", {})
        if any(key.startswith(PREFIX) for key in annotations):
            return True
        spec = template.get("spec", {})
        for field in POD_SPEC_FIELDS:
            for item in spec.get(field, []):
                for env in item.get("env", []):
                    value = env.get("value", "")
                    if "SECRET:" in value or value.startswith(MISSPELLED_PREFIXES):
                        return True
    return False


env_values = st.sampled_from(
    [
        "x",
        "",
        "SECRET:s,k",
        "a SECRET: b",
        "secret:s,k",
        "a secret:",
        "SECRETS",
        "SECRETS:s,k",
        "a SECRETS:s,k",
        "Secret=s,k",
        "secret/data/app",
        "Secretary",
    ]
)
env_vars = st.one_of(
    st.builds(lambda value: {"name": "E", "value": value}, env_values),
    st.just(FROM_SECRET),
    st.just({"name": "EMPTY"}),
)
containers = st.builds(
    lambda env: {"name": "c"} if env is None else {"name": "c", "env": env},
    st.one_of(st.none(), st.lists(env_vars, max_size=3)),
)
pod_specs = st.dictionaries(
    st.sampled_from(POD_SPEC_FIELDS), st.lists(containers, max_size=3), max_size=3
)
annotation_sets = st.dictionaries(
    st.sampled_from(
        [PREFIX + "env", PREFIX + "injected", "other/env", "runai-secrets-webhookx"]
    ),
    st.just("v"),
    max_size=2,
)
templates = st.builds(
    lambda annotations, spec: {
        **(
            {"metadata": {"annotations": annotations}}
            if annotations is not None
            else {}
        ),
        **({"spec": spec} if spec is not None else {}),
    },
    st.one_of(st.none(), annotation_sets),
    st.one_of(st.none(), pod_specs),
)


@st.composite
def objects(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["Pod", "Deployment", "Job", "CronJob", "StatefulSet"]))
    template = draw(templates)
    if kind == "Pod":
        return {"kind": "Pod", **template}
    metadata = {"annotations": draw(annotation_sets)}
    if kind == "CronJob":
        return {
            "kind": kind,
            "metadata": metadata,
            "spec": {"jobTemplate": {"spec": {"template": template}}},
        }
    return {"kind": kind, "metadata": metadata, "spec": {"template": template}}


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(obj=objects())
def test_matches_python_rule(expression: str, obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    assert evaluate(expression, obj) is needs_webhook(obj)
    assert obj == before


@pytest.mark.parametrize("prefix", MISSPELLED_PREFIXES)
def test_every_misspelled_prefix_sent(expression: str, prefix: str) -> None:
    """The service warns about each of these, so the condition must send it."""
    obj = pod({"containers": [container({"name": "E", "value": prefix + "a,b"})]})
    assert evaluate(expression, obj) is True


@pytest.mark.parametrize("value", ["secret/data/app", "Secretary", "SECRET_KEY=x"])
def test_plain_value_with_word_skipped(expression: str, value: str) -> None:
    """Plain values that start with the word do not need the webhook up."""
    obj = pod({"containers": [container({"name": "E", "value": value})]})
    assert evaluate(expression, obj) is False
