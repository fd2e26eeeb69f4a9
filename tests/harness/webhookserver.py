"""A tiny HTTPS webhook server for testing the admission caller itself.

`handler` receives the decoded AdmissionReview and returns a `Reply`: a
status, a body (dict or raw bytes) and headers, with an optional delay.
It records every review it gets. Example::

    def allow(review):
        return Reply(body=allow_response(review))

    with WebhookServer(allow, certs.issue("hook.ns.svc")) as server:
        services = {"hook.ns.svc:443": ("127.0.0.1", server.port)}
"""

from __future__ import annotations

import base64
import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from tests.harness.certs import ServingCertificate

Object = dict[str, Any]


@dataclass
class Reply:
    """What the test server answers: a JSON body (dict) or raw bytes."""

    body: Object | bytes = b""
    status: int = 200
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0  # seconds before answering


def allow_response(
    review: Object, patch: list[Object] | None = None, **extra: Any
) -> Object:
    """Build a v1 response that allows the request, with an optional JSON patch."""
    response: Object = {"uid": review["request"]["uid"], "allowed": True, **extra}
    if patch is not None:
        response["patchType"] = "JSONPatch"
        response["patch"] = base64.b64encode(json.dumps(patch).encode()).decode()
    return {
        "apiVersion": review.get("apiVersion", "admission.k8s.io/v1"),
        "kind": "AdmissionReview",
        "response": response,
    }


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        server: WebhookServer = self.server.owner  # type: ignore[attr-defined]
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        review = json.loads(body)
        server.record(self.path, review)
        reply = server.handler(review)
        if reply.delay:
            time.sleep(reply.delay)
        data = (
            reply.body
            if isinstance(reply.body, bytes)
            else json.dumps(reply.body).encode()
        )
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in reply.headers.items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)


class WebhookServer:
    """Serve `handler` over TLS on 127.0.0.1; a context manager."""

    def __init__(
        self, handler: Callable[[Object], Reply], certificate: ServingCertificate
    ) -> None:
        self.handler = handler
        self.reviews: list[Object] = []
        self.paths: list[str] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self._server.daemon_threads = True
        self._server.owner = self  # type: ignore[attr-defined]
        self._server.socket = certificate.server_context().wrap_socket(
            self._server.socket, server_side=True
        )
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            daemon=True,
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def record(self, path: str, review: Object) -> None:
        with self._lock:
            self.paths.append(path)
            self.reviews.append(review)

    def __enter__(self) -> WebhookServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()
