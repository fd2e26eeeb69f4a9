"""The marker annotation that records what the webhook injected."""

from collections.abc import Iterable, Mapping
from typing import Any

from webhook.admission.decisions import PatchOperation
from webhook.admission.patches import set_annotation

# Maximum length of the marker value, in characters. All annotations of
# one object share a 256 KiB limit, and a pod with thousands of converted env
# vars must not spend it on this list. A longer list is cut and ends with
# the count of names left out, for example "+42".
MAX_MARKER_CHARS = 1024
_SEPARATOR = ","
_MORE = "+"


def marker_value(previous: object, injected: Iterable[str]) -> str:
    """Build the marker value: sorted `container/ENV` names, each once.

    Names from an earlier pass (`previous`) are kept, so a reinvocation that
    converts a container added by another webhook extends the list.
    """
    names = set(injected)
    if isinstance(previous, str):
        names.update(
            name
            for name in previous.split(_SEPARATOR)
            if name and not name.startswith(_MORE)
        )

    ordered = sorted(names)
    whole = _SEPARATOR.join(ordered)
    if len(whole) <= MAX_MARKER_CHARS:
        return whole

    listed: list[str] = []
    length = 0
    for index, name in enumerate(ordered):
        left_out = len(ordered) - index
        suffix_chars = len(f"{_SEPARATOR}{_MORE}{left_out}")
        if length + len(name) + 1 + suffix_chars > MAX_MARKER_CHARS:
            listed.append(f"{_MORE}{left_out}")
            break
        listed.append(name)
        length += len(name) + 1
    return _SEPARATOR.join(listed)


def marker_operation(
    obj: Mapping[str, Any], key: str, injected: Iterable[str]
) -> PatchOperation:
    """Build the operation that sets the marker annotation `key` on `obj`."""
    metadata = obj.get("metadata")
    annotations = metadata.get("annotations") if isinstance(metadata, dict) else None
    previous = annotations.get(key) if isinstance(annotations, dict) else None
    return set_annotation(
        metadata if isinstance(metadata, dict) else None,
        key,
        marker_value(previous, injected),
    )
