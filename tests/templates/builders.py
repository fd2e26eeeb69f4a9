"""Builders of template ConfigMaps and admission requests for the template tests."""

from __future__ import annotations

import uuid
from typing import Any

from webhook.admission.reviews import Request
from webhook.templates.entries import Template, read_template
from webhook.templates.store import TemplateStore

TEMPLATE_NAMESPACE = "runai"
TEMPLATES_ANNOTATION = "runai-secrets-webhook/templates"


def template_configmap(
    name: str, environments: list[str] | None = None, values: str | None = None
) -> dict[str, Any]:
    """Build a template ConfigMap whose data.values lists `environments`."""
    if values is None:
        lines = [f"  - {entry!r}" for entry in environments or []]
        values = "environments:\n" + "\n".join(lines) + "\n"
    return {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": name,
            "namespace": TEMPLATE_NAMESPACE,
            "labels": {"runai/template": "true"},
        },
        "data": {"values": values},
    }


def template(name: str, *environments: str) -> Template:
    return read_template(template_configmap(name, list(environments)))


def loaded_store(*templates: Template) -> TemplateStore:
    store = TemplateStore()
    store.replace_all(templates)
    return store


def pod(
    env: list[dict[str, Any]] | None = None,
    templates: str | None = None,
    annotations: dict[str, str] | None = None,
    namespace: str = "team-a",
) -> dict[str, Any]:
    """Build a pod with one container `main`, its env and annotations."""
    container: dict[str, Any] = {"name": "main", "image": "busybox"}
    if env is not None:
        container["env"] = env
    metadata: dict[str, Any] = {"name": "job-0", "namespace": namespace}
    all_annotations = dict(annotations or {})
    if templates is not None:
        all_annotations[TEMPLATES_ANNOTATION] = templates
    if all_annotations:
        metadata["annotations"] = all_annotations
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata,
        "spec": {"containers": [container]},
    }


def request_for(
    obj: dict[str, Any] | None,
    operation: str = "CREATE",
    old: dict[str, Any] | None = None,
    group: str = "",
    version: str = "v1",
    kind: str = "Pod",
    namespace: str = "team-a",
) -> Request:
    """Build an admission request for `obj` as kube-apiserver sends it."""
    resource = kind.lower() + "s"
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": obj,
        "oldObject": old,
        "dryRun": False,
    }
    return request  # type: ignore[return-value]


def review_for(request: Request) -> dict[str, Any]:
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }
