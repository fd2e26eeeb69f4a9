"""HTTP side of the fake API server: verbs, watch streams and faults.

The handler runs in one thread per connection (ThreadingHTTPServer) and
speaks HTTP/1.1 with keep-alive, so clients reuse connections as they do
with kube-apiserver. TLS is wrapped per connection in `setup()` so that a
slow handshake never blocks the accept loop.
"""

from __future__ import annotations

import json
import logging
import socket
import ssl
import struct
import time
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit

import orjson

from tests.harness import kubestatus
from tests.harness.kuberoutes import (
    Route,
    apply_patch,
    decode_continue,
    encode_continue,
    list_key,
    parse_route,
    selected,
    selectors,
)
from tests.harness.kubestatus import ApiError
from tests.harness.kubestore import Object, Resource, WatchEvent

if TYPE_CHECKING:
    from tests.harness.fakekube import FakeKube

logger = logging.getLogger(__name__)


class KubeHandler(BaseHTTPRequestHandler):
    """One connection to the fake API; `server.fake` is the owning FakeKube."""

    protocol_version = "HTTP/1.1"
    server_version = "fakekube"
    # Idle keep-alive connections close after this many seconds.
    timeout = 120
    fake: FakeKube

    def setup(self) -> None:
        self.fake = self.server.fake  # type: ignore[attr-defined]
        self.tls_ok = True
        # Headers and body leave in separate writes; without TCP_NODELAY,
        # Nagle's algorithm and delayed ACKs add about 40 ms to each reply.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        try:
            self.request = self.fake.ssl_context.wrap_socket(
                self.request, server_side=True
            )
        except (ssl.SSLError, OSError):
            self.tls_ok = False
        self.fake.track(self.request, True)
        if self.tls_ok:
            super().setup()

    def handle(self) -> None:
        if self.tls_ok:
            try:
                super().handle()
            except (ConnectionError, ssl.SSLError, TimeoutError):
                pass

    def finish(self) -> None:
        self.fake.track(self.request, False)
        if not self.tls_ok:
            # setup skipped the socket files: a failed handshake closes it.
            return
        try:
            super().finish()
        except (ConnectionError, ssl.SSLError, OSError):
            pass

    def log_message(self, format: str, *args: Any) -> None:
        logger.debug("fakekube request", extra={"line": format % args})

    def do_GET(self) -> None:
        self.dispatch()

    do_POST = do_PUT = do_PATCH = do_DELETE = do_GET

    def dispatch(self) -> None:
        url = urlsplit(self.path)
        query = {
            key: values[-1]
            for key, values in parse_qs(url.query, keep_blank_values=True).items()
        }
        route = parse_route(self.command, url.path, query)
        body = self._read_body()
        token = self._bearer_token()
        record = self.fake.log_request(self.command, route, url.path, token)
        try:
            self._serve(route, url.path, body, token, record)
        except ApiError as error:
            record.status = error.code
            self.send_json(error.code, error.body(), error.headers)
        except _Reset:
            record.status = 0
            self._reset()

    def _serve(
        self, route: Route, path: str, body: bytes, token: str | None, record: Any
    ) -> None:
        user = self.fake.authenticate(token)
        record.user = user
        fault = self.fake.match_fault(route, path)
        if fault is not None:
            self._apply_fault(fault, route, user)
            if fault.silent_watch and route.verb == "watch":
                record.status = 200
                self._silent_watch(route)
                return
        if route.resource is None:
            self._serve_unrouted(path)
            record.status = 200
            return
        self.fake.authorize(user, route)
        if route.verb == "watch":
            record.status = 200
            self._watch(route)
            return
        code, result = self._call(route, body)
        record.status = code
        self.send_json(code, result)

    def _serve_unrouted(self, path: str) -> None:
        if path == "/version":
            self.send_json(
                200, {"major": "1", "minor": "30", "gitVersion": "v1.30.0-fakekube"}
            )
            return
        raise kubestatus.ApiError(
            404, "NotFound", "the server could not find the requested resource", {}
        )

    def _apply_fault(self, fault: Any, route: Route, user: str) -> None:
        if fault.latency:
            time.sleep(fault.latency)
        if fault.reset:
            raise _Reset
        if fault.status is not None:
            raise fault.error(route, user)

    def _call(self, route: Route, body: bytes) -> tuple[int, Object]:
        store, resource = self.fake.store, route.resource
        assert resource is not None
        if route.verb == "get":
            return 200, store.get(resource, route.namespace, route.name)
        if route.verb == "list":
            return 200, self._list(route)
        if route.verb == "create":
            return 201, store.create(resource, route.namespace, self._json(body))
        if route.verb == "update":
            return 200, store.update(
                resource, route.namespace, route.name, self._json(body)
            )
        if route.verb == "patch":
            return 200, self._patch(route, body)
        if route.verb == "delete":
            return self._delete(route, body)
        if route.verb == "deletecollection":
            return 200, self._delete_collection(route)
        raise kubestatus.method_not_allowed(self.command)

    def _list(self, route: Route) -> Object:
        assert route.resource is not None
        labels, fields = selectors(route)
        items, revision = self.fake.store.list_objects(
            route.resource, route.namespace, labels, fields
        )
        metadata: Object = {"resourceVersion": str(revision)}
        items = self._page(route, items, metadata)
        for item in items:
            # kube-apiserver leaves kind and apiVersion out of list items.
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return {
            "kind": f"{route.resource.kind}List",
            "apiVersion": route.resource.api_version,
            "metadata": metadata,
            "items": items,
        }

    def _page(
        self, route: Route, items: list[Object], metadata: Object
    ) -> list[Object]:
        """Apply `limit` and `continue`, setting `continue` and `remainingItemCount`.

        NOTE: later pages come from the current objects, not from a snapshot
        at the first page's resourceVersion as etcd serves them.
        """
        token = route.query.get("continue", "")
        if token:
            revision, after = decode_continue(token)
            self.fake.store.events_after(revision)  # 410 once compacted
            metadata["resourceVersion"] = str(revision)
            items = [item for item in items if list_key(item) > after]
        limit = int(route.query.get("limit") or 0)
        if limit <= 0 or len(items) <= limit:
            return items
        page = items[:limit]
        revision = int(metadata["resourceVersion"])
        metadata["continue"] = encode_continue(revision, list_key(page[-1]))
        metadata["remainingItemCount"] = len(items) - limit
        return page

    def _patch(self, route: Route, body: bytes) -> Object:
        assert route.resource is not None
        store = self.fake.store
        content_type = (self.headers.get("Content-Type") or "").split(";")[0].strip()
        with store.changed:
            current = store.get(route.resource, route.namespace, route.name)
            patched = apply_patch(current, content_type, body)
            if not isinstance(patched, dict):
                raise kubestatus.bad_request("the patch did not produce a JSON object")
            _check_uid_unchanged(route.resource, current, patched)
            # The version the patch leaves in metadata acts as a precondition.
            if (
                patched.get("metadata", {}).get("resourceVersion")
                != current["metadata"]["resourceVersion"]
            ):
                if patched.get("metadata", {}).get("resourceVersion"):
                    raise kubestatus.conflict(
                        route.resource.group,
                        route.resource.plural,
                        route.name,
                        kubestatus.MODIFIED,
                    )
                patched.setdefault("metadata", {})["resourceVersion"] = current[
                    "metadata"
                ]["resourceVersion"]
            return store.update(route.resource, route.namespace, route.name, patched)

    def _delete(self, route: Route, body: bytes) -> tuple[int, Object]:
        assert route.resource is not None
        options = self._json(body) if body.strip() else {}
        obj, deleted = self.fake.store.delete(
            route.resource, route.namespace, route.name, options.get("preconditions")
        )
        if not deleted or route.resource.kind in ("Namespace", "Pod"):
            return 200, obj
        meta = obj["metadata"]
        return 200, kubestatus.success_body(
            meta["name"], route.resource.group, route.resource.plural, meta["uid"]
        )

    def _delete_collection(self, route: Route) -> Object:
        listed = self._list(route)
        for item in listed["items"]:
            assert route.resource is not None
            self.fake.store.delete(
                route.resource,
                route.namespace or item["metadata"].get("namespace", ""),
                item["metadata"]["name"],
            )
        return listed

    def _watch(self, route: Route) -> None:
        assert route.resource is not None
        labels, fields = selectors(route)
        store, resource = self.fake.store, route.resource
        timeout = float(route.query.get("timeoutSeconds") or self.fake.watch_timeout)
        deadline = time.monotonic() + timeout
        bookmarks = route.query.get("allowWatchBookmarks") in ("true", "1")
        start = route.query.get("resourceVersion", "")
        self._start_stream()

        def selects(obj: Object) -> bool:
            in_namespace = (
                not route.namespace
                or obj["metadata"].get("namespace") == route.namespace
            )
            return in_namespace and selected(obj, labels, fields)

        if start in ("", "0"):
            items, last = store.list_objects(resource, route.namespace, labels, fields)
            for item in items:
                self._send_event("ADDED", item)
        else:
            last = int(start) if start.isdigit() else 0
        next_bookmark = time.monotonic() + self.fake.bookmark_interval
        while not self.fake.stopping.is_set():
            try:
                events = store.events_after(last)
            except ApiError as error:
                self._send_event("ERROR", error.body())
                break
            for event in events:
                last = event.resource_version
                self._send_change(event, resource, selects)
            now = time.monotonic()
            if now >= deadline:
                break
            if bookmarks and now >= next_bookmark:
                self._send_bookmark(resource, last)
                next_bookmark = now + self.fake.bookmark_interval
            wake = min(deadline, next_bookmark) if bookmarks else deadline
            with store.changed:
                if store.revision == last:
                    # Wake at least twice a second to notice a stopping server.
                    store.changed.wait(min(wake - now, 0.5))
        self._end_stream()

    def _send_change(self, event: WatchEvent, resource: Resource, selects: Any) -> None:
        if event.resource is not resource:
            return
        now_in = selects(event.obj)
        was_in = event.old is not None and selects(event.old)
        if event.type == "MODIFIED" and now_in != was_in:
            # To this watch, an object entering or leaving the selection
            # looks created or deleted.
            self._send_event("ADDED" if now_in else "DELETED", event.obj)
        elif now_in:
            self._send_event(event.type, event.obj)

    def _send_bookmark(self, resource: Resource, revision: int) -> None:
        self._send_event(
            "BOOKMARK",
            {
                "kind": resource.kind,
                "apiVersion": resource.api_version,
                "metadata": {"resourceVersion": str(revision)},
            },
        )

    def _silent_watch(self, route: Route) -> None:
        timeout = float(route.query.get("timeoutSeconds") or self.fake.watch_timeout)
        self._start_stream()
        self.fake.stopping.wait(timeout)
        self._end_stream()

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _send_event(self, kind: str, obj: Object) -> None:
        self._chunk(orjson.dumps({"type": kind, "object": obj}) + b"\n")

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()

    def send_json(
        self, code: int, body: Object, headers: dict[str, str] | None = None
    ) -> None:
        data = orjson.dumps(body)
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.end_headers()
        self.wfile.write(data)

    def _reset(self) -> None:
        # SO_LINGER with a zero timeout makes close() send RST instead of FIN.
        self.request.setsockopt(
            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
        )
        self.close_connection = True
        self.request.close()

    def _read_body(self) -> bytes:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _bearer_token(self) -> str | None:
        # kube-apiserver reads the scheme case-insensitively, and the client's
        # in-cluster loader sends it in lower case.
        scheme, _, token = (self.headers.get("Authorization") or "").partition(" ")
        return token.strip() if scheme.lower() == "bearer" else None

    @staticmethod
    def _json(body: bytes) -> Object:
        try:
            parsed = json.loads(body)
        except ValueError as error:
            raise kubestatus.bad_request(
                f"error decoding request body: {error}"
            ) from None
        if not isinstance(parsed, dict):
            raise kubestatus.bad_request("the request body is not a JSON object")
        return parsed


class _Reset(Exception):
    """Raised by a fault rule to drop the connection with a TCP reset."""


def _check_uid_unchanged(resource: Resource, current: Object, patched: Object) -> None:
    """Reject a patch that changes metadata.uid; removing it keeps the old one."""
    uid = patched.get("metadata", {}).get("uid")
    if uid and uid != current["metadata"]["uid"]:
        raise kubestatus.invalid(
            resource.kind,
            resource.group,
            current["metadata"]["name"],
            [("metadata.uid", f'Invalid value: "{uid}": field is immutable')],
        )
