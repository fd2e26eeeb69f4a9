"""Test controls of the fake API server: fault rules, RBAC denials, the request log."""

from __future__ import annotations

import re
import time
from dataclasses import dataclass, field

from tests.harness import kubestatus
from tests.harness.kuberoutes import Route
from tests.harness.kubestatus import ApiError


@dataclass
class Fault:
    """A rule that changes how matching requests are served.

    `verb`, `resource` (plural), `namespace` and `name` match exactly or
    with "*"; `path` is an optional regular expression on the URL path.
    `times` limits the rule to the first N matching requests.
    """

    verb: str = "*"
    resource: str = "*"
    namespace: str = "*"
    name: str = "*"
    path: str | None = None
    latency: float = 0.0  # seconds added before the request is served
    status: int | None = None  # reply with this code and a Status body
    retry_after: int | None = None  # Retry-After header, in seconds
    message: str = "fault injected by the test"
    reset: bool = False  # drop the connection with a TCP reset
    silent_watch: bool = False  # a watch that stays open and sends nothing
    times: int | None = None
    hits: int = 0

    def matches(self, route: Route, path: str) -> bool:
        if self.times is not None and self.hits >= self.times:
            return False
        plural = route.resource.plural if route.resource else ""
        pairs = (
            (self.verb, route.verb),
            (self.resource, plural),
            (self.namespace, route.namespace),
            (self.name, route.name),
        )
        if any(expected not in ("*", actual) for expected, actual in pairs):
            return False
        return self.path is None or re.search(self.path, path) is not None

    def error(self, route: Route, user: str) -> ApiError:
        if self.status == 429:
            return kubestatus.too_many_requests(self.retry_after or 1)
        if self.status == 500:
            error = kubestatus.internal_error(self.message)
        elif self.status == 403:
            resource = route.resource
            group, plural = (resource.group, resource.plural) if resource else ("", "")
            error = kubestatus.forbidden(
                user, route.verb, group, plural, route.namespace, route.name
            )
        else:
            error = kubestatus.by_code(self.status or 500, self.message)
        if self.retry_after is not None:
            error.headers["Retry-After"] = str(self.retry_after)
        return error


@dataclass(frozen=True)
class Deny:
    """An RBAC denial of `verb` on `resource` (plural) in `namespace` for `user`.

    Each field matches exactly or, with "*", anything.
    """

    verb: str
    resource: str
    namespace: str = "*"
    user: str = "*"

    def matches(self, user: str, route: Route) -> bool:
        plural = route.resource.plural if route.resource else ""
        pairs = (
            (self.verb, route.verb),
            (self.resource, plural),
            (self.namespace, route.namespace),
            (self.user, user),
        )
        return all(expected in ("*", actual) for expected, actual in pairs)


@dataclass
class RequestRecord:
    """One request as the fake received it; `status` is 0 after a reset."""

    method: str
    verb: str
    path: str
    group: str
    resource: str
    namespace: str
    name: str
    query: dict[str, str]
    token: str | None
    user: str | None = None
    status: int | None = None
    time: float = field(default_factory=time.monotonic)
