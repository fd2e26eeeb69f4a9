"""Requests to the fake API server: routes, selectors, patches and list pages.

A path such as `/api/v1/namespaces/team-a/secrets/db` or
`/apis/coordination.k8s.io/v1/namespaces/team-a/leases` maps to a resource
from kubestore.RESOURCES, a namespace, a name and a verb, as kube-apiserver's
RequestInfo does.
"""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import jsonpatch

from tests.harness import kubestatus
from tests.harness.kubestore import Object, Resource, find_resource
from tests.harness.labels import (
    SelectorError,
    matches_all,
    parse_field_selector,
    parse_label_selector,
)


@dataclass
class Route:
    """What a request addresses, parsed from its path, method and query."""

    verb: str
    resource: Resource | None
    namespace: str
    name: str
    query: dict[str, str] = field(default_factory=dict)


def parse_route(method: str, path: str, query: dict[str, str]) -> Route:
    parts = [part for part in path.split("/") if part]
    if parts[:2] == ["api", "v1"]:
        group, version, rest = "", "v1", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, version, rest = parts[1], parts[2], parts[3:]
    else:
        return Route("", None, "", "", query)
    namespace = ""
    if len(rest) >= 3 and rest[0] == "namespaces":
        namespace, rest = rest[1], rest[2:]
    resource = find_resource(group, version, rest[0]) if rest else None
    if (
        resource is not None
        and resource.namespaced != bool(namespace)
        and len(rest) > 1
    ):
        resource = (
            None  # a namespaced resource by name needs its namespace, and the reverse
        )
    name = rest[1] if len(rest) == 2 else ""
    if len(rest) > 2:
        resource = None  # subresources are not served
    return Route(_verb(method, name, query), resource, namespace, name, query)


def _verb(method: str, name: str, query: dict[str, str]) -> str:
    if method == "GET":
        if name:
            return "get"
        return "watch" if query.get("watch") in ("true", "1") else "list"
    if method == "DELETE":
        return "delete" if name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(
        method, method.lower()
    )


def merge_patch(target: Any, patch: Any) -> Any:
    """Apply an RFC 7386 JSON merge patch."""
    if not isinstance(patch, dict):
        return patch
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def apply_patch(current: Object, content_type: str, body: bytes) -> Object:
    """Apply a PATCH body, treating a strategic merge patch as a JSON merge patch.

    NOTE: a real strategic merge patch merges lists such as `containers` or
    `env` by their merge key. Here every list in the patch replaces the old one.
    """
    try:
        patch = json.loads(body)
    except ValueError as error:
        raise kubestatus.bad_request(f"error decoding patch: {error}") from None
    if content_type == "application/json-patch+json":
        try:
            result: Object = jsonpatch.apply_patch(current, patch)
        except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as error:
            raise kubestatus.ApiError(
                422,
                "Invalid",
                "the server rejected our request due to an error in our request: "
                f"{error}",
            ) from None
        return result
    if content_type in (
        "application/merge-patch+json",
        "application/strategic-merge-patch+json",
    ):
        merged: Object = merge_patch(current, patch)
        return merged
    raise kubestatus.unsupported_media_type(content_type)


def list_key(item: Object) -> tuple[str, str]:
    return (item["metadata"].get("namespace", ""), item["metadata"]["name"])


def encode_continue(revision: int, after: tuple[str, str]) -> str:
    data = json.dumps({"rv": revision, "after": list(after)}).encode()
    return base64.urlsafe_b64encode(data).decode()


def decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (str(data["after"][0]), str(data["after"][1]))
    except (ValueError, KeyError, IndexError, TypeError):
        raise kubestatus.bad_request(f"invalid continue token {token!r}") from None


def selectors(route: Route) -> tuple[Any, Any]:
    assert route.resource is not None
    try:
        labels = parse_label_selector(route.query.get("labelSelector", ""))
        fields = parse_field_selector(
            route.query.get("fieldSelector", ""), route.resource.field_selectors
        )
    except SelectorError as error:
        raise kubestatus.bad_request(str(error)) from None
    return labels, fields


def selected(obj: Object, labels: Any, fields: Any) -> bool:
    return matches_all(labels, obj["metadata"].get("labels") or {}) and bool(
        fields(obj)
    )
