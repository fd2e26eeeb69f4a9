"""Choosing templates for an object and what the review then adds."""

from __future__ import annotations

import copy
from typing import Any

import jsonpatch
import pytest
from prometheus_client import CollectorRegistry

from tests.templates.builders import (
    TEMPLATE_NAMESPACE,
    TEMPLATES_ANNOTATION,
    loaded_store,
    pod,
    request_for,
    review_for,
    template,
    template_configmap,
)
from webhook.admission.decisions import Decision
from webhook.admission.errors import Denied
from webhook.admission.injection import InjectionOptions, decide, plan_review
from webhook.admission.lookups import SecretLookup
from webhook.admission.reviews import Request
from webhook.templates.applying import requested_templates, select_templates
from webhook.templates.entries import read_template
from webhook.templates.reporting import new_application_counter, report_templates
from webhook.templates.store import TemplateStore

OPTIONS = InjectionOptions()
ADMIN = template(
    "template-admin", "MYPASSWORD=SECRET:my-secret,cred-pass", "LOG_LEVEL=info"
)
NAMED = template("verbose", "LOG_LEVEL=debug", "OPTS=a=b")
SECRETS = {"my-secret": SecretLookup.found({"cred-pass"})}


def run_review(request: Request, store: TemplateStore) -> Decision:
    """Review `request` the way the HTTP edge does, with every secret found."""
    selection = select_templates(request, OPTIONS, store, TEMPLATE_NAMESPACE)
    planned = plan_review(review_for(request), OPTIONS, selection.additions)  # type: ignore[arg-type]
    decision = planned if isinstance(planned, Decision) else decide(planned, SECRETS)
    counter = new_application_counter(CollectorRegistry())
    return report_templates(request, decision, selection, counter)


def patched(obj: dict[str, Any], decision: Decision) -> dict[str, Any]:
    return jsonpatch.apply_patch(copy.deepcopy(obj), list(decision.patch))  # type: ignore[no-any-return]


def env_of(obj: dict[str, Any]) -> dict[str, dict[str, Any]]:
    containers = obj["spec"]["containers"]
    return {entry["name"]: entry for entry in containers[0].get("env", [])}


def test_admin_template_adds_secret_key_ref() -> None:
    obj = pod()

    decision = run_review(request_for(obj), loaded_store(ADMIN))

    env = env_of(patched(obj, decision))
    assert decision.allowed
    assert env["MYPASSWORD"] == {
        "name": "MYPASSWORD",
        "valueFrom": {"secretKeyRef": {"name": "my-secret", "key": "cred-pass"}},
    }
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "info"}
    assert decision.audit_annotations["templates"] == "template-admin"


def test_missing_secret_names_quoted_template() -> None:
    obj = pod()
    request = request_for(obj)
    selection = select_templates(
        request, OPTIONS, loaded_store(ADMIN), TEMPLATE_NAMESPACE
    )
    planned = plan_review(review_for(request), OPTIONS, selection.additions)  # type: ignore[arg-type]
    assert not isinstance(planned, Decision)

    decision = decide(planned, {"my-secret": SecretLookup.not_found()})

    assert not decision.allowed
    assert decision.code == 403
    assert (
        'env var "MYPASSWORD" in container "main" from template "template-admin" '
        'with key "cred-pass"' in decision.message
    )


def test_own_env_wins_over_admin_template() -> None:
    obj = pod(env=[{"name": "MYPASSWORD", "value": "my-own"}])

    decision = run_review(request_for(obj), loaded_store(ADMIN))

    env = env_of(patched(obj, decision))
    assert env["MYPASSWORD"] == {"name": "MYPASSWORD", "value": "my-own"}
    assert list(env) == ["MYPASSWORD", "LOG_LEVEL"]


def test_admin_template_wins_over_named_template() -> None:
    obj = pod(templates="verbose")

    decision = run_review(request_for(obj), loaded_store(ADMIN, NAMED))

    env = env_of(patched(obj, decision))
    assert env["LOG_LEVEL"]["value"] == "info"
    assert list(env).count("LOG_LEVEL") == 1
    assert decision.audit_annotations["templates"] == "template-admin,verbose"
    assert any(
        "'verbose'" in warning or '"verbose"' in warning
        for warning in decision.warnings
    )


def test_value_with_equals_is_kept_whole() -> None:
    obj = pod(templates="verbose")

    decision = run_review(request_for(obj), loaded_store(NAMED))

    assert env_of(patched(obj, decision))["OPTS"] == {"name": "OPTS", "value": "a=b"}


def test_earlier_named_template_wins() -> None:
    first = template("first", "MODE=one")
    second = template("second", "MODE=two", "EXTRA=x")
    obj = pod(templates="second, first")

    decision = run_review(request_for(obj), loaded_store(first, second))

    env = env_of(patched(obj, decision))
    assert env["MODE"]["value"] == "two"
    assert env["EXTRA"]["value"] == "x"


def test_env_annotation_wins_over_template() -> None:
    obj = pod(annotations={"runai-secrets-webhook/env": "MYPASSWORD=SECRET:other,pass"})
    store = loaded_store(ADMIN)
    request = request_for(obj)

    selection = select_templates(request, OPTIONS, store, TEMPLATE_NAMESPACE)

    assert [addition.name for addition in selection.additions] == ["LOG_LEVEL"]


def test_second_pass_adds_nothing() -> None:
    obj = pod(templates="verbose")
    store = loaded_store(ADMIN, NAMED)
    once = patched(obj, run_review(request_for(obj), store))

    again = run_review(request_for(once), store)

    assert again.allowed
    assert list(again.patch) == []
    assert "templates" not in again.audit_annotations


def test_pod_from_templated_deployment_gets_nothing_twice() -> None:
    store = loaded_store(ADMIN, NAMED)
    deployment = {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "train", "annotations": {TEMPLATES_ANNOTATION: "verbose"}},
        "spec": {"template": {"metadata": {}, "spec": pod()["spec"]}},
    }
    request = request_for(deployment, group="apps", kind="Deployment")
    templated = patched(deployment, run_review(request, store))
    child = {"apiVersion": "v1", "kind": "Pod", "metadata": {"generateName": "train-"}}
    child["spec"] = templated["spec"]["template"]["spec"]

    decision = run_review(request_for(child), store)

    assert list(decision.patch) == []
    assert "templates" not in decision.audit_annotations


def test_missing_named_template_is_denied() -> None:
    obj = pod(templates="verbose, nope")

    with pytest.raises(Denied) as caught:
        select_templates(
            request_for(obj), OPTIONS, loaded_store(ADMIN, NAMED), TEMPLATE_NAMESPACE
        )

    assert caught.value.code == 403
    assert 'template "nope" does not exist in namespace "runai"' in caught.value.message
    assert 'Pod "job-0"' in caught.value.message
    assert '"verbose"' in caught.value.message


def deployment(templates: str | None, env: list[dict[str, Any]]) -> dict[str, Any]:
    annotations = {TEMPLATES_ANNOTATION: templates} if templates is not None else {}
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "train", "annotations": annotations},
        "spec": {"template": {"spec": pod(env=env)["spec"]}},
    }


def test_unrelated_update_adds_no_template_env() -> None:
    old = deployment("gone", [{"name": "A", "value": "1"}])
    new = copy.deepcopy(old)
    new["metadata"]["labels"] = {"team": "a"}
    request = request_for(
        new, operation="UPDATE", old=old, group="apps", kind="Deployment"
    )

    decision = run_review(request, loaded_store(ADMIN))

    assert decision.allowed
    assert decision.patch == ()
    assert decision.warnings == ()


def test_update_still_converts_own_placeholders() -> None:
    old = deployment(None, [])
    new = deployment(None, [{"name": "P", "value": "SECRET:my-secret,cred-pass"}])
    request = request_for(
        new, operation="UPDATE", old=old, group="apps", kind="Deployment"
    )

    decision = run_review(request, loaded_store(ADMIN))

    env = env_of(patched(new, decision)["spec"]["template"])
    assert env["P"]["valueFrom"]["secretKeyRef"]["name"] == "my-secret"
    assert "MYPASSWORD" not in env
    assert "LOG_LEVEL" not in env


def test_update_changing_templates_adds_them() -> None:
    old = deployment(None, [])
    new = deployment("verbose", [])
    request = request_for(
        new, operation="UPDATE", old=old, group="apps", kind="Deployment"
    )

    decision = run_review(request, loaded_store(ADMIN, NAMED))

    env = env_of(patched(new, decision)["spec"]["template"])
    assert env["LOG_LEVEL"]["value"] == "info"
    assert env["OPTS"]["value"] == "a=b"
    assert "MYPASSWORD" in env


def test_missing_template_on_changed_update_is_denied() -> None:
    old = pod(templates="verbose")
    new = pod(templates="gone")
    request = request_for(
        new, operation="UPDATE", old=old, group="apps", kind="Deployment"
    )
    request["object"] = {
        "metadata": new["metadata"],
        "spec": {"template": {"spec": new["spec"]}},
    }

    with pytest.raises(Denied) as caught:
        select_templates(request, OPTIONS, loaded_store(NAMED), TEMPLATE_NAMESPACE)

    assert '"gone"' in caught.value.message


def test_pod_update_is_out_of_scope() -> None:
    obj = pod(templates="gone")

    selection = select_templates(
        request_for(obj, operation="UPDATE", old=obj),
        OPTIONS,
        loaded_store(ADMIN),
        TEMPLATE_NAMESPACE,
    )

    assert selection.additions == ()
    assert selection.templates == ()


def test_invalid_admin_template_is_denied_by_line() -> None:
    broken = read_template(
        template_configmap("template-admin", values="environments:\n- hunter2\n")
    )

    with pytest.raises(Denied) as caught:
        select_templates(
            request_for(pod()), OPTIONS, loaded_store(broken), TEMPLATE_NAMESPACE
        )

    assert caught.value.code == 500
    assert "data.values line 2" in caught.value.message
    assert "hunter2" not in caught.value.message


def test_templates_not_loaded_is_unavailable() -> None:
    with pytest.raises(Denied) as caught:
        select_templates(
            request_for(pod()), OPTIONS, TemplateStore(), TEMPLATE_NAMESPACE
        )

    assert caught.value.code == 503
    assert "Retry" in caught.value.message


def test_counter_counts_applied_templates_only() -> None:
    registry = CollectorRegistry()
    counter = new_application_counter(registry)
    store = loaded_store(ADMIN, NAMED)
    obj = pod(
        env=[{"name": "LOG_LEVEL", "value": "x"}, {"name": "OPTS", "value": "y"}],
        templates="verbose",
    )
    request = request_for(obj)
    selection = select_templates(request, OPTIONS, store, TEMPLATE_NAMESPACE)
    planned = plan_review(review_for(request), OPTIONS, selection.additions)  # type: ignore[arg-type]
    assert not isinstance(planned, Decision)

    report_templates(request, decide(planned, SECRETS), selection, counter)

    value = registry.get_sample_value
    assert (
        value(
            "runai_secrets_webhook_template_applications_total",
            {"template": "template-admin"},
        )
        == 1
    )
    assert (
        value(
            "runai_secrets_webhook_template_applications_total", {"template": "verbose"}
        )
        is None
    )


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("a,b", ["a", "b"]),
        (" a , ,b,a ", ["a", "b"]),
        ("template-admin,x", ["x"]),
        ("", []),
    ],
)
def test_requested_templates_parsing(text: str, names: list[str]) -> None:
    assert (
        requested_templates({TEMPLATES_ANNOTATION: text}, TEMPLATES_ANNOTATION) == names
    )


def job_with_sidecar(template_annotations: dict[str, str]) -> dict[str, Any]:
    containers = [
        {"name": "app", "image": "busybox"},
        {"name": "sidecar", "image": "busybox"},
    ]
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": "train"},
        "spec": {
            "template": {
                "metadata": {"annotations": template_annotations},
                "spec": {"containers": containers, "restartPolicy": "Never"},
            }
        },
    }


def names_by_container(pod_spec: dict[str, Any]) -> dict[str, list[str]]:
    return {
        item["name"]: [entry["name"] for entry in item.get("env", [])]
        for item in pod_spec["containers"]
    }


def test_template_containers_reach_job_pods() -> None:
    job = job_with_sidecar({"runai-secrets-webhook/containers": "app"})
    store = loaded_store(ADMIN)
    request = request_for(job, group="batch", kind="Job")

    decision = run_review(request, store)
    pod_template = patched(job, decision)["spec"]["template"]
    pod = {"apiVersion": "v1", "kind": "Pod", **pod_template}
    pod["metadata"]["generateName"] = "train-"
    pod_decision = run_review(request_for(pod), store)
    pod_env = names_by_container(patched(pod, pod_decision)["spec"])

    assert names_by_container(pod_template["spec"]) == {
        "app": ["MYPASSWORD", "LOG_LEVEL"],
        "sidecar": [],
    }
    assert pod_env == {"app": ["MYPASSWORD", "LOG_LEVEL"], "sidecar": []}


def test_templates_annotation_read_from_pod_template() -> None:
    job = job_with_sidecar({TEMPLATES_ANNOTATION: "verbose"})

    selection = select_templates(
        request_for(job, group="batch", kind="Job"),
        OPTIONS,
        loaded_store(NAMED),
        TEMPLATE_NAMESPACE,
    )

    assert selection.templates == ("verbose",)
