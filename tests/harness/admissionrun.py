"""One request's way through admission, in kube-apiserver's order.

Mutating webhooks run first (with one reinvocation round for `IfNeeded`
webhooks when a later webhook changed the object), then the apiserver's
own validation, then the validating webhooks. Any step may end the run
with the error the user would get.
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tests.harness import admissionmatch, admissionreview, kubestatus, objectvalidation
from tests.harness.admissionmatch import Attributes
from tests.harness.admissionresult import (
    AdmissionResult,
    Skip,
    WebhookCall,
    denial,
    status_error,
)
from tests.harness.admissionreview import Response, WebhookCallFailed
from tests.harness.kubestatus import ApiError
from tests.harness.warnings import AuditAnnotations, WarningRecorder
from tests.harness.webhookcall import CallError

if TYPE_CHECKING:
    from tests.harness.apiserver import AdmissionCaller

Object = dict[str, Any]
DEFAULT_USER = {
    "username": "kubernetes-admin",
    "groups": ["system:masters", "system:authenticated"],
}
DEFAULT_TIMEOUT_SECONDS = 10


@dataclass(frozen=True)
class Hook:
    configuration: str
    index: int  # position among all webhooks of this phase, for audit keys
    spec: Object

    @property
    def name(self) -> str:
        return str(self.spec["name"])


class Run:
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

        source = self.obj or self.old or {}
        found = kind or objectvalidation.kind_of(source)
        if found is None:
            raise ValueError(
                f"unknown kind {source.get('apiVersion')}/{source.get('kind')}: "
                "pass kind=objectvalidation.Kind(...) to admit it"
            )
        self.kind: objectvalidation.Kind = found

        metadata = source.get("metadata", {})
        self.namespace = namespace or (
            metadata.get("namespace", "") if self.kind.namespaced else ""
        )
        if self.kind.namespaced and not self.namespace:
            raise ValueError(
                f"{self.kind.kind} is namespaced: pass namespace=... "
                "or set metadata.namespace"
            )
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
            self._ensure_namespace()
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

    def _ensure_namespace(self) -> None:
        """Set the objects' namespace to the request's, as the REST handlers do.

        kube-apiserver fills a missing `metadata.namespace`, clears it on a
        cluster-scoped kind and rejects a different one with 400 before any
        webhook runs (EnsureObjectNamespaceMatchesRequestNamespace in
        k8s.io/apiserver/pkg/registry/rest).
        """
        if self.obj is not None:
            metadata = self.obj.setdefault("metadata", {})
            if not _set_namespace(metadata, self.namespace):
                raise kubestatus.bad_request(
                    "the namespace of the provided object does not match the "
                    "namespace sent on the request"
                )
        if self.old is not None:
            # The old object comes from storage, so it is in its namespace already.
            metadata = self.old.setdefault("metadata", {})
            if not _set_namespace(metadata, self.namespace):
                raise ValueError(
                    f"old_object is in namespace {metadata['namespace']!r} but the "
                    f"request is in {self.namespace!r}: pass matching namespaces"
                )

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
                    # Reinvocable webhooks called before this change get called again.
                    reinvoke |= previously_invoked
                    previously_invoked = set()
                    any_change = True
                if hook.spec.get("reinvocationPolicy") == "IfNeeded":
                    previously_invoked.add(hook.index)

    def _record_mutation(self, hook: Hook, round_number: int, changed: bool) -> None:
        key = (
            f"mutation.webhook.admission.k8s.io/round_{round_number}_index_{hook.index}"
        )
        value = {
            "configuration": hook.configuration,
            "webhook": hook.name,
            "mutated": changed,
        }
        self.audit.add_system(key, json.dumps(value))

    def _call_mutating(self, hook: Hook, round_number: int) -> bool:
        """Call a mutating webhook, apply its patch and return whether it changed."""
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
        self._record_patch(hook, round_number, operations)
        return changed

    def _record_patch(
        self, hook: Hook, round_number: int, operations: list[Object]
    ) -> None:
        key = f"patch.webhook.admission.k8s.io/round_{round_number}_index_{hook.index}"
        value = {
            "configuration": hook.configuration,
            "webhook": hook.name,
            "patch": operations,
            "patchType": "JSONPatch",
        }
        self.audit.add_system(key, json.dumps(value))

    # Matching.

    def _attributes(self) -> Attributes:
        request = {key: value for key, value in self.base.items()}
        request["object"], request["oldObject"] = self.obj, self.old
        return Attributes(
            operation=self.operation,
            group=self.kind.group,
            version=self.kind.version,
            resource=self.kind.resource,
            sub_resource=self.sub_resource,
            namespace=self.namespace,
            name=self.name,
            obj=self.obj,
            old=self.old,
            request=request,
        )

    def _should_call(self, hook: Hook, round_number: int) -> bool:
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

    def _skip(self, hook: Hook, round_number: int, reason: str) -> bool:
        if round_number == 0:
            self.result.skipped.append(Skip(hook.name, hook.configuration, reason))
        return False

    # Calls.

    def _call(self, hook: Hook, round_number: int, mutating: bool) -> Response | None:
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
            raise denial(hook.name, response.status)
        call.outcome = "allowed"
        return response

    def _check_dry_run(self, hook: Hook) -> None:
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
        self, hook: Hook, call: WebhookCall, version: str, uid: str, mutating: bool
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
                f"failed to call webhook: {status_error(status, data)}"
            )
        return admissionreview.parse_response(data, version, uid, mutating)

    def _timeout(self, hook: Hook) -> float:
        """Return the smaller of `timeoutSeconds` and the time left on the request."""
        timeout = float(hook.spec.get("timeoutSeconds") or DEFAULT_TIMEOUT_SECONDS)
        if self.deadline is not None:
            timeout = min(timeout, self.deadline - time.monotonic())
        if timeout <= 0:
            # The user's request ran out before this call, so kube-apiserver's
            # timeout filter sends the user a 504.
            raise _request_timeout(" - context deadline exceeded")
        return timeout

    def _call_failed(
        self,
        hook: Hook,
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
            if self.deadline is not None and time.monotonic() >= self.deadline:
                # Failing open does not go on once the user's request is out of time.
                raise _request_timeout()
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


def _set_namespace(metadata: Object, namespace: str) -> bool:
    """Fill or clear `metadata.namespace`; return False when it names another one."""
    found = metadata.get("namespace") or ""
    if not namespace:
        metadata.pop("namespace", None)
        return True
    if found and found != namespace:
        return False
    metadata["namespace"] = namespace
    return True


def _request_timeout(suffix: str = "") -> ApiError:
    """Build the 504 a user gets when the request's own deadline has passed."""
    message = f"Timeout: request did not complete within requested timeout{suffix}"
    return ApiError(504, "Timeout", message)
