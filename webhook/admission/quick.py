"""The quick path: one pass that responds to the usual review, or steps aside.

The pods of a job share their env, so after the first one the usual
review is the creation of a Pod whose `SECRET:` values are well formed and
whose secrets the cache confirms. That is true while the cache keeps them,
`--cache-ttl` seconds (5 by default) after a lookup. With the cache off,
only pods without references take this path. For such a review
`decode_pod_review` decodes only the members of the body that the quick
path reads, and `quick_response` builds the response in one pass over the
containers' env, with none of the general machinery: no full parse, kind
table walk, pod template annotations, plan, decision or response dict. The
pods of a job get the same patch, so it is cached by the references and
their places, and a pod whose patch is cached needs only the scan, the
secrets check and its own uid. On anything else `quick_response` returns
None, and the caller takes the full path (`parse_review`, `plan_review`,
`decide`, `encode_response`), which handles every review.

Where it responds, the quick path must send the very bytes that the full
path sends. So it steps aside at the first thing that could lead to a
denial, a warning or a different patch:

- another kind, operation or subresource, or a control annotation;
- an env entry or a container of an unusual shape;
- a reference that is invalid or misspelled (such as `secret:` or
  `SECRETS:`), or `valueFrom` next to a reference;
- more different secrets than `MAX_SECRETS_PER_REVIEW`, or no namespace;
- a secret that the cache does not confirm.

tests/admission/test_quick.py compares both paths on generated reviews and
on damaged bodies.
"""

import binascii
from collections.abc import Callable, Collection, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import msgspec
import orjson

from webhook.admission.injection import InjectionOptions
from webhook.admission.markers import marker_value
from webhook.admission.patches import set_annotation
from webhook.admission.podspecs import BUILTIN_KINDS
from webhook.admission.references import (
    PARSED_CACHE_SIZE,
    PREFIX,
    InvalidReference,
    parse_reference,
)
from webhook.admission.reviews import API_VERSIONS, REVIEW_KIND
from webhook.admission.scanning import (
    APP_CONTAINERS,
    INIT_CONTAINERS,
    MAX_SECRETS_PER_REVIEW,
    PREFIX_WORDS,
    misspelled_prefix,
)

# Confirms, without I/O, that each secret in a namespace exists there with
# at least the keys the map lists for it.
Confirm = Callable[[str, Mapping[str, Collection[str]]], bool]

POD_KEY = ("", "v1", "Pod")
_POD = next(kind for kind in BUILTIN_KINDS if kind.key() == POD_KEY)

# The first bytes of a response, by the request's apiVersion and kind. The
# fields follow in the order of `build_response`, so both paths send the
# same bytes.
_STARTS = {
    (version, REVIEW_KIND): b'{"apiVersion":%s,"kind":%s,"response":{"uid":'
    % (orjson.dumps(version), orjson.dumps(REVIEW_KIND))
    for version in API_VERSIONS
}


@lru_cache(maxsize=PARSED_CACHE_SIZE)
def _parsed(value: str) -> tuple[str, str, dict[str, Any]]:
    """Return the secret, the key and the `valueFrom` of a valid reference.

    Raises `InvalidReference`, which is not cached, so the cache contains
    only valid references, never a value typed by mistake. The `valueFrom`
    object is shared by every operation built from the same value. That is
    safe because the operations are encoded at once and then dropped, and
    nothing changes them.
    """
    ref = parse_reference(value)
    return ref.secret, ref.key, {"secretKeyRef": {"name": ref.secret, "key": ref.key}}


class QuickAnswer(NamedTuple):
    """The encoded response to a review, and whether it carries a patch."""

    content: bytes
    patched: bool


# The fields of a review that the quick path reads. Decoding into these
# structs skips every other member of the body without building Python
# objects for it, which takes about half the time of a full parse. A
# member whose type the full path's envelope checks (`parse_review`) reject
# fails the decode, so such a body takes the full path. The values those
# checks test, such as the apiVersion, an empty uid or the operation, are
# not checked here: `quick_response` steps aside on any but the usual ones.
# The structs hold no reference cycles, so the garbage collector skips them.


class _Members(msgspec.Struct, gc=False):
    """A JSON object whose members are not read."""


class _OldObject(msgspec.Struct, gc=False):
    metadata: _Members | None = None


# Members that the quick path reads as strings are typed `str`. kube-apiserver
# sends them as strings, and any other type, such as an integer too large
# for orjson, fails the decode and takes the full path.


class _EnvEntry(msgspec.Struct, gc=False):
    name: str | None = None
    value: str | None = None
    # Only its presence counts, so it is kept as raw bytes.
    valueFrom: msgspec.Raw | msgspec.UnsetType = msgspec.UNSET


class _Container(msgspec.Struct, gc=False):
    name: str | None = None
    env: list[_EnvEntry] | None = None


class _PodSpec(msgspec.Struct, gc=False):
    initContainers: list[_Container] | None = None
    containers: list[_Container] | None = None


class _Metadata(msgspec.Struct, gc=False):
    annotations: dict[str, str] | None = None


class _Pod(msgspec.Struct, gc=False):
    metadata: _Metadata | None = None
    spec: _PodSpec | None = None


class _Kind(msgspec.Struct, gc=False):
    group: str
    version: str
    kind: str


class _Request(msgspec.Struct, gc=False):
    uid: str
    kind: _Kind
    operation: str
    namespace: str | None = None
    subResource: str | None = None
    object: _Pod | None = None
    oldObject: _OldObject | None = None


class PodReview(msgspec.Struct, gc=False):
    """The members of an AdmissionReview that the quick path reads."""

    apiVersion: str
    kind: str
    request: _Request

    def log_fields(self) -> dict[str, Any]:
        """Return the request members that a review's log line names.

        The object's name and the user are not decoded, so a line written
        from these lacks them.
        """
        request = self.request
        return {
            "uid": request.uid,
            "namespace": request.namespace,
            "kind": {"kind": request.kind.kind},
            "operation": request.operation,
        }


_DECODER = msgspec.json.Decoder(PodReview)


def decode_pod_review(body: bytes) -> PodReview | None:
    """Decode the members of `body` that the quick path reads, or return None.

    None means that the full path must parse the body, because it is not
    valid JSON or UTF-8, or a member read here has a type that the envelope
    checks reject or that only the full path handles. The decoder checks the
    syntax of the members it skips but not their UTF-8, so that is checked
    here. One difference from `parse_review` remains: a number too large for
    a double, such as 1e999, in a member not read here decodes, where the
    full path rejects the body. kube-apiserver writes reviews with Go's
    encoding/json, which cannot encode such a number.
    """
    if not body.isascii():
        try:
            body.decode()
        except UnicodeDecodeError:
            return None
    try:
        return _DECODER.decode(body)
    except (msgspec.MsgspecError, RecursionError):
        # The decoder's depth limit is lower than orjson's, so a body
        # nested that deep takes the full path.
        # NOTE: msgspec's limit follows sys.getrecursionlimit(). Raised far
        # above its default, it would let a body nested past orjson's limit
        # decode here. Nothing in this project raises it.
        return None


# The references a scan finds, each as the container field, the container's
# index and name, the entry's index, the env var and the value.
Found = tuple[tuple[str, int, str, int, str, str], ...]

# The pods of a job share their env, so their responses differ only in the
# uid. The rest is cached for pods with at most MAX_CACHED_REFERENCES
# references whose container names, env var names and values have at most
# MAX_CACHED_CHARS characters together. The key is the references, the
# marker annotation's key and whether the pod has metadata and annotations.
# Another pod's response is built each time, because only the body size
# limits a name's length here, and a response is cached before its secrets
# are checked. So the cache contains at most RESPONSE_CACHE_SIZE small
# responses, with the names of secrets, keys, containers and env vars, never
# a secret's value. One is about 12 KB at most when the names are letters
# and digits. JSON writes a control character in 6 bytes, so names made of
# them give the largest, about 45 KB.
MAX_CACHED_REFERENCES = 32
MAX_CACHED_CHARS = 4096
RESPONSE_CACHE_SIZE = 128


class _StepAside(Exception):
    """Raised when the full path must respond to a pod.

    That is when one of its references is invalid, or it refers to too many
    secrets.
    """


class _Patched(NamedTuple):
    """The secrets a pod refers to, and its response after the uid."""

    keys: dict[str, frozenset[str]]
    tail: bytes


def _patched(
    found: Found,
    marker: str,
    has_metadata: bool,
    has_annotations: bool,
) -> _Patched:
    """Build the patch that converts the `found` references and sets the marker.

    Raises `_StepAside`, which is not cached, so the cache keeps only the
    responses of valid references.
    """
    operations = []
    injected = []
    keys: dict[str, set[str]] = {}
    for field, number, container, index, env_var, value in found:
        try:
            secret, key, value_from = _parsed(value)
        except InvalidReference:
            raise _StepAside from None
        used = keys.get(secret)
        if used is None:
            # The full path denies here, before it reads further.
            if len(keys) == MAX_SECRETS_PER_REVIEW:
                raise _StepAside
            used = keys[secret] = set()
        used.add(key)
        operations.append(
            {
                "op": "replace",
                "path": f"/spec/{field}/{number}/env/{index}",
                "value": {"name": env_var, "valueFrom": value_from},
            }
        )
        injected.append(f"{container}/{env_var}")

    # set_annotation reads only whether the metadata and its annotations
    # are there, as it does for the full path's dicts.
    metadata: dict[str, object] = {"annotations": {} if has_annotations else None}
    operations.append(
        set_annotation(
            metadata if has_metadata else None,
            marker,
            # The marker is a control annotation, so a pod that has one
            # took the full path, and there is no earlier value to keep.
            marker_value(None, injected),
        )
    )
    audit = orjson.dumps({"injected-env-count": str(len(injected))})
    patch = binascii.b2a_base64(orjson.dumps(operations), newline=False)
    return _Patched(
        {secret: frozenset(used) for secret, used in keys.items()},
        b',"allowed":true,"patch":"%s","patchType":"JSONPatch",'
        b'"auditAnnotations":%s}}' % (patch, audit),
    )


_cached_patched = lru_cache(maxsize=RESPONSE_CACHE_SIZE)(_patched)


def quick_response(
    review: PodReview, options: InjectionOptions, confirm: Confirm
) -> QuickAnswer | None:
    """Return the response to a usual Pod CREATE, or None to take the full path.

    `confirm` is asked once, with every secret the pod refers to.
    """
    # NOTE: a review that steps aside late, such as the first pod of a job
    # with a cold cache, pays for this scan and then for the full path.
    request = review.request
    start = _STARTS.get((review.apiVersion, review.kind))
    gvk = request.kind
    obj = request.object
    if (
        start is None
        or not request.uid
        or request.operation != "CREATE"
        or gvk.kind != "Pod"
        or gvk.group != ""
        or gvk.version != "v1"
        or request.subResource
        or obj is None
        or options.kinds.get(POD_KEY) is not _POD
    ):
        return None
    metadata = obj.metadata
    annotations = metadata.annotations if metadata is not None else None
    if annotations is not None:
        for key in options.control_keys:
            if key in annotations:
                return None
    spec = obj.spec
    if spec is None:
        return None

    found = []
    # The characters of the names and values in `found`.
    chars = 0
    for field, containers in (
        (INIT_CONTAINERS, spec.initContainers),
        (APP_CONTAINERS, spec.containers),
    ):
        if containers is None:
            continue
        for number, container in enumerate(containers):
            env = container.env
            if env is None:
                continue
            name = container.name
            if name is None:
                return None
            for index, entry in enumerate(env):
                value = entry.value
                if value is None or not value.startswith(PREFIX_WORDS):
                    continue
                if not value.startswith(PREFIX):
                    # A plain value such as "Secretary", or a misspelled
                    # reference, which the full path warns about.
                    if misspelled_prefix(value) is None:
                        continue
                    return None
                env_var = entry.name
                if entry.valueFrom is not msgspec.UNSET or env_var is None:
                    return None
                found.append((field, number, name, index, env_var, value))
                chars += len(name) + len(env_var) + len(value)

    uid = orjson.dumps(request.uid)
    if not found:
        return QuickAnswer(b'%s%s,"allowed":true}}' % (start, uid), False)

    small = len(found) <= MAX_CACHED_REFERENCES and chars <= MAX_CACHED_CHARS
    build = _cached_patched if small else _patched
    try:
        patched = build(
            tuple(found),
            options.keys.injected,
            metadata is not None,
            annotations is not None,
        )
    except _StepAside:
        return None
    namespace = request.namespace
    if not namespace or not confirm(namespace, patched.keys):
        return None
    return QuickAnswer(b"%s%s%s" % (start, uid, patched.tail), True)
