"""The two steps of a review: plan what to check, then decide.

`plan_review` reads the request and returns either an immediate `Decision`
(out of scope, nothing to do, malformed reference) or a `Plan` that lists the
secrets to look up. The caller looks them up in `Plan.namespace` and passes
the results to `decide`, which returns the final `Decision`. Both steps are
pure, so a `dryRun` review gets exactly the same response.
"""

from collections.abc import Mapping, Sequence
from dataclasses import astuple, dataclass, field
from typing import Any, Literal

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import (
    DEFAULT_PREFIX,
    AnnotationKeys,
    check_prefix,
)
from webhook.admission.decisions import (
    Decision,
    PatchOperation,
    allow,
    deny,
    from_denied,
)
from webhook.admission.errors import Denied
from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.admission.markers import marker_operation
from webhook.admission.messages import (
    Problem,
    denial_message,
    found_elsewhere_warning,
    missing_warning,
)
from webhook.admission.objects import is_ephemeral, kind_in_scope, scan_object
from webhook.admission.podspecs import (
    BUILTIN_KINDS,
    WorkloadKind,
)
from webhook.admission.references import SecretRef
from webhook.admission.reviews import Review
from webhook.admission.scanning import ReferenceUse, Scan

OnMissing = Literal["deny", "warn"]

# Status codes of denials. A missing secret or key is the author's to fix:
# 403 Forbidden, as the request is understood but not allowed as written.
# A malformed reference is a bad request: 400. The webhook lacking RBAC is a
# fault of the cluster set-up: 500. A timed out or failed lookup may pass on
# retry: 503.
CODE_MISSING = 403
CODE_FORBIDDEN = 500
CODE_UNAVAILABLE = 503


@dataclass(frozen=True, slots=True)
class InjectionOptions:
    """Settings of the admission logic, fixed for the life of the service."""

    annotation_prefix: str = DEFAULT_PREFIX
    on_missing: OnMissing = "deny"
    extra_kinds: tuple[WorkloadKind, ...] = ()
    keys: AnnotationKeys = field(init=False, compare=False)
    kinds: Mapping[tuple[str, str, str], WorkloadKind] = field(
        init=False, compare=False, hash=False
    )
    # Every annotation key the webhook reads or writes on an object.
    control_keys: tuple[str, ...] = field(init=False, compare=False)

    def __post_init__(self) -> None:
        if self.on_missing not in ("deny", "warn"):
            raise ValueError(
                f"on_missing {self.on_missing!r} is not valid. Use 'deny' or 'warn'."
            )
        check_prefix(self.annotation_prefix)
        all_kinds = (*BUILTIN_KINDS, *self.extra_kinds)
        object.__setattr__(
            self, "keys", AnnotationKeys.for_prefix(self.annotation_prefix)
        )
        object.__setattr__(self, "kinds", {kind.key(): kind for kind in all_kinds})
        object.__setattr__(self, "control_keys", astuple(self.keys))


class Plan:
    """A review whose secret references must be looked up before deciding.

    `operations` are sent only if every lookup succeeds (or, with
    `on_missing="warn"`, finds nothing worse than a missing secret or key).
    `keys` maps each secret to the keys the object uses of it, and
    `injected` lists the `container/ENV` names of the env vars the operations
    convert or add. The lists are the scan's own, not copies.
    """

    __slots__ = (
        "_scan",
        "injected",
        "keys",
        "namespace",
        "operations",
        "options",
        "review",
        "uses",
        "warnings",
    )

    def __init__(
        self,
        review: Review,
        options: InjectionOptions,
        namespace: str,
        scan: Scan,
        operations: Sequence[PatchOperation],
    ) -> None:
        self.review = review
        self.options = options
        self.namespace = namespace
        self.operations = operations
        self.uses: Sequence[ReferenceUse] = scan.uses
        self.warnings: Sequence[str] = scan.warnings
        self.injected: Sequence[str] = scan.injected
        self.keys: Mapping[str, set[str]] = scan.keys
        self._scan = scan

    @property
    def subject(self) -> str:
        """Name the object for a message, for example `Pod "web"`."""
        return self._scan.subject

    @property
    def secret_names(self) -> tuple[str, ...]:
        """Return the names of the secrets to look up, sorted, each once."""
        return tuple(sorted(self.keys))

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
    kind = kind_in_scope(request, options.kinds)
    if kind is None or not isinstance(obj, dict):
        return allow()

    try:
        scan = scan_object(request, obj, kind, options.keys, additions)
    except Denied as error:
        return from_denied(error)

    namespace = request.get("namespace") or ""
    if scan.uses and not namespace:
        return deny(
            400, f"{scan.subject}: the request has no namespace to look secrets up in"
        )
    operations = _with_marker(scan, obj, options, is_ephemeral(request))
    plan = Plan(review, options, namespace, scan, operations)
    return plan if plan.uses else decide(plan, {})


def decide(plan: Plan, lookups: Mapping[str, SecretLookup]) -> Decision:
    """Decide a planned review from the lookups of its secrets, keyed by name."""
    if _all_confirmed(plan, lookups):
        # The usual case: every secret found here with every key it needs.
        audit = {"injected-env-count": str(len(plan.injected))}
        return allow(plan.operations, plan.warnings, audit if plan.operations else {})

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
        *_elsewhere_warnings(plan, lookups),
    ]
    audit = {"injected-env-count": str(len(plan.injected))} if plan.operations else {}
    if missing:
        audit["missing-secret-reference-count"] = str(len(missing))
    return allow(plan.operations, warnings, audit)


def _all_confirmed(plan: Plan, lookups: Mapping[str, SecretLookup]) -> bool:
    """Tell whether each secret was found in the request's namespace with its keys."""
    for secret, keys in plan.keys.items():
        lookup = lookups.get(secret)
        if (
            lookup is None
            or lookup.status is not LookupStatus.FOUND
            or (lookup.namespace and lookup.namespace != plan.namespace)
            or not lookup.keys.issuperset(keys)
        ):
            return False
    return True


def _elsewhere_warnings(plan: Plan, lookups: Mapping[str, SecretLookup]) -> list[str]:
    """Warn about secrets found only in another namespace, as cluster-wide secrets.

    The pod reads the secret from its own namespace, so it waits there
    until the propagation controller has made the copy.
    """
    warnings = []
    for name in plan.secret_names:
        lookup = lookups.get(name)
        if lookup is None or lookup.status is not LookupStatus.FOUND:
            continue
        if lookup.namespace and lookup.namespace != plan.namespace:
            warnings.append(
                found_elsewhere_warning(name, lookup.namespace, plan.namespace)
            )
    return warnings


def _with_marker(
    scan: Scan, obj: Mapping[str, Any], options: InjectionOptions, ephemeral: bool
) -> tuple[PatchOperation, ...]:
    if not scan.operations or ephemeral:
        return tuple(scan.operations)
    marker = marker_operation(obj, options.keys.injected, scan.injected)
    return (*scan.operations, marker)


def _problems(plan: Plan, lookups: Mapping[str, SecretLookup]) -> list[Problem]:
    """Group the uses that could not be confirmed, in order of first use.

    A missing key is grouped by secret and key. Any other failure concerns
    the whole secret, so it is grouped by secret.
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
            results[group].namespace,
            results[group].api_called,
        )
        for group, uses in grouped.items()
    ]


# Stands in for a secret the caller did not look up, which is a bug in the
# caller: the review is denied as retryable instead of failing.
_NO_RESULT = SecretLookup.failed(LookupStatus.ERROR, "no lookup result for this secret")
