"""Templates end to end: service process, fake API, the chart's configurations.

The service runs with `--templates` against the fake Kubernetes API, which
holds the template ConfigMaps and the project's secret. The admission
caller plays kube-apiserver with the MutatingWebhookConfiguration and
ValidatingWebhookConfiguration that helm renders from the chart with
`templates.enabled=true`.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import find, render
from tests.harness.apiserver import AdmissionCaller, AdmissionResult
from tests.harness.fakekube import FakeKube
from tests.harness.kubestore import resource
from tests.harness.service import JSON_DEBUG_LOGS, WebhookService
from tests.templates import builders
from tests.templates.builders import TEMPLATES_ANNOTATION, template_configmap
from webhook.tls.generate import CertificatePaths, ca_bundle, generate_certificates

SERVICE = "runai-secrets-webhook"
SERVICE_NAMESPACE = "runai-secrets-webhook"
PROJECT = "runai-team-a"
WEBHOOK = "inject.runai-secrets-webhook.io"
CONFIGMAPS = resource("", "v1", "configmaps")

# The value of the secret key that the admin template refers to. It must
# never appear in a response or a log line.
SENTINEL = "sentinel-template-secret-7c2e"
# A literal value in a template, which the logs must not show either.
LITERAL = "sentinel-literal-token-41d9"
ADMIN_ENTRIES = ["MYPASSWORD=SECRET:my-secret,cred-pass", "LOG_LEVEL=info"]
VERBOSE_ENTRIES = ["LOG_LEVEL=debug", "OPTS=a=b", f"API_TOKEN={LITERAL}"]

# docs/templates.md promises that an edit applies about a second after it is
# saved. The test allows more, so that a loaded CI machine does not fail it.
EDIT_DELAY_SECONDS = 5.0

Object = dict[str, Any]


@dataclass
class Cluster:
    kube: FakeKube
    service: WebhookService
    caller: AdmissionCaller
    manifests: list[Object]
    bundle: str


def chart_configurations(helm: Path, bundle: str, templates: bool) -> list[Object]:
    """Render the chart's webhook configurations and give them a caBundle.

    In its default certificate mode the service writes the caBundle itself;
    here the test does it, with the CA that signed the serving certificate.
    """
    manifests = render(helm, {"templates": {"enabled": templates}})
    configurations = []
    for manifest in manifests:
        if manifest["kind"].endswith("WebhookConfiguration"):
            for webhook in manifest["webhooks"]:
                webhook["clientConfig"]["caBundle"] = bundle
            configurations.append(manifest)
    return configurations


def caller_for(
    configurations: list[Object], service: WebhookService, kube: FakeKube
) -> AdmissionCaller:
    return AdmissionCaller(
        mutating=[c for c in configurations if c["kind"].startswith("Mutating")],
        validating=[c for c in configurations if c["kind"].startswith("Validating")],
        services={
            f"{SERVICE}.{SERVICE_NAMESPACE}.svc:443": ("127.0.0.1", service.port)
        },
        kube=kube,
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> CertificatePaths:
    """Serving certificates made by the product's own generator."""
    return generate_certificates(
        tmp_path_factory.mktemp("certs"),
        SERVICE,
        SERVICE_NAMESPACE,
        ip_addresses=("127.0.0.1",),
        ca_days=2,
        leaf_days=1,
    )


def service_for(
    workdir: Path, paths: CertificatePaths, kube: FakeKube
) -> WebhookService:
    """Build the service process with templates on, against `kube`."""
    return WebhookService(
        [
            *JSON_DEBUG_LOGS,
            "--tls-cert-file",
            str(paths.cert),
            "--tls-key-file",
            str(paths.key),
            "--templates",
            "--template-namespace",
            "runai",
            "--webhook-configuration-name",
            SERVICE,
            "--cache-ttl",
            "0",
        ],
        tls_files=False,
        ca_file=paths.ca_cert,
        kubeconfig=kube.write_kubeconfig(workdir / "kubeconfig"),
        startup_seconds=15,
        directory=workdir,
    )


@pytest.fixture(scope="module")
def cluster(
    helm: Path,
    certificates: CertificatePaths,
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[Cluster]:
    workdir = tmp_path_factory.mktemp("templates-e2e")
    paths = certificates
    bundle = ca_bundle(paths.ca_cert)
    manifests = chart_configurations(helm, bundle, templates=True)

    with FakeKube(bookmark_interval=0.2) as kube:
        kube.add_namespace(PROJECT, {"runai/queue": "team-a"})
        kube.add_secret(PROJECT, "my-secret", {"cred-pass": SENTINEL})
        kube.preload(
            [
                template_configmap("template-admin", ADMIN_ENTRIES),
                template_configmap("verbose", VERBOSE_ENTRIES),
                find(manifests, "MutatingWebhookConfiguration"),
            ]
        )
        service = service_for(workdir, paths, kube)
        with service, caller_for(manifests, service, kube) as caller:
            yield Cluster(kube, service, caller, manifests, bundle)


def pod(
    env: list[Object] | None = None,
    templates: str | None = None,
    annotations: dict[str, str] | None = None,
) -> Object:
    return builders.pod(env, templates, annotations, namespace=PROJECT)


def pod_template() -> Object:
    return {"metadata": {"labels": {"app": "train"}}, "spec": pod()["spec"]}


def workload(kind: str, **annotations: str) -> Object:
    """Build a valid workload of `kind` whose pod template has no env."""
    template = pod_template()
    template["spec"]["restartPolicy"] = (
        "Never" if kind in ("Job", "CronJob") else "Always"
    )
    metadata: Object = {"name": "train", "namespace": PROJECT}
    if annotations:
        metadata["annotations"] = annotations
    selector = {"matchLabels": {"app": "train"}}
    specs: dict[str, tuple[str, Object]] = {
        "Job": ("batch/v1", {"template": template}),
        "CronJob": (
            "batch/v1",
            {"schedule": "0 * * * *", "jobTemplate": {"spec": {"template": template}}},
        ),
        "Deployment": ("apps/v1", {"selector": selector, "template": template}),
        "StatefulSet": (
            "apps/v1",
            {"selector": selector, "serviceName": "train", "template": template},
        ),
        "DaemonSet": ("apps/v1", {"selector": selector, "template": template}),
        "ReplicaSet": ("apps/v1", {"selector": selector, "template": template}),
    }
    api_version, spec = specs[kind]
    return {"apiVersion": api_version, "kind": kind, "metadata": metadata, "spec": spec}


def pod_spec_of(obj: Object) -> Object:
    if obj["kind"] == "Pod":
        return obj["spec"]  # type: ignore[no-any-return]
    if obj["kind"] == "CronJob":
        return obj["spec"]["jobTemplate"]["spec"]["template"]["spec"]  # type: ignore[no-any-return]
    return obj["spec"]["template"]["spec"]  # type: ignore[no-any-return]


def env_of(result: AdmissionResult) -> dict[str, Object]:
    assert result.allowed, result.message
    assert result.object is not None
    container = pod_spec_of(result.object)["containers"][0]
    return {entry["name"]: entry for entry in container.get("env", [])}


def admit_pod(cluster: Cluster, obj: Object) -> AdmissionResult:
    return cluster.caller.admit(obj, namespace=PROJECT)


MYPASSWORD_REF = {
    "name": "MYPASSWORD",
    "valueFrom": {"secretKeyRef": {"name": "my-secret", "key": "cred-pass"}},
}


def test_pod_without_var_gets_secret_key_ref(cluster: Cluster) -> None:
    result = admit_pod(cluster, pod())

    env = env_of(result)
    assert env["MYPASSWORD"] == MYPASSWORD_REF
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "info"}
    assert result.audit_annotations[f"{WEBHOOK}/templates"] == "template-admin"
    assert cluster.kube.count(verb="get", resource="secrets", namespace=PROJECT) >= 1


def test_pod_own_value_wins(cluster: Cluster) -> None:
    own = [{"name": "MYPASSWORD", "value": "my-own"}]

    result = admit_pod(cluster, pod(env=own))

    env = env_of(result)
    assert env["MYPASSWORD"] == {"name": "MYPASSWORD", "value": "my-own"}
    assert list(env) == ["MYPASSWORD", "LOG_LEVEL"]
    assert any(
        'its own value wins over template "template-admin"' in w
        for w in result.warnings
    )


def test_admin_value_wins_over_named(cluster: Cluster) -> None:
    result = admit_pod(cluster, pod(templates="verbose"))

    env = env_of(result)
    assert env["LOG_LEVEL"] == {"name": "LOG_LEVEL", "value": "info"}
    assert env["OPTS"] == {"name": "OPTS", "value": "a=b"}
    assert result.audit_annotations[f"{WEBHOOK}/templates"] == "template-admin,verbose"
    assert any(
        'template "verbose" sets env var "LOG_LEVEL"' in w for w in result.warnings
    )


def test_job_naming_missing_template_is_denied(cluster: Cluster) -> None:
    result = cluster.caller.admit(
        workload("Job", **{TEMPLATES_ANNOTATION: "verbose,nope"}), namespace=PROJECT
    )

    assert not result.allowed
    assert result.code == 403
    assert f'admission webhook "{WEBHOOK}" denied the request' in result.message
    assert (
        'Job "train": template "nope" does not exist in namespace "runai"'
        in result.message
    )
    assert '"verbose"' in result.message


@pytest.mark.parametrize(
    ("values", "entry"),
    [
        ("environments: [BROKEN]\n", "'BROKEN'"),
        ("environments:\n- X=SECRET:only-a-name\n", "'X=SECRET:only-a-name'"),
    ],
)
def test_invalid_template_is_rejected_when_saved(
    cluster: Cluster, values: str, entry: str
) -> None:
    result = cluster.caller.admit(
        template_configmap("broken", values=values), namespace="runai"
    )

    assert not result.allowed
    assert result.code == 422
    assert (
        f'admission webhook "templates.{WEBHOOK}" denied the request' in result.message
    )
    assert "ConfigMap runai/broken is not a valid Run:AI template" in result.message
    assert entry in result.message


def test_rejected_entry_stays_out_of_logs(cluster: Cluster) -> None:
    values = f"environments:\n- {LITERAL}-typed-without-name\n"

    result = cluster.caller.admit(
        template_configmap("typo", values=values), namespace="runai"
    )

    assert not result.allowed
    assert f"'{LITERAL}-typed-without-name' has no '='" in result.message
    assert LITERAL not in cluster.service.logs()


def test_valid_template_is_saved(cluster: Cluster) -> None:
    result = cluster.caller.admit(
        template_configmap("fine", ["A=b=c"]), namespace="runai"
    )

    assert result.allowed, result.message
    assert result.called(f"templates.{WEBHOOK}") == 1


def test_lower_case_prefix_saved_with_warning(cluster: Cluster) -> None:
    entries = ["LOG_LEVEL=info", f"TOKEN=secret:{LITERAL}", "EMPTY=", "A=Secret:"]

    result = cluster.caller.admit(
        template_configmap("lower", entries), namespace="runai"
    )

    assert result.allowed, result.message
    assert len(result.warnings) == 2
    first, second = result.warnings
    assert first.startswith("data.values line 3: env var 'TOKEN' starts with 'secret:'")
    assert second.startswith("data.values line 5: env var 'A' starts with 'Secret:'")
    # Only the prefix is quoted, because the rest may be a literal value.
    assert LITERAL not in first
    assert LITERAL not in cluster.service.logs()


def test_unlabelled_configmap_is_not_checked(cluster: Cluster) -> None:
    plain = template_configmap("plain", values="environments: [BROKEN]\n")
    del plain["metadata"]["labels"]

    result = cluster.caller.admit(plain, namespace="runai")

    assert result.allowed
    assert result.calls == []


def test_edit_takes_effect_without_restart(cluster: Cluster) -> None:
    edited = template_configmap("template-admin", [*ADMIN_ENTRIES, "EXTRA=1"])
    cluster.kube.store.put(edited)
    saved = time.monotonic()
    try:
        env = env_of(admit_pod(cluster, pod()))
        while "EXTRA" not in env and time.monotonic() - saved < EDIT_DELAY_SECONDS:
            time.sleep(0.05)
            env = env_of(admit_pod(cluster, pod()))
        delay = time.monotonic() - saved
    finally:
        cluster.kube.store.put(template_configmap("template-admin", ADMIN_ENTRIES))

    assert env.get("EXTRA") == {"name": "EXTRA", "value": "1"}
    assert delay < EDIT_DELAY_SECONDS
    assert cluster.service.running()


def test_second_pass_and_child_pod_add_nothing(cluster: Cluster) -> None:
    job = cluster.caller.admit(
        workload("Job", **{TEMPLATES_ANNOTATION: "verbose"}), namespace=PROJECT
    )
    assert job.object is not None
    child = pod()
    child["spec"] = copy.deepcopy(job.object["spec"]["template"]["spec"])

    again = cluster.caller.admit(copy.deepcopy(job.object), namespace=PROJECT)
    result = admit_pod(cluster, child)

    assert again.calls[-1].outcome == "allowed"
    assert result.calls[-1].outcome == "allowed"
    assert env_of(result) == env_of(job)
    assert f"{WEBHOOK}/templates" not in result.audit_annotations


@pytest.mark.parametrize(
    "kind",
    ["Pod", "Job", "CronJob", "Deployment", "StatefulSet", "DaemonSet", "ReplicaSet"],
)
def test_every_kind_in_scope_gets_admin_template(cluster: Cluster, kind: str) -> None:
    obj = (
        pod(annotations={"example.com/owner": "team-a"})
        if kind == "Pod"
        else workload(kind)
    )

    result = cluster.caller.admit(obj, namespace=PROJECT)

    assert result.called(WEBHOOK) >= 1, result.skipped
    assert env_of(result)["MYPASSWORD"] == MYPASSWORD_REF


def test_chart_without_templates_would_skip_pods(helm: Path, cluster: Cluster) -> None:
    configurations = chart_configurations(helm, cluster.bundle, templates=False)

    with caller_for(configurations, cluster.service, cluster.kube) as caller:
        result = caller.admit(pod(), namespace=PROJECT)

    assert result.allowed
    assert result.calls == []
    assert [skip.reason for skip in result.skipped if skip.webhook == WEBHOOK]
    assert "MYPASSWORD" not in env_of(result)


def test_skipping_configuration_logs_error(helm: Path, cluster: Cluster) -> None:
    installed = find(cluster.manifests, "MutatingWebhookConfiguration")
    skipping = find(
        chart_configurations(helm, cluster.bundle, templates=False),
        "MutatingWebhookConfiguration",
    )
    cluster.kube.store.put(skipping)
    try:
        cluster.kube.store.remove(CONFIGMAPS, "runai", "template-admin")
        cluster.kube.store.put(template_configmap("template-admin", ADMIN_ENTRIES))
        found = wait_for_log(
            cluster.service, "admin template is set, but a match condition"
        )
    finally:
        cluster.kube.store.put(installed)

    assert found["level"] == "ERROR"
    assert found["condition"] == "has-placeholder-or-annotation"
    assert found["configuration"] == SERVICE


def test_metrics_and_logs(cluster: Cluster) -> None:
    admit_pod(cluster, pod())

    status, body = cluster.service.get("/metrics")
    text = body.decode()
    applied = [
        line
        for line in text.splitlines()
        if line.startswith(
            'runai_secrets_webhook_template_applications_total{template="template-admin"}'
        )
    ]
    debug = [
        line
        for line in cluster.service.log_records(strict=True)
        if line.get("message") == "templates applied"
    ]
    assert status == 200
    assert applied
    assert float(applied[0].split()[-1]) >= 1
    assert debug
    assert debug[-1]["templates"] == ["template-admin"]
    assert SENTINEL not in cluster.service.logs()
    assert LITERAL not in cluster.service.logs()


def wait_for_log(
    service: WebhookService, prefix: str, seconds: float = EDIT_DELAY_SECONDS
) -> Object:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        for line in service.log_records(strict=True):
            if str(line.get("message", "")).startswith(prefix):
                return line
        time.sleep(0.05)
    raise AssertionError(f"no log line starting {prefix!r}:\n{service.logs()}")


def test_not_ready_until_templates_listed(
    certificates: CertificatePaths, tmp_path: Path
) -> None:
    with FakeKube(bookmark_interval=0.2) as kube:
        kube.add_namespace("runai")
        kube.deny("list", "configmaps", "runai")
        service = service_for(tmp_path, certificates, kube)
        try:
            with pytest.raises(RuntimeError, match="not ready"):
                service.start(seconds=2.0)
            status, text = readyz_once_listening(service)
            kube.clear_denials()
            service.wait_ready(seconds=15.0)
        finally:
            service.stop()

    failures = [
        line
        for line in service.log_records(strict=True)
        if line.get("message") == "template watch failed, retrying"
    ]
    assert status == 503
    assert "the templates have not been listed yet" in text
    assert failures
    assert failures[0]["error"] == "HTTP 403 Forbidden"


def readyz_once_listening(
    service: WebhookService, seconds: float = 15.0
) -> tuple[int, str]:
    """GET /readyz as soon as the service accepts connections."""
    service.wait_listening(seconds)
    status, body = service.get("/readyz")
    return status, body.decode()
