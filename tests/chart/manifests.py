"""Validate rendered manifests against Kubernetes API schemas.

Built-in kinds are checked with kubernetes-validate in strict mode (unknown
fields rejected) against Kubernetes 1.30, the oldest release whose
matchConditions are stable, and against the newest schema the package
ships. Custom resources (cert-manager, Prometheus Operator) have no schema
there. Each is checked against a small schema below instead, which covers
the fields the chart uses and rejects any other.

Run as `python -m tests.chart.manifests FILE...` on `helm template` output.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import jsonschema
import kubernetes_validate
import yaml

OLDEST_VERSION = "1.30.0"
KUBERNETES_VERSIONS = (OLDEST_VERSION, kubernetes_validate.latest_version())

_GO_DURATION = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"
_METADATA = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "pattern": r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"},
        "namespace": {"type": "string"},
        "labels": {"type": "object", "additionalProperties": {"type": "string"}},
        "annotations": {"type": "object", "additionalProperties": {"type": "string"}},
    },
    "additionalProperties": False,
}
_ISSUER_REF = {
    "type": "object",
    "required": ["name"],
    "properties": {
        "name": {"type": "string", "minLength": 1},
        "kind": {"type": "string"},
        "group": {"type": "string"},
    },
    "additionalProperties": False,
}


def _custom_resource(spec: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "object",
        "required": ["apiVersion", "kind", "metadata", "spec"],
        "properties": {
            "apiVersion": {"type": "string"},
            "kind": {"type": "string"},
            "metadata": _METADATA,
            "spec": spec,
        },
        "additionalProperties": False,
    }


# Fields as defined by cert-manager.io/v1 (cert-manager 1.x) and
# monitoring.coreos.com/v1 (Prometheus Operator), limited to what the chart
# renders.
CUSTOM_RESOURCE_SCHEMAS: dict[tuple[str, str], dict[str, Any]] = {
    ("cert-manager.io/v1", "Certificate"): _custom_resource(
        {
            "type": "object",
            "required": ["secretName", "issuerRef"],
            "properties": {
                "secretName": {"type": "string", "minLength": 1},
                "isCA": {"type": "boolean"},
                "commonName": {"type": "string", "maxLength": 64},
                "dnsNames": {
                    "type": "array",
                    "items": {"type": "string"},
                    "minItems": 1,
                },
                "duration": {"type": "string", "pattern": _GO_DURATION},
                "renewBefore": {"type": "string", "pattern": _GO_DURATION},
                "usages": {
                    "type": "array",
                    "items": {
                        "enum": ["server auth", "digital signature", "key encipherment"]
                    },
                },
                "privateKey": {
                    "type": "object",
                    "properties": {
                        "algorithm": {"enum": ["RSA", "ECDSA", "Ed25519"]},
                        "size": {"type": "integer"},
                        "rotationPolicy": {"enum": ["Never", "Always"]},
                    },
                    "additionalProperties": False,
                },
                "issuerRef": _ISSUER_REF,
            },
            "additionalProperties": False,
        }
    ),
    ("cert-manager.io/v1", "Issuer"): _custom_resource(
        {
            "type": "object",
            "minProperties": 1,
            "maxProperties": 1,
            "properties": {
                "selfSigned": {"type": "object", "additionalProperties": False},
                "ca": {
                    "type": "object",
                    "required": ["secretName"],
                    "properties": {"secretName": {"type": "string", "minLength": 1}},
                    "additionalProperties": False,
                },
            },
            "additionalProperties": False,
        }
    ),
    ("monitoring.coreos.com/v1", "ServiceMonitor"): _custom_resource(
        {
            "type": "object",
            "required": ["selector", "endpoints"],
            "properties": {
                "selector": {
                    "type": "object",
                    "properties": {"matchLabels": {"type": "object"}},
                    "additionalProperties": False,
                },
                "endpoints": {
                    "type": "array",
                    "minItems": 1,
                    "items": {
                        "type": "object",
                        "properties": {
                            "port": {"type": "string"},
                            "path": {"type": "string"},
                            "scheme": {"enum": ["http", "https"]},
                            "interval": {"type": "string", "pattern": _GO_DURATION},
                            "tlsConfig": {"type": "object"},
                        },
                        "additionalProperties": False,
                    },
                },
            },
            "additionalProperties": False,
        }
    ),
}


class ManifestError(Exception):
    """A rendered manifest does not match its schema."""


def describe(manifest: dict[str, Any]) -> str:
    """Return `Kind/name` for messages."""
    return f"{manifest.get('kind')}/{manifest.get('metadata', {}).get('name')}"


def validate_manifest(manifest: dict[str, Any]) -> list[str]:
    """Validate one manifest and return a line per schema it was checked with.

    Raises ManifestError on the first mismatch.
    """
    key = (manifest.get("apiVersion", ""), manifest.get("kind", ""))
    if key in CUSTOM_RESOURCE_SCHEMAS:
        try:
            jsonschema.validate(manifest, CUSTOM_RESOURCE_SCHEMAS[key])
        except jsonschema.ValidationError as error:
            raise ManifestError(f"{describe(manifest)}: {error.message}") from error
        return [f"{describe(manifest)}: valid against the chart's {key[1]} schema"]

    checked = []
    for version in KUBERNETES_VERSIONS:
        try:
            kubernetes_validate.validate(manifest, version, strict=True)
        except kubernetes_validate.ValidationError as error:
            path = "/".join(str(part) for part in error.path)
            where = f"{describe(manifest)}: invalid for Kubernetes {version} at {path}"
            raise ManifestError(f"{where}: {error.message}") from error
        except kubernetes_validate.SchemaNotFoundError as error:
            raise ManifestError(f"{describe(manifest)}: {error.message}") from error
        checked.append(f"{describe(manifest)}: valid for Kubernetes {version} (strict)")
    return checked


def main(paths: list[str]) -> int:
    failures = 0
    for path in paths:
        for manifest in yaml.safe_load_all(Path(path).read_text()):
            if not manifest:
                continue
            try:
                lines = validate_manifest(manifest)
            except ManifestError as error:
                print(f"FAIL {path}: {error}")
                failures += 1
                continue
            for line in lines:
                print(f"ok   {path}: {line}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
