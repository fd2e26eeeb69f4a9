"""Raw AdmissionReview calls to a running service, as kube-apiserver posts them.

The admission caller in tests.harness.apiserver checks responses the way
kube-apiserver does and hides malformed responses behind its own errors. These
helpers send any body, well-formed or not, and return what came back.
"""

from __future__ import annotations

import ssl
import time
import uuid
from dataclasses import dataclass
from typing import Any

import httpx
import orjson

from tests.harness.service import WebhookService

REVIEW_VERSION = "admission.k8s.io/v1"


def pod_review(
    obj: dict[str, Any] | None,
    namespace: str,
    operation: str = "CREATE",
    uid: str | None = None,
) -> dict[str, Any]:
    """Wrap a Pod in a v1 AdmissionReview like kube-apiserver sends it."""
    request = {
        "uid": uid or str(uuid.uuid4()),
        "kind": {"group": "", "version": "v1", "kind": "Pod"},
        "resource": {"group": "", "version": "v1", "resource": "pods"},
        "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
        "requestResource": {"group": "", "version": "v1", "resource": "pods"},
        "namespace": namespace,
        "operation": operation,
        "userInfo": {"username": "alice", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
    }
    return {"apiVersion": REVIEW_VERSION, "kind": "AdmissionReview", "request": request}


@dataclass(frozen=True)
class Reply:
    """One HTTP response; `status` 0 means the call failed before a response."""

    status: int
    headers: dict[str, str]
    body: bytes
    seconds: float
    error: str = ""

    def json(self) -> Any:
        return orjson.loads(self.body)


def client_for(service: WebhookService, timeout: float = 10.0) -> httpx.Client:
    """Return an HTTPS client that trusts the service's CA, with keep-alive."""
    context = ssl.create_default_context(cadata=service.certificate.ca_pem.decode())
    return httpx.Client(base_url=service.url, verify=context, timeout=timeout)


def post(
    client: httpx.Client,
    body: bytes,
    timeout_parameter: str = "5s",
    content_type: str = "application/json",
    path: str = "/mutate",
) -> Reply:
    """POST `body` to `path?timeout=...` and return the reply, never raising."""
    started = time.monotonic()
    try:
        response = client.post(
            f"{path}?timeout={timeout_parameter}",
            content=body,
            headers={"Content-Type": content_type},
        )
    except httpx.HTTPError as error:
        return Reply(0, {}, b"", time.monotonic() - started, repr(error))
    return Reply(
        response.status_code,
        {key.lower(): value for key, value in response.headers.items()},
        response.content,
        time.monotonic() - started,
    )


def post_review(
    service: WebhookService, review: dict[str, Any], timeout_parameter: str = "5s"
) -> Reply:
    """POST one review on a new connection."""
    with client_for(service) as client:
        return post(client, orjson.dumps(review), timeout_parameter)
