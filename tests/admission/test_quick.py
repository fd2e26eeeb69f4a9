"""The quick path sends the full path's bytes, or leaves the review to it.

Every review here goes through both paths: through `quick_response`, and
through `plan_review`, `decide` and `encode_response` with the same
secrets. Where the quick path responds, both responses must be the same
bytes. Pods are generated close to the usual one, with odd parts mixed in
at random, so that both outcomes of the quick path occur often.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from bench import bodies
from webhook.admission import (
    Decision,
    InjectionOptions,
    LookupStatus,
    MalformedReview,
    SecretLookup,
    decide,
    encode_response,
    parse_review,
    plan_review,
    quick,
)
from webhook.admission.quick import decode_pod_review, quick_response
from webhook.admission.scanning import MAX_SECRETS_PER_REVIEW

from ..reliability.strategies import reviews as hostile_reviews
from .builders import container, env, pod, review

NAMESPACE = "runai-team-a"
# The secrets the generated pods may find: two in NAMESPACE, with these key
# names, and one found in another namespace, as a cluster-wide secret is.
SECRETS = {
    "db": SecretLookup.found({"user", "password"}),
    "api": SecretLookup.found({"token"}),
    "shared": SecretLookup.found({"token"}, namespace="runai"),
}
# The benchmark's review and its secrets.
BENCHMARK = {
    name: SecretLookup.found(set(keys)) for name, keys in bodies.SECRETS.items()
}

OPTIONS = [
    InjectionOptions(),
    InjectionOptions(on_missing="warn"),
    InjectionOptions(annotation_prefix="secrets.example.com"),
]


class Confirmations:
    """Confirms secrets from a table, as the warm cache does, and counts calls."""

    def __init__(self, table: Mapping[str, SecretLookup]) -> None:
        self.table = table
        self.calls = 0

    def __call__(self, namespace: str, required: Mapping[str, Collection[str]]) -> bool:
        self.calls += 1
        for secret, keys in required.items():
            found = self.table.get(secret)
            if (
                found is None
                or found.status is not LookupStatus.FOUND
                or (found.namespace and found.namespace != namespace)
                or not found.keys.issuperset(keys)
            ):
                return False
        return True


def full_response(
    body: bytes, options: InjectionOptions, table: Mapping[str, SecretLookup]
) -> tuple[bytes, Decision]:
    review = parse_review(body)
    outcome = plan_review(review, options)
    if not isinstance(outcome, Decision):
        lookups = {
            secret: table.get(secret, SecretLookup.not_found())
            for secret in outcome.keys
        }
        outcome = decide(outcome, lookups)
    return encode_response(review, outcome), outcome


def compare(
    document: Any,
    options: InjectionOptions,
    table: Mapping[str, SecretLookup] = SECRETS,
) -> bool:
    """Send `document` through both paths; tell whether the quick path responded."""
    # json, because orjson refuses the deepest nesting of hostile reviews.
    body = json.dumps(document).encode()
    confirm = Confirmations(table)
    decoded = decode_pod_review(body)
    quick = None if decoded is None else quick_response(decoded, options, confirm)
    if quick is None:
        return False
    content, decision = full_response(body, options, table)
    assert quick.content == content
    assert quick.patched == bool(decision.patch)
    assert confirm.calls == (1 if decision.patch else 0)
    return True


# Env values of a usual pod, and values that each need the full path.
usual_values = st.sampled_from(
    ["plain", "", "SECRET:db,user", "SECRET:db,password", "SECRET:api,token"]
)
odd_values = st.sampled_from(
    [
        "SECRET:db,absent",
        "SECRET:absent,user",
        "SECRET:shared,token",
        "SECRET:db",
        "SECRET:db,user,x",
        "SECRET: db,user",
        "SECRET:DB,user",
        "SECRET:db,..",
        "secret:db,user",
        "Secret:db,user",
        " SECRET:db,user",
        "SECRETS:db,user",
        "SECRET;db,user",
        "Secretary",
        "SECRETS: none",
    ]
)
env_names = st.sampled_from(["A", "B", "DB_USER", "a~b/c", "ünï"])


@st.composite
def env_entries(draw: st.DrawFn) -> Any:
    shape = draw(st.sampled_from(["usual"] * 20 + ["odd", "valueFrom", "name", "type"]))
    if shape == "type":
        return draw(st.sampled_from([None, "A=1", 3, ["x"]]))
    entry: dict[str, Any] = {"name": draw(env_names)}
    values = odd_values if shape == "odd" else usual_values
    entry["value"] = draw(values | st.sampled_from([None, 3, True]))
    if shape == "valueFrom":
        entry["valueFrom"] = {"secretKeyRef": {"name": "db", "key": "user"}}
    if shape == "name":
        entry["name"] = draw(st.sampled_from([None, 7, ""]))
    return entry


@st.composite
def containers(draw: st.DrawFn) -> Any:
    container: dict[str, Any] = {"name": draw(st.sampled_from(["main", "side"]))}
    env = draw(st.none() | st.lists(env_entries(), max_size=6))
    if env is not None:
        container["env"] = env
    odd = draw(st.sampled_from([None] * 12 + ["env", "name", "type"]))
    if odd == "env":
        container["env"] = draw(st.sampled_from([{"A": "1"}, "A=1", 0]))
    elif odd == "name":
        container["name"] = draw(st.sampled_from([None, 5]))
    elif odd == "type":
        return draw(st.sampled_from([None, "main", []]))
    return container


@st.composite
def metadata_annotations(draw: st.DrawFn, prefix: str) -> Any:
    """Return the pod's annotations: none, null, unrelated or one control key."""
    choice = draw(st.sampled_from(["empty", "null", "other", "control"]))
    if choice == "null":
        return None
    if choice == "other":
        return {"example.com/team": "a"}
    if choice == "control":
        suffix = draw(st.sampled_from(["env", "containers", "inject", "injected"]))
        return {
            f"{prefix}/{suffix}": draw(
                st.sampled_from(["false", "A=SECRET:db,user", "main", "main/A"])
            )
        }
    return {}


@st.composite
def pod_reviews(draw: st.DrawFn, prefix: str = "runai-secrets-webhook") -> Any:
    metadata: dict[str, Any] = {"name": "train-0", "namespace": NAMESPACE}
    if draw(st.booleans()):
        metadata["annotations"] = draw(metadata_annotations(prefix))
    spec: dict[str, Any] = {
        "containers": draw(st.lists(containers(), min_size=1, max_size=3))
    }
    init = draw(st.none() | st.lists(containers(), max_size=2))
    if init is not None:
        spec["initContainers"] = init
    obj: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "spec": spec}
    if draw(st.integers(0, 9)) != 0:
        obj["metadata"] = metadata
    request: dict[str, Any] = {
        "uid": draw(st.sampled_from(["705ab4f5-6393-11e8-b7cc-42010a800002", 'ü"\\'])),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": draw(st.sampled_from([NAMESPACE] * 6 + ["", None, "other"])),
        "operation": draw(st.sampled_from(["CREATE"] * 6 + ["UPDATE", "DELETE"])),
        "object": obj,
        "dryRun": draw(st.booleans()),
    }
    if draw(st.integers(0, 9)) == 0:
        request["subResource"] = draw(
            st.sampled_from(["ephemeralcontainers", "status", ""])
        )
    if draw(st.integers(0, 9)) == 0:
        request["kind"] = dict(request["kind"], version="v2")
    version = draw(st.sampled_from(["admission.k8s.io/v1", "admission.k8s.io/v1beta1"]))
    return {"apiVersion": version, "kind": "AdmissionReview", "request": request}


@pytest.mark.parametrize("options", OPTIONS, ids=["deny", "warn", "prefix"])
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(document=st.data())
def test_generated_pods_same_bytes(options: InjectionOptions, document: Any) -> None:
    review = document.draw(pod_reviews(options.annotation_prefix))
    responded = compare(review, options)
    event("quick" if responded else "full")


@settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(document=hostile_reviews())
def test_hostile_reviews_same_bytes(document: Any) -> None:
    body = json.dumps(document).encode()
    try:
        parse_review(body)
    except MalformedReview:
        # The full path rejects the envelope, so the quick path must not
        # respond.
        decoded = decode_pod_review(body)
        if decoded is not None:
            confirm = Confirmations(SECRETS)
            assert quick_response(decoded, InjectionOptions(), confirm) is None
        return
    compare(document, InjectionOptions())


def test_benchmark_pod_takes_quick_path() -> None:
    document = orjson.loads(bodies.training_review())
    assert compare(document, InjectionOptions(), BENCHMARK)


def test_invalid_reference_not_kept() -> None:
    """A value typed by mistake may be a credential, so no cache keeps it."""
    document = orjson.loads(bodies.training_review())
    container = document["request"]["object"]["spec"]["containers"][0]
    container["env"].append({"name": "TYPO", "value": "SECRET:hunter2 is mine"})
    before = quick._parsed.cache_info()

    responses = quick._cached_patched.cache_info().currsize

    assert not compare(document, InjectionOptions(), BENCHMARK)

    after = quick._parsed.cache_info()
    assert after.currsize == before.currsize
    assert after.misses == before.misses + 1
    assert quick._cached_patched.cache_info().currsize == responses


def test_secrets_limit_stops_scan() -> None:
    """Past the limit of secrets the quick path stops, as the full path does.

    Each reference after the limit would cost a parse and a place in the
    parse cache, for a review that is denied anyway.
    """
    over = 4 * MAX_SECRETS_PER_REVIEW
    entries = [env(f"VAR_{i}", f"SECRET:limit-{i},key") for i in range(over)]
    document = review(pod(container("main", *entries)))
    confirm = Confirmations({})
    before = quick._parsed.cache_info()

    decoded = decode_pod_review(orjson.dumps(document))
    assert decoded is not None
    answer = quick_response(decoded, InjectionOptions(), confirm)

    after = quick._parsed.cache_info()
    parses = after.hits + after.misses - before.hits - before.misses
    assert answer is None
    assert confirm.calls == 0
    assert parses == MAX_SECRETS_PER_REVIEW + 1


def test_plain_value_like_prefix_keeps_quick_path() -> None:
    """A plain value that starts like the prefix gets no warning, so no full path."""
    document = orjson.loads(bodies.training_review())
    container = document["request"]["object"]["spec"]["containers"][0]
    container["env"].append({"name": "ROLE", "value": "Secretary"})

    assert compare(document, InjectionOptions(), BENCHMARK)


def test_misspelled_reference_takes_full_path() -> None:
    document = orjson.loads(bodies.training_review())
    container = document["request"]["object"]["spec"]["containers"][0]
    container["env"].append({"name": "TYPO", "value": "SECRETS:db-creds,password"})

    assert not compare(document, InjectionOptions(), BENCHMARK)


# The body-level cases below write raw JSON into the benchmark review, in
# place of this value of a label that the quick path does not read.
MARK = "raw-json-goes-here"


def body_with(raw: bytes) -> bytes:
    """Return the benchmark review with `raw` as the value of one label."""
    document = orjson.loads(bodies.training_review())
    document["request"]["object"]["metadata"]["labels"]["note"] = MARK
    return orjson.dumps(document).replace(b'"%s"' % MARK.encode(), raw, 1)


def benchmark_with(old: bytes, new: bytes) -> bytes:
    """Return the benchmark review with its first `old` bytes replaced by `new`."""
    body = bodies.training_review()
    assert old in body
    return body.replace(old, new, 1)


def outcome(body: bytes) -> str:
    """Send raw `body` through both paths and return which one responded.

    The result is "malformed" when the full path rejects the body, and then
    the quick path must not respond. It is "quick" when the quick path
    responds, with the full path's bytes, and "full" when it steps aside.
    """
    decoded = decode_pod_review(body)
    confirm = Confirmations(BENCHMARK)
    options = InjectionOptions()
    quick = None if decoded is None else quick_response(decoded, options, confirm)
    try:
        content, _ = full_response(body, options, BENCHMARK)
    except MalformedReview:
        assert quick is None
        return "malformed"
    if quick is None:
        return "full"
    assert quick.content == content
    return "quick"


CREATE = b'"operation":"CREATE"'
# An integer of 310 digits, past a double's range, which orjson rejects.
HUGE_INTEGER = b"1" * 310


def nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b'"plain"', "quick"),
        (b'"\xc3\xa9 \\ud83d\\ude00 \\u003c"', "quick"),
        (b'"\xff"', "malformed"),
        (b'"\xed\xa0\x80"', "malformed"),
        (b'"\xc0\xaf"', "malformed"),
        (b'"\\ud800"', "malformed"),
        (b'"\\udc00\\ud800"', "malformed"),
        (b'"a\x01b"', "malformed"),
        (b'"a\\qb"', "malformed"),
        (b"[1,2,]", "malformed"),
        (b'{"a":1,}', "malformed"),
        (b"01", "malformed"),
        (b".5", "malformed"),
        (b"NaN", "malformed"),
        (b"tru", "malformed"),
        (b"1e308", "quick"),
        (b"18446744073709551616", "quick"),
        (b"-0", "quick"),
        (nested(900), "quick"),
        # The quick path's decoder stops at a lower depth than orjson.
        (nested(1010), "full"),
        (nested(1100), "malformed"),
    ],
)
def test_raw_member_not_read(raw: bytes, expected: str) -> None:
    """A member the quick path skips still decides whether the body is valid."""
    assert outcome(body_with(raw)) == expected


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        # Member names written with escapes mean the same names.
        (
            b'"operation":"CREATE"',
            b'"operation":"CREATE","subResourc\\u0065":"status"',
            "full",
        ),
        (
            b'"value":"SECRET:db-creds,username"',
            b'"value":"SECRET:db-creds,username","valueFro\\u006d":null',
            "full",
        ),
        (b'"operation":"CREATE"', b'"oper\\u0061tion":"UPDATE"', "full"),
        # The last of two equal member names counts, on both paths.
        (
            b'"operation":"CREATE"',
            b'"operation":"UPDATE","operation":"CREATE"',
            "quick",
        ),
        (b'"operation":"CREATE"', b'"operation":"CREATE","operation":"UPDATE"', "full"),
        # Members read with a type the envelope checks reject.
        (b'"namespace":"runai-team-a"', b'"namespace":5', "malformed"),
        (b'"operation":"CREATE"', b'"operation":"CREATE","uid":""', "malformed"),
        (b'"operation":"CREATE"', b'"operation":"CREATE","uid":7', "malformed"),
        (b'"oldObject":null', b'"oldObject":[]', "malformed"),
        (b'"oldObject":null', b'"oldObject":{"metadata":1}', "malformed"),
        (b'"oldObject":null', b'"oldObject":{"metadata":null}', "quick"),
        (b'"operation":"CREATE"', b'"operation":"MAKE"', "malformed"),
        (b'"group":""', b'"group":null', "malformed"),
        (b'"apiVersion":"admission.k8s.io/v1"', b'"apiVersion":"v1"', "malformed"),
        # A number too large for orjson in a member read as a string.
        (b'"value":"16"', b'"value":%s' % HUGE_INTEGER, "malformed"),
        (b'{"name":"PYTHONUNBUFFERED"', b'{"name":%s' % HUGE_INTEGER, "malformed"),
        (b'"annotations":{', b'"annotations":{"n":%s,' % HUGE_INTEGER, "malformed"),
        (CREATE, CREATE + b',"subResource":%s' % HUGE_INTEGER, "malformed"),
        # Members read with a type that only the full path handles.
        (b'"value":"16"', b'"value":16', "full"),
        (b'{"name":"PYTHONUNBUFFERED"', b'{"name":null', "quick"),
        (b'{"name":"PYTHONUNBUFFERED"', b'{"name":5', "full"),
        (b'"annotations":{', b'"annotations":{"n":1,', "full"),
        (CREATE, CREATE + b',"subResource":0', "full"),
        (b'"env":[', b'"env":[5,', "full"),
        (b'"containers":[', b'"containers":[null,', "full"),
        (b'"operation":"CREATE"', b'"operation":"CREATE","subResource":7', "full"),
        # More members read as strings: other types, escapes and empty ones.
        (b'"name":"trainer"', b'"name":null', "full"),
        (b'"name":"trainer"', b'"name":{"a":"b"}', "full"),
        (b'"name":"trainer"', b'"name":%s' % HUGE_INTEGER, "malformed"),
        (b'"name":"trainer"', b'"name":"tr\\u0000ainer"', "quick"),
        (b'"name":"trainer"', b'"name":""', "quick"),
        (b'{"name":"DB_USER"', b'{"name":"DB\\u0000\\ud83d\\ude00"', "quick"),
        (b'{"name":"DB_USER"', b'{"name":""', "quick"),
        (b'{"name":"DB_USER"', b'{"name":false', "full"),
        (b'"value":"SECRET:db-creds,username"', b'"value":null', "quick"),
        (
            b'"value":"SECRET:db-creds,username"',
            b'"value":18446744073709551616',
            "full",
        ),
        (b'"annotations":{', b'"annotations":{"n":null,', "full"),
        (b'"annotations":{', b'"annotations":{"n":"\\u0000",', "quick"),
        (CREATE, CREATE + b',"subResource":null', "quick"),
        (CREATE, CREATE + b',"subResource":""', "quick"),
        (CREATE, CREATE + b',"subResource":false', "full"),
        (CREATE, CREATE + b',"subResource":{}', "full"),
    ],
)
def test_raw_member_read(old: bytes, new: bytes, expected: str) -> None:
    assert outcome(benchmark_with(old, new)) == expected


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b" ",
        b"\xef\xbb\xbf" + bodies.training_review(),
        bodies.training_review() + b" x",
        bodies.training_review() + b"\x00",
        bodies.training_review()[:-1],
    ],
    ids=["empty", "space", "bom", "trailing", "nul", "cut"],
)
def test_invalid_body(body: bytes) -> None:
    assert outcome(body) == "malformed"


def test_number_out_of_double_range_decodes() -> None:
    """The one known difference: a number past a double's range in a skipped member.

    orjson rejects the body, so the full path responds with a 400. The
    quick path's decoder does not convert the number, so the quick path
    responds to the review.
    kube-apiserver writes JSON with Go's encoding/json, which cannot write
    such a number, so only a forged call differs.
    """
    body = body_with(b"1e999")

    with pytest.raises(MalformedReview, match="infinity"):
        parse_review(body)
    assert decode_pod_review(body) is not None


# Bytes that change the meaning of JSON text when written into it.
JSON_BYTES = b'"{}[],:\\/ \t\nuU0123456789eE.+-truefalsn\x00\x1f\x7f\xc3\xa9\xff'


@settings(max_examples=1500, deadline=None)
@given(
    position=st.integers(0, len(bodies.training_review())),
    cut=st.integers(0, 3),
    inserted=st.lists(st.sampled_from(list(JSON_BYTES)), max_size=4).map(bytes),
)
def test_damaged_body_same_outcome(position: int, cut: int, inserted: bytes) -> None:
    """A damaged body gets a quick response only where the full path accepts it."""
    body = bodies.training_review()
    damaged = body[:position] + inserted + body[position + cut :]
    try:
        orjson.loads(damaged)
    except orjson.JSONDecodeError as error:
        # The known difference above.
        assume("infinity" not in str(error))
    event(outcome(damaged))


def test_pods_of_a_job_share_a_cached_response() -> None:
    """Pods with the same references reuse one response, with their own uid."""
    quick._cached_patched.cache_clear()
    contents = []
    for number in range(3):
        document = orjson.loads(bodies.training_review())
        document["request"]["uid"] = f"uid-{number}"
        document["request"]["object"]["metadata"]["name"] = f"train-{number}"
        decoded = decode_pod_review(orjson.dumps(document))
        assert decoded is not None
        answer = quick_response(decoded, InjectionOptions(), Confirmations(BENCHMARK))
        assert answer is not None
        assert compare(document, InjectionOptions(), BENCHMARK)
        contents.append(answer.content)

    info = quick._cached_patched.cache_info()
    assert info.currsize == 1
    assert info.misses == 1
    assert len(set(contents)) == 3
    assert all(b'"uid":"uid-%d"' % n in c for n, c in enumerate(contents))


@pytest.mark.parametrize(
    "change",
    [
        # Each changes one thing the response depends on.
        lambda spec: spec["containers"][0]["env"].reverse(),
        lambda spec: spec["containers"][0].update(name="other"),
        lambda spec: spec["containers"][0]["env"][10].update(name="OTHER"),
        lambda spec: spec["containers"][0]["env"][10].update(
            value="SECRET:db-creds,password"
        ),
        lambda spec: spec["containers"].reverse(),
        lambda spec: spec["initContainers"].clear(),
    ],
)
def test_cached_response_not_reused_for_another_pod(change: Any) -> None:
    """A pod that differs from a cached one in any part of its patch gets its own."""
    compare(orjson.loads(bodies.training_review()), InjectionOptions(), BENCHMARK)
    document = orjson.loads(bodies.training_review())
    change(document["request"]["object"]["spec"])

    assert compare(document, InjectionOptions(), BENCHMARK)


@pytest.mark.parametrize(
    "metadata",
    [None, {"name": "train-0"}, {"annotations": None}, {"annotations": {}}],
    ids=["no-metadata", "no-annotations", "null-annotations", "empty-annotations"],
)
def test_cached_response_follows_metadata(metadata: Any) -> None:
    """The marker annotation's operation depends on what metadata the pod has."""
    compare(orjson.loads(bodies.training_review()), InjectionOptions(), BENCHMARK)
    document = orjson.loads(bodies.training_review())
    obj = document["request"]["object"]
    if metadata is None:
        del obj["metadata"]
    else:
        obj["metadata"] = metadata

    assert compare(document, InjectionOptions(), BENCHMARK)


def test_cache_marker_key_follows_options() -> None:
    document = orjson.loads(bodies.training_review())
    for options in OPTIONS:
        assert compare(document, options, BENCHMARK)


def test_large_pod_not_cached() -> None:
    """A pod with many references gets a quick response that is not kept."""
    table = {"many": SecretLookup.found({f"k{i}" for i in range(100)})}
    entries = [env(f"V{i}", f"SECRET:many,k{i}") for i in range(100)]
    document = review(pod(container("main", *entries)))
    quick._cached_patched.cache_clear()

    assert compare(document, InjectionOptions(), table)
    assert quick._cached_patched.cache_info().currsize == 0


def test_pod_with_long_names_not_cached() -> None:
    """A pod with long env var names gets a quick response that is not kept.

    The cache is bounded by its count of entries, so only small responses
    may enter it. Without that check, 128 pods like this one, each with 32
    env var names of 90,000 characters, kept 850 MiB in one measurement.
    The secrets need not exist, because the response is built before they
    are checked.
    """
    table = {"db": SecretLookup.found({"user"})}
    entries = [env(f"V{i}_" + "A" * 90_000, "SECRET:db,user") for i in range(32)]
    document = review(pod(container("main", *entries)))
    quick._cached_patched.cache_clear()

    assert compare(document, InjectionOptions(), table)
    assert not compare(document, InjectionOptions(), {})
    assert quick._cached_patched.cache_info().currsize == 0


def test_cached_response_size() -> None:
    """The largest response the cache takes stays near the size its comment gives.

    JSON writes a control character in 6 bytes, so env var names made of
    them, up to the cache's limit of characters, give the largest response.
    """
    value = "SECRET:db,user"
    # Each reference counts its container's name, its own name and its
    # value. Two digits make the names differ.
    chars = quick.MAX_CACHED_CHARS // quick.MAX_CACHED_REFERENCES
    control = chars - len("c") - len(value) - 2
    entries = [
        env("\x01" * control + f"{i:02d}", value)
        for i in range(quick.MAX_CACHED_REFERENCES)
    ]
    document = review(pod(container("c", *entries)))
    decoded = decode_pod_review(orjson.dumps(document))
    assert decoded is not None
    quick._cached_patched.cache_clear()

    answer = quick_response(decoded, InjectionOptions(), Confirmations(SECRETS))

    assert answer is not None
    assert quick._cached_patched.cache_info().currsize == 1
    assert 40_000 < len(answer.content) < 45_000
    assert compare(document, InjectionOptions())
