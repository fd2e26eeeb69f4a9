"""Checks kube-apiserver runs when a webhook configuration is created.

A configuration that kube-apiserver would reject never reaches a real
cluster, so the caller rejects it up front instead of calling through it.
The rules follow ValidateMutatingWebhookConfiguration and
ValidateValidatingWebhookConfiguration in kubernetes/pkg/apis/admissionregistration
(admissionregistration.k8s.io/v1, Kubernetes 1.30). Match conditions are
checked in `webhookrules`; `admissionmatch.check_match_conditions` rejects
CEL variables that the harness does not provide.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from tests.harness import fielderrors, kubevalidation, webhookrules

KNOWN_REVIEW_VERSIONS = ("v1", "v1beta1")
SIDE_EFFECTS = ("None", "NoneOnDryRun")
FAILURE_POLICIES = ("Ignore", "Fail")
MATCH_POLICIES = ("Exact", "Equivalent")
REINVOCATION_POLICIES = ("Never", "IfNeeded")
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 30


class InvalidConfiguration(ValueError):
    """A webhook configuration that kube-apiserver rejects with 422 Invalid."""


def check_configuration(configuration: Mapping[str, Any], mutating: bool) -> None:
    """Raise InvalidConfiguration with kube-apiserver's field errors, if any."""
    errors: list[str] = []
    seen: set[str] = set()
    for index, webhook in enumerate(configuration.get("webhooks") or []):
        path = f"webhooks[{index}]"
        errors += _webhook_errors(path, webhook, mutating)
        errors += _review_version_errors(path, webhook.get("admissionReviewVersions"))
        webhook_name = str(webhook.get("name") or "")
        if webhook_name and webhook_name in seen:
            errors.append(fielderrors.duplicate(f"{path}.name", webhook_name))
        seen.add(webhook_name)
    if errors:
        kind = "Mutating" if mutating else "Validating"
        name = configuration.get("metadata", {}).get("name", "")
        subject = f'{kind}WebhookConfiguration.admissionregistration.k8s.io "{name}"'
        raise InvalidConfiguration(
            f"{subject} is invalid: {fielderrors.aggregate(errors)}"
        )


def _webhook_errors(path: str, webhook: Mapping[str, Any], mutating: bool) -> list[str]:
    """Check one webhook's fields in the order validateMutatingWebhook does."""
    errors = _name_errors(path, str(webhook.get("name") or ""))

    for index, rule in enumerate(webhook.get("rules") or []):
        errors += webhookrules.rule_errors(f"{path}.rules[{index}]", rule)
    errors += _enum_errors(f"{path}.failurePolicy", webhook.get("failurePolicy"))
    errors += _enum_errors(f"{path}.matchPolicy", webhook.get("matchPolicy"))
    errors += _enum_errors(f"{path}.sideEffects", webhook.get("sideEffects"), True)

    timeout = webhook.get("timeoutSeconds")
    if timeout is not None and not (
        MIN_TIMEOUT_SECONDS <= timeout <= MAX_TIMEOUT_SECONDS
    ):
        errors.append(
            f"{path}.timeoutSeconds: Invalid value: {timeout}: "
            "the timeout value must be between 1 and 30 seconds"
        )

    for selector in ("namespaceSelector", "objectSelector"):
        errors += webhookrules.selector_errors(
            f"{path}.{selector}", webhook.get(selector)
        )
    if mutating:
        errors += _enum_errors(
            f"{path}.reinvocationPolicy", webhook.get("reinvocationPolicy")
        )

    errors += _client_config_errors(
        f"{path}.clientConfig", webhook.get("clientConfig") or {}
    )
    errors += webhookrules.match_condition_errors(
        f"{path}.matchConditions", list(webhook.get("matchConditions") or [])
    )
    return errors


def _name_errors(path: str, name: str) -> list[str]:
    if not name:
        return [f"{path}.name: Required value"]
    problems = kubevalidation.dns1123_subdomain(name)
    if problems:
        return [f'{path}.name: Invalid value: "{name}": {",".join(problems)}']
    if len(name.split(".")) < 3:
        return [
            f'{path}.name: Invalid value: "{name}": '
            "should be a domain with at least three segments separated by dots"
        ]
    return []


def _review_version_errors(path: str, versions: Any) -> list[str]:
    field = f"{path}.admissionReviewVersions"
    known = ", ".join(KNOWN_REVIEW_VERSIONS)
    if not versions:
        return [fielderrors.required(field, f"must specify one of {known}")]
    errors = []
    seen: set[str] = set()
    for index, version in enumerate(versions):
        if version in seen:
            errors.append(
                fielderrors.invalid(f"{field}[{index}]", version, "duplicate version")
            )
            continue
        seen.add(version)
        errors += [
            fielderrors.invalid(f"{field}[{index}]", version, message)
            for message in kubevalidation.dns1035_label_messages(str(version))
        ]
    if not any(version in KNOWN_REVIEW_VERSIONS for version in versions):
        errors.append(
            fielderrors.invalid(
                field, list(versions), f"must include at least one of {known}"
            )
        )
    return errors


_SUPPORTED = {
    "sideEffects": SIDE_EFFECTS,
    "failurePolicy": FAILURE_POLICIES,
    "matchPolicy": MATCH_POLICIES,
    "reinvocationPolicy": REINVOCATION_POLICIES,
}


def _enum_errors(field: str, value: Any, required: bool = False) -> list[str]:
    """Check an enum field; only sideEffects has no default in v1."""
    if value is None:
        return [f"{field}: Required value"] if required else []
    supported = _SUPPORTED[field.rpartition(".")[2]]
    if value in supported:
        return []
    return [fielderrors.unsupported(field, value, supported)]


def _client_config_errors(field: str, client: Mapping[str, Any]) -> list[str]:
    has_url, has_service = "url" in client, "service" in client
    if has_url == has_service:
        return [f"{field}: Required value: exactly one of url or service is required"]
    if has_url:
        url = urlsplit(str(client["url"]))
        if url.scheme != "https":
            return [
                f'{field}.url: Invalid value: "{client["url"]}": '
                "'https' is the only allowed URL scheme"
            ]
        return []
    service = client["service"]
    errors: list[str] = []
    path = service.get("path")
    if path is not None and not str(path).startswith("/"):
        errors.append(
            f"{field}.service.path: Invalid value: \"{path}\": must start with a '/'"
        )
    port = service.get("port", 443)
    if not 1 <= int(port) <= 65535:
        errors.append(
            f"{field}.service.port: Invalid value: {port}: "
            "port is not valid: must be between 1 and 65535, inclusive"
        )
    return errors
