"""A stateful fake Kubernetes API server over TLS on 127.0.0.1, for tests.

The real `kubernetes` client reaches it through a kubeconfig that the fake
writes (CA data, server URL, bearer token or token file). Errors carry real
`Status` bodies. Tests control it directly: preload and edit objects, read
the request log, inject faults and RBAC denials, rotate or revoke tokens.

In a test::

    with FakeKube() as kube:
        kube.add_secret("team-a", "db", {"password": "s3cret"})
        api = kubernetes.client.CoreV1Api(kube.api_client())
        api.read_namespaced_secret("db", "team-a")
        assert kube.count(verb="get", resource="secrets") == 1

As a process (for benchmarks and multi-process tests)::

    python -m tests.harness.fakekube --port 0 --state-file objects.yaml \\
        --kubeconfig /tmp/kubeconfig

prints one JSON line with `server` and `kubeconfig`, then serves until
SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import base64
import functools
import json
import os
import signal
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterable, Mapping
from http.server import ThreadingHTTPServer
from pathlib import Path
from types import TracebackType
from typing import Any

import trustme
import yaml

from tests.harness import kubestatus
from tests.harness.kubecontrols import Deny, Fault, RequestRecord
from tests.harness.kubehttp import KubeHandler
from tests.harness.kuberoutes import Route
from tests.harness.kubestatus import ApiError
from tests.harness.kubestore import NAMESPACES, Object, Store, objects_of, resource

__all__ = [
    "DEFAULT_TOKEN",
    "DEFAULT_USER",
    "Deny",
    "FakeKube",
    "Fault",
    "RequestRecord",
]

DEFAULT_TOKEN = "fakekube-token"

DEFAULT_USER = "system:serviceaccount:runai-secrets-webhook:runai-secrets-webhook"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    fake: FakeKube


class FakeKube:
    """The fake API server; start it with `with FakeKube() as kube:` or `start()`."""

    def __init__(
        self,
        port: int = 0,
        token: str = DEFAULT_TOKEN,
        user: str = DEFAULT_USER,
        history_size: int = 1000,
        bookmark_interval: float = 1.0,
        watch_timeout: float = 1800.0,
    ) -> None:
        self.store = Store(history_size)
        self.bookmark_interval = bookmark_interval  # seconds between BOOKMARK events
        self.watch_timeout = (
            watch_timeout  # seconds a watch without timeoutSeconds stays open
        )
        self.stopping = threading.Event()
        self.token = token
        self._tokens = {token: user}
        self._faults: list[Fault] = []
        self._denials: list[Deny] = []
        self._log: list[RequestRecord] = []
        self._lock = threading.Lock()
        self._connections: set[Any] = set()
        self._token_files: list[Path] = []
        self._directory = tempfile.TemporaryDirectory(prefix="fakekube-")

        self._ca, server_cert = _certificates()
        self.ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_cert.configure_cert(self.ssl_context)
        self._server = _Server(("127.0.0.1", port), KubeHandler, bind_and_activate=True)
        self._server.fake = self
        self._thread: threading.Thread | None = None

    # Lifecycle.

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self._ca.cert_pem.bytes()

    def start(self) -> FakeKube:
        # A short poll interval keeps stop() fast; shutdown waits one poll.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="fakekube",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(2)
            except OSError:
                pass
        self._directory.cleanup()

    def __enter__(self) -> FakeKube:
        return self.start()

    def __exit__(self, *exc: object | TracebackType) -> None:
        self.stop()

    def track(self, connection: Any, open_: bool) -> None:
        with self._lock:
            if open_:
                self._connections.add(connection)
            else:
                self._connections.discard(connection)

    # Clients.

    def write_kubeconfig(
        self,
        path: str | os.PathLike[str],
        token_file: bool = False,
        token: str | None = None,
    ) -> Path:
        """Write a kubeconfig that reaches this server with the current token.

        With `token_file` the token goes to `<path>.token` and the kubeconfig
        names it in `tokenFile`; `rotate_token` rewrites that file. `token`
        picks another token than the current one, e.g. one from `add_token`.
        """
        path = Path(path)
        token = token or self.token
        user: dict[str, str] = {"token": token}
        if token_file:
            token_path = path.with_name(path.name + ".token")
            _write_atomically(token_path, token)
            self._token_files.append(token_path)
            user = {"tokenFile": str(token_path)}
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {
                    "name": "fakekube",
                    "cluster": {
                        "server": self.url,
                        "certificate-authority-data": base64.b64encode(
                            self.ca_pem
                        ).decode(),
                    },
                }
            ],
            "users": [{"name": "fakekube", "user": user}],
            "contexts": [
                {
                    "name": "fakekube",
                    "context": {"cluster": "fakekube", "user": "fakekube"},
                }
            ],
            "current-context": "fakekube",
        }
        _write_atomically(path, yaml.safe_dump(config))
        return path

    def api_client(self, kubeconfig: str | os.PathLike[str] | None = None) -> Any:
        """Return a `kubernetes.client.ApiClient` configured for this server only."""
        from kubernetes import client, config

        if kubeconfig is None:
            directory = Path(self._directory.name)
            kubeconfig = self.write_kubeconfig(directory / "kubeconfig")
        configuration = client.Configuration()
        config.load_kube_config(  # type: ignore[no-untyped-call]
            config_file=str(kubeconfig), client_configuration=configuration
        )
        return client.ApiClient(configuration)

    # Authentication and authorisation.

    def add_token(self, token: str, user: str = DEFAULT_USER) -> None:
        with self._lock:
            self._tokens[token] = user

    def revoke_token(self, token: str) -> None:
        with self._lock:
            self._tokens.pop(token, None)

    def rotate_token(self, new_token: str) -> None:
        """Replace the current token with `new_token` and rewrite token files."""
        with self._lock:
            user = self._tokens.pop(self.token, DEFAULT_USER)
            self._tokens[new_token] = user
            self.token = new_token
            files = list(self._token_files)
        for token_path in files:
            _write_atomically(token_path, new_token)

    def authenticate(self, token: str | None) -> str:
        with self._lock:
            user = self._tokens.get(token or "")
        if user is None:
            raise kubestatus.unauthorized()
        return user

    def deny(
        self, verb: str, resource: str, namespace: str = "*", user: str = "*"
    ) -> Deny:
        rule = Deny(verb, resource, namespace, user)
        with self._lock:
            self._denials.append(rule)
        return rule

    def clear_denials(self) -> None:
        with self._lock:
            self._denials.clear()

    def authorize(self, user: str, route: Route) -> None:
        with self._lock:
            denied = any(rule.matches(user, route) for rule in self._denials)
        if denied and route.resource is not None:
            resource = route.resource
            raise kubestatus.forbidden(
                user,
                route.verb,
                resource.group,
                resource.plural,
                route.namespace,
                route.name,
            )

    # Faults.

    def add_fault(self, fault: Fault | None = None, **fields: Any) -> Fault:
        """Add a fault rule, given as a `Fault` or as its fields.

        The first matching rule applies to a request.
        """
        rule = fault if fault is not None else Fault(**fields)
        with self._lock:
            self._faults.append(rule)
        return rule

    def clear_faults(self) -> None:
        with self._lock:
            self._faults.clear()

    def match_fault(self, route: Route, path: str) -> Fault | None:
        with self._lock:
            for rule in self._faults:
                if rule.matches(route, path):
                    rule.hits += 1
                    return rule
        return None

    # Request log.

    def log_request(
        self, method: str, route: Route, path: str, token: str | None
    ) -> RequestRecord:
        resource = route.resource
        record = RequestRecord(
            method,
            route.verb,
            path,
            resource.group if resource else "",
            resource.plural if resource else "",
            route.namespace,
            route.name,
            dict(route.query),
            token,
        )
        with self._lock:
            self._log.append(record)
        return record

    @property
    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._log)

    def count(self, **match: Any) -> int:
        """Count logged requests whose fields equal all of `match`.

        Example: `count(verb="get", resource="secrets", namespace="team-a")`.
        """
        return sum(
            all(getattr(record, key) == value for key, value in match.items())
            for record in self.requests
        )

    def clear_log(self) -> None:
        with self._lock:
            self._log.clear()

    # Objects.

    def preload(self, objects: Iterable[Object]) -> None:
        """Store objects as given (namespaces first), creating missing namespaces."""
        for obj in objects_of(objects):
            namespace = obj.get("metadata", {}).get("namespace")
            if namespace and obj.get("kind") != "Namespace":
                self.add_namespace(namespace)
            self.store.put(obj)

    def add_namespace(
        self, name: str, labels: Mapping[str, str] | None = None
    ) -> Object:
        """Create a namespace, or set labels on an existing one."""
        try:
            current = self.store.get(NAMESPACES, "", name)
        except ApiError:
            return self.store.create(
                NAMESPACES,
                "",
                {"metadata": {"name": name, "labels": dict(labels or {})}},
            )
        if labels:
            current["metadata"].setdefault("labels", {}).update(labels)
            return self.store.update(NAMESPACES, "", name, current)
        return current

    def add_secret(
        self,
        namespace: str,
        name: str,
        data: Mapping[str, str | bytes],
        labels: Mapping[str, str] | None = None,
        annotations: Mapping[str, str] | None = None,
        type_: str = "Opaque",
    ) -> Object:
        """Create or replace a secret, and its namespace if missing.

        Values are base64-encoded, as the API stores them.
        """
        encoded = {
            key: base64.b64encode(
                value if isinstance(value, bytes) else value.encode()
            ).decode()
            for key, value in data.items()
        }
        metadata: Object = {
            "name": name,
            "namespace": namespace,
            "labels": dict(labels or {}),
        }
        if annotations:
            metadata["annotations"] = dict(annotations)
        self.add_namespace(namespace)
        return self.store.put(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": metadata,
                "type": type_,
                "data": encoded,
            }
        )

    def get(self, api_version: str, plural: str, namespace: str, name: str) -> Object:
        """Read an object from the store, e.g. `get("v1", "secrets", "ns", "x")`."""
        group, _, version = api_version.rpartition("/")
        return self.store.get(resource(group, version, plural), namespace, name)

    def finalize_namespace(self, name: str) -> None:
        """Delete a Terminating namespace's objects, then the namespace."""
        self.store.finalize_namespace(name)


@functools.cache
def _certificates() -> tuple[trustme.CA, trustme.LeafCert]:
    """Make one CA and server certificate per process; key generation is slow."""
    ca = trustme.CA()
    return ca, ca.issue_cert("127.0.0.1", "localhost")


def _write_atomically(path: Path, text: str) -> None:
    # Readers that re-read the file never see it half written.
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=path.name + ".")
    with os.fdopen(handle, "w") as file:
        file.write(text)
    os.replace(temporary, path)


def load_state(path: str | os.PathLike[str]) -> list[Object]:
    """Read objects from YAML or JSON: a list, a `List` or several documents."""
    text = Path(path).read_text()
    documents = [doc for doc in yaml.safe_load_all(text) if doc]
    objects: list[Object] = []
    for document in documents:
        if isinstance(document, list):
            objects.extend(document)
        elif isinstance(document, dict) and "items" in document:
            objects.extend(document["items"])
        else:
            objects.append(document)
    return objects


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tests.harness.fakekube", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--port", type=int, default=0, help="TCP port on 127.0.0.1; 0 picks a free one"
    )
    parser.add_argument("--state-file", help="YAML or JSON file of objects to preload")
    parser.add_argument(
        "--kubeconfig",
        required=True,
        help="path where the kubeconfig for this server is written",
    )
    parser.add_argument(
        "--token", default=DEFAULT_TOKEN, help="bearer token that clients must send"
    )
    parser.add_argument(
        "--token-file",
        action="store_true",
        help="put the token in a file beside the kubeconfig",
    )
    parser.add_argument(
        "--latency", type=float, default=0.0, help="seconds added to every request"
    )
    args = parser.parse_args(argv)

    fake = FakeKube(port=args.port, token=args.token)
    if args.state_file:
        fake.preload(load_state(args.state_file))
    if args.latency:
        fake.add_fault(latency=args.latency)
    kubeconfig = fake.write_kubeconfig(args.kubeconfig, token_file=args.token_file)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    fake.start()
    print(
        json.dumps(
            {"server": fake.url, "kubeconfig": str(kubeconfig), "pid": os.getpid()}
        ),
        flush=True,
    )
    done.wait()
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
