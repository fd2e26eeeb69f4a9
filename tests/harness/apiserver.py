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

import json
import math
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from tests.harness import admissionmatch, admissionreview, kubestatus, objectvalidation
from tests.harness.admissionmatch import Attributes
from tests.harness.admissionreview import Response, WebhookCallFailed
from tests.harness.kubestatus import ApiError
from tests.harness.warnings import AuditAnnotations, WarningRecorder
from tests.harness.webhookcall import (
    CallError,
    Endpoint,
    Transport,
    check_loopback,
    decode_ca_bundle,
)

Object = dict[str, Any]
DEFAULT_USER = {
    "username": "kubernetes-admin",
    "groups": ["system:masters", "system:authenticated"],
}
DEFAULT_TIMEOUT_SECONDS = 10


@dataclass
class WebhookCall:
    """One call to a webhook: what was sent, what came back and what it did."""

    webhook: str
    configuration: str
    round: int
    review: Object
    status: int | None = None
    response: Object | None = None
    outcome: str = ""  # allowed, patched, denied, failed-closed, failed-open
    error: str = ""
    seconds: float = 0.0


@dataclass(frozen=True)
class Skip:
    webhook: str
    configuration: str
    reason: str


@dataclass
class AdmissionResult:
    """The outcome of one admitted request, as the user and the audit log see it."""

    allowed: bool
    code: int
    message: str = ""
    status: Object | None = None  # the Status body the user gets when rejected
    object: Object | None = None  # the object as stored, when allowed
    warnings: list[str] = field(default_factory=list)
    audit_annotations: dict[str, str] = field(default_factory=dict)
    calls: list[WebhookCall] = field(default_factory=list)
    skipped: list[Skip] = field(default_factory=list)
    dropped_fields: list[str] = field(default_factory=list)

    @property
    def requests(self) -> list[Object]:
        return [call.review for call in self.calls]

    @property
    def responses(self) -> list[Object | None]:
        return [call.response for call in self.calls]

    def called(self, webhook: str) -> int:
        return sum(call.webhook == webhook for call in self.calls)


@dataclass(frozen=True)
class _Hook:
    configuration: str
    index: int  # position among all webhooks of this phase, for audit keys
    spec: Object

    @property
    def name(self) -> str:
        return str(self.spec["name"])


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
        run = _Run(
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
    def mutating_hooks(self) -> list[_Hook]:
        return self._mutating

    @property
    def validating_hooks(self) -> list[_Hook]:
        return self._validating


def _flatten(configurations: Iterable[Object], expected_kind: str) -> list[_Hook]:
    """Order webhooks as kube-apiserver does: configurations by name, then as listed."""
    hooks: list[_Hook] = []
    for configuration in sorted(
        configurations, key=lambda item: item["metadata"]["name"]
    ):
        if configuration.get("kind", expected_kind) != expected_kind:
            raise ValueError(
                f"expected a {expected_kind}, got {configuration.get('kind')!r}"
            )
        for webhook in configuration.get("webhooks") or []:
            admissionmatch.check_match_conditions(webhook)
            hooks.append(_Hook(configuration["metadata"]["name"], len(hooks), webhook))
    return hooks


class _Run:
    """The state of one admitted request."""

    def __init__(
        self,
        caller: AdmissionCaller,
        obj: Object | None,
        operation: str,
        namespace: str,
        old: Object | None,
        sub_resource: str,
        dry_run: bool,
        user_info: Object | None,
        kind: objectvalidation.Kind | None,
        request_timeout: float | None,
        options: Object | None,
    ) -> None:
        self.caller = caller
        self.obj = json.loads(json.dumps(obj)) if obj is not None else None
        self.old = json.loads(json.dumps(old)) if old is not None else None
        self.operation = operation
        self.sub_resource = sub_resource
        self.dry_run = dry_run
        self.deadline = time.monotonic() + request_timeout if request_timeout else None
        self.kind = kind or objectvalidation.kind_of(self.obj or self.old or {})
        if self.kind is None:
            raise ValueError(
                "unknown kind: pass kind=objectvalidation.Kind(...) for it"
            )
        metadata = (self.obj or self.old or {}).get("metadata", {})
        self.namespace = namespace or (
            metadata.get("namespace", "") if self.kind.namespaced else ""
        )
        if self.kind.namespaced and not self.namespace:
            raise ValueError("a namespaced object needs namespace=...")
        self.name = metadata.get("name", "")
        self.base = admissionreview.base_request(
            kind=(self.kind.group, self.kind.version, self.kind.kind),
            resource=(self.kind.group, self.kind.version, self.kind.resource),
            sub_resource=sub_resource,
            name=self.name,
            namespace=self.namespace,
            operation=operation,
            user_info=user_info or DEFAULT_USER,
            dry_run=dry_run,
            options=options,
        )
        self.result = AdmissionResult(allowed=False, code=0)
        self.warnings = WarningRecorder()
        self.audit = AuditAnnotations()

    def execute(self) -> AdmissionResult:
        try:
            self._decode_request()
            self._mutate()
            stored = self._validate_object()
            self._run_validating(stored)
        except ApiError as error:
            return self._reject(error)
        self.result.allowed = True
        self.result.code = 201 if self.operation == "CREATE" else 200
        self.result.object = stored
        return self._finish()

    def _decode_request(self) -> None:
        """Decode the user's objects first: unknown fields go, wrong types are 400."""
        version = self.caller.kubernetes_version
        try:
            if self.obj is not None:
                self.obj, dropped = objectvalidation.decode(self.obj, version)
                self.result.dropped_fields += dropped
            if self.old is not None:
                self.old, _ = objectvalidation.decode(self.old, version)
        except ApiError as error:
            raise kubestatus.bad_request(
                error.message.removeprefix("Internal error occurred: ")
            ) from None

    # Mutating phase.

    def _mutate(self) -> None:
        previously_invoked: set[int] = set()
        reinvoke: set[int] = set()
        any_change = False
        for round_number in (0, 1):
            if round_number == 1 and not any_change:
                return
            for hook in self.caller.mutating_hooks:
                if not self._should_call(hook, round_number):
                    continue
                if round_number == 1 and hook.index not in reinvoke:
                    continue
                changed = self._call_mutating(hook, round_number)
                self._record_mutation(hook, round_number, changed)
                if changed:
                    # Every reinvocable webhook called before this change sees it again.
                    reinvoke |= previously_invoked
                    previously_invoked = set()
                    any_change = True
                if hook.spec.get("reinvocationPolicy") == "IfNeeded":
                    previously_invoked.add(hook.index)

    def _record_mutation(self, hook: _Hook, round_number: int, changed: bool) -> None:
        key = (
            f"mutation.webhook.admission.k8s.io/round_{round_number}_index_{hook.index}"
        )
        value = {
            "configuration": hook.configuration,
            "webhook": hook.name,
            "mutated": changed,
        }
        self.audit.add_system(key, json.dumps(value))

    def _call_mutating(self, hook: _Hook, round_number: int) -> bool:
        response = self._call(hook, round_number, mutating=True)
        if response is None or not response.patch:
            return False
        call = self.result.calls[-1]
        try:
            operations = admissionreview.decode_patch(
                response.patch, response.patch_type
            )
        except WebhookCallFailed as error:
            self._call_failed(hook, call, round_number, str(error), mutating=True)
            return False
        if not operations:
            return False
        if self.obj is None:
            raise kubestatus.internal_error(
                f'admission webhook "{hook.name}" attempted to modify the object, '
                "which is not supported for this operation"
            )
        patched = admissionreview.apply_patch(self.obj, operations)
        patched, dropped = objectvalidation.decode(
            patched, self.caller.kubernetes_version
        )
        self.result.dropped_fields += dropped
        changed = bool(patched != self.obj)
        self.obj = patched
        call.outcome = "patched" if changed else "allowed"
        self.audit.add_system(
            f"patch.webhook.admission.k8s.io/round_{round_number}_index_{hook.index}",
            json.dumps(
                {
                    "configuration": hook.configuration,
                    "webhook": hook.name,
                    "patch": operations,
                    "patchType": "JSONPatch",
                }
            ),
        )
        return changed

    # Matching.

    def _attributes(self) -> Attributes:
        request = {key: value for key, value in self.base.items()}
        request["object"], request["oldObject"] = self.obj, self.old
        return Attributes(
            operation=self.operation,
            group=self.kind.group,  # type: ignore[union-attr]
            version=self.kind.version,  # type: ignore[union-attr]
            resource=self.kind.resource,  # type: ignore[union-attr]
            sub_resource=self.sub_resource,
            namespace=self.namespace,
            name=self.name,
            obj=self.obj,
            old=self.old,
            request=request,
        )

    def _should_call(self, hook: _Hook, round_number: int) -> bool:
        attributes = self._attributes()
        namespace_error: ApiError | None = None
        try:
            namespace_ok = admissionmatch.namespace_selector_matches(
                hook.spec, attributes, self.caller.namespace_labels
            )
        except ApiError as error:
            namespace_ok, namespace_error = True, error
        if not namespace_ok:
            return self._skip(hook, round_number, "namespaceSelector does not match")
        if not admissionmatch.object_selector_matches(hook.spec, attributes):
            return self._skip(hook, round_number, "objectSelector does not match")
        if not any(
            admissionmatch.rule_matches(rule, attributes)
            for rule in hook.spec.get("rules") or []
        ):
            return self._skip(hook, round_number, "no rule matches")
        if namespace_error is not None:
            raise namespace_error
        conditions = admissionmatch.evaluate_match_conditions(hook.spec, attributes)
        if conditions.error is not None:
            raise conditions.error
        if not conditions.matches:
            return self._skip(
                hook,
                round_number,
                f"matchCondition {conditions.failed_condition!r} is false",
            )
        return True

    def _skip(self, hook: _Hook, round_number: int, reason: str) -> bool:
        if round_number == 0:
            self.result.skipped.append(Skip(hook.name, hook.configuration, reason))
        return False

    # Calls.

    def _call(self, hook: _Hook, round_number: int, mutating: bool) -> Response | None:
        """Call one webhook; return None after a failure that `Ignore` lets pass."""
        request = admissionreview.build_request(self.base, self.obj, self.old)
        call = WebhookCall(hook.name, hook.configuration, round_number, {})
        self.result.calls.append(call)
        try:
            self._check_dry_run(hook)
            version = admissionreview.review_version(hook.spec)
            call.review = admissionreview.envelope(version, request)
            response = self._post(hook, call, version, request["uid"], mutating)
        except WebhookCallFailed as error:
            self._call_failed(hook, call, round_number, str(error), mutating)
            return None
        for text in response.warnings:
            self.warnings.add(str(text))
        for key, value in response.audit_annotations.items():
            self.audit.add_webhook(hook.name, str(key), str(value))
        if not response.allowed:
            call.outcome = "denied"
            raise _denial(hook.name, response.status)
        call.outcome = "allowed"
        return response

    def _check_dry_run(self, hook: _Hook) -> None:
        if not self.dry_run:
            return
        side_effects = hook.spec.get("sideEffects")
        if side_effects is None:
            raise WebhookCallFailed("Webhook SideEffects is nil")
        if side_effects not in ("None", "NoneOnDryRun"):
            raise kubestatus.ApiError(
                400,
                "BadRequest",
                f'admission webhook "{hook.name}" does not support dry run',
            )

    def _post(
        self, hook: _Hook, call: WebhookCall, version: str, uid: str, mutating: bool
    ) -> Response:
        timeout = self._timeout(hook)
        endpoint, path = self.caller.endpoint(hook.spec, math.ceil(timeout))
        body = json.dumps(call.review).encode()
        started = time.monotonic()
        try:
            status, _, data = self.caller.transport.post(endpoint, path, body, timeout)
        except CallError as error:
            raise WebhookCallFailed(f"failed to call webhook: {error}") from None
        finally:
            call.seconds = time.monotonic() - started
        call.status = status
        try:
            call.response = json.loads(data)
        except ValueError:
            call.response = None
        if not 200 <= status <= 206:
            raise WebhookCallFailed(
                f"failed to call webhook: {_status_error(status, data)}"
            )
        return admissionreview.parse_response(data, version, uid, mutating)

    def _timeout(self, hook: _Hook) -> float:
        """Return the smaller of `timeoutSeconds` and the time left on the request."""
        timeout = float(hook.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        if timeout <= 0:
            raise ApiError(
                504, "Timeout", "request did not complete within requested timeout"
            )
        return timeout

    def _call_failed(
        self,
        hook: _Hook,
        call: WebhookCall,
        round_number: int,
        reason: str,
        mutating: bool,
    ) -> None:
        call.error = f'failed calling webhook "{hook.name}": {reason}'
        if hook.spec.get("failurePolicy", "Fail") == "Ignore":
            call.outcome = "failed-open"
            if mutating:
                prefix = "failed-open.mutation.webhook.admission.k8s.io"
                key = f"{prefix}/round_{round_number}_index_{hook.index}"
                self.audit.add_system(key, hook.name)
            return
        call.outcome = "failed-closed"
        raise kubestatus.internal_error(call.error)

    # Validation and the validating phase.

    def _validate_object(self) -> Object | None:
        if self.obj is None:
            return None
        return objectvalidation.validate(
            self.obj,
            self.old,
            self.operation,
            self.sub_resource,
            self.caller.kubernetes_version,
        )

    def _run_validating(self, stored: Object | None) -> None:
        self.obj = stored
        for hook in self.caller.validating_hooks:
            if self._should_call(hook, 0):
                self._call(hook, 0, mutating=False)

    # Results.

    def _reject(self, error: ApiError) -> AdmissionResult:
        self.result.allowed = False
        self.result.code = error.code
        self.result.message = error.message
        self.result.status = error.body()
        return self._finish()

    def _finish(self) -> AdmissionResult:
        self.result.warnings = self.warnings.headers()
        self.result.audit_annotations = self.audit.values()
        return self.result


def _denial(name: str, status: Object) -> ApiError:
    """Build the user's error from a denial, as ToStatusErr in k8s.io/apiserver does."""
    code = status.get("code") or 0
    if code < 400:
        code = 400
    denied_by = f'admission webhook "{name}" denied the request'
    if status.get("message"):
        message = f"{denied_by}: {status['message']}"
    elif status.get("reason"):
        message = f"{denied_by}: {status['reason']}"
    else:
        message = f"{denied_by} without explanation"
    error = ApiError(code, status.get("reason") or "", message, status.get("details"))
    return error


def _status_error(status: int, data: bytes) -> str:
    """Word a non-2xx answer as client-go does; a Status body's message wins."""
    try:
        body = json.loads(data)
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("kind") == "Status" and body.get("message"):
        return str(body["message"])
    texts = {
        400: "the server rejected our request for an unknown reason",
        401: "the server has asked for the client to provide credentials",
        403: "the server does not allow access to the requested resource",
        404: "the server could not find the requested resource",
        405: "the server does not allow this method on the requested resource",
        409: "the server reported a conflict",
        415: (
            "the server was unable to respond with a content type that the client "
            "supports"
        ),
        422: "the server rejected our request due to an error in our request",
        429: (
            "the server has received too many requests and has asked us to try again "
            "later"
        ),
        503: "the server is currently unable to handle the request",
        504: (
            "the server was unable to return a response in the time allotted, but may "
            "still be processing the request"
        ),
    }
    if status in texts:
        return texts[status]
    if status >= 500:
        snippet = data.decode(errors="replace")[:1024]
        return (
            f'an error on the server ("{snippet}") has prevented the request '
            "from succeeding"
        )
    return (
        f"the server responded with the status code {status} but did not return "
        "more information"
    )
