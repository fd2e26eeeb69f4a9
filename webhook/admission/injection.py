"""The two steps of a review: plan what to check, then decide.

`plan_review` reads the request and returns either an immediate `Decision`
(out of scope, nothing to do, malformed reference) or a `Plan` that lists the
secrets to look up. The caller looks them up in `Plan.namespace` and passes
the results to `decide`, which returns the final `Decision`. Both steps are
pure, so a `dryRun` review gets exactly the same answer.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import (
    DEFAULT_PREFIX,
    AnnotationKeys,
    annotations_of,
    injection_disabled,
    parse_container_names,
    parse_env_annotation,
)
from webhook.admission.decisions import (
    Decision,
    PatchOperation,
    allow,
    deny,
    from_denied,
    quote,
)
from webhook.admission.errors import Denied
from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.admission.markers import marker_operation
from webhook.admission.messages import Problem, denial_message, missing_warning
from webhook.admission.podspecs import (
    BUILTIN_KINDS,
    EnvLayout,
    WorkloadKind,
    find_pointer_targets,
)
from webhook.admission.references import SecretRef
from webhook.admission.reviews import Request, Review
from webhook.admission.scanning import (
    APP_CONTAINERS,
    EPHEMERAL_CONTAINERS,
    INIT_CONTAINERS,
    ReferenceUse,
    Scan,
)
from webhook.admission.subjects import describe_subject

OnMissing = Literal["deny", "warn"]

# Status codes of denials. A missing secret or key is the author's to fix:
# 403, the code Kubernetes uses for admission denials. A malformed reference
# is a bad request: 400. The webhook lacking RBAC is a cluster fault: 500.
# A timed out or failed lookup may pass on retry: 503.
CODE_MISSING = 403
CODE_FORBIDDEN = 500
CODE_UNAVAILABLE = 503


@dataclass(frozen=True, slots=True)
class InjectionOptions:
    """Settings of the admission logic, fixed for the life of the service."""

    annotation_prefix: str = DEFAULT_PREFIX
    on_missing: OnMissing = "deny"
    extra_kinds: tuple[WorkloadKind, ...] = ()
    keys: AnnotationKeys = field(init=False)
    kinds: Mapping[tuple[str, str, str], WorkloadKind] = field(init=False)

    def __post_init__(self) -> None:
        all_kinds = (*BUILTIN_KINDS, *self.extra_kinds)
        object.__setattr__(
            self, "keys", AnnotationKeys.for_prefix(self.annotation_prefix)
        )
        object.__setattr__(self, "kinds", {kind.key(): kind for kind in all_kinds})


@dataclass(frozen=True, slots=True)
class Plan:
    """A review whose secret references must be looked up before deciding.

    `operations` are sent only if every lookup succeeds (or, with
    `on_missing="warn"`, finds nothing worse than a missing secret or key).
    """

    review: Review
    options: InjectionOptions
    namespace: str
    subject: str
    uses: tuple[ReferenceUse, ...]
    operations: tuple[PatchOperation, ...]
    warnings: tuple[str, ...]
    # `container/ENV` names of the env vars the operations convert or add.
    injected: tuple[str, ...] = ()

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Return the names of the secrets to look up, sorted, each once."""
        return tuple(sorted({use.ref.secret for use in self.uses}))

    @property
    def references(self) -> frozenset[SecretRef]:
        """Return every (secret, key) pair to check."""
        return frozenset(use.ref for use in self.uses)


def plan_review(
    review: Review, options: InjectionOptions, additions: Sequence[EnvAddition] = ()
) -> Plan | Decision:
    """Find the references in a review and plan their checks.

    `additions` are env vars from outside the object (templates), added after
    those of the object's env annotation; earlier additions win.
    """
    request = review["request"]
    obj = request.get("object")
    kind = _kind_in_scope(request, options)
    if kind is None or not isinstance(obj, dict):
        return allow()

    try:
        scan = _scan(request, obj, kind, options, additions)
    except Denied as error:
        return from_denied(error)

    namespace = request.get("namespace") or ""
    if scan.uses and not namespace:
        return deny(
            400, f"{scan.subject}: the request has no namespace to look secrets up in"
        )
    plan = Plan(
        review=review,
        options=options,
        namespace=namespace,
        subject=scan.subject,
        uses=tuple(scan.uses),
        operations=_with_marker(scan, obj, options, _is_ephemeral(request)),
        warnings=tuple(scan.warnings),
        injected=tuple(scan.injected),
    )
    return plan if plan.uses else decide(plan, {})


def decide(plan: Plan, lookups: Mapping[str, SecretLookup]) -> Decision:
    """Decide a planned review from the lookups of its secrets, keyed by name."""
    problems = _problems(plan, lookups)
    missing = [problem for problem in problems if problem.is_missing]
    if missing and plan.options.on_missing == "deny":
        return deny(CODE_MISSING, denial_message(plan.subject, missing, plan.namespace))

    for statuses, code in (
        ({LookupStatus.FORBIDDEN}, CODE_FORBIDDEN),
        ({LookupStatus.TIMEOUT, LookupStatus.ERROR}, CODE_UNAVAILABLE),
    ):
        failed = [problem for problem in problems if problem.status in statuses]
        if failed:
            return deny(code, denial_message(plan.subject, failed, plan.namespace))

    warnings = [
        *plan.warnings,
        *(missing_warning(problem, plan.namespace) for problem in missing),
    ]
    audit = {"injected-env-count": str(len(plan.injected))} if plan.operations else {}
    if missing:
        audit["missing-secret-reference-count"] = str(len(missing))
    return allow(plan.operations, warnings, audit)


def _kind_in_scope(request: Request, options: InjectionOptions) -> WorkloadKind | None:
    gvk = request["kind"]
    kind = options.kinds.get((gvk["group"], gvk["version"], gvk["kind"]))
    operation = request["operation"]
    if kind is None or operation not in ("CREATE", "UPDATE"):
        return None

    sub_resource = request.get("subResource") or ""
    if _is_ephemeral(request):
        return kind if operation == "UPDATE" else None
    if sub_resource or (operation == "UPDATE" and not kind.on_update):
        return None
    return kind


def _is_ephemeral(request: Request) -> bool:
    gvk = request["kind"]
    return request.get("subResource") == "ephemeralcontainers" and (
        gvk["group"],
        gvk["kind"],
    ) == ("", "Pod")


def _scan(
    request: Request,
    obj: dict[str, Any],
    kind: WorkloadKind,
    options: InjectionOptions,
    extra_additions: Sequence[EnvAddition],
) -> Scan:
    keys = options.keys
    annotations = annotations_of(obj)
    scan = Scan(
        describe_subject(request, obj), not injection_disabled(annotations, keys)
    )

    if _is_ephemeral(request):
        _scan_new_ephemeral(scan, obj, request.get("oldObject"))
        return scan
    if kind.layout is EnvLayout.ENVIRONMENT_ITEMS:
        for pointer in kind.pointers:
            for _, items in find_pointer_targets(obj, pointer):
                scan.scan_environment_items(items)
        return scan

    additions = _annotation_additions(annotations, keys, scan.subject) + list(
        extra_additions
    )
    specs = [
        target
        for pointer in kind.pointers
        for target in find_pointer_targets(obj, pointer)
    ]
    selected = _selected_containers(annotations, keys, scan.subject, specs)
    for path, spec in specs:
        if isinstance(spec, Mapping):
            _scan_pod_spec(scan, path, spec, additions, selected)
    return scan


def _annotation_additions(
    annotations: Mapping[str, Any], keys: AnnotationKeys, subject: str
) -> list[EnvAddition]:
    text = annotations.get(keys.env)
    return (
        parse_env_annotation(text, keys.env, subject) if isinstance(text, str) else []
    )


def _selected_containers(
    annotations: Mapping[str, Any],
    keys: AnnotationKeys,
    subject: str,
    specs: Sequence[tuple[str, Any]],
) -> frozenset[str] | None:
    """Return the app containers named by the containers annotation, or None for all."""
    text = annotations.get(keys.containers)
    if not isinstance(text, str):
        return None
    names = parse_container_names(text)
    present = [
        container.get("name")
        for _, spec in specs
        if isinstance(spec, Mapping) and isinstance(spec.get(APP_CONTAINERS), list)
        for container in spec[APP_CONTAINERS]
        if isinstance(container, Mapping)
    ]
    for name in names:
        if name not in present:
            raise Denied(
                400,
                f"{subject}: annotation {keys.containers} names container "
                f"{quote(name)}, which is not one of its containers "
                f"({', '.join(map(quote, map(str, present)))}). "
                "Fix the name or remove it from the annotation.",
            )
    return frozenset(names)


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
        if not isinstance(container, Mapping):
            continue
        chosen = selected is None or container.get("name") in selected
        scan.scan_container(
            container, f"{path}/{APP_CONTAINERS}/{index}", additions if chosen else ()
        )


def _scan_new_ephemeral(scan: Scan, obj: Mapping[str, Any], old: object) -> None:
    """Convert placeholders in ephemeral containers that `old` does not have yet.

    Env of an existing ephemeral container is immutable, so only new entries
    may change. No marker is set: this subresource keeps only changes to
    `spec.ephemeralContainers`.
    """
    old_names = {
        container.get("name")
        for container in _ephemeral(old)
        if isinstance(container, Mapping)
    }
    for index, container in enumerate(_ephemeral(obj)):
        if isinstance(container, Mapping) and container.get("name") not in old_names:
            scan.scan_container(container, f"/spec/{EPHEMERAL_CONTAINERS}/{index}")


def _ephemeral(obj: object) -> list[Any]:
    spec = obj.get("spec") if isinstance(obj, Mapping) else None
    containers = spec.get(EPHEMERAL_CONTAINERS) if isinstance(spec, Mapping) else None
    return containers if isinstance(containers, list) else []


def _with_marker(
    scan: Scan, obj: Mapping[str, Any], options: InjectionOptions, ephemeral: bool
) -> tuple[PatchOperation, ...]:
    if not scan.operations or ephemeral:
        return tuple(scan.operations)
    marker = marker_operation(obj, options.keys.injected, scan.injected)
    return (*scan.operations, marker)


def _problems(plan: Plan, lookups: Mapping[str, SecretLookup]) -> list[Problem]:
    """Group the uses that could not be confirmed, in order of first use.

    A missing key is grouped by secret and key; any other failure concerns
    the whole secret and is grouped by secret.
    """
    grouped: dict[tuple[str, str | None], list[ReferenceUse]] = {}
    results: dict[tuple[str, str | None], SecretLookup] = {}
    for use in plan.uses:
        lookup = lookups.get(use.ref.secret) or _NO_RESULT
        if lookup.status is LookupStatus.FOUND and use.ref.key in lookup.keys:
            continue
        key = use.ref.key if lookup.status is LookupStatus.FOUND else None
        grouped.setdefault((use.ref.secret, key), []).append(use)
        results[(use.ref.secret, key)] = lookup

    return [
        Problem(
            results[group].status,
            group[0],
            group[1],
            results[group].detail,
            tuple(uses),
        )
        for group, uses in grouped.items()
    ]


# Stands in for a secret the caller did not look up, which is a bug in the
# caller: the review is denied as retryable instead of failing.
_NO_RESULT = SecretLookup.failed(LookupStatus.ERROR, "no lookup result for this secret")
