"""Property tests: for generated pods the patch does exactly what is intended.

The expected object is computed by a small model written independently of
the production code, then compared with the result of applying our patch
with the `jsonpatch` library (an RFC 6902 implementation).
"""

import copy
import re
from typing import Any

import jsonpatch
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.admission import InjectionOptions, Plan, SecretLookup, plan_review

from .builders import apply, review, run

PREFIX = "runai-secrets-webhook"
MARKER = f"{PREFIX}/injected"
SECRETS = {"db-creds": {"username", "password"}, "api": {"token"}}
ALL_FOUND = {name: SecretLookup.found(keys) for name, keys in SECRETS.items()}

ENV_PATH = re.compile(r"/spec/(containers|initContainers)/\d+/env(/\d+|/-)?")
MARKER_PATHS = {
    "/metadata/annotations",
    "/metadata/annotations/runai-secrets-webhook~1injected",
}

env_names = st.sampled_from(["A", "B", "DB_USER", "DB_PASS", "TOKEN", "X.y", "_z"])
references = st.sampled_from(
    [
        f"SECRET:{secret},{key}"
        for secret, keys in sorted(SECRETS.items())
        for key in sorted(keys)
    ]
)
literals = st.sampled_from(["", "plain", "secret:lower,case", "SECRETS", "x=y"])
value_from = st.fixed_dictionaries(
    {
        "name": env_names,
        "valueFrom": st.sampled_from(
            [
                {"secretKeyRef": {"name": "gone", "key": "k", "optional": True}},
                {"fieldRef": {"fieldPath": "metadata.name"}},
                {"secretKeyRef": {"name": "db-creds", "key": "username"}},
            ]
        ),
    }
)
env_entries = st.one_of(
    st.builds(
        lambda name, value: {"name": name, "value": value}, env_names, references
    ),
    st.builds(lambda name, value: {"name": name, "value": value}, env_names, literals),
    value_from,
    st.builds(lambda name: {"name": name}, env_names),
)
env_fields: st.SearchStrategy[dict[str, Any]] = st.one_of(
    st.just({}),
    st.just({"env": None}),
    st.lists(env_entries, max_size=6).map(lambda entries: {"env": entries}),
)
extra_fields: st.SearchStrategy[dict[str, Any]] = st.sampled_from(
    [{}, {"restartPolicy": "Always"}, {"futureField": {"a": [1]}}]
)


@st.composite
def pods(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(
        st.lists(st.sampled_from("abcdefgh"), min_size=1, max_size=6, unique=True)
    )
    split = draw(st.integers(min_value=1, max_value=len(names)))
    app_names, init_names = names[:split], names[split:]

    def make(name: str) -> dict[str, Any]:
        return {
            "name": name,
            "image": "busybox",
            **draw(env_fields),
            **draw(extra_fields),
        }

    spec: dict[str, Any] = {"containers": [make(name) for name in app_names]}
    with_init: bool = draw(st.booleans())
    if init_names or with_init:
        spec["initContainers"] = [make(name) for name in init_names]
    metadata: dict[str, Any] = {"name": "p"}
    annotations = draw(annotation_maps(app_names))
    if annotations is not None or draw(st.booleans()):
        metadata["annotations"] = annotations
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": spec}


@st.composite
def annotation_maps(draw: st.DrawFn, app_names: list[str]) -> dict[str, str] | None:
    if draw(st.booleans()):
        return None
    keys = st.sampled_from(
        ["team.example.com/owner", "odd~key", "a/b~c", "~1", "plain"]
    )
    annotations = draw(
        st.dictionaries(keys, st.sampled_from(["", "v", "x/y"]), max_size=3)
    )
    lines = draw(st.lists(st.tuples(env_names, references), max_size=3))
    if lines:
        separator = draw(st.sampled_from(["\n", "\n\n", "\n  \n", "\r\n"]))
        annotations[f"{PREFIX}/env"] = separator.join(
            f"{name}={value}" for name, value in lines
        )
        chosen = draw(st.lists(st.sampled_from(app_names), unique=True))
        if chosen:
            annotations[f"{PREFIX}/containers"] = ",".join(chosen)
    if draw(st.booleans()):
        annotations[MARKER] = "old/NAME"
    return annotations


def model(obj: dict[str, Any]) -> dict[str, Any]:
    """Compute the object the webhook should admit when every secret key exists."""
    result = copy.deepcopy(obj)
    annotations = result["metadata"].get("annotations") or {}
    additions = parse_lines(annotations.get(f"{PREFIX}/env", ""))
    chosen = annotations.get(f"{PREFIX}/containers")
    selected = set(chosen.split(",")) if chosen else None
    injected: set[str] = set()

    for field in ("initContainers", "containers"):
        for container in result["spec"].get(field, []):
            convert_own(container, injected)
            if field == "containers" and (
                selected is None or container["name"] in selected
            ):
                add_missing(container, additions, injected)

    if injected:
        previous = set(filter(None, annotations.get(MARKER, "").split(",")))
        annotations[MARKER] = ",".join(sorted(previous | injected))
        result["metadata"]["annotations"] = annotations
    return result


def parse_lines(text: str) -> list[tuple[str, str]]:
    pairs = [line.strip().split("=", 1) for line in text.splitlines() if line.strip()]
    return [(name, value) for name, value in pairs]


def as_ref(name: str, value: str) -> dict[str, Any]:
    secret, key = value.removeprefix("SECRET:").split(",")
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


def convert_own(container: dict[str, Any], injected: set[str]) -> None:
    for index, entry in enumerate(container.get("env") or []):
        value = entry.get("value")
        if (
            "valueFrom" not in entry
            and isinstance(value, str)
            and value.startswith("SECRET:")
        ):
            container["env"][index] = as_ref(entry["name"], value)
            injected.add(f"{container['name']}/{entry['name']}")


def add_missing(
    container: dict[str, Any], additions: list[tuple[str, str]], injected: set[str]
) -> None:
    defined = {entry["name"] for entry in container.get("env") or []}
    for name, value in additions:
        if name not in defined:
            container["env"] = [*(container.get("env") or []), as_ref(name, value)]
            defined.add(name)
            injected.add(f"{container['name']}/{name}")


@settings(max_examples=200, deadline=None)
@given(pods())
def test_patch_gives_intended_object(obj: dict[str, Any]) -> None:
    before = copy.deepcopy(obj)
    rv = review(obj)
    decision = run(rv, ALL_FOUND)
    assert decision.allowed
    assert rv["request"].get("object") == before
    assert apply(rv, decision) == model(before)


@settings(max_examples=200, deadline=None)
@given(pods())
def test_patch_touches_only_env_and_marker(obj: dict[str, Any]) -> None:
    decision = run(review(obj), ALL_FOUND)
    for operation in decision.patch:
        path = operation["path"]
        assert ENV_PATH.fullmatch(path) or path in MARKER_PATHS, path
        assert operation["op"] in ("add", "replace")
        if path == "/metadata/annotations":
            assert operation["value"].keys() == {MARKER}
    marker_operations = [op for op in decision.patch if op["path"] in MARKER_PATHS]
    assert len(marker_operations) == (1 if decision.patch else 0)


@settings(max_examples=200, deadline=None)
@given(pods())
def test_second_pass_yields_no_patch(obj: dict[str, Any]) -> None:
    admitted = apply(review(obj), run(review(obj), ALL_FOUND))
    again = plan_review(review(admitted), InjectionOptions())
    assert not isinstance(again, Plan)
    assert again.allowed
    assert again.patch == ()


@settings(max_examples=200, deadline=None)
@given(pods(), st.sampled_from(["username", "password", "token"]))
def test_missing_key_denies_without_patch(obj: dict[str, Any], removed: str) -> None:
    lookups = {
        name: SecretLookup.found(keys - {removed}) for name, keys in SECRETS.items()
    }
    rv = review(obj)
    outcome = plan_review(rv, InjectionOptions())
    decision = run(rv, lookups)
    uses_removed = isinstance(outcome, Plan) and any(
        ref.key == removed for ref in outcome.references
    )
    assert decision.allowed is not uses_removed
    if not decision.allowed:
        assert decision.patch == ()
        assert f'has no key "{removed}"' in decision.message


@settings(max_examples=200, deadline=None)
@given(pods())
def test_patch_applies_as_json_patch_document(obj: dict[str, Any]) -> None:
    decision = run(review(obj), ALL_FOUND)
    patch = jsonpatch.JsonPatch(list(decision.patch))
    assert patch.apply(copy.deepcopy(obj)) == apply(review(obj), decision)
