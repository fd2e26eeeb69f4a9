"""Floor servers: the least Python code that responds to the benchmark's review.

`python -m bench.ceiling` loads these next to the reference and the webhook
to show how close to the reference any webhook written in Python can get on
this stack. Each is a raw ASGI app like the reference, served the same way
by `python -m bench.reference --app NAME`.

- `sized` parses the review and sends a stored copy of the webhook's
  response to the benchmark's review, with the request's uid. It costs what
  the reference costs plus the size of the response: its TLS records, its
  encoding and its copy through the kernel.
- `rewrite` turns each `SECRET:<secret>,<key>` env value of the pod into a
  `secretKeyRef` entry and returns the patch. It checks nothing, so it is
  not a correct webhook. It only shows the cost of finding the values and
  building the patch.
- `minimal` sends the webhook's response with no more code than that
  needs. It checks each reference's form and checks the keys against a
  table of the benchmark's secrets in memory, which stands for the
  webhook's warm cache. Then it adds the annotation that lists the injected
  env vars. It has no deadline, no metrics, no logging, no API client and
  no check of the kind, the operation or the annotations, and it handles
  pods only.
"""

from __future__ import annotations

import base64
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

PREFIX = "SECRET:"
MARKER_PATH = "/metadata/annotations/runai-secrets-webhook~1injected"
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


def patched(uid: str, operations: list[dict[str, Any]], **fields: Any) -> bytes:
    patch = base64.b64encode(orjson.dumps(operations)).decode()
    return encode_response(uid, True, patch=patch, patchType="JSONPatch", **fields)


def denied(uid: str, code: int, message: str) -> bytes:
    return encode_response(uid, False, status={"code": code, "message": message})


def secret_entry(name: str, secret: str, key: str) -> dict[str, Any]:
    return {"name": name, "valueFrom": {"secretKeyRef": {"name": secret, "key": key}}}


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
                    operations.append(
                        {
                            "op": "replace",
                            "path": f"/spec/{field}/{number}/env/{index}",
                            "value": secret_entry(entry["name"], secret, key),
                        }
                    )
    await respond(send, 200, JSON_HEADERS, patched(request["uid"], operations))


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
                secret, comma, key = value[len(PREFIX) :].partition(",")
                if (
                    not comma
                    or len(secret) > MAX_NAME_CHARS
                    or not _SECRET_NAME(secret)
                    or len(key) > MAX_NAME_CHARS
                    or not _SECRET_KEY(key)
                    or key in (".", "..")
                ):
                    return denied(uid, 400, f"{value!r} is not a secret reference")

                known = keys.get((namespace, secret))
                if known is None or key not in known:
                    return denied(uid, 403, f"secret {secret} has no key {key}")
                name = entry["name"]
                operations.append(
                    {
                        "op": "replace",
                        "path": f"/spec/{field}/{number}/env/{index}",
                        "value": secret_entry(name, secret, key),
                    }
                )
                injected.append(f"{container['name']}/{name}")

    if not operations:
        return encode_response(uid, True)
    injected.sort()
    operations.append({"op": "add", "path": MARKER_PATH, "value": ",".join(injected)})
    audit = {"injected-env-count": str(len(injected))}
    return patched(uid, operations, auditAnnotations=audit)


def minimal_app(keys: KeyTable) -> ASGIApp:
    async def minimal(receive: Receive, send: Send) -> None:
        request = orjson.loads(await read_body(receive))["request"]
        await respond(send, 200, JSON_HEADERS, minimal_response(request, keys))

    return posts_only(minimal)


def sized_app(stored: bytes) -> ASGIApp:
    """Make an app that sends the response of `stored` with each request's uid."""
    response = orjson.loads(stored)["response"]

    async def sized(receive: Receive, send: Send) -> None:
        request = orjson.loads(await read_body(receive))["request"]
        body = orjson.dumps(
            {
                "apiVersion": "admission.k8s.io/v1",
                "kind": "AdmissionReview",
                "response": {**response, "uid": request["uid"]},
            }
        )
        await respond(send, 200, JSON_HEADERS, body)

    return posts_only(sized)


def floor_app(name: str) -> ASGIApp:
    """Return the floor server called `name`: sized, rewrite or minimal."""
    keys = benchmark_keys()
    if name == "minimal":
        return minimal_app(keys)
    if name == "rewrite":
        return posts_only(rewrite)
    if name == "sized":
        review = orjson.loads(bodies.training_review())
        return sized_app(minimal_response(review["request"], keys))
    raise ValueError(
        f"no floor server is called {name!r}; use one of {', '.join(FLOORS)}"
    )


FLOORS = ("sized", "rewrite", "minimal")
