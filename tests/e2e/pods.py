"""Pods and reviews for the end-to-end tests."""

from __future__ import annotations

import base64
import json
from typing import Any

from tests.harness.apiserver import AdmissionResult

Object = dict[str, Any]


def container(name: str, *env: Object, **fields: Any) -> Object:
    body: Object = {"name": name, "image": "busybox", **fields}
    if env:
        body["env"] = list(env)
    return body


def placeholder(name: str, secret: str = "db-creds", key: str = "username") -> Object:
    return {"name": name, "value": f"SECRET:{secret},{key}"}


def secret_ref(name: str, secret: str = "db-creds", key: str = "username") -> Object:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def pod(
    *containers: Object,
    init: list[Object] | None = None,
    name: str | None = "job-1",
    namespace: str = "runai-team-a",
    **metadata: Any,
) -> Object:
    meta: Object = {"namespace": namespace, **metadata}
    if name is not None:
        meta["name"] = name
    spec: Object = {"containers": list(containers) or [container("main")]}
    if init is not None:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def last_response(result: AdmissionResult) -> Object:
    """Return the `response` of the webhook's last AdmissionReview."""
    assert result.calls, f"the webhook was not called: {result.skipped}"
    review = result.calls[-1].response
    assert review is not None, result.calls[-1].error
    response: Object = review["response"]
    return response


def patch_of(result: AdmissionResult) -> list[Object]:
    """Return the JSON patch of the last call, empty when it sent none."""
    response = last_response(result)
    if "patch" not in response:
        return []
    operations: list[Object] = json.loads(base64.b64decode(response["patch"]))
    return operations


def env_of(
    result: AdmissionResult, index: int = 0, field: str = "containers"
) -> list[Object]:
    assert result.object is not None, result.message
    env: list[Object] = result.object["spec"][field][index].get("env", [])
    return env
