"""`helm lint` and `helm template` for every certificate mode, and schema checks."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import HelmError, lint, render
from tests.chart.manifests import (
    KUBERNETES_VERSIONS,
    ManifestError,
    validate_manifest,
)

SECRET_MODE: dict[str, Any] = {
    "certificates": {
        "mode": "secret",
        "secret": {"name": "webhook-tls", "caBundle": "Y2EK"},
    }
}
VARIANTS: dict[str, dict[str, Any]] = {
    "defaults": {},
    "selfManaged": {"certificates": {"mode": "selfManaged"}},
    "certManager": {"certificates": {"mode": "certManager"}},
    "certManager-issuer": {
        "certificates": {
            "mode": "certManager",
            "certManager": {
                "issuerRef": {"name": "company-ca", "kind": "ClusterIssuer"}
            },
        }
    },
    "secret": SECRET_MODE,
    "all-optional-parts": {
        "templates": {"enabled": True},
        "propagation": {"enabled": True},
        "networkPolicy": {"enabled": True, "egress": [{"ports": [{"port": 443}]}]},
        "serviceMonitor": {"enabled": True},
    },
}


@pytest.mark.parametrize("variant", VARIANTS)
def test_lint_passes(helm: Path, variant: str) -> None:
    output = lint(helm, VARIANTS[variant])
    assert "0 chart(s) failed" in output


@pytest.mark.parametrize("variant", VARIANTS)
def test_manifests_valid(helm: Path, variant: str) -> None:
    manifests = render(helm, VARIANTS[variant])
    assert manifests
    for manifest in manifests:
        checked = validate_manifest(manifest)
        assert checked, manifest["kind"]


def test_validation_covers_oldest_and_newest() -> None:
    assert KUBERNETES_VERSIONS[0] == "1.30.0"
    assert KUBERNETES_VERSIONS[-1] >= "1.30.0"
    assert len(set(KUBERNETES_VERSIONS)) == 2


def test_strict_validation_rejects_typo(helm: Path) -> None:
    service = next(doc for doc in render(helm) if doc["kind"] == "Service")
    service["spec"]["prots"] = service["spec"].pop("ports")
    with pytest.raises(ManifestError, match="prots"):
        validate_manifest(service)


def test_custom_schema_rejects_unknown_field(helm: Path) -> None:
    manifests = render(helm, {"certificates": {"mode": "certManager"}})
    certificate = next(doc for doc in manifests if doc["kind"] == "Certificate")
    certificate["spec"]["dnsName"] = ["x"]
    with pytest.raises(ManifestError, match="dnsName"):
        validate_manifest(certificate)


def test_cert_manager_objects_only_in_that_mode(helm: Path) -> None:
    kinds_self = {doc["kind"] for doc in render(helm)}
    kinds_cm = {doc["kind"] for doc in render(helm, VARIANTS["certManager"])}
    kinds_issuer = [doc["kind"] for doc in render(helm, VARIANTS["certManager-issuer"])]
    assert "Certificate" not in kinds_self
    assert {"Certificate", "Issuer"} <= kinds_cm
    # With an issuer of your own, the chart makes only the serving certificate.
    assert kinds_issuer.count("Certificate") == 1
    assert "Issuer" not in kinds_issuer


def test_templates_named_component_kind() -> None:
    templates = (
        Path(__file__).resolve().parents[2] / "charts/runai-secrets-webhook/templates"
    )
    components = {"webhook", "templates", "propagation", "certmanager"}
    for path in templates.glob("*.yaml"):
        component, _, kind = path.stem.partition("-")
        assert component in components, path.name
        assert kind, path.name
        assert kind.isalpha(), path.name
        assert kind.islower(), path.name


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (
            {"webhook": {"failurPolicy": "Ignore"}},
            "additional properties 'failurPolicy'",
        ),
        ({"webhook": {"timeoutSeconds": 45}}, "timeoutSeconds"),
        ({"certificates": {"mode": "vault"}}, "mode"),
        ({"certificates": {"mode": "secret"}}, "caBundle"),
        (
            {"replicaCount": 2, "podDisruptionBudget": {"minAvailable": 2}},
            "minAvailable",
        ),
        (
            {"terminationGracePeriodSeconds": 12, "shutdownDelaySeconds": 10},
            "terminationGracePeriodSeconds",
        ),
    ],
)
def test_bad_values_rejected(helm: Path, values: dict[str, Any], expected: str) -> None:
    with pytest.raises(HelmError, match=expected):
        render(helm, values)
