"""Log setup: JSON or text lines, with per-review fields bound once.

Extra fields passed with `extra=` appear as keys of the JSON line (or as
`key=value` pairs in text). Callers pass ids, names and counts, never an
object body, a patch value, secret data or key material.
"""

from __future__ import annotations

import logging
import sys
from collections.abc import Mapping, MutableMapping
from datetime import UTC, datetime
from typing import Any, TextIO

import orjson

# Field names bound to every line about one review.
UID = "uid"
NAMESPACE = "namespace"
KIND = "kind"
# "name" is taken by LogRecord itself.
NAME = "object_name"
OPERATION = "operation"
USER = "user"

# Attributes every LogRecord has; anything else on a record is an extra field.
_RECORD_ATTRIBUTES = frozenset(
    vars(logging.LogRecord("", 0, "", 0, "", None, None)).keys()
) | {"message", "asctime", "color_message", "taskName"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """Return the fields that a caller added to `record` with `extra=`."""
    return {
        key: value
        for key, value in vars(record).items()
        if key not in _RECORD_ATTRIBUTES and not key.startswith("_")
    }


def _timestamp(record: logging.LogRecord) -> str:
    moment = datetime.fromtimestamp(record.created, tz=UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


class JsonFormatter(logging.Formatter):
    """Format a record as one JSON object per line."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "time": _timestamp(record),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        line.update(extra_fields(record))
        if record.exc_info and record.exc_info[0] is not None:
            line["error_type"] = record.exc_info[0].__name__
            line["traceback"] = self.formatException(record.exc_info)
        return orjson.dumps(line, default=str).decode()


class TextFormatter(logging.Formatter):
    """Format a record as `time level logger: message key=value ...`."""

    def format(self, record: logging.LogRecord) -> str:
        fields = " ".join(
            f"{key}={value!r}"
            if isinstance(value, str) and " " in value
            else f"{key}={value}"
            for key, value in extra_fields(record).items()
        )
        message = record.getMessage()
        text = f"{_timestamp(record)} {record.levelname} {record.name}: {message}"
        if fields:
            text = f"{text} {fields}"
        if record.exc_info and record.exc_info[0] is not None:
            text = f"{text}\n{self.formatException(record.exc_info)}"
        return text


def configure_logging(
    log_format: str, level: str, stream: TextIO | None = None
) -> None:
    """Send every logger's lines to `stream` (stderr) in the chosen format."""
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter() if log_format == "json" else TextFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # The client's own debug lines include request headers, bearer token too.
    logging.getLogger("kubernetes").setLevel(max(logging.INFO, root.level))
    logging.getLogger("urllib3").setLevel(max(logging.INFO, root.level))
    # Python warnings, such as prometheus-client's in multiprocess mode, become
    # WARNING lines in the same format instead of raw text on stderr.
    logging.captureWarnings(True)


class BoundLogger(logging.LoggerAdapter):  # type: ignore[type-arg]
    """A logger that adds the same fields to every line it writes."""

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        fields = dict(self.extra or {})
        fields.update(kwargs.get("extra") or {})
        kwargs["extra"] = fields
        return msg, kwargs


class ReviewLogger(BoundLogger):
    """A logger bound to the fields of one review, read when a line is written.

    Most reviews write no line at the default level, so the fields are not
    picked until one is. Should picking them fail, the line carries the uid
    alone instead of raising into the review.
    """

    def __init__(self, logger: logging.Logger, request: Mapping[str, Any]) -> None:
        super().__init__(logger, None)
        self._request = request

    def process(
        self, msg: Any, kwargs: MutableMapping[str, Any]
    ) -> tuple[Any, MutableMapping[str, Any]]:
        if self.extra is None:
            try:
                self.extra = review_fields(self._request)
            except Exception:  # noqa: BLE001 - a log line must never fail a review
                self.extra = {UID: self._request.get("uid", "")}
        return super().process(msg, kwargs)


def bind(logger: logging.Logger, fields: Mapping[str, object]) -> BoundLogger:
    """Return a logger that adds `fields` to every line."""
    return BoundLogger(logger, dict(fields))


# Maximum length of a field value in a log line. Kubernetes names have at
# most 253 characters, but a forged review may send any length.
MAX_FIELD_CHARS = 256


def review_fields(request: Mapping[str, Any]) -> dict[str, object]:
    """Pick the fields that identify one review from its request, no body.

    Only the envelope has been checked, so any field below may have any
    type. A value that is not a string is logged as an empty string, and a
    long one is cut, so a forged review cannot make a line fail to encode
    or grow without bound.
    """
    obj = _mapping(request.get("object")) or _mapping(request.get("oldObject"))
    metadata = _mapping(obj.get("metadata"))
    name = _text(request.get("name")) or _text(metadata.get("name"))
    generate_name = _text(metadata.get("generateName"))
    if not name and generate_name:
        name = f"{generate_name}*"
    kind = _mapping(request.get("kind"))
    user = _mapping(request.get("userInfo"))
    return {
        UID: _text(request.get("uid")),
        NAMESPACE: _text(request.get("namespace")),
        KIND: _text(kind.get("kind")),
        NAME: name,
        OPERATION: _text(request.get("operation")),
        USER: _text(user.get("username")),
    }


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _text(value: object) -> str:
    if not isinstance(value, str):
        return ""
    return value[:MAX_FIELD_CHARS]
