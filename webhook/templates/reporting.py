"""Recording which templates a review applied: audit annotation, log, metric.

A template counts as applied to an object when at least one of its env vars
is in the response's patch. An object whose containers already set every
name of a template, such as a pod made from a templated Deployment, does not
count, and neither does a dry run.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Iterator, Sequence

from prometheus_client import CollectorRegistry, Counter

from webhook.admission.decisions import Decision, PatchOperation, fit_warning
from webhook.admission.reviews import Request
from webhook.templates.applying import TemplateSelection

logger = logging.getLogger(__name__)

# Stored by kube-apiserver as `<webhook name>/templates`.
AUDIT_KEY = "templates"


def new_application_counter(registry: CollectorRegistry) -> Counter:
    """Create the counter of template applications in `registry`."""
    return Counter(
        "runai_secrets_webhook_template_applications",
        "Objects admitted with at least one env var from a template, by template "
        "name. Dry runs are not counted.",
        ["template"],
        registry=registry,
    )


def report_templates(
    request: Request,
    decision: Decision,
    selection: TemplateSelection,
    applications: Counter,
    log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
) -> Decision:
    """Add the templates' audit annotation and warnings to an allowing decision.

    Also counts each applied template in `applications` and logs the names at
    DEBUG. A denying decision is returned unchanged.
    """
    if not decision.allowed or not (selection.templates or selection.warnings):
        return decision

    added = set(added_env_names(decision.patch))
    applied = [
        template
        for template in selection.templates
        if any(selection.sources.get(name) == template for name in added)
    ]
    warnings = [
        *decision.warnings,
        *(fit_warning(text) for text in selection.warnings),
        *(
            fit_warning(selection.conflicts[name])
            for name in sorted(added & selection.conflicts.keys())
        ),
    ]
    audit = dict(decision.audit_annotations)
    if applied:
        audit[AUDIT_KEY] = ",".join(applied)
        if not request.get("dryRun", False):
            for template in applied:
                applications.labels(template=template).inc()

    log.debug("templates applied", extra={"templates": applied})
    return dataclasses.replace(
        decision, warnings=tuple(warnings), audit_annotations=audit
    )


def added_env_names(patch: Sequence[PatchOperation]) -> Iterator[str]:
    """Yield the names of the env entries that `patch` appends to containers."""
    for operation in patch:
        if operation.get("op") != "add":
            continue
        path = str(operation.get("path", ""))
        value = operation.get("value")
        if path.endswith("/env") and isinstance(value, list):
            entries = value
        elif path.endswith("/env/-"):
            entries = [value]
        else:
            continue
        for entry in entries:
            if isinstance(entry, dict) and isinstance(entry.get("name"), str):
                yield entry["name"]
