"""Locations of pod specs in the workload kinds the webhook handles.

Each kind names JSON Pointers (RFC 6901) to its pod specs. A `*` token
matches every key of a map or every index of a list, as in Kubeflow's
`/spec/pytorchReplicaSpecs/*/template/spec`. Run:AI's v2 workloads keep env
in a map instead (`spec.environment.items.<NAME>.value`). They are only
checked, because Run:AI's own controller turns them into pods.
"""

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import StrEnum
from functools import lru_cache
from typing import Any

from webhook.admission.errors import InvalidWorkloadKinds
from webhook.admission.patches import join_pointer, unescape_token

WILDCARD = "*"


class EnvLayout(StrEnum):
    """Layout of the env vars found at a kind's pointers."""

    # A core/v1 PodSpec: containers[].env, initContainers[].env.
    POD_SPEC = "podSpec"
    # Run:AI v2alpha1: a map of env var name to {"value": ...}.
    ENVIRONMENT_ITEMS = "environmentItems"


@dataclass(frozen=True, slots=True)
class WorkloadKind:
    """A kind whose objects may carry secret references, and where."""

    group: str
    version: str
    kind: str
    pointers: tuple[str, ...]
    # Whether UPDATE is reviewed too; false where the pod spec is immutable.
    on_update: bool = True
    layout: EnvLayout = EnvLayout.POD_SPEC

    @property
    def rewrites(self) -> bool:
        """Tell whether references are rewritten, not only checked."""
        return self.layout is EnvLayout.POD_SPEC

    def key(self) -> tuple[str, str, str]:
        """Return (group, version, kind) as `request.kind` names it."""
        return (self.group, self.version, self.kind)


_TEMPLATE = ("/spec/template/spec",)

BUILTIN_KINDS: tuple[WorkloadKind, ...] = (
    # A Pod's env cannot change after creation; its UPDATE is handled apart,
    # for new ephemeral containers only.
    WorkloadKind("", "v1", "Pod", ("/spec",), on_update=False),
    # A Job's pod template is immutable after creation.
    WorkloadKind("batch", "v1", "Job", _TEMPLATE, on_update=False),
    WorkloadKind("batch", "v1", "CronJob", ("/spec/jobTemplate/spec/template/spec",)),
    WorkloadKind("apps", "v1", "Deployment", _TEMPLATE),
    WorkloadKind("apps", "v1", "StatefulSet", _TEMPLATE),
    WorkloadKind("apps", "v1", "ReplicaSet", _TEMPLATE),
    WorkloadKind("apps", "v1", "DaemonSet", _TEMPLATE),
    WorkloadKind("run.ai", "v1", "RunaiJob", _TEMPLATE),
    *(
        WorkloadKind(
            "run.ai",
            "v2alpha1",
            kind,
            ("/spec/environment/items",),
            layout=EnvLayout.ENVIRONMENT_ITEMS,
        )
        for kind in ("TrainingWorkload", "InteractiveWorkload", "DistributedWorkload")
    ),
)


def find_pointer_targets(document: Any, pointer: str) -> Iterator[tuple[str, Any]]:
    """Yield (concrete pointer, value) for each place `pointer` matches.

    Missing members, out-of-range indexes and type mismatches match nothing.
    """
    tokens = _tokens(pointer)
    if WILDCARD in tokens:
        yield from _walk(document, "", tokens)
        return
    # Most kinds name one plain pointer, such as /spec/template/spec: follow
    # it without the recursion that wildcards need.
    node = document
    for token in tokens:
        if isinstance(node, dict):
            if token not in node:
                return
            node = node[token]
        elif isinstance(node, list):
            indexes = _list_index(token, len(node))
            if not indexes:
                return
            node = node[indexes[0]]
        else:
            return
    yield _concrete(pointer), node


@lru_cache(maxsize=256)
def _tokens(pointer: str) -> tuple[str, ...]:
    """Split a pointer into unescaped tokens; a process has a few pointers."""
    return tuple(unescape_token(token) for token in pointer.split("/")[1:])


@lru_cache(maxsize=256)
def _concrete(pointer: str) -> str:
    """Return a pointer without wildcards as `_walk` would spell it."""
    return join_pointer("", *_tokens(pointer))


def _walk(node: Any, path: str, tokens: tuple[str, ...]) -> Iterator[tuple[str, Any]]:
    if not tokens:
        yield path, node
        return
    token, rest = tokens[0], tokens[1:]

    if isinstance(node, dict):
        if token == WILDCARD:
            keys = list(node)
        else:
            keys = [token] if token in node else []
        for key in keys:
            yield from _walk(node[key], join_pointer(path, key), rest)
    elif isinstance(node, list):
        indexes = (
            range(len(node)) if token == WILDCARD else _list_index(token, len(node))
        )
        for index in indexes:
            yield from _walk(node[index], join_pointer(path, index), rest)


def _list_index(token: str, length: int) -> list[int]:
    # RFC 6901 indexes are ASCII digits, but str.isdigit() also accepts other
    # Unicode digits: int() reads ARABIC-INDIC DIGIT ONE as 1 and raises
    # ValueError on SUPERSCRIPT TWO.
    if not (token.isascii() and token.isdigit()) or (
        len(token) > 1 and token.startswith("0")
    ):
        return []
    index = int(token)
    return [index] if index < length else []


_FIELDS = {"group", "version", "kind", "podSpecs", "onUpdate"}

# RFC 6901 allows '~' only as the start of ~0 or ~1.
_BAD_ESCAPE = re.compile(r"~(?![01])")


def load_workload_kinds(config: object) -> tuple[WorkloadKind, ...]:
    """Check a workload kinds configuration and build its kinds.

    The configuration is a mapping, as read from YAML::

        kinds:
          - group: kubeflow.org
            version: v1
            kind: PyTorchJob
            podSpecs: ["/spec/pytorchReplicaSpecs/*/template/spec"]
            onUpdate: true   # optional, default true

    Raises `InvalidWorkloadKinds` naming the first bad entry and the fix.
    """
    if not isinstance(config, Mapping) or not isinstance(config.get("kinds"), list):
        raise InvalidWorkloadKinds(
            "workload kinds configuration must be a mapping with a list under 'kinds'"
        )
    known_keys = {kind.key() for kind in BUILTIN_KINDS}
    kinds = []
    for index, entry in enumerate(config["kinds"]):
        kind = _load_entry(f"kinds[{index}]", entry)
        if kind.key() in known_keys:
            raise InvalidWorkloadKinds(
                f"kinds[{index}]: {_describe(kind)} is listed twice or is built in. "
                "Remove this entry."
            )
        known_keys.add(kind.key())
        kinds.append(kind)
    return tuple(kinds)


def _load_entry(where: str, entry: object) -> WorkloadKind:
    if not isinstance(entry, Mapping):
        raise InvalidWorkloadKinds(
            f"{where} must be a mapping with group, version, kind, podSpecs"
        )
    unknown = sorted(set(map(str, entry)) - _FIELDS)
    if unknown:
        raise InvalidWorkloadKinds(
            f"{where} has unknown field {unknown[0]!r}. "
            f"Allowed fields: {', '.join(sorted(_FIELDS))}."
        )
    group = _string_field(where, entry, "group", allow_empty=True)
    version = _string_field(where, entry, "version")
    kind = _string_field(where, entry, "kind")
    pointers = _pointer_list(where, entry.get("podSpecs"))
    on_update = entry.get("onUpdate", True)
    if not isinstance(on_update, bool):
        raise InvalidWorkloadKinds(
            f"{where}.onUpdate must be true or false, not {on_update!r}"
        )
    return WorkloadKind(group, version, kind, pointers, on_update=on_update)


def _string_field(
    where: str, entry: Mapping[str, Any], name: str, allow_empty: bool = False
) -> str:
    value = entry.get(name)
    if not isinstance(value, str) or (not value and not allow_empty):
        raise InvalidWorkloadKinds(
            f"{where}.{name} must be a non-empty string, not {value!r}"
        )
    return value


def _pointer_list(where: str, pointers: object) -> tuple[str, ...]:
    if not isinstance(pointers, list) or not pointers:
        raise InvalidWorkloadKinds(
            f"{where}.podSpecs must be a non-empty list of JSON Pointers, "
            "e.g. /spec/template/spec."
        )
    for index, pointer in enumerate(pointers):
        place = f"{where}.podSpecs[{index}] {pointer!r}"
        if not isinstance(pointer, str) or not pointer.startswith("/"):
            raise InvalidWorkloadKinds(
                f"{place} is not a JSON Pointer. "
                "It must start with '/', e.g. /spec/template/spec."
            )
        # A bad escape or an empty token matches no field, so the kind's
        # references would pass unconverted without an error.
        if _BAD_ESCAPE.search(pointer):
            raise InvalidWorkloadKinds(
                f"{place} is not a JSON Pointer: '~' must be followed by 0 or 1 "
                "(~0 for '~', ~1 for '/')."
            )
        if "" in pointer.split("/")[1:]:
            raise InvalidWorkloadKinds(
                f"{place} has an empty token, which names no field of a "
                "Kubernetes object. Remove the extra '/'."
            )
    return tuple(pointers)


def _describe(kind: WorkloadKind) -> str:
    group_version = f"{kind.group}/{kind.version}" if kind.group else kind.version
    return f"{group_version} {kind.kind}"
