"""The time a review may take, from kube-apiserver's `?timeout=` parameter."""

from __future__ import annotations

import re

# kube-apiserver's default webhook timeoutSeconds, used when the call has no
# `timeout` parameter.
DEFAULT_TIMEOUT_SECONDS = 10.0

# The review stops waiting for the API this long before the caller gives up,
# so that the response, even a denial, reaches the caller in time. The margin
# is a fifth of the timeout, at most one second.
MARGIN_FRACTION = 0.2
MAX_MARGIN_SECONDS = 1.0

# Go's time.Duration.String() format, which client-go uses for `timeout`,
# for example "10s", "9.5s", "750ms" or "1m0s".
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ms|us|µs|ns|h|m|s)")
_UNIT_SECONDS = {
    "h": 3600.0,
    "m": 60.0,
    "s": 1.0,
    "ms": 1e-3,
    "us": 1e-6,
    "µs": 1e-6,
    "ns": 1e-9,
}


def parse_go_duration(text: str) -> float | None:
    """Return the seconds in a Go duration string, or None if it is invalid."""
    position = 0
    total = 0.0
    while position < len(text):
        match = _DURATION_PART.match(text, position)
        if match is None:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    return total if text else None


def review_budget(timeout_parameter: str | None) -> float:
    """Return the seconds a review may spend on lookups.

    That is the caller's timeout (or the default when the parameter is
    missing or invalid) minus the safety margin.
    """
    seconds = None
    if timeout_parameter:
        seconds = parse_go_duration(timeout_parameter)
    if not seconds or seconds <= 0:
        seconds = DEFAULT_TIMEOUT_SECONDS
    margin = min(MAX_MARGIN_SECONDS, seconds * MARGIN_FRACTION)
    return seconds - margin
