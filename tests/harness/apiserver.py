"""An admission caller that does what kube-apiserver does with webhook configurations.

Give it MutatingWebhookConfiguration and ValidatingWebhookConfiguration
dicts (for example from a rendered Helm chart) and admit objects through
it. It matches rules, selectors and CEL match conditions, calls each
webhook over HTTPS with `?timeout=`, checks the response, applies patches,
reinvokes `IfNeeded` webhooks, validates the result and reports what
happened::

    caller = AdmissionCaller(
        mutating=[configuration],
        services={"hook.webhooks.svc:443": ("127.0.0.1", port)},
        namespaces={"team-a": {"runai/queue": "team-a"}},
    )
    result = caller.admit(pod, namespace="team-a")
    assert result.allowed, result.message
    env = result.object["spec"]["containers"][0]["env"]

Webhook addresses must be loopback: a service is mapped to one with
`services`, and a `clientConfig.url` must name 127.0.0.1, ::1 or localhost.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.harness import admissionmatch, objectvalidation, webhookconfig
from tests.harness.admissionresult import AdmissionResult, Skip, WebhookCall
from tests.harness.admissionreview import WebhookCallFailed
from tests.harness.admissionrun import Hook, Run
from tests.harness.kubestatus import ApiError
from tests.harness.webhookcall import (
    Endpoint,
    Transport,
    check_loopback,
    decode_ca_bundle,
)

__all__ = ["AdmissionCaller", "AdmissionResult", "Skip", "WebhookCall"]

Object = dict[str, Any]


class AdmissionCaller:
    """Admit objects through webhook configurations; see the module docstring."""

    def __init__(
        self,
        mutating: Iterable[Object] = (),
        validating: Iterable[Object] = (),
        *,
        services: Mapping[str, tuple[str, int]] | None = None,
        namespaces: Mapping[str, Mapping[str, str]] | None = None,
        kube: Any = None,
        kubernetes_version: str | None = None,
        transport: Transport | None = None,
    ) -> None:
        """Set up the caller.

        `namespaces` maps names to labels; `kube` (a FakeKube) is asked for
        namespaces not in that map. `kubernetes_version` ("1.30", ...) picks
        the schema and env name rules; the default is the newest schema.
        """
        self._mutating = _flatten(mutating, "MutatingWebhookConfiguration")
        self._validating = _flatten(validating, "ValidatingWebhookConfiguration")
        self.services = dict(services or {})
        self.namespaces = {
            name: dict(labels) for name, labels in (namespaces or {}).items()
        }
        self.kube = kube
        self.kubernetes_version = (
            kubernetes_version or objectvalidation.newest_version()
        )
        self.transport = transport or Transport()

    def close(self) -> None:
        self.transport.close()

    def __enter__(self) -> AdmissionCaller:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def admit(
        self,
        obj: Object | None,
        operation: str = "CREATE",
        namespace: str = "",
        *,
        old_object: Object | None = None,
        sub_resource: str = "",
        dry_run: bool = False,
        user_info: Object | None = None,
        kind: objectvalidation.Kind | None = None,
        request_timeout: float | None = None,
        options: Object | None = None,
    ) -> AdmissionResult:
        """Run one request through admission and validation.

        `kind` is needed only for kinds outside objectvalidation.KINDS.
        `request_timeout` is the time left on the user's request in seconds;
        it caps each webhook's `?timeout=`.
        """
        run = Run(
            self,
            obj,
            operation,
            namespace,
            old_object,
            sub_resource,
            dry_run,
            user_info,
            kind,
            request_timeout,
            options,
        )
        return run.execute()

    def namespace_labels(self, name: str) -> Mapping[str, str] | None:
        if name in self.namespaces:
            return self.namespaces[name]
        if self.kube is not None:
            try:
                found = self.kube.get("v1", "namespaces", "", name)
            except ApiError:
                return None
            labels: dict[str, str] = found["metadata"].get("labels") or {}
            return labels
        return None

    def endpoint(self, hook: Object, timeout: int) -> tuple[Endpoint, str]:
        """Resolve a webhook's clientConfig to a loopback endpoint and a path."""
        client = hook.get("clientConfig") or {}
        ca_pem = decode_ca_bundle(client.get("caBundle"))
        query = f"?timeout={timeout}s"
        if "url" in client:
            url = urlsplit(client["url"])
            host = url.hostname or ""
            check_loopback(host)
            path = (url.path or "/") + query
            return Endpoint(
                host, url.port or 443, host, client["url"] + query, ca_pem
            ), path
        service = client["service"]
        port = int(service.get("port", 443))
        server_name = f"{service['name']}.{service['namespace']}.svc"
        key = f"{server_name}:{port}"
        if key not in self.services:
            raise WebhookCallFailed(
                "failed to call webhook: "
                f'Post "https://{key}{service.get("path", "/")}{query}": '
                f"service {key} has no loopback address in AdmissionCaller.services"
            )
        host, local_port = self.services[key]
        check_loopback(host)
        path = service.get("path", "/") + query
        return Endpoint(
            host, local_port, server_name, f"https://{key}{path}", ca_pem
        ), path

    @property
    def mutating_hooks(self) -> list[Hook]:
        return self._mutating

    @property
    def validating_hooks(self) -> list[Hook]:
        return self._validating


def _flatten(configurations: Iterable[Object], expected_kind: str) -> list[Hook]:
    """Order webhooks as kube-apiserver does: configurations by name, then as listed."""
    hooks: list[Hook] = []
    for configuration in sorted(
        configurations, key=lambda item: item["metadata"]["name"]
    ):
        if configuration.get("kind", expected_kind) != expected_kind:
            raise ValueError(
                f"expected a {expected_kind}, got {configuration.get('kind')!r}"
            )
        webhookconfig.check_configuration(
            configuration, mutating=expected_kind.startswith("Mutating")
        )
        for webhook in configuration.get("webhooks") or []:
            admissionmatch.check_match_conditions(webhook)
            hooks.append(Hook(configuration["metadata"]["name"], len(hooks), webhook))
    return hooks
