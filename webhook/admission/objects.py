"""One reviewed object: whether it is in scope, and the scan of its pod specs."""

from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import (
    AnnotationKeys,
    annotations_of,
    injection_disabled,
    parse_container_names,
    parse_env_annotation,
)
from webhook.admission.decisions import quote
from webhook.admission.errors import Denied
from webhook.admission.podspecs import EnvLayout, WorkloadKind, find_pointer_targets
from webhook.admission.podtemplates import (
    merged_controls,
    pod_specs,
    template_annotations,
    template_annotations_field,
    warn_workload_only,
)
from webhook.admission.reviews import Request
from webhook.admission.scanning import (
    APP_CONTAINERS,
    EPHEMERAL_CONTAINERS,
    INIT_CONTAINERS,
    Scan,
)
from webhook.admission.subjects import describe_subject


def kind_in_scope(
    request: Request, kinds: Mapping[tuple[str, str, str], WorkloadKind]
) -> WorkloadKind | None:
    """Return the kind to review the request as, or None when it is out of scope."""
    gvk = request["kind"]
    kind = kinds.get((gvk["group"], gvk["version"], gvk["kind"]))
    operation = request["operation"]
    if kind is None or operation not in ("CREATE", "UPDATE"):
        return None

    sub_resource = request.get("subResource") or ""
    if is_ephemeral(request):
        return kind if operation == "UPDATE" else None
    if sub_resource or (operation == "UPDATE" and not kind.on_update):
        return None
    return kind


def is_ephemeral(request: Request) -> bool:
    """Tell whether the request adds ephemeral containers to a Pod."""
    gvk = request["kind"]
    is_pod = gvk["group"] == "" and gvk["kind"] == "Pod"
    return is_pod and request.get("subResource") == "ephemeralcontainers"


def scan_object(
    request: Request,
    obj: dict[str, Any],
    kind: WorkloadKind,
    keys: AnnotationKeys,
    extra_additions: Sequence[EnvAddition],
) -> Scan:
    """Scan the pod specs of a reviewed object, raising `Denied` for bad input."""
    annotations = annotations_of(obj)
    scan = Scan(
        convert_literals=not injection_disabled(annotations, keys),
        describe=partial(describe_subject, request, obj),
    )

    if is_ephemeral(request):
        _scan_new_ephemeral(scan, obj, request.get("oldObject"))
        return scan
    if kind.layout is EnvLayout.ENVIRONMENT_ITEMS:
        previous = _stored_object(request)
        for pointer in kind.pointers:
            for path, items in find_pointer_targets(obj, pointer):
                scan.scan_environment_items(items, _first_target(previous, path))
        if previous is None or annotations_of(previous).get(keys.env) != (
            annotations.get(keys.env)
        ):
            _check_unapplied_annotation(scan, annotations, keys, kind)
        return scan

    specs = pod_specs(obj, kind)
    for path, spec in specs:
        if not isinstance(spec, dict):
            continue
        # Pods copy the annotations of their template's metadata, so the
        # control annotations there win over the workload's own for this spec.
        template = template_annotations(obj, path)
        settings = merged_controls(annotations, template, keys)
        scan.convert_literals = not injection_disabled(settings, keys)
        additions = _annotation_additions(settings, keys, scan)
        additions.extend(extra_additions)
        if template and keys.containers in template:
            # The pods made from this template copy the annotation and are
            # checked against their own containers, so this spec's must match.
            field = template_annotations_field(path)
            selected = _selected_containers(settings, keys, scan, [(path, spec)], field)
        else:
            selected = _selected_containers(settings, keys, scan, specs)
        _scan_pod_spec(scan, path, spec, additions, selected)
    warn_workload_only(scan, obj, annotations, keys, specs)
    return scan


def _stored_object(request: Request) -> dict[str, Any] | None:
    """Return the object as stored before an UPDATE, or None for a CREATE.

    A kind that is checked, never rewritten, keeps its references as they
    were written. On UPDATE only new or changed ones are checked, so that a
    secret deleted since does not block the object's updates, such as the
    removal of its finalizers while it is deleted.
    """
    old = request.get("oldObject")
    return old if request["operation"] == "UPDATE" and isinstance(old, dict) else None


def _first_target(obj: object, pointer: str) -> object:
    for _, target in find_pointer_targets(obj, pointer):
        return target
    return None


def _annotation_additions(
    annotations: Mapping[str, Any], keys: AnnotationKeys, scan: Scan
) -> list[EnvAddition]:
    text = annotations.get(keys.env)
    return (
        parse_env_annotation(text, keys.env, scan.subject)
        if isinstance(text, str)
        else []
    )


def _check_unapplied_annotation(
    scan: Scan, annotations: Mapping[str, Any], keys: AnnotationKeys, kind: WorkloadKind
) -> None:
    """Check the env annotation of a kind that is checked, never rewritten.

    Its lines are parsed and their secrets looked up like the object's own
    env, so a mistake is found now, and a warning states that they are
    not added.
    """
    additions = _annotation_additions(annotations, keys, scan)
    if not additions:
        return
    for addition in additions:
        scan.check_addition(addition)
    scan.warnings.append(
        f"annotation {keys.env} cannot be applied to {kind.kind} objects, so its "
        "env vars were checked but not added. Set them in spec.environment instead."
    )


def _selected_containers(
    annotations: Mapping[str, Any],
    keys: AnnotationKeys,
    scan: Scan,
    specs: Sequence[tuple[str, Any]],
    field: str = "",
) -> frozenset[str] | None:
    """Return the app containers named by the containers annotation.

    None, meaning every app container, when the annotation is absent or
    names no container. `field` names the pod template annotations the
    value comes from, when it is checked against that template's `specs`.
    """
    text = annotations.get(keys.containers)
    names = parse_container_names(text) if isinstance(text, str) else []
    if not names:
        return None

    present = _container_names(specs)
    for name in names:
        if name not in present:
            listed = ", ".join(quote(known) for known in present)
            where = f" in {field}" if field else ""
            owner = "the pod template's" if field else "its"
            init = (
                " It is an init container, and env vars from annotations go to "
                "app containers only."
                if name in _container_names(specs, INIT_CONTAINERS)
                else ""
            )
            raise Denied(
                400,
                f"{scan.subject}: annotation {keys.containers}{where} names container "
                f"{quote(name)}, which is not one of {owner} app containers "
                f"({listed}).{init} Fix the name or remove it from the annotation.",
            )
    return frozenset(names)


def _container_names(
    specs: Sequence[tuple[str, Any]], field: str = APP_CONTAINERS
) -> list[str]:
    """List the container names in `field` of all pod specs, each once, in order."""
    names: dict[str, None] = {}
    for _, spec in specs:
        containers = spec.get(field) if isinstance(spec, dict) else None
        for container in containers if isinstance(containers, list) else []:
            name = container.get("name") if isinstance(container, dict) else None
            if isinstance(name, str):
                names[name] = None
    return list(names)


def _scan_pod_spec(
    scan: Scan,
    path: str,
    spec: Mapping[str, Any],
    additions: Sequence[EnvAddition],
    selected: frozenset[str] | None,
) -> None:
    scan.scan_containers(spec.get(INIT_CONTAINERS), f"{path}/{INIT_CONTAINERS}")
    containers = spec.get(APP_CONTAINERS)
    if not isinstance(containers, list):
        return
    for index, container in enumerate(containers):
        if not isinstance(container, dict):
            continue
        name = container.get("name")
        chosen = selected is None or (isinstance(name, str) and name in selected)
        scan.scan_container(
            container, f"{path}/{APP_CONTAINERS}/{index}", additions if chosen else ()
        )


def _scan_new_ephemeral(scan: Scan, obj: Mapping[str, Any], old: object) -> None:
    """Convert placeholders in ephemeral containers that `old` does not have yet.

    Env of an existing ephemeral container is immutable, so only new entries
    may change. No marker is set: this subresource keeps only changes to
    `spec.ephemeralContainers`.
    """
    old_names = {_container_name(container) for container in _ephemeral(old)}
    for index, container in enumerate(_ephemeral(obj)):
        is_new = _container_name(container) not in old_names
        if isinstance(container, dict) and is_new:
            scan.scan_container(container, f"/spec/{EPHEMERAL_CONTAINERS}/{index}")


def _container_name(container: object) -> str | None:
    name = container.get("name") if isinstance(container, dict) else None
    return name if isinstance(name, str) else None


def _ephemeral(obj: object) -> list[Any]:
    spec = obj.get("spec") if isinstance(obj, dict) else None
    containers = spec.get(EPHEMERAL_CONTAINERS) if isinstance(spec, dict) else None
    return containers if isinstance(containers, list) else []
