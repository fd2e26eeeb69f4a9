"""The check run when a template ConfigMap is saved.

kube-apiserver sends a validating AdmissionReview for ConfigMaps with the
template label in the template namespace. A template whose `data.values`
cannot be applied is rejected with the line at fault, so that a mistake shows
when the admin saves it and not later on every job it applies to.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from webhook.admission.decisions import Decision, allow, deny
from webhook.admission.reviews import Request
from webhook.admission.scanning import misspelled_prefix, prefix_fix
from webhook.templates.entries import TemplateEntry, read_template
from webhook.templates.watching import TEMPLATE_LABEL

# Status code for an object that fails validation, as the API server uses
# for its own validation errors (422 Unprocessable Entity, reason Invalid).
INVALID = 422


def review_template(request: Request, template_namespace: str) -> Decision:
    """Decide whether a ConfigMap may be saved as it is.

    Only a CREATE or UPDATE of a ConfigMap in `template_namespace` that has
    the template label set to "true" is checked. Everything else is allowed,
    so that a configuration broader than intended blocks nothing.
    """
    configmap = _template_object(request, template_namespace)
    if configmap is None:
        return allow()

    template = read_template(configmap)
    if template.error is None:
        warnings = []
        for entry in template.entries:
            prefix = misspelled_prefix(entry.value)
            if prefix is not None:
                warnings.append(_misspelling_warning(entry, prefix))
        return allow(warnings=warnings)

    name = _display_name(configmap)
    return deny(
        INVALID,
        f"ConfigMap {template_namespace}/{name} is not a valid Run:AI template: "
        f"{template.error}. Fix the entry in data.values, or remove the label "
        f'{TEMPLATE_LABEL}: "true" if the ConfigMap is not a template.',
    )


def _misspelling_warning(entry: TemplateEntry, prefix: str) -> str:
    """Build the warning for an entry whose value starts with `prefix`.

    Only the prefix is quoted, since the rest may be a literal value.
    """
    return (
        f"data.values line {entry.line}: env var {entry.name!r} starts with "
        f"{prefix!r}, which is not a secret reference, so jobs get its value "
        f"as plain text. {prefix_fix(prefix)}"
    )


def _template_object(
    request: Request, template_namespace: str
) -> Mapping[str, Any] | None:
    """Return the ConfigMap under review if it is a template, else None."""
    configmap = request.get("object")
    if request["operation"] not in ("CREATE", "UPDATE") or configmap is None:
        return None
    if request["kind"]["kind"] != "ConfigMap" or request["kind"]["group"] != "":
        return None
    if request.get("namespace") != template_namespace:
        return None

    metadata = configmap.get("metadata")
    labels = metadata.get("labels") if isinstance(metadata, Mapping) else None
    if isinstance(labels, Mapping) and labels.get(TEMPLATE_LABEL) == "true":
        return configmap
    return None


def _display_name(configmap: Mapping[str, Any]) -> str:
    metadata = configmap.get("metadata") or {}
    name = metadata.get("name") or metadata.get("generateName") or "<unnamed>"
    return str(name)
