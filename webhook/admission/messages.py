"""Messages for references whose secret or key could not be confirmed."""

from collections.abc import Sequence
from dataclasses import dataclass

from webhook.admission.decisions import quote
from webhook.admission.lookups import LookupStatus
from webhook.admission.scanning import ReferenceUse

# How many places and problems one denial lists before it summarises the
# rest, so a pod with thousands of env vars still gets a readable message.
MAX_PLACES = 3
MAX_PROBLEMS = 5


@dataclass(frozen=True, slots=True)
class Problem:
    """A secret, or one key of it, that could not be confirmed.

    `key` is set only when the secret exists without that key; the other
    statuses concern the whole secret. `uses` lists every place using it.
    `found_in` is the namespace the secret was found in when that is not the
    request's, as for a cluster-wide secret without a copy yet. `api_called`
    is false when the review's time ran out before the API was called.
    """

    status: LookupStatus
    secret: str
    key: str | None
    detail: str
    uses: tuple[ReferenceUse, ...]
    found_in: str | None = None
    api_called: bool = True

    @property
    def is_missing(self) -> bool:
        """Tell whether the secret or the key does not exist."""
        return self.key is not None or self.status is LookupStatus.NOT_FOUND


def describe_places(uses: Sequence[ReferenceUse], with_keys: bool = False) -> str:
    """List where a secret is used, at most `MAX_PLACES` of them.

    `with_keys` adds the key each place reads, for problems that concern the
    whole secret.
    """
    places = [
        f"{use.describe()} with key {quote(use.ref.key)}"
        if with_keys
        else use.describe()
        for use in uses[:MAX_PLACES]
    ]
    if len(uses) > MAX_PLACES:
        places.append(f"{len(uses) - MAX_PLACES} more")
    return ", ".join(places)


def problem_sentences(problem: Problem, namespace: str) -> str:
    """Describe one problem, where it is used and the fix, for a denial."""
    secret, ns = quote(problem.secret), quote(problem.found_in or namespace)
    places = describe_places(problem.uses, with_keys=problem.key is None)
    used_by = f"It is used by {places}."
    if problem.key is not None:
        # The other keys stay unnamed: the author may not be allowed to read them.
        key = quote(problem.key)
        # A secret found in another namespace is a cluster-wide secret, which
        # job authors usually may not edit.
        remedy = (
            f"Ask a cluster admin to add key {key} to the cluster-wide secret"
            if problem.found_in
            else f"Add key {key} to the secret"
        )
        return (
            f"Secret {secret} in namespace {ns} has no key {key}. {used_by} "
            f"{remedy} or fix the key in the reference."
        )
    if problem.status is LookupStatus.NOT_FOUND:
        return (
            f"Secret {secret} was not found in namespace {ns}. {used_by} "
            f"Create the secret in namespace {ns} "
            "or fix the secret name in the reference."
        )
    if problem.status is LookupStatus.FORBIDDEN:
        return (
            f"The webhook could not check secret {secret} in namespace {ns} because "
            f"its service account may not read secrets there{_detail(problem.detail)}. "
            f"{used_by} A cluster admin must grant the webhook's service account "
            'the RBAC rule apiGroups [""], resources ["secrets"], verbs ["get"] '
            f"in namespace {ns}."
        )
    if not problem.api_called:
        return (
            f"The webhook could not check secret {secret} in namespace {ns} because "
            "the review's time ran out before the webhook could call the "
            f"Kubernetes API{_detail(problem.detail)}. {used_by} Nothing was "
            "changed, so retrying the request is safe."
        )
    reason = (
        "did not answer in time" if problem.status is LookupStatus.TIMEOUT else "failed"
    )
    return (
        f"The webhook could not check secret {secret} in namespace {ns} because "
        f"the Kubernetes API {reason}{_detail(problem.detail)}. {used_by} "
        "Nothing was changed, so retrying the request is safe."
    )


def denial_message(subject: str, problems: Sequence[Problem], namespace: str) -> str:
    """Join the first `MAX_PROBLEMS` problems into one denial message."""
    sentences = [
        problem_sentences(problem, namespace) for problem in problems[:MAX_PROBLEMS]
    ]
    if len(problems) > MAX_PROBLEMS:
        sentences.append(
            f"{len(problems) - MAX_PROBLEMS} more secret references "
            "failed the same way."
        )
    return f"{subject}: " + " ".join(sentences)


def missing_warning(problem: Problem, namespace: str) -> str:
    """Warn that a reference was converted although its secret or key is missing."""
    secret, ns = quote(problem.secret), quote(problem.found_in or namespace)
    if problem.key is not None:
        summary = f"secret {secret} in namespace {ns} has no key {quote(problem.key)}"
    else:
        summary = f"secret {secret} was not found in namespace {ns}"
    return (
        f"{summary}, so containers using it wait in CreateContainerConfigError "
        f"until it exists: {describe_places(problem.uses, problem.key is None)}"
    )


def found_elsewhere_warning(secret: str, found_in: str, namespace: str) -> str:
    """Warn that a secret exists only as a cluster-wide secret in another namespace."""
    return (
        f"secret {quote(secret)} is not in namespace {quote(namespace)} yet but is a "
        f"cluster-wide secret in namespace {quote(found_in)}, so it is copied there "
        "and containers using it start once the copy exists"
    )


def _detail(detail: str) -> str:
    return f" ({quote(detail)})" if detail else ""


def out_of_time_message(subject: str) -> str:
    """Deny a review whose deadline passed before its secrets were looked up."""
    return (
        f"{subject}: the webhook ran out of time before it could check the "
        "object's secrets: the time kube-apiserver allows for this review was "
        "used up before the first lookup. Nothing was changed, so retrying "
        "the request is safe; if it fails again, make the object smaller or ask "
        "the cluster admin to raise the webhook's timeoutSeconds."
    )
