"""RFC 6902 JSON Patch operations built on the request's raw JSON.

Only env entries, env arrays and the one marker annotation are ever touched,
so fields this code does not know (a native sidecar's `restartPolicy`, fields
of a newer Kubernetes) pass through untouched.
"""

from collections.abc import Mapping, Sequence
from functools import lru_cache
from typing import Any

from webhook.admission.decisions import PatchOperation


def escape_token(token: str) -> str:
    """Escape one JSON Pointer reference token (RFC 6901: `~` then `/`)."""
    return token.replace("~", "~0").replace("/", "~1")


def unescape_token(token: str) -> str:
    """Undo `escape_token` (RFC 6901: `~1` then `~0`)."""
    return token.replace("~1", "/").replace("~0", "~")


def join_pointer(base: str, *tokens: str | int) -> str:
    """Append reference tokens to the JSON Pointer `base`, escaping each one."""
    return base + "".join("/" + escape_token(str(token)) for token in tokens)


def replace_env_entry(
    container_path: str, index: int, entry: dict[str, Any]
) -> PatchOperation:
    """Replace env entry `index` of the container at `container_path`."""
    return {
        "op": "replace",
        # Neither "env" nor an index needs RFC 6901 escaping.
        "path": f"{container_path}/env/{index}",
        "value": entry,
    }


def add_env_entries(
    container_path: str, has_env_array: bool, entries: Sequence[dict[str, Any]]
) -> list[PatchOperation]:
    """Append `entries` to a container's env.

    Adding below a missing parent fails in kube-apiserver's patcher, so a
    container without an `env` array (absent or null) gets the whole array
    in one `add`.
    """
    if not entries:
        return []
    if not has_env_array:
        return [
            {
                "op": "add",
                "path": join_pointer(container_path, "env"),
                "value": list(entries),
            }
        ]
    path = join_pointer(container_path, "env", "-")
    return [{"op": "add", "path": path, "value": entry} for entry in entries]


def set_annotation(
    metadata: Mapping[str, Any] | None, key: str, value: str
) -> PatchOperation:
    """Set annotation `key` on the object whose `metadata` is given.

    An object without annotations (absent or null) gets the whole map, and
    one without metadata gets the whole metadata.
    `add` on an existing member replaces it, so one form covers both cases.
    """
    if not isinstance(metadata, dict):
        return {
            "op": "add",
            "path": "/metadata",
            "value": {"annotations": {key: value}},
        }
    annotations = metadata.get("annotations")
    if not isinstance(annotations, dict):
        return {"op": "add", "path": "/metadata/annotations", "value": {key: value}}
    return {"op": "add", "path": _annotation_pointer(key), "value": value}


@lru_cache(maxsize=16)
def _annotation_pointer(key: str) -> str:
    """Return the JSON pointer of annotation `key`, built once per key.

    The webhook writes only its marker annotation, so the cache stays small.
    """
    return join_pointer("/metadata/annotations", key)
