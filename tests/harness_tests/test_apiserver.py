"""The admission caller against tiny webhook servers written for each case."""

from __future__ import annotations

import base64
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness import certs
from tests.harness.apiserver import AdmissionCaller
from tests.harness.webhookconfig import InvalidConfiguration
from tests.harness.webhookserver import Reply, WebhookServer, allow_response

Object = dict[str, Any]
SERVICE = "hook.webhooks.svc"
CERTIFICATE = certs.issue(SERVICE)


def webhook(name: str = "hook.example.com", **fields: Any) -> Object:
    spec: Object = {
        "name": name,
        "clientConfig": {
            "service": {"name": "hook", "namespace": "webhooks", "path": "/mutate"},
            "caBundle": CERTIFICATE.ca_bundle,
        },
        "rules": [
            {
                "operations": ["CREATE", "UPDATE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ],
        "sideEffects": "None",
        "admissionReviewVersions": ["v1", "v1beta1"],
        "timeoutSeconds": 5,
    }
    spec.update(fields)
    return spec


def configuration(
    *hooks: Object, name: str = "config", kind: str = "Mutating"
) -> Object:
    return {
        "apiVersion": "admissionregistration.k8s.io/v1",
        "kind": f"{kind}WebhookConfiguration",
        "metadata": {"name": name},
        "webhooks": list(hooks),
    }


def pod(env: list[Object] | None = None, **metadata: Any) -> Object:
    container: Object = {"name": "main", "image": "busybox"}
    if env is not None:
        container["env"] = env
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata or {"generateName": "job-"},
        "spec": {"containers": [container]},
    }


def b64(data: Any) -> str:
    return base64.b64encode(json.dumps(data).encode()).decode()


# Two padding characters, dropped: Go's decoder rejects this.
UNPADDED = b64([{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
assert UNPADDED.endswith("==")
UNPADDED = UNPADDED.rstrip("=")

Handler = Callable[[Object], Reply]


@pytest.fixture
def serve() -> Iterator[Callable[[Handler], WebhookServer]]:
    servers: list[WebhookServer] = []

    def start(handler: Handler) -> WebhookServer:
        server = WebhookServer(handler, CERTIFICATE).__enter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.__exit__()


def caller_for(
    server: WebhookServer, *configs: Object, **options: Any
) -> AdmissionCaller:
    options.setdefault("namespaces", {"team-a": {"runai/queue": "team-a"}})
    mutating = [c for c in configs if c["kind"].startswith("Mutating")]
    validating = [c for c in configs if c["kind"].startswith("Validating")]
    return AdmissionCaller(
        mutating=mutating,
        validating=validating,
        services={f"{SERVICE}:443": ("127.0.0.1", server.port)},
        **options,
    )


def with_fields(review: Object, **fields: Any) -> Object:
    """Return an allowing v1 response with `fields` set on `response` as given."""
    body = allow_response(review)
    body["response"].update(fields)
    return body


def allow(review: Object) -> Reply:
    return Reply(body=allow_response(review))


# The request.


def test_request_fields_on_create(serve: Any) -> None:
    server = serve(allow)
    caller = caller_for(server, configuration(webhook()))

    first = caller.admit(pod(), namespace="team-a")
    second = caller.admit(pod(), namespace="team-a")

    assert first.allowed, first.message
    request = server.reviews[0]["request"]
    assert server.reviews[0]["apiVersion"] == "admission.k8s.io/v1"
    assert server.paths[0] == "/mutate?timeout=5s"
    assert request["kind"] == {"group": "", "version": "v1", "kind": "Pod"}
    assert request["resource"] == {"group": "", "version": "v1", "resource": "pods"}
    assert request["requestKind"] == request["kind"]
    assert request["requestResource"] == request["resource"]
    assert "subResource" not in request
    assert "name" not in request
    assert request["namespace"] == "team-a"
    assert request["operation"] == "CREATE"
    assert request["dryRun"] is False
    assert request["oldObject"] is None
    assert request["object"]["metadata"] == {
        "generateName": "job-",
        "namespace": "team-a",
    }
    assert request["options"] == {
        "kind": "CreateOptions",
        "apiVersion": "meta.k8s.io/v1",
    }
    assert second.allowed
    assert server.reviews[1]["request"]["uid"] != request["uid"]


def test_request_fields_on_delete(serve: Any) -> None:
    server = serve(allow)
    hook = webhook(
        rules=[
            {
                "operations": ["DELETE"],
                "apiGroups": [""],
                "apiVersions": ["v1"],
                "resources": ["pods"],
            }
        ]
    )
    caller = caller_for(server, configuration(hook))

    result = caller.admit(None, "DELETE", "team-a", old_object=pod(name="p1"))

    request = server.reviews[0]["request"]
    assert result.allowed, result.message
    assert request["object"] is None
    assert request["oldObject"]["metadata"]["name"] == "p1"
    assert request["name"] == "p1"
    assert request["options"]["kind"] == "DeleteOptions"


def test_object_namespace_comes_from_request(serve: Any) -> None:
    server = serve(allow)
    caller = caller_for(server, configuration(webhook()))
    namespace = {
        "apiVersion": "v1",
        "kind": "Namespace",
        "metadata": {"name": "team-b", "namespace": "team-a"},
    }

    result = caller.admit(pod(), namespace="team-a")
    cluster_scoped = caller.admit(namespace)

    assert result.allowed, result.message
    assert server.reviews[0]["request"]["object"]["metadata"]["namespace"] == "team-a"
    assert result.object is not None
    assert result.object["metadata"]["namespace"] == "team-a"
    # A cluster-scoped object loses any namespace it names.
    assert cluster_scoped.allowed, cluster_scoped.message
    assert cluster_scoped.object is not None
    assert "namespace" not in cluster_scoped.object["metadata"]


def test_object_in_other_namespace_is_400(serve: Any) -> None:
    server = serve(allow)
    caller = caller_for(server, configuration(webhook()))

    result = caller.admit(pod(name="p", namespace="team-b"), namespace="team-a")

    assert not result.allowed
    assert result.code == 400
    assert result.message == (
        "the namespace of the provided object does not match the namespace sent "
        "on the request"
    )
    assert result.status is not None
    assert result.status["reason"] == "BadRequest"
    assert server.reviews == []


def test_request_uses_v1beta1_when_only_choice(serve: Any) -> None:
    def reply(review: Object) -> Reply:
        # A v1beta1 response is not checked for uid or apiVersion.
        return Reply(body={"response": {"uid": "whatever", "allowed": True}})

    server = serve(reply)
    caller = caller_for(
        server, configuration(webhook(admissionReviewVersions=["v2", "v1beta1"]))
    )

    result = caller.admit(pod(), namespace="team-a")

    assert result.allowed, result.message
    assert server.reviews[0]["apiVersion"] == "admission.k8s.io/v1beta1"


def test_v1beta1_patch_needs_no_patch_type(serve: Any) -> None:
    labels = [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}]

    def reply(review: Object) -> Reply:
        # kube-apiserver reads any v1beta1 patch as a JSON patch.
        response = {"uid": "whatever", "allowed": True, "patch": b64(labels)}
        return Reply(body={"response": response})

    server = serve(reply)
    caller = caller_for(
        server, configuration(webhook(admissionReviewVersions=["v1beta1"]))
    )

    result = caller.admit(pod(), namespace="team-a")

    assert result.allowed, result.message
    assert result.object is not None
    assert result.object["metadata"]["labels"] == {"a": "b"}


def test_ephemeral_containers_need_subresource_rule(serve: Any) -> None:
    server = serve(allow)
    sub_rule = {
        "operations": ["UPDATE"],
        "apiGroups": [""],
        "apiVersions": ["v1"],
        "resources": ["pods/ephemeralcontainers"],
    }
    caller = caller_for(
        server,
        configuration(webhook(name="pods.example.com")),
        configuration(
            webhook(name="debug.example.com", rules=[sub_rule]), name="debug"
        ),
    )
    old = pod(name="p1")
    new = pod(name="p1")
    new["spec"]["ephemeralContainers"] = [{"name": "debugger", "image": "busybox"}]

    result = caller.admit(
        new, "UPDATE", "team-a", old_object=old, sub_resource="ephemeralcontainers"
    )

    assert result.allowed, result.message
    assert [call.webhook for call in result.calls] == ["debug.example.com"]
    assert result.skipped[0].reason == "no rule matches"
    request = server.reviews[0]["request"]
    assert request["subResource"] == "ephemeralcontainers"
    assert request["requestSubResource"] == "ephemeralcontainers"
    assert request["options"]["kind"] == "UpdateOptions"


def test_request_timeout_caps_query(serve: Any) -> None:
    server = serve(allow)
    caller = caller_for(server, configuration(webhook(timeoutSeconds=30)))

    caller.admit(pod(), namespace="team-a", request_timeout=2.5)

    assert server.paths[0] == "/mutate?timeout=3s"


# Response checks.


@pytest.mark.parametrize(
    ("reply", "reason"),
    [
        (
            lambda review: {
                **allow_response(review),
                "response": {"uid": "other", "allowed": True},
            },
            'received invalid webhook response: expected response.uid="',
        ),
        (
            lambda review: {
                **allow_response(review),
                "apiVersion": "admission.k8s.io/v1beta1",
            },
            "expected webhook response of admission.k8s.io/v1, Kind=AdmissionReview, "
            "got admission.k8s.io/v1beta1, Kind=AdmissionReview",
        ),
        (
            lambda review: with_fields(
                review, patch=b64([{"op": "add", "path": "/x", "value": 1}])
            ),
            "webhook returned response.patch but not response.patchType",
        ),
        (
            lambda review: with_fields(review, patchType="JSONPatch"),
            "webhook returned response.patchType but not response.patch",
        ),
        (
            # Present but empty still counts as set: the field is a pointer in Go.
            lambda review: with_fields(review, patchType=""),
            "webhook returned response.patchType but not response.patch",
        ),
        (
            lambda review: with_fields(
                review,
                patch=b64([{"op": "add", "path": "/x", "value": 1}]),
                patchType="",
            ),
            'webhook returned invalid response.patchType of ""',
        ),
        (
            lambda review: with_fields(review, patch=UNPADDED, patchType="JSONPatch"),
            "illegal base64 data",
        ),
        (
            lambda review: with_fields(review, warnings=["ok", 1]),
            "json: cannot unmarshal number into Go struct field "
            "AdmissionResponse.response.warnings of type string",
        ),
        (
            lambda review: with_fields(review, auditAnnotations={"key": True}),
            "json: cannot unmarshal bool into Go struct field "
            "AdmissionResponse.response.auditAnnotations of type string",
        ),
        (
            lambda review: with_fields(
                review, patch=b64({"op": "add"}), patchType="JSONPatch"
            ),
            "received undecodable patch in webhook response",
        ),
        (
            lambda review: with_fields(
                review,
                patch=b64([{"op": "add", "path": "/x", "value": 1}]),
                patchType="MergePatch",
            ),
            'unsupported patch type "MergePatch"',
        ),
        (
            lambda review: {
                "kind": "AdmissionReview",
                "apiVersion": "admission.k8s.io/v1",
            },
            "webhook response was absent",
        ),
    ],
)
def test_bad_response_fails_call(
    serve: Any, reply: Callable[[Object], Object], reason: str
) -> None:
    server = serve(lambda review: Reply(body=reply(review)))
    failing = caller_for(server, configuration(webhook()))
    ignoring = caller_for(server, configuration(webhook(failurePolicy="Ignore")))

    closed = failing.admit(pod(), namespace="team-a")
    opened = ignoring.admit(pod(), namespace="team-a")

    assert not closed.allowed
    assert closed.code == 500
    assert closed.message.startswith(
        'Internal error occurred: failed calling webhook "hook.example.com": '
    )
    assert reason in closed.message
    assert closed.status is not None
    assert closed.status["reason"] == "InternalError"
    assert opened.allowed, opened.message
    assert opened.object == pod(generateName="job-", namespace="team-a")
    assert opened.calls[0].outcome == "failed-open"
    assert (
        opened.audit_annotations[
            "failed-open.mutation.webhook.admission.k8s.io/round_0_index_0"
        ]
        == "hook.example.com"
    )


def test_patch_that_fails_is_500_even_ignored(serve: Any) -> None:
    operation = {
        "op": "add",
        "path": "/spec/containers/0/env/-",
        "value": {"name": "A", "value": "b"},
    }
    server = serve(lambda review: Reply(body=allow_response(review, patch=[operation])))
    caller = caller_for(server, configuration(webhook(failurePolicy="Ignore")))

    result = caller.admit(pod(), namespace="team-a")
    with_env = caller.admit(pod(env=[]), namespace="team-a")

    assert not result.allowed
    assert result.code == 500
    assert result.message.startswith("Internal error occurred: ")
    assert with_env.allowed, with_env.message
    assert with_env.object is not None
    assert with_env.object["spec"]["containers"][0]["env"] == [
        {"name": "A", "value": "b"}
    ]


def test_null_patch_changes_nothing(serve: Any) -> None:
    # jsonpatch.DecodePatch turns `null` into an empty patch, which
    # kube-apiserver skips like an absent one.
    server = serve(
        lambda review: Reply(
            body=with_fields(review, patch=b64(None), patchType="JSONPatch")
        )
    )

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.allowed, result.message
    assert result.calls[0].outcome == "allowed"
    assert result.object is not None
    assert result.object["spec"] == pod()["spec"]


def test_add_or_replace_without_value_sets_null(serve: Any) -> None:
    # evanphx/json-patch v4 stores a missing `value` as JSON null.
    operations = [
        {"op": "add", "path": "/metadata/annotations"},
        {"op": "replace", "path": "/metadata/labels"},
    ]
    server = serve(lambda review: Reply(body=allow_response(review, patch=operations)))

    result = caller_for(server, configuration(webhook())).admit(
        pod(name="p", labels={"app": "a"}), namespace="team-a"
    )

    assert result.allowed, result.message
    assert result.calls[0].outcome == "patched"
    assert result.object is not None
    assert result.object["metadata"]["annotations"] is None
    assert result.object["metadata"]["labels"] is None


def test_patch_on_delete_is_500(serve: Any) -> None:
    operation = {"op": "add", "path": "/metadata/labels", "value": {}}
    server = serve(lambda review: Reply(body=allow_response(review, patch=[operation])))
    hook = webhook(
        rules=[
            {
                "operations": ["*"],
                "apiGroups": ["*"],
                "apiVersions": ["*"],
                "resources": ["*"],
            }
        ]
    )

    result = caller_for(server, configuration(hook)).admit(
        None, "DELETE", "team-a", old_object=pod(name="p")
    )

    assert result.code == 500
    assert (
        "attempted to modify the object, which is not supported for this operation"
        in result.message
    )


def test_timeout_fails_call_in_time(serve: Any) -> None:
    server = serve(lambda review: Reply(body=allow_response(review), delay=2))
    caller = caller_for(server, configuration(webhook(timeoutSeconds=1)))
    began = time.monotonic()

    result = caller.admit(pod(), namespace="team-a")

    elapsed = time.monotonic() - began
    assert server.paths[0] == "/mutate?timeout=1s"
    assert result.code == 500
    assert result.message.endswith(
        "failed to call webhook: "
        'Post "https://hook.webhooks.svc:443/mutate?timeout=1s": '
        "context deadline exceeded"
    )
    # The upper bound leaves room for a loaded CI machine.
    assert 0.9 < elapsed < 2.5


def test_ignored_failure_after_request_deadline_is_504(serve: Any) -> None:
    server = serve(lambda review: Reply(body=allow_response(review), delay=2))
    hook = webhook(timeoutSeconds=5, failurePolicy="Ignore")
    caller = caller_for(server, configuration(hook))

    result = caller.admit(pod(), namespace="team-a", request_timeout=1.0)

    # Failing open does not help once the user's request itself has run out.
    assert not result.allowed
    assert result.code == 504
    assert result.status is not None
    assert result.status["reason"] == "Timeout"
    assert result.message == (
        "Timeout: request did not complete within requested timeout"
    )


def test_ignored_failure_within_deadline_goes_on(serve: Any) -> None:
    server = serve(lambda review: Reply(body=allow_response(review), delay=2))
    hook = webhook(timeoutSeconds=1, failurePolicy="Ignore")
    caller = caller_for(server, configuration(hook))

    result = caller.admit(pod(), namespace="team-a", request_timeout=10.0)

    assert result.allowed, result.message
    assert result.calls[0].outcome == "failed-open"


def test_retry_after_is_honoured(serve: Any) -> None:
    answers = [Reply(status=429, headers={"Retry-After": "1"}, body=b"slow down"), None]

    def reply(review: Object) -> Reply:
        answer = answers.pop(0)
        return answer or Reply(body=allow_response(review))

    server = serve(reply)
    began = time.monotonic()

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.allowed, result.message
    assert len(server.reviews) == 2
    assert time.monotonic() - began >= 1


def test_error_status_without_retry_after_fails(serve: Any) -> None:
    server = serve(lambda review: Reply(status=500, body=b"boom"))

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert len(server.reviews) == 1
    assert result.code == 500
    assert (
        'an error on the server ("boom") has prevented the request from succeeding'
        in result.message
    )


# Denials, warnings and audit annotations.


@pytest.mark.parametrize(
    ("status", "code", "message"),
    [
        (
            {"code": 403, "message": "secret missing"},
            403,
            'admission webhook "hook.example.com" denied the request: secret missing',
        ),
        (
            {"code": 200, "message": "nope"},
            400,
            'admission webhook "hook.example.com" denied the request: nope',
        ),
        (
            {},
            400,
            'admission webhook "hook.example.com" denied the request '
            "without explanation",
        ),
        (
            {"reason": "Forbidden"},
            400,
            'admission webhook "hook.example.com" denied the request: Forbidden',
        ),
    ],
)
def test_denial_code_and_message(
    serve: Any, status: Object, code: int, message: str
) -> None:
    def deny(review: Object) -> Reply:
        body = allow_response(review)
        body["response"]["allowed"] = False
        body["response"]["status"] = status
        return Reply(body=body)

    server = serve(deny)

    result = caller_for(server, configuration(webhook(failurePolicy="Ignore"))).admit(
        pod(), namespace="team-a"
    )

    assert not result.allowed
    assert result.code == code
    assert result.message == message
    assert result.status is not None
    assert result.status["status"] == "Failure"


@pytest.mark.parametrize(
    ("code", "error"),
    [
        ("403", "cannot unmarshal string into Go struct field"),
        (403.5, "cannot unmarshal number 403.5 into Go struct field"),
        (403.0, "cannot unmarshal number 403.0 into Go struct field"),
        (True, "cannot unmarshal bool into Go struct field"),
        (2**31, f"cannot unmarshal number {2**31} into Go struct field"),
        ([403], "cannot unmarshal array into Go struct field"),
    ],
)
def test_denial_with_non_integer_code_fails_call(
    serve: Any, code: Any, error: str
) -> None:
    def deny(review: Object) -> Reply:
        body = allow_response(review, allowed=False)
        body["response"]["status"] = {"code": code, "message": "nope"}
        return Reply(body=body)

    server = serve(deny)
    failing = caller_for(server, configuration(webhook()))
    ignoring = caller_for(server, configuration(webhook(failurePolicy="Ignore")))

    closed = failing.admit(pod(), namespace="team-a")
    opened = ignoring.admit(pod(), namespace="team-a")

    assert closed.code == 500
    assert error in closed.message
    assert "Status.response.status.code of type int32" in closed.message
    assert opened.allowed, opened.message
    assert opened.calls[0].outcome == "failed-open"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        ({"message": 1}, "number into Go struct field Status.response.status.message"),
        ({"reason": ["x"]}, "array into Go struct field Status.response.status.reason"),
        (
            {"details": "x"},
            "string into Go struct field Status.response.status.details",
        ),
    ],
)
def test_denial_with_mistyped_status_fails_call(
    serve: Any, status: Object, error: str
) -> None:
    server = serve(
        lambda review: Reply(body=allow_response(review, allowed=False, status=status))
    )

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 500
    assert f"json: cannot unmarshal {error}" in result.message


def test_denial_with_null_code_is_400(serve: Any) -> None:
    server = serve(
        lambda review: Reply(
            body=allow_response(
                review, allowed=False, status={"code": None, "message": "nope"}
            )
        )
    )

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 400
    assert result.message == (
        'admission webhook "hook.example.com" denied the request: nope'
    )


def test_missing_allowed_is_denial(serve: Any) -> None:
    server = serve(
        lambda review: Reply(
            body={
                **allow_response(review),
                "response": {"uid": review["request"]["uid"]},
            }
        )
    )

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 400
    assert "denied the request without explanation" in result.message


def test_warnings_are_filtered_and_cut(serve: Any) -> None:
    long_texts = [f"{index}" + "w" * 499 for index in range(10)]
    warnings = ["fine", "bad\nline", "tab\there", "fine", *long_texts]
    server = serve(lambda review: Reply(body=allow_response(review, warnings=warnings)))

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.warnings[0] == "fine"
    assert "bad\nline" not in result.warnings
    assert "tab\there" not in result.warnings
    assert result.warnings.count("fine") == 1
    # 10 x 500 characters pass 4096, so every warning is cut to 256.
    assert len(result.warnings) == 11
    assert all(len(text) <= 256 for text in result.warnings)
    assert sum(len(text) for text in result.warnings) <= 4096


def test_audit_annotation_keys(serve: Any) -> None:
    annotations = {
        "ok-key": "1",
        "with/slash": "2",
        "x" * 64: "3",
        "-bad": "4",
        "a.b_c": "5",
    }
    server = serve(
        lambda review: Reply(body=allow_response(review, auditAnnotations=annotations))
    )

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    stored = {
        key: value
        for key, value in result.audit_annotations.items()
        if key.startswith("hook.example.com/")
    }
    assert stored == {"hook.example.com/ok-key": "1", "hook.example.com/a.b_c": "5"}
    assert json.loads(
        result.audit_annotations["mutation.webhook.admission.k8s.io/round_0_index_0"]
    ) == {
        "configuration": "config",
        "webhook": "hook.example.com",
        "mutated": False,
    }


# Ordering and reinvocation.


def label_adder(label: str, seen: list[Object]) -> Handler:
    def reply(review: Object) -> Reply:
        obj = review["request"]["object"]
        seen.append(obj)
        labels = obj["metadata"].get("labels")
        if labels is None:
            return Reply(
                body=allow_response(
                    review,
                    patch=[
                        {
                            "op": "add",
                            "path": "/metadata/labels",
                            "value": {label: "yes"},
                        }
                    ],
                )
            )
        if label in labels:
            return Reply(body=allow_response(review))
        key = label.replace("/", "~1")
        return Reply(
            body=allow_response(
                review,
                patch=[
                    {"op": "add", "path": f"/metadata/labels/{key}", "value": "yes"}
                ],
            )
        )

    return reply


@pytest.fixture
def two_hooks(
    serve: Any,
) -> Callable[..., tuple[AdmissionCaller, dict[str, list[Object]]]]:
    def build(
        first_policy: str, second_changes: bool = True
    ) -> tuple[AdmissionCaller, dict[str, list[Object]]]:
        seen: dict[str, list[Object]] = {"first": [], "second": []}
        first = label_adder("first", seen["first"])
        second = label_adder("second", seen["second"])

        def second_unchanged(review: Object) -> Reply:
            seen["second"].append(review["request"]["object"])
            return allow(review)

        if not second_changes:
            second = second_unchanged

        def reply(review: Object) -> Reply:
            return (
                first(review)
                if server.paths[-1].startswith("/first")
                else second(review)
            )

        server = serve(reply)
        hook_a = webhook("first.example.com", reinvocationPolicy=first_policy)
        hook_a["clientConfig"]["service"]["path"] = "/first"
        hook_b = webhook("second.example.com")
        hook_b["clientConfig"]["service"]["path"] = "/second"
        # Configurations run sorted by name: "a-config" before "b-config".
        return caller_for(
            server,
            configuration(hook_b, name="b-config"),
            configuration(hook_a, name="a-config"),
        ), seen

    return build


def test_reinvokes_if_needed_after_change(two_hooks: Any) -> None:
    caller, seen = two_hooks("IfNeeded")

    result = caller.admit(pod(), namespace="team-a")

    assert result.allowed, result.message
    assert [(call.webhook, call.round) for call in result.calls] == [
        ("first.example.com", 0),
        ("second.example.com", 0),
        ("first.example.com", 1),
    ]
    assert seen["first"][1]["metadata"]["labels"] == {"first": "yes", "second": "yes"}
    assert result.object is not None
    assert result.object["metadata"]["labels"] == {"first": "yes", "second": "yes"}
    assert result.requests[0]["request"]["uid"] != result.requests[2]["request"]["uid"]


def test_no_reinvocation_with_never(two_hooks: Any) -> None:
    caller, _ = two_hooks("Never")

    result = caller.admit(pod(), namespace="team-a")

    assert result.called("first.example.com") == 1


def test_no_reinvocation_without_later_change(two_hooks: Any) -> None:
    caller, _ = two_hooks("IfNeeded", second_changes=False)

    result = caller.admit(pod(), namespace="team-a")

    assert result.called("first.example.com") == 1
    assert result.called("second.example.com") == 1


# Selectors and match conditions.


def test_namespace_selector_excludes_system(serve: Any) -> None:
    selector = {
        "matchExpressions": [
            {"key": "runai/queue", "operator": "Exists"},
            {
                "key": "kubernetes.io/metadata.name",
                "operator": "NotIn",
                "values": ["kube-system"],
            },
        ]
    }
    server = serve(allow)
    caller = caller_for(
        server,
        configuration(webhook(namespaceSelector=selector)),
        namespaces={
            "team-a": {"runai/queue": "a"},
            "kube-system": {"runai/queue": "x"},
            "plain": {},
        },
    )

    called = caller.admit(pod(), namespace="team-a")
    system = caller.admit(pod(), namespace="kube-system")
    plain = caller.admit(pod(), namespace="plain")
    missing = caller.admit(pod(), namespace="ghost")

    assert len(called.calls) == 1
    assert system.calls == []
    assert system.skipped[0].reason == "namespaceSelector does not match"
    assert plain.calls == []
    assert missing.code == 404
    assert missing.message == 'namespaces "ghost" not found'


def test_namespace_labels_from_fake_kube(serve: Any, fake_kube: Any) -> None:
    fake_kube.add_namespace("team-b", {"runai/queue": "b"})
    server = serve(allow)
    selector = {"matchLabels": {"runai/queue": "b"}}
    caller = caller_for(
        server,
        configuration(webhook(namespaceSelector=selector)),
        namespaces={},
        kube=fake_kube,
    )

    result = caller.admit(pod(), namespace="team-b")

    assert len(result.calls) == 1


def test_object_selector_checks_old_object(serve: Any) -> None:
    server = serve(allow)
    selector = {"matchLabels": {"inject": "yes"}}
    caller = caller_for(server, configuration(webhook(objectSelector=selector)))
    labelled = pod(name="p", labels={"inject": "yes"})

    create = caller.admit(pod(), namespace="team-a")
    update = caller.admit(pod(name="p"), "UPDATE", "team-a", old_object=labelled)

    assert create.calls == []
    assert create.skipped[0].reason == "objectSelector does not match"
    assert len(update.calls) == 1


def test_match_condition_false_skips(serve: Any) -> None:
    server = serve(allow)
    condition = {
        "name": "has-secret-ref",
        "expression": (
            "object.spec.containers.exists(c, has(c.env) && "
            "c.env.exists(e, has(e.value) && e.value.startsWith('SECRET:')))"
        ),
    }
    caller = caller_for(server, configuration(webhook(matchConditions=[condition])))

    skipped = caller.admit(
        pod(env=[{"name": "A", "value": "plain"}]), namespace="team-a"
    )
    called = caller.admit(
        pod(env=[{"name": "A", "value": "SECRET:db,password"}]), namespace="team-a"
    )

    assert skipped.calls == []
    assert skipped.skipped[0].reason == "matchCondition 'has-secret-ref' is false"
    assert len(called.calls) == 1


def test_match_condition_error_follows_policy(serve: Any) -> None:
    server = serve(allow)
    condition = {"name": "broken", "expression": "object.spec.missing.size() > 0"}
    failing = caller_for(server, configuration(webhook(matchConditions=[condition])))
    ignoring = caller_for(
        server,
        configuration(webhook(matchConditions=[condition], failurePolicy="Ignore")),
    )

    closed = failing.admit(pod(), namespace="team-a")
    opened = ignoring.admit(pod(), namespace="team-a")

    assert closed.code == 403
    assert closed.message.startswith(
        "pods is forbidden: "
        "expression 'object.spec.missing.size() > 0' resulted in error"
    )
    assert opened.allowed
    assert opened.calls == []


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        (
            {"name": "hook.example"},
            'webhooks[0].name: Invalid value: "hook.example": should be a domain '
            "with at least three segments separated by dots",
        ),
        ({"sideEffects": None}, "webhooks[0].sideEffects: Required value"),
        (
            {"sideEffects": "Unknown"},
            'webhooks[0].sideEffects: Unsupported value: "Unknown": '
            'supported values: "None", "NoneOnDryRun"',
        ),
        (
            {"timeoutSeconds": 31},
            "webhooks[0].timeoutSeconds: Invalid value: 31: "
            "the timeout value must be between 1 and 30 seconds",
        ),
        (
            {"timeoutSeconds": 0},
            "webhooks[0].timeoutSeconds: Invalid value: 0: "
            "the timeout value must be between 1 and 30 seconds",
        ),
        (
            {"admissionReviewVersions": []},
            "webhooks[0].admissionReviewVersions: Required value: "
            "must specify one of v1, v1beta1",
        ),
        (
            {"failurePolicy": "fail"},
            'webhooks[0].failurePolicy: Unsupported value: "fail": '
            'supported values: "Fail", "Ignore"',
        ),
        (
            {"reinvocationPolicy": "Always"},
            'webhooks[0].reinvocationPolicy: Unsupported value: "Always": '
            'supported values: "IfNeeded", "Never"',
        ),
        (
            {"clientConfig": {"url": "http://127.0.0.1:8443/mutate"}},
            "webhooks[0].clientConfig.url: Invalid value: "
            "\"http://127.0.0.1:8443/mutate\": 'https' is the only allowed URL scheme",
        ),
        (
            {"clientConfig": {"service": {"name": "h", "namespace": "w", "path": "m"}}},
            'webhooks[0].clientConfig.service.path: Invalid value: "m": '
            "must start with a '/'",
        ),
    ],
)
def test_invalid_configuration_is_rejected(fields: Object, error: str) -> None:
    hook = webhook(**fields)
    if hook["sideEffects"] is None:
        del hook["sideEffects"]

    with pytest.raises(InvalidConfiguration) as caught:
        AdmissionCaller(mutating=[configuration(hook)])

    assert str(caught.value).endswith(f'"config" is invalid: {error}')


def test_duplicate_webhook_names_are_rejected() -> None:
    twice = configuration(webhook(), webhook())

    with pytest.raises(InvalidConfiguration) as caught:
        AdmissionCaller(
            validating=[{**twice, "kind": "ValidatingWebhookConfiguration"}]
        )

    assert str(caught.value) == (
        'ValidatingWebhookConfiguration.admissionregistration.k8s.io "config" is '
        'invalid: webhooks[1].name: Duplicate value: "hook.example.com"'
    )


def test_match_condition_limit_and_variables() -> None:
    too_many = [{"name": f"c{index}", "expression": "true"} for index in range(65)]
    namespace_object = [
        {"name": "ns", "expression": "namespaceObject.metadata.name == 'x'"}
    ]

    with pytest.raises(ValueError, match="at most 64"):
        AdmissionCaller(mutating=[configuration(webhook(matchConditions=too_many))])
    with pytest.raises(ValueError, match="namespaceObject"):
        AdmissionCaller(
            mutating=[configuration(webhook(matchConditions=namespace_object))]
        )


# Validation of the result.


def env_patcher(env: list[Object]) -> Handler:
    return lambda review: Reply(
        body=allow_response(
            review,
            patch=[{"op": "add", "path": "/spec/containers/0/env", "value": env}],
        )
    )


@pytest.mark.parametrize(
    ("env", "field", "text"),
    [
        (
            [{"name": "1BAD", "value": "x"}],
            "spec.containers[0].env[0].name",
            'Invalid value: "1BAD": a valid environment variable name',
        ),
        (
            [
                {
                    "name": "A",
                    "valueFrom": {"secretKeyRef": {"name": "Bad_Secret", "key": "k"}},
                }
            ],
            "spec.containers[0].env[0].valueFrom.secretKeyRef.name",
            'Invalid value: "Bad_Secret": a lowercase RFC 1123 subdomain',
        ),
        (
            [
                {
                    "name": "A",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "bad/key"}},
                }
            ],
            "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
            'Invalid value: "bad/key": a valid config key',
        ),
        (
            [{"name": "A", "valueFrom": {"secretKeyRef": {"name": "db", "key": ".."}}}],
            "spec.containers[0].env[0].valueFrom.secretKeyRef.key",
            "Invalid value: \"..\": must not be '..'",
        ),
        (
            [
                {
                    "name": "A",
                    "value": "x",
                    "valueFrom": {"secretKeyRef": {"name": "db", "key": "k"}},
                }
            ],
            "spec.containers[0].env[0].valueFrom",
            'Invalid value: "": may not be specified when `value` is not empty',
        ),
    ],
)
def test_invalid_env_after_patch_is_422(
    serve: Any, env: list[Object], field: str, text: str
) -> None:
    server = serve(env_patcher(env))

    result = caller_for(
        server, configuration(webhook()), kubernetes_version="1.30"
    ).admit(pod(name="p1"), namespace="team-a")

    assert result.code == 422
    assert result.status is not None
    assert result.status["reason"] == "Invalid"
    assert result.message.startswith(f'Pod "p1" is invalid: {field}: {text}')


def test_env_name_rule_depends_on_version(serve: Any) -> None:
    server = serve(env_patcher([{"name": "1-relaxed", "value": "x"}]))

    old = caller_for(server, configuration(webhook()), kubernetes_version="1.30").admit(
        pod(), namespace="team-a"
    )
    new = caller_for(server, configuration(webhook()), kubernetes_version="1.33").admit(
        pod(), namespace="team-a"
    )

    assert old.code == 422
    assert new.allowed, new.message


def test_unknown_patched_field_is_dropped(serve: Any) -> None:
    operation = {"op": "add", "path": "/spec/containers/0/bogus", "value": 1}
    server = serve(lambda review: Reply(body=allow_response(review, patch=[operation])))

    result = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a"
    )

    assert result.allowed, result.message
    assert result.object is not None
    assert "bogus" not in result.object["spec"]["containers"][0]
    assert result.dropped_fields == ["spec.containers[0].bogus"]


def test_wrongly_typed_patch_is_500(serve: Any) -> None:
    server = serve(env_patcher([{"name": 5, "value": "x"}]))

    result = caller_for(server, configuration(webhook(failurePolicy="Ignore"))).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 500


def test_pod_update_may_not_change_env(serve: Any) -> None:
    server = serve(env_patcher([{"name": "A", "value": "x"}]))
    caller = caller_for(server, configuration(webhook()))

    result = caller.admit(pod(name="p1"), "UPDATE", "team-a", old_object=pod(name="p1"))

    assert result.code == 422
    assert result.message.startswith(
        'Pod "p1" is invalid: spec: Forbidden: pod updates may not change fields'
    )


def test_validating_webhook_sees_final_object(serve: Any) -> None:
    seen: list[Object] = []

    def reply(review: Object) -> Reply:
        if server.paths[-1].startswith("/validate"):
            seen.append(review["request"]["object"])
            return Reply(body=allow_response(review))
        return env_patcher([{"name": "A", "value": "x"}])(review)

    server = serve(reply)
    validating = webhook("check.example.com")
    validating["clientConfig"]["service"]["path"] = "/validate"

    result = caller_for(
        server, configuration(webhook()), configuration(validating, kind="Validating")
    ).admit(pod(), namespace="team-a")

    assert result.allowed, result.message
    assert seen[0]["spec"]["containers"][0]["env"] == [{"name": "A", "value": "x"}]


def test_validating_webhook_may_not_patch(serve: Any) -> None:
    server = serve(env_patcher([]))

    result = caller_for(server, configuration(webhook(), kind="Validating")).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 500
    assert "validating webhook may not return response.patch" in result.message


def test_validating_webhook_may_not_set_patch_type(serve: Any) -> None:
    server = serve(lambda review: Reply(body=with_fields(review, patchType="")))

    result = caller_for(server, configuration(webhook(), kind="Validating")).admit(
        pod(), namespace="team-a"
    )

    assert result.code == 500
    assert "validating webhook may not return response.patchType" in result.message


def test_dry_run_needs_side_effects_none(serve: Any) -> None:
    server = serve(allow)

    none = caller_for(server, configuration(webhook())).admit(
        pod(), namespace="team-a", dry_run=True
    )

    # admissionregistration.k8s.io/v1 accepts no other sideEffects value, so
    # the "does not support dry run" error needs a configuration stored
    # through v1beta1, which a current cluster no longer serves.
    with pytest.raises(InvalidConfiguration, match='Unsupported value: "Some"'):
        caller_for(server, configuration(webhook(sideEffects="Some")))
    assert none.allowed
    assert server.reviews[0]["request"]["dryRun"] is True


# Transport.


def test_wrong_ca_fails_tls(serve: Any) -> None:
    server = serve(allow)
    hook = webhook()
    hook["clientConfig"]["caBundle"] = certs.issue(SERVICE).ca_bundle

    result = caller_for(server, configuration(hook)).admit(pod(), namespace="team-a")

    assert result.code == 500
    assert "tls: failed to verify certificate" in result.message


def test_certificate_for_other_name_fails(serve: Any) -> None:
    server = serve(allow)
    hook = webhook()
    hook["clientConfig"]["service"]["name"] = "other"
    caller = AdmissionCaller(
        mutating=[configuration(hook)],
        services={"other.webhooks.svc:443": ("127.0.0.1", server.port)},
        namespaces={"team-a": {}},
    )

    result = caller.admit(pod(), namespace="team-a")

    assert result.code == 500
    assert "other.webhooks.svc" in result.message


def test_url_must_be_loopback() -> None:
    hook = webhook()
    hook["clientConfig"] = {"url": "https://10.0.0.1/mutate"}
    caller = AdmissionCaller(mutating=[configuration(hook)], namespaces={"team-a": {}})

    with pytest.raises(ValueError, match="not loopback"):
        caller.admit(pod(), namespace="team-a")


def test_connections_are_reused(serve: Any) -> None:
    server = serve(allow)
    caller = caller_for(server, configuration(webhook()))

    for _ in range(3):
        assert caller.admit(pod(), namespace="team-a").allowed

    assert caller.transport.connections_opened == 1


def test_idle_connection_closed_by_server(serve: Any) -> None:
    # A server with a short keep-alive timeout (uvicorn's default is 5 s)
    # closes the idle connection. The caller notices, as Go's transport does,
    # so the next call opens a new connection instead of failing.
    server = WebhookServer(allow, CERTIFICATE, idle_timeout=0.2).__enter__()
    try:
        caller = caller_for(server, configuration(webhook()))
        first = caller.admit(pod(), namespace="team-a")
        time.sleep(0.6)
        second = caller.admit(pod(), namespace="team-a")
    finally:
        server.__exit__()

    assert first.allowed, first.message
    assert second.allowed, second.message
    assert caller.transport.connections_opened == 2


def test_url_client_config_on_loopback() -> None:
    certificate = certs.issue("127.0.0.1")
    with WebhookServer(allow, certificate) as server:
        hook = webhook(timeoutSeconds=3)
        hook["clientConfig"] = {
            "url": f"https://127.0.0.1:{server.port}/inject",
            "caBundle": certificate.ca_bundle,
        }
        caller = AdmissionCaller(
            mutating=[configuration(hook)], namespaces={"team-a": {}}
        )

        result = caller.admit(pod(), namespace="team-a")

    assert result.allowed, result.message
    assert server.paths == ["/inject?timeout=3s"]


def test_unknown_review_versions_are_rejected() -> None:
    hook = webhook(admissionReviewVersions=["v2"])

    with pytest.raises(InvalidConfiguration) as caught:
        AdmissionCaller(mutating=[configuration(hook)])

    assert str(caught.value) == (
        'MutatingWebhookConfiguration.admissionregistration.k8s.io "config" is '
        'invalid: webhooks[0].admissionReviewVersions: Invalid value: []string{"v2"}: '
        "must include at least one of v1, v1beta1"
    )
