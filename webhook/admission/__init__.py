"""Pure admission logic: an AdmissionReview in, a decision and a JSON patch out.

Typical use by the HTTP edge::

    review = parse_review(body, content_type)
    outcome = plan_review(review, options, additions)
    if isinstance(outcome, Plan):
        names = outcome.secret_names
        lookups = {name: lookup(outcome.namespace, name) for name in names}
        outcome = decide(outcome, lookups)
    return encode_response(review, outcome)

Nothing here imports a web framework or the Kubernetes client, or does I/O.
"""

from webhook.admission.additions import EnvAddition
from webhook.admission.annotations import DEFAULT_PREFIX, AnnotationKeys
from webhook.admission.decisions import Decision, allow, deny
from webhook.admission.errors import (
    AdmissionError,
    Denied,
    InvalidWorkloadKinds,
    MalformedReview,
)
from webhook.admission.injection import InjectionOptions, Plan, decide, plan_review
from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.admission.podspecs import (
    BUILTIN_KINDS,
    EnvLayout,
    WorkloadKind,
    load_workload_kinds,
)
from webhook.admission.references import InvalidReference, SecretRef, parse_reference
from webhook.admission.reviews import (
    MAX_REVIEW_BYTES,
    Request,
    Review,
    build_response,
    encode_response,
    parse_review,
)

__all__ = [
    "BUILTIN_KINDS",
    "DEFAULT_PREFIX",
    "MAX_REVIEW_BYTES",
    "AdmissionError",
    "AnnotationKeys",
    "Decision",
    "Denied",
    "EnvAddition",
    "EnvLayout",
    "InjectionOptions",
    "InvalidReference",
    "InvalidWorkloadKinds",
    "LookupStatus",
    "MalformedReview",
    "Plan",
    "Request",
    "Review",
    "SecretLookup",
    "SecretRef",
    "WorkloadKind",
    "allow",
    "build_response",
    "decide",
    "deny",
    "encode_response",
    "load_workload_kinds",
    "parse_reference",
    "parse_review",
    "plan_review",
]
