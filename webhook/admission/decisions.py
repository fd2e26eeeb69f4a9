"""The outcome of a review: allowed with a patch and warnings, or denied."""

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import orjson

from webhook.admission.errors import Denied

# kube-apiserver drops a warning that contains a control character and cuts
# each warning at 256 characters (k8s.io/apiserver admission webhook
# response handling), so warnings are made to fit before they are sent.
MAX_WARNING_CHARS = 256
# 15 warnings of 256 characters stay under the 4096-character total.
MAX_WARNINGS = 15
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x1f\x7f]+")

# Longest user-supplied value quoted in a message; a longer one is cut so a
# denial stays readable.
MAX_QUOTED_CHARS = 120

# JSON Patch operation as sent in the response (RFC 6902).
PatchOperation = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Decision:
    """What to answer for one AdmissionReview.

    `code` and `message` matter only when `allowed` is false. `patch` is the
    RFC 6902 operation list, empty when nothing changes.
    """

    allowed: bool
    code: int = 200
    message: str = ""
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


def deny(code: int, message: str) -> Decision:
    """Build a denying decision with a status code of at least 400."""
    return Decision(allowed=False, code=max(code, 400), message=message)


def from_denied(error: Denied) -> Decision:
    """Turn a `Denied` raised by the logic into a denying decision."""
    return deny(error.code, error.message)


def fit_warnings(warnings: Sequence[str]) -> tuple[str, ...]:
    """Make warnings safe to send: one line each, no repeats, bounded in total.

    kube-apiserver keeps at most 4096 characters of warnings per response,
    so at most `MAX_WARNINGS` are sent and the last one counts the rest.
    """
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
