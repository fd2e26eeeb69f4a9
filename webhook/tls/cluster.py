"""Kubernetes calls of the self-managed mode: the CA Secret and the caBundles.

Objects are read and written as raw JSON, so that fields this client
version does not know survive a read-modify-write. Every write carries the
resourceVersion that was read, so two replicas never overwrite each other:
the loser gets 409 Conflict and works again from a fresh read.
"""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, cast

import urllib3
from kubernetes import client as k8s

logger = logging.getLogger(__name__)

# Seconds for one API call, so that a hung connection cannot stall rotation.
REQUEST_TIMEOUT = 10
# The propagation controller's copies carry the same managed-by label plus a
# source label, so the component label distinguishes this Secret from them.
LABELS = {
    "app.kubernetes.io/managed-by": "runai-secrets-webhook",
    "app.kubernetes.io/component": "webhook-ca",
}

TLS_TYPE = "kubernetes.io/tls"
MUTATING = "MutatingWebhookConfiguration"
VALIDATING = "ValidatingWebhookConfiguration"


@dataclass(frozen=True)
class StoredSecret:
    """Decoded data, type and resourceVersion of the CA Secret as it was read."""

    data: dict[str, bytes]
    resource_version: str
    type: str


@dataclass(frozen=True)
class WebhookConfiguration:
    """A webhook configuration's entries and their caBundle (base64, or "")."""

    kind: str
    name: str
    resource_version: str
    bundles: tuple[tuple[str, str], ...]

    def trusts_only(self, bundle_b64: str) -> bool:
        return all(current == bundle_b64 for _, current in self.bundles)


class ClusterClient:
    """Reads and writes the CA Secret and the webhook configurations."""

    def __init__(self, api_client: k8s.ApiClient, namespace: str, secret_name: str):
        self.namespace = namespace
        self.secret_name = secret_name
        self._core = k8s.CoreV1Api(api_client)
        self._admission = k8s.AdmissionregistrationV1Api(api_client)

    def read_secret(self) -> StoredSecret | None:
        """Return the CA Secret, or None if it does not exist."""
        try:
            raw = self._core.read_namespaced_secret(
                self.secret_name,
                self.namespace,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise
        body = _json(raw)
        data = {
            key: base64.b64decode(value)
            for key, value in (body.get("data") or {}).items()
        }
        return StoredSecret(
            data, body["metadata"]["resourceVersion"], body.get("type") or "Opaque"
        )

    def create_secret(self, data: Mapping[str, bytes]) -> bool:
        """Create the CA Secret; return False if another replica created it first."""
        body = self._secret_body(data, TLS_TYPE, resource_version=None)
        return _unless_conflict(
            lambda: self._core.create_namespaced_secret(
                self.namespace,
                cast(Any, body),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )

    def replace_secret(self, data: Mapping[str, bytes], stored: StoredSecret) -> bool:
        """Replace the CA Secret read as `stored`; return False on a conflict.

        The Secret keeps its type, because the API rejects a change of type.
        """
        body = self._secret_body(
            data, stored.type, resource_version=stored.resource_version
        )
        return _unless_conflict(
            lambda: self._core.replace_namespaced_secret(
                self.secret_name,
                self.namespace,
                cast(Any, body),
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        )

    def read_webhook_configuration(
        self, kind: str, name: str
    ) -> WebhookConfiguration | None:
        """Return a webhook configuration's caBundles, or None if it does not exist."""
        read = (
            self._admission.read_mutating_webhook_configuration
            if kind == MUTATING
            else self._admission.read_validating_webhook_configuration
        )
        try:
            raw = read(name, _preload_content=False, _request_timeout=REQUEST_TIMEOUT)
        except k8s.ApiException as error:
            if error.status == 404:
                return None
            raise
        body = _json(raw)
        bundles = tuple(
            (webhook["name"], (webhook.get("clientConfig") or {}).get("caBundle", ""))
            for webhook in body.get("webhooks") or []
        )
        return WebhookConfiguration(
            kind, name, body["metadata"]["resourceVersion"], bundles
        )

    def patch_bundles(self, config: WebhookConfiguration, bundle_b64: str) -> bool:
        """Set the caBundle of every entry that differs; False on a conflict.

        The patch sets metadata.resourceVersion to the value read, so
        kube-apiserver rejects it with 409 if the object changed since. It
        also tests each entry's name, so a reordered list is never patched.
        """
        operations: list[dict[str, Any]] = [
            {
                "op": "replace",
                "path": "/metadata/resourceVersion",
                "value": config.resource_version,
            }
        ]
        for index, (webhook_name, current) in enumerate(config.bundles):
            if current == bundle_b64:
                continue
            operations.append(
                {"op": "test", "path": f"/webhooks/{index}/name", "value": webhook_name}
            )
            operations.append(
                {
                    "op": "add",
                    "path": f"/webhooks/{index}/clientConfig/caBundle",
                    "value": bundle_b64,
                }
            )
        if len(operations) == 1:
            return True

        patch = (
            self._admission.patch_mutating_webhook_configuration
            if config.kind == MUTATING
            else self._admission.patch_validating_webhook_configuration
        )
        try:
            patch(
                config.name,
                operations,
                _preload_content=False,
                _request_timeout=REQUEST_TIMEOUT,
            )
        except k8s.ApiException as error:
            # 409 means the object changed since the read. A failed name test
            # has no fixed status across kube-apiserver versions (some return
            # 500), so 422 and 500 are also taken as "read again".
            if error.status in (409, 422, 500):
                logger.warning(
                    "caBundle patch rejected; retrying after a fresh read",
                    extra={
                        "kind": config.kind,
                        "configuration": config.name,
                        "status": error.status,
                    },
                )
                return False
            raise
        return True

    def _secret_body(
        self,
        data: Mapping[str, bytes],
        secret_type: str,
        *,
        resource_version: str | None,
    ) -> dict[str, Any]:
        metadata: dict[str, Any] = {
            "name": self.secret_name,
            "namespace": self.namespace,
            "labels": dict(LABELS),
        }
        if resource_version is not None:
            metadata["resourceVersion"] = resource_version
        return {
            "apiVersion": "v1",
            "kind": "Secret",
            "metadata": metadata,
            "type": secret_type,
            "data": {
                key: base64.b64encode(value).decode("ascii")
                for key, value in data.items()
            },
        }


def _json(response: object) -> dict[str, Any]:
    # With _preload_content=False the client returns the raw urllib3
    # response, whatever its type hints declare.
    body: dict[str, Any] = json.loads(cast(urllib3.BaseHTTPResponse, response).data)
    return body


def _unless_conflict(write: Callable[[], object]) -> bool:
    """Run write; return False on 409 (AlreadyExists or Conflict)."""
    try:
        write()
    except k8s.ApiException as error:
        if error.status == 409:
            return False
        raise
    return True


def describe_error(error: Exception) -> str:
    """Describe error in one line of at most 200 characters."""
    if isinstance(error, k8s.ApiException):
        # The Status message names the verb, resource and object. The full
        # text would add response headers and the raw body.
        text = f"HTTP {error.status} {error.reason}: {_status_message(error.body)}"
    else:
        text = str(error).splitlines()[0] if str(error) else type(error).__name__
    return text[:200]


def _status_message(body: object) -> str:
    try:
        message = json.loads(body)["message"]  # type: ignore[arg-type]
    except (TypeError, ValueError, KeyError):
        return ""
    return str(message)
