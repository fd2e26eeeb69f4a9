"""Control annotations on pod templates, which the pods made from them copy.

A workload's pods copy the annotations of its pod template's metadata, not
the workload's own. The control annotations (inject, containers, env,
templates) are read from both, and the pod template's win for its spec.
"""

from collections.abc import Mapping, Sequence
from typing import Any

from webhook.admission.annotations import AnnotationKeys, annotations_of
from webhook.admission.patches import unescape_token
from webhook.admission.podspecs import WorkloadKind, find_pointer_targets
from webhook.admission.scanning import Scan


def control_annotations(
    obj: Mapping[str, Any], kind: WorkloadKind, keys: AnnotationKeys
) -> Mapping[str, Any]:
    """Return the object's annotations with those of its pod templates on top.

    Only the control annotations (inject, containers, env, templates) are
    taken from pod template metadata. When several pod templates set one,
    the first wins.
    """
    # NOTE: templates are chosen once per object, so a kind whose pod
    # templates name different templates gets the first one's for all.
    merged = dict(annotations_of(obj))
    seen: set[str] = set()
    for path, _ in pod_specs(obj, kind):
        template = template_annotations(obj, path) or {}
        for key in _control_keys(keys):
            if key in template and key not in seen:
                merged[key] = template[key]
                seen.add(key)
    return merged


def pod_specs(obj: Mapping[str, Any], kind: WorkloadKind) -> list[tuple[str, Any]]:
    return [
        target
        for pointer in kind.pointers
        for target in find_pointer_targets(obj, pointer)
    ]


def _control_keys(keys: AnnotationKeys) -> tuple[str, ...]:
    return (keys.inject, keys.containers, keys.env, keys.templates)


def _template_metadata_path(spec_path: str) -> str | None:
    """Return the pointer of a pod template's metadata, next to its `spec`.

    None for a Pod, whose spec at `/spec` has the object's own metadata.
    """
    parent, _, last = spec_path.rpartition("/")
    if last != "spec" or not parent:
        return None
    return f"{parent}/metadata"


def template_annotations(
    obj: Mapping[str, Any], spec_path: str
) -> Mapping[str, Any] | None:
    """Return the annotations of the pod template of a spec, or None for a Pod."""
    path = _template_metadata_path(spec_path)
    if path is None:
        return None
    for _, metadata in find_pointer_targets(obj, path):
        return annotations_of({"metadata": metadata})
    return {}


def merged_controls(
    own: Mapping[str, Any], template: Mapping[str, Any] | None, keys: AnnotationKeys
) -> Mapping[str, Any]:
    if not template:
        return own
    merged = dict(own)
    for key in _control_keys(keys):
        if key in template:
            merged[key] = template[key]
    return merged


def warn_workload_only(
    scan: Scan,
    obj: Mapping[str, Any],
    own: Mapping[str, Any],
    keys: AnnotationKeys,
    specs: Sequence[tuple[str, Any]],
) -> None:
    """Warn about an opt-out or container choice that the pods do not inherit.

    Pods copy only their template's annotations. Without `inject` or
    `containers` there, a pod made from this workload is reviewed with the
    defaults: its literal `SECRET:` values are converted and template env
    goes to every container. The env and templates annotations need no
    copy, because their env vars are already in the pod template.
    """
    for key in (keys.inject, keys.containers):
        if key not in own:
            continue
        for path, _ in specs:
            template = template_annotations(obj, path)
            if template is not None and key not in template:
                scan.warnings.append(
                    f"annotation {key} is set on the object's own metadata only, so "
                    f"the pods it creates do not get it. Set it in "
                    f"{template_annotations_field(path)} as well."
                )
                break


def template_annotations_field(spec_path: str) -> str:
    """Return the dotted path of the pod template annotations of a spec."""
    return _dotted(_template_metadata_path(spec_path) or "") + ".annotations"


def _dotted(pointer: str) -> str:
    return ".".join(unescape_token(token) for token in pointer.split("/")[1:])
