"""Results of secret lookups, as the Kubernetes client layer reports them.

A result contains key names only. Secret values never reach this package.
"""

from dataclasses import dataclass
from enum import StrEnum


class LookupStatus(StrEnum):
    """Outcome of a lookup of one secret in the request's namespace."""

    FOUND = "found"
    NOT_FOUND = "not_found"
    # The webhook's service account may not `get` secrets in the namespace.
    FORBIDDEN = "forbidden"
    # The API did not respond within the review's deadline.
    TIMEOUT = "timeout"
    # Any other failure: 5xx, connection error, unreadable response.
    ERROR = "error"


@dataclass(frozen=True, slots=True)
class SecretLookup:
    """Result of looking up one secret.

    `keys` are the secret's data key names when `status` is FOUND, else
    empty. `detail` explains a failure for logs and messages and must not
    contain secret data. `namespace` is the namespace the secret was found
    in when it differs from the request's, as for a cluster-wide secret that
    the propagation controller copies into the project namespace.
    `api_called` is false for a TIMEOUT that came before any API call, when
    the review's time ran out first.
    """

    status: LookupStatus
    keys: frozenset[str] = frozenset()
    detail: str = ""
    namespace: str | None = None
    api_called: bool = True

    @classmethod
    def found(
        cls, keys: frozenset[str] | set[str], namespace: str | None = None
    ) -> "SecretLookup":
        """Build a result for a secret that exists with these key names."""
        return cls(LookupStatus.FOUND, frozenset(keys), namespace=namespace)

    @classmethod
    def not_found(cls, detail: str = "") -> "SecretLookup":
        """Build a result for a secret that does not exist."""
        return cls(LookupStatus.NOT_FOUND, detail=detail)

    @classmethod
    def failed(
        cls,
        status: LookupStatus,
        detail: str,
        namespace: str | None = None,
        api_called: bool = True,
    ) -> "SecretLookup":
        """Build a result for a lookup that could not tell whether the secret exists.

        `namespace` names where the failed lookup looked, when that is not
        the request's namespace.
        """
        return cls(status, detail=detail, namespace=namespace, api_called=api_called)
