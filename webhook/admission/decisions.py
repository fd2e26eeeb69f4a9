"""The outcome of a review: allowed with a patch and warnings, or denied."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from webhook.admission.errors import Denied

# kube-apiserver drops a warning that contains a control character (Go's
# unicode.IsControl: U+0000-U+001F and U+007F-U+009F). Once the warnings of
# a response pass 4096 characters in total, it cuts each one to 256
# (k8s.io/apiserver pkg/endpoints/filters/warning.go). Warnings are made to
# fit both limits before they are sent, so none is dropped or cut.
MAX_WARNING_CHARS = 256
# 15 warnings of 256 characters stay under the 4096-character total.
MAX_WARNINGS = 15
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f-\x9f]+")

# Maximum length of a user-supplied value quoted in a message. A longer one
# is cut so that a denial stays readable.
MAX_QUOTED_CHARS = 120

# JSON Patch operation as sent in the response (RFC 6902).
PatchOperation = dict[str, Any]


# Not frozen: a frozen dataclass sets each field through object.__setattr__,
# which made building a decision cost 0.8 us instead of 0.2 us per review.
# Nothing changes a decision after it is built: dataclasses.replace copies it.
@dataclass(slots=True)
class Decision:
    """The decision to send back for one AdmissionReview.

    `code` and `message` matter only when `allowed` is false. `patch` is the
    RFC 6902 operation list, empty when nothing changes. `log_message` is
    the denial as the service logs it, set when `message` quotes a value
    that must stay out of logs. When it is empty, `message` is logged.
    """

    allowed: bool
    code: int = 200
    message: str = ""
    log_message: str = ""
    patch: Sequence[PatchOperation] = ()
    warnings: Sequence[str] = ()
    audit_annotations: Mapping[str, str] = field(default_factory=dict)


def allow(
    patch: Sequence[PatchOperation] = (),
    warnings: Sequence[str] = (),
    audit_annotations: Mapping[str, str] | None = None,
) -> Decision:
    """Build an allowing decision, with warnings made safe to send."""
    return Decision(
        allowed=True,
        patch=tuple(patch),
        warnings=fit_warnings(warnings),
        audit_annotations=dict(audit_annotations or {}),
    )


def deny(code: int, message: str, log_message: str = "") -> Decision:
    """Build a denying decision with a status code of at least 400."""
    return Decision(
        allowed=False, code=max(code, 400), message=message, log_message=log_message
    )


def from_denied(error: Denied) -> Decision:
    """Turn a `Denied` raised by the logic into a denying decision."""
    return deny(error.code, error.message, error.log_message)


def fit_warnings(warnings: Sequence[str]) -> tuple[str, ...]:
    """Make warnings safe to send: one line each, no repeats, bounded in total.

    At most `MAX_WARNINGS` are sent, and the last one then counts the rest,
    so the total stays under kube-apiserver's 4096 characters.
    """
    if not warnings:
        return ()
    unique = list(dict.fromkeys(fit_warning(warning) for warning in warnings))
    if len(unique) <= MAX_WARNINGS:
        return tuple(unique)
    left_out = len(unique) - (MAX_WARNINGS - 1)
    return (*unique[: MAX_WARNINGS - 1], f"{left_out} more warnings not shown")


def fit_warning(text: str) -> str:
    """Return `text` as one line of at most `MAX_WARNING_CHARS` characters."""
    line = _CONTROL_CHARACTERS.sub(" ", text).strip()
    if len(line) <= MAX_WARNING_CHARS:
        return line
    return line[: MAX_WARNING_CHARS - 3] + "..."


def quote(value: str) -> str:
    """Quote a user-supplied value for a message: JSON escapes, bounded length.

    The escapes keep newlines and other control characters out of messages
    and warnings.
    """
    if len(value) > MAX_QUOTED_CHARS:
        value = value[:MAX_QUOTED_CHARS] + "..."
    return orjson.dumps(value).decode()
