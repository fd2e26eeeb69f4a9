"""Hypothesis strategies for AdmissionReviews, from plausible to hostile.

`reviews()` builds a review that kube-apiserver could send (a workload of a
random kind with SECRET: references in env and annotations), then applies a
few mutations at random places: a field removed, set to null or to a value
of the wrong type, replaced by deep nesting, a huge array or odd unicode.
"""

from __future__ import annotations

import copy
import uuid
from typing import Any

from hypothesis import strategies as st

Json = Any

# group, version, kind, and the path from the object to its pod spec.
WORKLOADS: list[tuple[str, str, str, tuple[str, ...]]] = [
    ("", "v1", "Pod", ("spec",)),
    ("batch", "v1", "Job", ("spec", "template", "spec")),
    ("batch", "v1", "CronJob", ("spec", "jobTemplate", "spec", "template", "spec")),
    ("apps", "v1", "Deployment", ("spec", "template", "spec")),
    ("apps", "v1", "StatefulSet", ("spec", "template", "spec")),
    ("apps", "v1", "DaemonSet", ("spec", "template", "spec")),
    ("apps", "v1", "ReplicaSet", ("spec", "template", "spec")),
    ("run.ai", "v2alpha1", "TrainingWorkload", ("spec",)),
    ("example.com", "v1", "Unknown", ("spec",)),
]
SECRET_NAMES = ["db", "api", "absent", "only-in-b", "team-b/db", "DB", "db.team-b"]
KEY_NAMES = ["password", "user", "token", "absent", ".", "..", "a/b", ""]
OPERATIONS = ["CREATE", "UPDATE", "DELETE", "CONNECT"]

odd_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=40
)
names = st.sampled_from(["main", "side", "init", ""]) | odd_text


@st.composite
def references(draw: st.DrawFn) -> str:
    secret = draw(st.sampled_from(SECRET_NAMES) | odd_text)
    key = draw(st.sampled_from(KEY_NAMES) | odd_text)
    form = draw(st.sampled_from(["{s},{k}", "{s}", "{s},{k},x", " {s} , {k} "]))
    return "SECRET:" + form.format(s=secret, k=key)


env_values = references() | odd_text | st.just("plain")
env_entries = st.fixed_dictionaries(
    {"name": st.sampled_from(["A", "B", "DB_PASSWORD", "1x", "a=b"]) | odd_text},
    optional={
        "value": env_values,
        # builds, not just: mutations change the dict in place.
        "valueFrom": st.builds(lambda: {"secretKeyRef": {"name": "db", "key": "user"}}),
    },
)
containers = st.fixed_dictionaries(
    {"name": names, "image": st.just("busybox")},
    optional={"env": st.lists(env_entries, max_size=5)},
)
pod_specs = st.fixed_dictionaries(
    {"containers": st.lists(containers, min_size=1, max_size=3)},
    optional={
        "initContainers": st.lists(containers, max_size=2),
        "ephemeralContainers": st.lists(containers, max_size=1),
    },
)
annotation_values = st.lists(
    st.builds(
        lambda name, ref: f"{name}={ref}", st.sampled_from(["E", "F"]), references()
    )
    | odd_text,
    max_size=4,
).map("\n".join)
metadata = st.fixed_dictionaries(
    {},
    optional={
        "name": names,
        "generateName": st.just("job-"),
        "namespace": st.sampled_from(["team-a", "team-b", ""]),
        "annotations": st.fixed_dictionaries(
            {},
            optional={
                "runai-secrets-webhook/env": annotation_values,
                "runai-secrets-webhook/containers": st.sampled_from(
                    ["main", "main,side", "", ",,"]
                )
                | odd_text,
                "runai-secrets-webhook/inject": st.sampled_from(["false", "true"]),
                "runai-secrets-webhook/injected": st.just("true"),
            },
        ),
        "labels": st.dictionaries(odd_text, odd_text, max_size=2),
    },
)


@st.composite
def workload_objects(draw: st.DrawFn) -> tuple[dict[str, str], Json]:
    group, version, kind, path = draw(st.sampled_from(WORKLOADS))
    api_version = f"{group}/{version}" if group else version
    obj: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": kind,
        "metadata": draw(metadata),
    }
    spec: Json = draw(pod_specs)
    for part in reversed(path[1:]):
        spec = {part: spec}
    obj[path[0]] = spec
    return {"group": group, "version": version, "kind": kind}, obj


@st.composite
def plausible_reviews(draw: st.DrawFn) -> Json:
    gvk, obj = draw(workload_objects())
    operation = draw(st.sampled_from(OPERATIONS))
    plural = gvk["kind"].lower() + "s"
    request: dict[str, Any] = {
        "uid": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "kind": gvk,
        "resource": {
            "group": gvk["group"],
            "version": gvk["version"],
            "resource": plural,
        },
        "namespace": draw(st.sampled_from(["team-a", "team-b", ""])),
        "operation": operation,
        "userInfo": {"username": "alice"},
        "object": None if operation == "DELETE" else obj,
        "oldObject": obj if operation in {"UPDATE", "DELETE"} else None,
        "dryRun": draw(st.booleans()),
    }
    if draw(st.booleans()):
        request["subResource"] = draw(
            st.sampled_from(["ephemeralcontainers", "status"])
        )
    version = draw(st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]))
    return {"apiVersion": version, "kind": "AdmissionReview", "request": request}


def deep(depth: int, leaf: Json) -> Json:
    for index in range(depth):
        leaf = [leaf] if index % 2 else {"a": leaf}
    return leaf


hostile_values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**63), max_value=2**63 - 1),
    st.floats(allow_nan=False, allow_infinity=False),
    odd_text,
    st.just([]),
    st.just({}),
    st.builds(deep, st.integers(50, 400), st.just("SECRET:db,password")),
    st.builds(
        lambda size, item: [item] * size,
        st.integers(1000, 10000),
        st.sampled_from([None, {}, {"name": "X", "value": "SECRET:db,user"}, "x"]),
    ),
)


def paths(document: Json, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Return the path of every value inside `document`, the root excluded."""
    found: list[tuple[Any, ...]] = []
    children: list[tuple[Any, Json]] = []
    if isinstance(document, dict):
        children = list(document.items())
    elif isinstance(document, list):
        children = list(enumerate(document))
    for key, value in children:
        found.append((*prefix, key))
        found.extend(paths(value, (*prefix, key)))
    return found


def mutate(document: Json, path: tuple[Any, ...], value: Json, remove: bool) -> None:
    parent = document
    for part in path[:-1]:
        parent = parent[part]
    if remove:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value


@st.composite
def reviews(draw: st.DrawFn, max_mutations: int = 3) -> Json:
    """Build a plausible review, then break it in up to `max_mutations` places."""
    document = copy.deepcopy(draw(plausible_reviews()))
    for _ in range(draw(st.integers(0, max_mutations))):
        candidates = paths(document)
        if not candidates:
            break
        path = draw(st.sampled_from(candidates))
        # A copy, because st.just() hands out the same list or dict each time.
        value = copy.deepcopy(draw(hostile_values))
        mutate(document, path, value, remove=draw(st.booleans()))
    return document


# A YAML document whose aliases expand to 9^9 strings if walked as a tree.
YAML_BOMB = "\n".join(
    ["a0: &a0 ['SECRET:db,password']"]
    + [
        f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]"
        for level in range(1, 9)
    ]
    + ["environments: *a8"]
)
template_values = st.one_of(
    st.lists(
        st.sampled_from(["A=SECRET:db,password", "B=plain", "C=SECRET:bad", "=x"])
        | odd_text,
        max_size=5,
    ).map(lambda entries: "environments:\n" + "".join(f"  - {e!r}\n" for e in entries)),
    odd_text,
    st.just("environments: {a: 1}"),
    st.just("environments: [[1, 2], null, 3]"),
    st.just("[unclosed"),
    st.just(YAML_BOMB),
)


@st.composite
def template_reviews(draw: st.DrawFn) -> Json:
    """Build a review of a template ConfigMap, then break it in a few places."""
    configmap = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {
            "name": draw(st.sampled_from(["template-admin", "verbose"]) | odd_text),
            "namespace": "runai",
            "labels": {"runai/template": draw(st.sampled_from(["true", "false"]))},
        },
        "data": {"values": draw(template_values)},
    }
    operation = draw(st.sampled_from(["CREATE", "UPDATE"]))
    request = {
        "uid": str(uuid.UUID(int=draw(st.integers(0, 2**128 - 1)))),
        "kind": {"group": "", "version": "v1", "kind": "ConfigMap"},
        "resource": {"group": "", "version": "v1", "resource": "configmaps"},
        "namespace": "runai",
        "operation": operation,
        "object": configmap,
        "oldObject": copy.deepcopy(configmap) if operation == "UPDATE" else None,
    }
    document = {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }
    for _ in range(draw(st.integers(0, 2))):
        path = draw(st.sampled_from(paths(document)))
        value = copy.deepcopy(draw(hostile_values))
        mutate(document, path, value, remove=draw(st.booleans()))
    return document
