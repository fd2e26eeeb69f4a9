"""The quick path: one pass that responds to the usual review, or steps aside.

The pods of a job share their env, so after the first one the usual
review is the creation of a Pod whose `SECRET:` values are well formed and
whose secrets the cache confirms. That is true while the cache keeps them,
`--cache-ttl` seconds (5 by default) after a lookup. With the cache off,
only pods without references take this path. For such a review
`quick_response` builds the response in one pass over the containers'
env, with none of the general machinery: no kind table walk, pod template
annotations, plan, decision or response dict. On anything else it returns
None, and the caller takes the full path (`plan_review`, `decide`,
`encode_response`), which handles every review.

Where it responds, the quick path must send the very bytes that the full
path sends. So it steps aside at the first thing that could lead to a
denial, a warning or a different patch:

- another kind, operation or subresource, or a control annotation;
- an env entry or a container of an unusual shape;
- a reference that is invalid or misspelled (such as `secret:` or
  `SECRETS:`), or `valueFrom` next to a reference;
- more different secrets than `MAX_SECRETS_PER_REVIEW`, or no namespace;
- a secret that the cache does not confirm.

tests/admission/test_quick.py compares both paths on generated reviews.
"""

import binascii
from collections.abc import Callable, Mapping
from functools import lru_cache
from typing import Any, NamedTuple

import orjson

from webhook.admission.injection import InjectionOptions
from webhook.admission.markers import marker_operation
from webhook.admission.podspecs import BUILTIN_KINDS
from webhook.admission.references import (
    PARSED_CACHE_SIZE,
    PREFIX,
    InvalidReference,
    parse_reference,
)
from webhook.admission.reviews import API_VERSIONS, REVIEW_KIND, Review
from webhook.admission.scanning import (
    APP_CONTAINERS,
    INIT_CONTAINERS,
    MAX_SECRETS_PER_REVIEW,
    PREFIX_WORDS,
    misspelled_prefix,
)

# Confirms, without I/O, that each secret in a namespace exists there with
# at least the keys the map lists for it.
Confirm = Callable[[str, Mapping[str, set[str]]], bool]

POD_KEY = ("", "v1", "Pod")
_POD = next(kind for kind in BUILTIN_KINDS if kind.key() == POD_KEY)
_POD_FIELDS = (INIT_CONTAINERS, APP_CONTAINERS)

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


def quick_response(
    review: Review, options: InjectionOptions, confirm: Confirm
) -> QuickAnswer | None:
    """Return the response to a usual Pod CREATE, or None to take the full path.

    `confirm` is asked once, with every secret the pod refers to.
    """
    # NOTE: a review that steps aside late, such as the first pod of a job
    # with a cold cache, pays for this scan and then for the full path.
    request = review["request"]
    start = _STARTS.get((review["apiVersion"], review["kind"]))
    gvk = request["kind"]
    if (
        start is None
        or request["operation"] != "CREATE"
        or gvk["kind"] != "Pod"
        or gvk["group"] != ""
        or gvk["version"] != "v1"
        or request.get("subResource")
        or options.kinds.get(POD_KEY) is not _POD
    ):
        return None
    obj = request.get("object")
    if type(obj) is not dict:
        return None
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if metadata is not None else None
    if annotations is not None:
        if type(annotations) is not dict:
            return None
        for key in options.control_keys:
            if key in annotations:
                return None
    spec = obj.get("spec")
    if type(spec) is not dict:
        return None

    operations = []
    injected = []
    keys: dict[str, set[str]] = {}
    for field in _POD_FIELDS:
        containers = spec.get(field)
        if containers is None:
            continue
        if type(containers) is not list:
            return None
        for number, container in enumerate(containers):
            if type(container) is not dict:
                return None
            env = container.get("env")
            if env is None:
                continue
            name = container.get("name")
            if type(env) is not list or type(name) is not str:
                return None
            for index, entry in enumerate(env):
                if type(entry) is not dict:
                    return None
                value = entry.get("value")
                if type(value) is not str or not value.startswith(PREFIX_WORDS):
                    continue
                if not value.startswith(PREFIX):
                    # A plain value such as "Secretary", or a misspelled
                    # reference, which the full path warns about.
                    if misspelled_prefix(value) is None:
                        continue
                    return None
                env_var = entry.get("name")
                if "valueFrom" in entry or type(env_var) is not str:
                    return None
                try:
                    secret, key, value_from = _parsed(value)
                except InvalidReference:
                    return None
                used = keys.get(secret)
                if used is None:
                    # The full path denies here, before it reads further.
                    if len(keys) == MAX_SECRETS_PER_REVIEW:
                        return None
                    used = keys[secret] = set()
                used.add(key)
                operations.append(
                    {
                        "op": "replace",
                        "path": f"/spec/{field}/{number}/env/{index}",
                        "value": {"name": env_var, "valueFrom": value_from},
                    }
                )
                injected.append(f"{name}/{env_var}")

    uid = orjson.dumps(request["uid"])
    if not operations:
        return QuickAnswer(b'%s%s,"allowed":true}}' % (start, uid), False)
    namespace = request.get("namespace")
    if not namespace or not confirm(namespace, keys):
        return None

    operations.append(marker_operation(obj, options.keys.injected, injected))
    audit = orjson.dumps({"injected-env-count": str(len(injected))})
    patch = orjson.dumps(operations)
    return QuickAnswer(
        b'%s%s,"allowed":true,"patch":"%s","patchType":"JSONPatch",'
        b'"auditAnnotations":%s}}'
        % (start, uid, binascii.b2a_base64(patch, newline=False), audit),
        True,
    )
