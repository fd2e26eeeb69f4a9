"""Floor servers: lean Python code that responds to the benchmark's review.

`python -m bench.ceiling` loads these next to the reference and the webhook
to show how close to the reference a webhook written in Python gets on this
stack when it does little more than the job itself. Each is a raw ASGI app
like the reference, served the same way by
`python -m bench.reference --app NAME`. They are the leanest code we wrote,
not a proven minimum: a leaner version may do better.

- `sized` parses the review and sends a stored copy of the webhook's
  response to the benchmark's review, with the request's uid. It costs what
  the reference costs plus the size of the response: its TLS records, its
  encoding and its copy through the kernel.
- `rewrite` turns each `SECRET:<secret>,<key>` env value of the pod into a
  `secretKeyRef` entry and returns the patch. It checks nothing, so it is
  not a correct webhook. It only shows the cost of finding the values and
  building the patch.
- `minimal` sends the webhook's response to this review with no more code
  than that needs. It checks each reference's form, caching the result per
  value as the webhook does, and checks the keys against a table of the
  benchmark's secrets in memory, which stands for the webhook's warm cache.
  Then it adds the annotation that lists the injected env vars. It has no
  deadline, metrics, logging or API client. It handles pods only and does
  not check the kind, the operation, the annotations, `valueFrom` entries
  or lower case `secret:` values.
- `bare` makes the webhook's full-path admission calls (parse, plan,
  decide, encode) with a table that confirms the benchmark's secrets, and
  nothing around them: no deadline, limit, metrics, logging, cache or API
  client. Its distance from the reference is the cost of the full path's
  logic. The webhook takes its quick path on this review instead
  (`webhook.admission.quick`), so it may be closer to the reference than
  `bare` is.

`rewrite` and `minimal` join the response from fixed bytes and the encoded
uid and patch, which costs less than encoding a dict around them.
"""

from __future__ import annotations

import binascii
import functools
import re
from collections.abc import Mapping
from typing import Any

import orjson

from bench import bodies
from bench.asgi import (
    JSON_HEADERS,
    ASGIApp,
    Receive,
    Send,
    posts_only,
    read_body,
    respond,
)
from webhook.admission import reviews
from webhook.admission.annotations import AnnotationKeys
from webhook.admission.injection import InjectionOptions, Plan, decide, plan_review
from webhook.admission.lookups import SecretLookup
from webhook.admission.patches import join_pointer

PREFIX = "SECRET:"
# The webhook's marker annotation, with its default prefix.
MARKER_PATH = join_pointer(
    "/metadata/annotations", AnnotationKeys.for_prefix().injected
)
POD_CONTAINER_FIELDS = ("initContainers", "containers")

# The same forms as kube-apiserver's validation of a secretKeyRef.
_SECRET_NAME = re.compile(
    r"[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*"
).fullmatch
_SECRET_KEY = re.compile(r"[-._a-zA-Z0-9]+").fullmatch
MAX_NAME_CHARS = 253

# Key names of each secret the minimal server confirms, by (namespace, name).
KeyTable = Mapping[tuple[str, str], frozenset[str]]


def benchmark_keys() -> dict[tuple[str, str], frozenset[str]]:
    """Return the key names of the secrets that the benchmark's review uses."""
    return {
        (bodies.NAMESPACE, name): frozenset(keys)
        for name, keys in bodies.SECRETS.items()
    }


def encode_response(uid: str, allowed: bool, **fields: Any) -> bytes:
    """Encode an AdmissionReview response."""
    response = {"uid": uid, "allowed": allowed, **fields}
    return orjson.dumps(
        {
            "apiVersion": "admission.k8s.io/v1",
            "kind": "AdmissionReview",
            "response": response,
        }
    )


# A patched response is joined from these pieces and the encoded values,
# which costs less than encoding a new dict around the patch.
_PATCHED_START = (
    b'{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","response":{"uid":'
)
_PATCH_START = b',"allowed":true,"patch":"'
_PATCH_END = b'","patchType":"JSONPatch"'
_AUDIT_START = b',"auditAnnotations":'
_PATCHED_END = b"}}"


def patched(
    uid: str, operations: list[dict[str, Any]], audit: Mapping[str, str] | None = None
) -> bytes:
    """Encode an allowing response that carries `operations` as its JSON patch."""
    patch = binascii.b2a_base64(orjson.dumps(operations), newline=False)
    parts = [_PATCHED_START, orjson.dumps(uid), _PATCH_START, patch, _PATCH_END]
    if audit:
        parts += [_AUDIT_START, orjson.dumps(audit)]
    parts.append(_PATCHED_END)
    return b"".join(parts)


def denied(uid: str, code: int, message: str) -> bytes:
    return encode_response(uid, False, status={"code": code, "message": message})


async def rewrite(receive: Receive, send: Send) -> None:
    """Rewrite every placeholder of the pod into a secretKeyRef, checking nothing."""
    request = orjson.loads(await read_body(receive))["request"]
    spec = request["object"]["spec"]
    operations = []
    for field in POD_CONTAINER_FIELDS:
        for number, container in enumerate(spec.get(field, ())):
            for index, entry in enumerate(container.get("env", ())):
                value = entry.get("value")
                if value is not None and value.startswith(PREFIX):
                    secret, _, key = value[len(PREFIX) :].partition(",")
                    ref = {"name": secret, "key": key}
                    operations.append(
                        {
                            "op": "replace",
                            "path": f"/spec/{field}/{number}/env/{index}",
                            "value": {
                                "name": entry["name"],
                                "valueFrom": {"secretKeyRef": ref},
                            },
                        }
                    )
    await respond(send, 200, JSON_HEADERS, patched(request["uid"], operations))


@functools.lru_cache(maxsize=4096)
def parse_reference(value: str) -> tuple[str, str] | None:
    """Split a `SECRET:` value into secret and key, or return None if invalid.

    Cached, as the webhook caches its own parse, because every pod of a job
    repeats the same values.
    """
    secret, comma, key = value[len(PREFIX) :].partition(",")
    if (
        not comma
        or len(secret) > MAX_NAME_CHARS
        or not _SECRET_NAME(secret)
        or len(key) > MAX_NAME_CHARS
        or not _SECRET_KEY(key)
        or key in (".", "..")
    ):
        return None
    return secret, key


def minimal_response(request: Mapping[str, Any], keys: KeyTable) -> bytes:
    """Build the response the webhook sends to a pod's review when its cache is warm."""
    uid = request["uid"]
    namespace = request["namespace"]
    spec = request["object"]["spec"]
    operations = []
    injected = []

    for field in POD_CONTAINER_FIELDS:
        for number, container in enumerate(spec.get(field, ())):
            for index, entry in enumerate(container.get("env", ())):
                value = entry.get("value")
                if type(value) is not str or not value.startswith(PREFIX):
                    continue
                parsed = parse_reference(value)
                if parsed is None:
                    return denied(uid, 400, f"{value!r} is not a secret reference")

                secret, key = parsed
                known = keys.get((namespace, secret))
                if known is None or key not in known:
                    return denied(uid, 403, f"secret {secret} has no key {key}")
                name = entry["name"]
                ref = {"name": secret, "key": key}
                operations.append(
                    {
                        "op": "replace",
                        "path": f"/spec/{field}/{number}/env/{index}",
                        "value": {"name": name, "valueFrom": {"secretKeyRef": ref}},
                    }
                )
                injected.append(f"{container['name']}/{name}")

    if not operations:
        return encode_response(uid, True)
    injected.sort()
    operations.append({"op": "add", "path": MARKER_PATH, "value": ",".join(injected)})
    return patched(uid, operations, {"injected-env-count": str(len(injected))})


def minimal_app(keys: KeyTable) -> ASGIApp:
    async def minimal(receive: Receive, send: Send) -> None:
        request = orjson.loads(await read_body(receive))["request"]
        await respond(send, 200, JSON_HEADERS, minimal_response(request, keys))

    return posts_only(minimal)


def bare_app(keys: KeyTable) -> ASGIApp:
    """Make an app that makes only the webhook's admission calls.

    `keys` stands for the webhook's warm cache: a secret it lists is found
    with those keys, any other is not found.
    """
    options = InjectionOptions()
    found = {place: SecretLookup.found(names) for place, names in keys.items()}
    not_found = SecretLookup.not_found()

    async def bare(receive: Receive, send: Send) -> None:
        review = reviews.parse_review(await read_body(receive))
        outcome = plan_review(review, options)
        if isinstance(outcome, Plan):
            namespace = outcome.namespace
            lookups = {
                secret: found.get((namespace, secret), not_found)
                for secret in outcome.keys
            }
            outcome = decide(outcome, lookups)
        await respond(send, 200, JSON_HEADERS, reviews.encode_response(review, outcome))

    return posts_only(bare)


def sized_app(stored: bytes) -> ASGIApp:
    """Make an app that sends the response of `stored` with each request's uid."""
    response = orjson.loads(stored)["response"]
    fields = {k: v for k, v in response.items() if k not in ("uid", "allowed")}

    async def sized(receive: Receive, send: Send) -> None:
        request = orjson.loads(await read_body(receive))["request"]
        body = encode_response(request["uid"], response["allowed"], **fields)
        await respond(send, 200, JSON_HEADERS, body)

    return posts_only(sized)


def floor_app(name: str) -> ASGIApp:
    """Return the floor server called `name`: sized, rewrite, minimal or bare."""
    keys = benchmark_keys()
    if name == "minimal":
        return minimal_app(keys)
    if name == "rewrite":
        return posts_only(rewrite)
    if name == "bare":
        return bare_app(keys)
    if name == "sized":
        review = orjson.loads(bodies.training_review())
        return sized_app(minimal_response(review["request"], keys))
    raise ValueError(
        f"no floor server is called {name!r}; use one of {', '.join(FLOORS)}"
    )


FLOORS = ("sized", "rewrite", "minimal", "bare")
