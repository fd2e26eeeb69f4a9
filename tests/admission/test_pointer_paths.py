"""Pod spec pointers: the direct path for plain pointers agrees with the walk.

`find_pointer_targets` follows a pointer without `*` directly and walks the
document recursively only for wildcard pointers. The properties compare it
with the recursive walk, `_walk(document, "", _tokens(pointer))`, on random
JSON documents and pointers. The tokens include ones that need RFC 6901
escaping (`a/b`, `m~n`), list indexes with leading zeros, `-`, and
non-ASCII digits, which RFC 6901 does not accept as array indexes.
"""

from typing import Any

import jsonpointer
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from webhook.admission import InjectionOptions, load_workload_kinds
from webhook.admission.podspecs import _tokens, _walk, find_pointer_targets

from .builders import apply, container, env, patch_paths, review, run

ARABIC_INDIC_ONE = "\u0661"
SUPERSCRIPT_TWO = "\u00b2"
FULLWIDTH_ONE = "\uff11"
# Python's str.isdigit() accepts these digits, but RFC 6901 array indexes do not.
NON_ASCII_DIGITS = (ARABIC_INDIC_ONE, SUPERSCRIPT_TWO, FULLWIDTH_ONE)
TOKENS = (
    "a",
    "a/b",
    "m~n",
    "~1",
    "*",
    "0",
    "1",
    "01",
    "-",
    "10",
    "",
    *NON_ASCII_DIGITS,
)
KEYS = st.sampled_from(TOKENS)

scalars = st.none() | st.booleans() | st.integers(-5, 5) | st.sampled_from(["x", ""])
documents = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=12) | st.dictionaries(KEYS, children, max_size=5)
    ),
    max_leaves=40,
)
token_lists = st.lists(st.sampled_from(TOKENS), max_size=5)
# Raw pointers also cover escapes that RFC 6901 does not define, such as "~2".
raw_pointers = st.text(alphabet="ab/~012*-", max_size=10).map(lambda text: "/" + text)


def spell(tokens: list[str]) -> str:
    """Spell tokens as a JSON Pointer, escaping `~` before `/` (RFC 6901)."""
    return "".join(
        "/" + token.replace("~", "~0").replace("/", "~1") for token in tokens
    )


def walk_model(document: Any, pointer: str) -> list[tuple[str, Any]]:
    return list(_walk(document, "", _tokens(pointer)))


def check_against_walk(document: Any, pointer: str) -> None:
    found = list(find_pointer_targets(document, pointer))
    expected = walk_model(document, pointer)
    assert [path for path, _ in found] == [path for path, _ in expected]
    assert all(a is b for (_, a), (_, b) in zip(found, expected, strict=True))
    # Every concrete pointer must lead back to its value under a separate
    # RFC 6901 implementation, because the patch paths are built from it.
    for path, value in found:
        assert jsonpointer.resolve_pointer(document, path) is value


@settings(max_examples=400, deadline=None)
@given(documents, token_lists)
def test_spelled_pointers_match_walk(document: Any, tokens: list[str]) -> None:
    check_against_walk(document, spell(tokens))


@settings(max_examples=200, deadline=None)
@given(documents, raw_pointers)
def test_raw_pointers_match_walk(document: Any, pointer: str) -> None:
    check_against_walk(document, pointer)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(TOKENS), min_size=1, max_size=4), st.data())
def test_plain_pointer_into_built_document(tokens: list[str], data: Any) -> None:
    """Build a document that contains the pointer's path, so matches are common."""
    plain = [token for token in tokens if token != "*"] or ["a"]
    leaf = object()
    node: Any = leaf
    for token in reversed(plain):
        if token.isascii() and token.isdigit() and data.draw(st.booleans()):
            length = data.draw(st.integers(0, 12))
            node = [node if i == int(token) else i for i in range(length)]
        else:
            node = {token: node}
    pointer = spell(plain)
    check_against_walk(node, pointer)


@pytest.mark.parametrize("token", NON_ASCII_DIGITS)
def test_non_ascii_digit_is_no_index(token: str) -> None:
    document = {"a": [10, 20, 30]}
    pointer = f"/a/{token}"
    assert list(find_pointer_targets(document, pointer)) == []
    assert walk_model(document, pointer) == []


@pytest.mark.parametrize(
    ("pointer", "expected"),
    [
        ("/a~1b/m~0n", [("/a~1b/m~0n", 1)]),
        ("/a~1b/*", [("/a~1b/m~0n", 1), ("/a~1b/~01", 2)]),
        ("/a~1b/~01", [("/a~1b/~01", 2)]),
        ("/a~1b/~1", []),
        ("/list/01", []),
        ("/list/-", []),
        ("/list/10", []),
        ("/list/1", [("/list/1", "y")]),
    ],
)
def test_escaped_and_index_tokens(pointer: str, expected: list[Any]) -> None:
    document = {"a/b": {"m~n": 1, "~1": 2}, "list": ["x", "y"]}
    assert list(find_pointer_targets(document, pointer)) == expected


REF = env("DB_PASS", "SECRET:db-creds,password")


def escaped_kind(pointer: str) -> InjectionOptions:
    config = {
        "kinds": [
            {
                "group": "kubeflow.org",
                "version": "v1",
                "kind": "PyTorchJob",
                "podSpecs": [pointer],
            }
        ]
    }
    return InjectionOptions(extra_kinds=load_workload_kinds(config))


def escaped_job() -> dict[str, Any]:
    pod_spec = {"containers": [container("main", env("A", "1"), REF)]}
    return {
        "apiVersion": "kubeflow.org/v1",
        "kind": "PyTorchJob",
        "metadata": {"name": "train"},
        "spec": {
            "replica/specs": {"Master~0": [{"template": {"spec": pod_spec}}]},
        },
    }


@pytest.mark.parametrize(
    "pointer",
    [
        # Plain pointer: the direct path.
        "/spec/replica~1specs/Master~00/0/template/spec",
        # Wildcard pointer: the recursive walk.
        "/spec/replica~1specs/*/*/template/spec",
    ],
)
def test_escaped_kind_patch_paths(pointer: str) -> None:
    rv = review(escaped_job(), kind="PyTorchJob")
    decision = run(rv, options=escaped_kind(pointer))
    assert decision.allowed
    container_path = "/spec/replica~1specs/Master~00/0/template/spec/containers/0"
    assert patch_paths(decision) == [
        f"{container_path}/env/1",
        "/metadata/annotations",
    ]
    admitted = apply(rv, decision)
    pod_spec = admitted["spec"]["replica/specs"]["Master~0"][0]["template"]["spec"]
    assert pod_spec["containers"][0]["env"] == [
        env("A", "1"),
        {
            "name": "DB_PASS",
            "valueFrom": {"secretKeyRef": {"name": "db-creds", "key": "password"}},
        },
    ]


def test_non_ascii_digit_kind_finds_nothing() -> None:
    rv = review(escaped_job(), kind="PyTorchJob")
    decision = run(
        rv, options=escaped_kind(f"/spec/replica~1specs/Master~00/{SUPERSCRIPT_TWO}")
    )
    assert decision.allowed
    assert list(decision.patch) == []
