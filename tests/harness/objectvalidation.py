"""What kube-apiserver checks on an object after the mutating webhooks.

Three steps, in the apiserver's order:

1. decoding into the typed object (`decode`): unknown fields are dropped and
   a value of the wrong type is an internal error (500);
2. the OpenAPI schema's required fields and the apiserver's own checks of env
   vars and secret references (`validate`), which give 422 Invalid;
3. on UPDATE, the immutability rules of Pods and Jobs (`validate`).

Schemas come from the `kubernetes-validate` package for the chosen
Kubernetes version. Kinds that it has no schema for skip steps 1 and 2.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import jsonschema
import kubernetes_validate
import referencing
from kubernetes_validate import utils as validate_utils

from tests.harness import kubestatus, kubevalidation
from tests.harness.kubestatus import ApiError

Object = dict[str, Any]


@dataclass(frozen=True)
class Kind:
    """A workload kind the caller knows, with where its pod spec sits."""

    group: str
    version: str
    kind: str
    resource: str
    namespaced: bool
    pod_spec: tuple[str, ...] | None

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version


KINDS: tuple[Kind, ...] = (
    Kind("", "v1", "Pod", "pods", True, ("spec",)),
    Kind("apps", "v1", "Deployment", "deployments", True, ("spec", "template", "spec")),
    Kind(
        "apps", "v1", "StatefulSet", "statefulsets", True, ("spec", "template", "spec")
    ),
    Kind("apps", "v1", "DaemonSet", "daemonsets", True, ("spec", "template", "spec")),
    Kind("apps", "v1", "ReplicaSet", "replicasets", True, ("spec", "template", "spec")),
    Kind("batch", "v1", "Job", "jobs", True, ("spec", "template", "spec")),
    Kind(
        "batch",
        "v1",
        "CronJob",
        "cronjobs",
        True,
        ("spec", "jobTemplate", "spec", "template", "spec"),
    ),
    Kind("", "v1", "PodTemplate", "podtemplates", True, ("template", "spec")),
    Kind("", "v1", "Namespace", "namespaces", False, None),
    Kind("", "v1", "Secret", "secrets", True, None),
    Kind("", "v1", "ConfigMap", "configmaps", True, None),
)

CONTAINER_LISTS = ("initContainers", "containers", "ephemeralContainers")
ENV_SOURCES = (
    "fieldRef",
    "resourceFieldRef",
    "configMapKeyRef",
    "secretKeyRef",
    "fileKeyRef",
)


def kind_of(obj: Object) -> Kind | None:
    for kind in KINDS:
        if (kind.api_version, kind.kind) == (obj.get("apiVersion"), obj.get("kind")):
            return kind
    return None


def newest_version() -> str:
    """Return the newest Kubernetes minor version with schemas, e.g. "1.37"."""
    return str(kubernetes_validate.latest_version())


def minor(version: str) -> tuple[int, int]:
    major, minor_part = version.lstrip("v").split(".")[:2]
    return int(major), int(minor_part)


# Step 1: decoding.


def decode(obj: Object, version: str) -> tuple[Object, list[str]]:
    """Drop unknown fields as decoding does; return the object and the dropped paths.

    Raise 500 for a value of the wrong type, as the apiserver does when a
    patched object no longer decodes.
    """
    validator = _validator(
        obj.get("apiVersion", ""), obj.get("kind", ""), version, strict=True
    )
    if validator is None:
        return obj, []
    dropped: list[str] = []
    for error in validator.iter_errors(obj):
        if error.validator == "additionalProperties":
            dropped += _prune(error)
        elif error.validator not in ("required",):
            where = field_path(error.absolute_path)
            raise kubestatus.internal_error(
                f"decoding {obj.get('kind')} failed at {where}: {error.message}"
            )
    return obj, dropped


def _prune(error: jsonschema.ValidationError) -> list[str]:
    schema: Any = error.schema
    known = set(schema.get("properties", {}))
    instance: Any = error.instance
    dropped = []
    for key in [key for key in instance if key not in known]:
        del instance[key]
        dropped.append(field_path([*error.absolute_path, key]))
    return dropped


def field_path(parts: Any) -> str:
    """Write a path as apiserver field errors do: `spec.containers[0].env[1].name`."""
    text = ""
    for part in parts:
        text += (
            f"[{part}]"
            if isinstance(part, int)
            else (f".{part}" if text else str(part))
        )
    return text


@functools.cache
def _validator(api_version: str, kind: str, version: str, strict: bool) -> Any:
    versions = [v for v in validate_utils.all_versions() if minor(v) <= minor(version)]
    if not versions or not api_version or not kind:
        return None
    schema_dir = f"v{versions[-1]}-local" + ("-strict" if strict else "")
    group_version = api_version.split("/")
    name = (
        f"{kind.lower()}-{group_version[0].split('.')[0]}-{group_version[1]}"
        if len(group_version) == 2
        else f"{kind.lower()}-{api_version}"
    )
    try:
        schema = validate_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/{name}.json", version
        )
        definitions = validate_utils.schema_contents(
            f"kubernetes-json-schema/{schema_dir}/_definitions.json", version
        )
    except FileNotFoundError:
        return None
    registry: referencing.Registry[Any] = referencing.Registry()
    registry = referencing.Resource.from_contents(schema) @ registry
    registry = referencing.Resource.from_contents(definitions) @ registry
    return jsonschema.validators.Draft202012Validator(schema, registry=registry)


# Steps 2 and 3: validation.


def validate(
    obj: Object,
    old: Object | None,
    operation: str,
    sub_resource: str,
    version: str,
) -> Object:
    """Return the object to store or raise 422 Invalid as kube-apiserver would."""
    kind = kind_of(obj)
    causes = _required_causes(obj, version)
    if kind is not None and kind.pod_spec is not None:
        causes += _pod_spec_causes(obj, kind.pod_spec, version)
    if operation == "UPDATE" and old is not None and kind is not None:
        obj, update_causes = _update_causes(kind, obj, old, sub_resource)
        causes += update_causes
    if causes:
        raise invalid(obj, kind, causes)
    return obj


def invalid(obj: Object, kind: Kind | None, causes: list[tuple[str, str]]) -> ApiError:
    metadata = obj.get("metadata", {})
    name = metadata.get("name") or metadata.get("generateName", "")
    return kubestatus.invalid(
        obj.get("kind", ""), kind.group if kind else "", name, causes
    )


def _required_causes(obj: Object, version: str) -> list[tuple[str, str]]:
    validator = _validator(
        obj.get("apiVersion", ""), obj.get("kind", ""), version, strict=False
    )
    if validator is None:
        return []
    causes = []
    for error in validator.iter_errors(obj):
        if error.validator == "required":
            missing = [
                key for key in error.validator_value if key not in error.instance
            ]
            for key in missing:
                causes.append(
                    (field_path([*error.absolute_path, key]), "Required value")
                )
    return causes


def _containers(spec: Object, prefix: str) -> Iterator[tuple[str, Object]]:
    for list_name in CONTAINER_LISTS:
        for index, container in enumerate(spec.get(list_name) or []):
            if isinstance(container, dict):
                yield f"{prefix}.{list_name}[{index}]", container


def _pod_spec_causes(
    obj: Object, path: tuple[str, ...], version: str
) -> list[tuple[str, str]]:
    spec: Any = obj
    for part in path:
        spec = spec.get(part) if isinstance(spec, dict) else None
    if not isinstance(spec, dict):
        return []
    causes: list[tuple[str, str]] = []
    for container_path, container in _containers(spec, ".".join(path)):
        for index, env in enumerate(container.get("env") or []):
            causes += _env_causes(env, f"{container_path}.env[{index}]", version)
    return causes


def _env_causes(env: Object, path: str, version: str) -> list[tuple[str, str]]:
    causes = [
        (f"{path}.name", text)
        for text in kubevalidation.env_var_name(env.get("name", ""), minor(version))
    ]
    source = env.get("valueFrom")
    if source is None:
        return causes
    if env.get("value"):
        causes.append(
            (
                f"{path}.valueFrom",
                'Invalid value: "": may not be specified when `value` is not empty',
            )
        )
    kinds = [key for key in ENV_SOURCES if source.get(key) is not None]
    if not kinds:
        causes.append(
            (
                f"{path}.valueFrom",
                'Invalid value: "": must specify one of: `fieldRef`, '
                "`resourceFieldRef`, "
                "`configMapKeyRef` or `secretKeyRef`",
            )
        )
    elif len(kinds) > 1:
        causes.append(
            (
                f"{path}.valueFrom",
                'Invalid value: "": may not have more than one field specified '
                "at a time",
            )
        )
    for key in ("secretKeyRef", "configMapKeyRef"):
        if isinstance(source.get(key), dict):
            causes += _key_selector_causes(source[key], f"{path}.valueFrom.{key}")
    return causes


def _key_selector_causes(selector: Object, path: str) -> list[tuple[str, str]]:
    causes = []
    name, key = selector.get("name", ""), selector.get("key", "")
    if not name:
        causes.append((f"{path}.name", "Required value"))
    else:
        causes += [
            (f"{path}.name", text) for text in kubevalidation.dns1123_subdomain(name)
        ]
    if not key:
        causes.append((f"{path}.key", "Required value"))
    else:
        causes += [(f"{path}.key", text) for text in kubevalidation.config_key(key)]
    return causes


# Step 3: updates.

POD_UPDATE_FORBIDDEN = (
    "Forbidden: pod updates may not change fields other than "
    "`spec.containers[*].image`,"
    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
    "(allow it to be set to 1 if it was previously negative)"
)


def _update_causes(
    kind: Kind, obj: Object, old: Object, sub_resource: str
) -> tuple[Object, list[tuple[str, str]]]:
    if kind.kind == "Pod" and sub_resource == "ephemeralcontainers":
        return _ephemeral_update(obj, old)
    if kind.kind == "Pod" and not sub_resource:
        if _masked_pod_spec(
            obj.get("spec") or {}, old.get("spec") or {}
        ) != _masked_pod_spec(old.get("spec") or {}, old.get("spec") or {}):
            return obj, [("spec", POD_UPDATE_FORBIDDEN)]
    if kind.kind == "Job" and (obj.get("spec") or {}).get("template") != (
        old.get("spec") or {}
    ).get("template"):
        return obj, [("spec.template", 'Invalid value: "...": field is immutable')]
    return obj, []


def _masked_pod_spec(spec: Object, old_spec: Object) -> Object:
    """Blank out what a Pod UPDATE may change, so that what remains must be equal."""
    masked = {
        key: value
        for key, value in spec.items()
        if key not in ("activeDeadlineSeconds", "terminationGracePeriodSeconds")
    }
    for list_name in ("containers", "initContainers"):
        masked[list_name] = [
            {key: value for key, value in container.items() if key != "image"}
            for container in spec.get(list_name) or []
        ]
    tolerations = spec.get("tolerations") or []
    old_tolerations = old_spec.get("tolerations") or []
    if tolerations[: len(old_tolerations)] == old_tolerations:
        masked.pop("tolerations", None)
    gates = spec.get("schedulingGates") or []
    if all(gate in (old_spec.get("schedulingGates") or []) for gate in gates):
        masked.pop("schedulingGates", None)
    return masked


def _ephemeral_update(obj: Object, old: Object) -> tuple[Object, list[tuple[str, str]]]:
    """Keep only `spec.ephemeralContainers` from the update, as the subresource does."""
    new_list = (obj.get("spec") or {}).get("ephemeralContainers") or []
    old_list = (old.get("spec") or {}).get("ephemeralContainers") or []
    new_by_name = {container.get("name"): container for container in new_list}
    causes = []
    for index, container in enumerate(old_list):
        name = container.get("name")
        if name not in new_by_name:
            causes.append(
                (
                    f"spec.ephemeralContainers[{index}]",
                    f'Forbidden: existing ephemeral containers "{name}" '
                    "may not be removed",
                )
            )
        elif new_by_name[name] != container:
            causes.append(
                (
                    f"spec.ephemeralContainers[{index}]",
                    f'Forbidden: existing ephemeral containers "{name}" '
                    "may not be changed",
                )
            )
    stored = dict(old)
    stored["spec"] = dict(old.get("spec") or {})
    stored["spec"]["ephemeralContainers"] = new_list
    return stored, causes
