"""The Kubernetes API calls of the controller, on plain JSON objects.

Responses are read raw (`_preload_content=False`) and parsed with orjson, so
objects stay the dicts the API server sent and no client model classes sit
in between. Every call has a client-side timeout.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import orjson
from kubernetes.client import ApiClient, ApiException, CoordinationV1Api, CoreV1Api
from urllib3.exceptions import HTTPError

from webhook.propagation.copies import Object

# Page size of list calls; the API server's own maximum is not fixed, 500 is
# what kubectl and client-go informers use.
PAGE_SIZE = 500

# Exceptions of a failed API call: an error status, a connection or timeout
# error from urllib3, a socket error, or a body that is not JSON.
API_FAILURES = (ApiException, HTTPError, OSError, ValueError)


def _parse(response: Any) -> Object:
    body: Object = orjson.loads(response.data)
    return body


def status_of(error: BaseException) -> int | None:
    """Return the HTTP status of an API error, or None for other errors."""
    if isinstance(error, ApiException):
        return int(error.status) if error.status else None
    return None


def describe(error: BaseException) -> str:
    """Return a short description of an API error for logs and messages.

    For an HTTP error this is the status and reason only: the client's own
    text adds response headers and the body.
    """
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return f"{type(error).__name__}: {str(error)[:200]}"


class KubeApi:
    def __init__(self, client: ApiClient, timeout: float) -> None:
        self.client = client
        # Typed as Any: the calls send and read plain dicts, which the client
        # accepts at run time but its model-class annotations do not allow.
        self.core: Any = CoreV1Api(client)
        self.coordination: Any = CoordinationV1Api(client)
        self.timeout = timeout

    def _options(self) -> dict[str, Any]:
        return {"_preload_content": False, "_request_timeout": self.timeout}

    def get_secret(self, namespace: str, name: str) -> Object | None:
        """Return a secret, or None when it does not exist."""
        try:
            response = self.core.read_namespaced_secret(
                name, namespace, **self._options()
            )
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _parse(response)

    def get_namespace(self, name: str) -> Object | None:
        try:
            response = self.core.read_namespace(name, **self._options())
        except ApiException as error:
            if error.status == 404:
                return None
            raise
        return _parse(response)

    def list_copies(self, selector: str) -> list[Object]:
        """Return the secrets in every namespace that match a label selector."""
        return list(self._pages(self.core.list_secret_for_all_namespaces, selector))

    def list_page(self, method: Any, *args: Any, **kwargs: Any) -> Object:
        return _parse(method(*args, **kwargs, **self._options()))

    def _pages(self, method: Any, selector: str) -> Iterator[Object]:
        token: str | None = None
        while True:
            page = self.list_page(
                method, label_selector=selector, limit=PAGE_SIZE, _continue=token
            )
            yield from page.get("items") or []
            token = page.get("metadata", {}).get("continue")
            if not token:
                return

    def create_secret(self, namespace: str, body: Object) -> Object:
        return _parse(
            self.core.create_namespaced_secret(namespace, body, **self._options())
        )

    def replace_secret(self, namespace: str, body: Object) -> Object:
        name = body["metadata"]["name"]
        return _parse(
            self.core.replace_namespaced_secret(
                name, namespace, body, **self._options()
            )
        )

    def delete_secret(
        self, namespace: str, name: str, uid: str, resource_version: str
    ) -> None:
        """Delete a secret only if it is still the object with this uid and version."""
        preconditions = {"uid": uid, "resourceVersion": resource_version}
        self.core.delete_namespaced_secret(
            name,
            namespace,
            body={"preconditions": preconditions},
            **self._options(),
        )

    def create_event(self, namespace: str, body: Object) -> None:
        self.core.create_namespaced_event(namespace, body, **self._options())
