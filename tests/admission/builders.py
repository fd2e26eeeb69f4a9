"""Builders of AdmissionReview requests and objects for the admission tests."""

import base64
from typing import Any

import jsonpatch
import orjson

from webhook.admission import (
    Decision,
    InjectionOptions,
    Plan,
    Review,
    SecretLookup,
    build_response,
    decide,
    parse_review,
    plan_review,
)

NAMESPACE = "runai-team-a"
DB_CREDS = {"db-creds": SecretLookup.found({"username", "password"})}

KINDS = {
    "Pod": ("", "v1", "pods"),
    "Job": ("batch", "v1", "jobs"),
    "CronJob": ("batch", "v1", "cronjobs"),
    "Deployment": ("apps", "v1", "deployments"),
    "StatefulSet": ("apps", "v1", "statefulsets"),
    "ReplicaSet": ("apps", "v1", "replicasets"),
    "DaemonSet": ("apps", "v1", "daemonsets"),
    "RunaiJob": ("run.ai", "v1", "runaijobs"),
    "TrainingWorkload": ("run.ai", "v2alpha1", "trainingworkloads"),
    "InteractiveWorkload": ("run.ai", "v2alpha1", "interactiveworkloads"),
    "DistributedWorkload": ("run.ai", "v2alpha1", "distributedworkloads"),
    "PyTorchJob": ("kubeflow.org", "v1", "pytorchjobs"),
}


def env(name: str, value: str) -> dict[str, Any]:
    return {"name": name, "value": value}


def secret_env(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def container(name: str, *entries: dict[str, Any], **fields: Any) -> dict[str, Any]:
    result: dict[str, Any] = {"name": name, "image": "busybox", **fields}
    if entries:
        result["env"] = list(entries)
    return result


def pod(
    *containers: dict[str, Any],
    init: list[dict[str, Any]] | None = None,
    name: str | None = "train",
    annotations: dict[str, str] | None = None,
    **metadata: Any,
) -> dict[str, Any]:
    meta: dict[str, Any] = dict(metadata)
    if name is not None:
        meta["name"] = name
    if annotations is not None:
        meta["annotations"] = annotations
    spec: dict[str, Any] = {"containers": list(containers)}
    if init is not None:
        spec["initContainers"] = init
    return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec}


def review(
    obj: dict[str, Any] | None,
    *,
    kind: str = "Pod",
    operation: str = "CREATE",
    namespace: str | None = NAMESPACE,
    old: dict[str, Any] | None = None,
    api_version: str = "admission.k8s.io/v1",
    sub_resource: str | None = None,
    dry_run: bool = False,
    uid: str = "705ab4f5-6393-11e8-b7cc-42010a800002",
) -> Review:
    group, version, resource = KINDS[kind]
    request: dict[str, Any] = {
        "uid": uid,
        "kind": {"group": group, "version": version, "kind": kind},
        "resource": {"group": group, "version": version, "resource": resource},
        "requestKind": {"group": group, "version": version, "kind": kind},
        "requestResource": {"group": group, "version": version, "resource": resource},
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": old,
        "dryRun": dry_run,
    }
    if namespace is not None:
        request["namespace"] = namespace
    if sub_resource is not None:
        request["subResource"] = sub_resource
    if (
        obj is not None
        and isinstance(obj.get("metadata"), dict)
        and "name" in obj["metadata"]
    ):
        request["name"] = obj["metadata"]["name"]
    body = {"apiVersion": api_version, "kind": "AdmissionReview", "request": request}
    return parse_review(orjson.dumps(body))


def run(
    rv: Review,
    lookups: dict[str, SecretLookup] | None = None,
    options: InjectionOptions | None = None,
    **plan_args: Any,
) -> Decision:
    """Plan a review and decide it with the given lookups, as the service does."""
    outcome = plan_review(rv, options or InjectionOptions(), **plan_args)
    if isinstance(outcome, Plan):
        return decide(outcome, DB_CREDS if lookups is None else lookups)
    return outcome


def apply(rv: Review, decision: Decision) -> Any:
    """Apply the decision's patch to the reviewed object through the wire format."""
    response = build_response(rv, decision)["response"]
    obj = rv["request"].get("object")
    if "patch" not in response:
        return obj
    operations = orjson.loads(base64.b64decode(response["patch"], validate=True))
    return jsonpatch.apply_patch(obj, operations)


def patch_paths(decision: Decision) -> list[str]:
    return [operation["path"] for operation in decision.patch]
