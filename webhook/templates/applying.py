"""Choosing the templates for an object and turning them into env additions.

Every object in scope gets the admin template (`template-admin`), then the
templates it names in the annotation `<prefix>/templates`, comma-separated,
in that order. Precedence follows Run:AI, from strongest to weakest: the
object's own env, its env annotation, the admin template, then the named
templates in the order given. Each env name is added once.
`webhook.admission` leaves alone a name that the container already sets, so
a second pass, or a pod made from a templated workload, gets nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import AnnotationKeys, parse_env_annotation
from webhook.admission.decisions import quote
from webhook.admission.errors import Denied
from webhook.admission.injection import InjectionOptions
from webhook.admission.objects import is_ephemeral, kind_in_scope
from webhook.admission.podspecs import WorkloadKind
from webhook.admission.podtemplates import control_annotations
from webhook.admission.reviews import Request
from webhook.admission.subjects import describe_subject
from webhook.templates.entries import Template
from webhook.templates.store import ADMIN_TEMPLATE, TemplateStore
from webhook.templates.watching import TEMPLATE_LABEL

# A missing named template is the author's to fix, like a missing secret:
# 403. An invalid template is the cluster admin's: 500. Templates not loaded
# yet may be there on retry: 503.
CODE_MISSING = 403
CODE_INVALID = 500
CODE_NOT_LOADED = 503

# Template names listed in a denial for a missing one.
MAX_NAMES_LISTED = 10


@dataclass(frozen=True)
class TemplateSelection:
    """The templates chosen for one object and the env additions they make.

    `sources` maps each added env name to the template it comes from.
    `conflicts` maps an env name to a warning about a template whose value
    for it lost to an earlier template. The warning is sent only if the name
    is added.
    """

    templates: tuple[str, ...] = ()
    additions: tuple[EnvAddition, ...] = ()
    sources: Mapping[str, str] = field(default_factory=dict)
    conflicts: Mapping[str, str] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()


NO_TEMPLATES = TemplateSelection()


def requested_templates(annotations: Mapping[str, Any], key: str) -> list[str]:
    """Return the template names in annotation `key`, each once, in order."""
    text = annotations.get(key)
    if not isinstance(text, str):
        return []
    names = [name.strip() for name in text.split(",")]
    return list(
        dict.fromkeys(name for name in names if name and name != ADMIN_TEMPLATE)
    )


def select_templates(
    request: Request,
    options: InjectionOptions,
    store: TemplateStore,
    template_namespace: str,
) -> TemplateSelection:
    """Choose the templates for the object under review.

    Templates apply on CREATE, and on an UPDATE only when it changes the
    templates annotation, because the author then requests new templates.
    Any other UPDATE gets none, so a template edit or an unrelated change
    of a workload never changes its pod template and rolls out new pods.
    Raises Denied when the object names a template that does not exist, a
    chosen template (the admin one included) is invalid, or the templates
    have not been loaded yet.
    """
    obj = request.get("object")
    kind = _kind_in_scope(request, options)
    if not isinstance(obj, dict) or kind is None:
        return NO_TEMPLATES
    # The pod template's annotations win, as they do for the pods it makes.
    annotations = control_annotations(obj, kind, options.keys)
    if request["operation"] != "CREATE" and not _annotation_changed(
        request, kind, options.keys
    ):
        return NO_TEMPLATES
    subject = describe_subject(request, obj)
    if not store.loaded:
        raise Denied(
            CODE_NOT_LOADED,
            f"{subject}: the webhook has not loaded the templates from namespace "
            f"{quote(template_namespace)} yet. Retry in a few seconds.",
        )

    names = requested_templates(annotations, options.keys.templates)
    chosen = _chosen_templates(subject, store, names, template_namespace)
    for template in chosen:
        if template.error is not None:
            raise Denied(
                CODE_INVALID,
                _invalid_message(subject, template, template_namespace),
            )

    annotation_names = _annotation_names(annotations, options)
    return _merge(chosen, annotation_names)


def _kind_in_scope(request: Request, options: InjectionOptions) -> WorkloadKind | None:
    """Return the kind of the object if templates may add env to it, else None.

    The object must be one that `webhook.admission` rewrites: a pod spec
    kind, and not an update of ephemeral containers.
    """
    kind = kind_in_scope(request, options.kinds)
    if kind is None or not kind.rewrites or is_ephemeral(request):
        return None
    return kind


def _annotation_changed(
    request: Request, kind: WorkloadKind, keys: AnnotationKeys
) -> bool:
    """Tell whether an UPDATE changes the templates annotation the object uses."""
    values = []
    for name in ("oldObject", "object"):
        obj = request.get(name)
        annotations = (
            control_annotations(obj, kind, keys) if isinstance(obj, dict) else {}
        )
        values.append(annotations.get(keys.templates))
    return values[0] != values[1]


def _chosen_templates(
    subject: str, store: TemplateStore, names: list[str], template_namespace: str
) -> list[Template]:
    admin = store.admin()
    chosen = [admin] if admin is not None else []
    for name in names:
        template = store.get(name)
        if template is None:
            raise Denied(
                CODE_MISSING,
                _missing_message(subject, name, store, template_namespace),
            )
        chosen.append(template)
    return chosen


def _annotation_names(
    annotations: Mapping[str, Any], options: InjectionOptions
) -> set[str]:
    """Return the env names that the object's env annotation sets."""
    text = annotations.get(options.keys.env)
    if not isinstance(text, str):
        return set()
    try:
        return {
            addition.name
            for addition in parse_env_annotation(text, options.keys.env, "")
        }
    except Denied:
        # plan_review parses the annotation again and denies with the reason.
        return set()


def _merge(templates: list[Template], annotation_names: set[str]) -> TemplateSelection:
    additions: list[EnvAddition] = []
    sources: dict[str, str] = {}
    values: dict[str, str] = {}
    conflicts: dict[str, str] = {}
    for template in templates:
        for entry in template.entries:
            if entry.name in annotation_names:
                continue
            if entry.name not in sources:
                sources[entry.name] = template.name
                values[entry.name] = entry.value
                additions.append(
                    EnvAddition(
                        entry.name, entry.value, f"template {quote(template.name)}"
                    )
                )
            elif values[entry.name] != entry.value and entry.name not in conflicts:
                conflicts[entry.name] = (
                    f"template {quote(template.name)} sets env var "
                    f"{quote(entry.name)}, but template "
                    f"{quote(sources[entry.name])} sets it too and wins"
                )
    return TemplateSelection(
        templates=tuple(template.name for template in templates),
        additions=tuple(additions),
        sources=sources,
        conflicts=conflicts,
    )


def _missing_message(
    subject: str, name: str, store: TemplateStore, namespace: str
) -> str:
    existing = [known for known in store.names() if known != ADMIN_TEMPLATE]
    listed = ", ".join(quote(known) for known in existing[:MAX_NAMES_LISTED])
    if len(existing) > MAX_NAMES_LISTED:
        listed += f" and {len(existing) - MAX_NAMES_LISTED} more"
    return (
        f"{subject}: template {quote(name)} does not exist in namespace "
        f"{quote(namespace)}. Fix the name in the templates annotation or ask a "
        f'cluster admin to create it as a ConfigMap labelled {TEMPLATE_LABEL}: "true". '
        f"Existing templates: {listed or 'none'}."
    )


def _invalid_message(subject: str, template: Template, namespace: str) -> str:
    # Only the line: the error quotes the entry, which the author of this
    # object may not be allowed to read.
    line = template.error.line if template.error is not None else None
    where = f" at data.values line {line}" if line is not None else ""
    return (
        f"{subject}: template {quote(template.name)} in namespace "
        f"{quote(namespace)} is invalid{where}. A cluster admin must fix it before "
        "objects using it can be admitted."
    )
