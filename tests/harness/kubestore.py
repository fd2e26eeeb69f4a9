"""The object store behind the fake API server: resources, versions and events.

One global counter gives every write its `resourceVersion`, as etcd's
revision does. Every write also appends a watch event to a bounded history;
a watch that starts before the oldest retained event gets 410 Expired.
All methods are thread-safe and return copies, never the stored objects.
"""

from __future__ import annotations

import base64
import binascii
import random
import threading
import uuid
from collections import deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import orjson

from tests.harness import kubestatus, kubevalidation
from tests.harness.labels import Requirement, matches_all

Object = dict[str, Any]
Predicate = Callable[[Object], bool]


@dataclass(frozen=True)
class Resource:
    """One REST resource: `/api[s]/<group>/<version>/[namespaces/<ns>/]<plural>`."""

    group: str
    version: str
    plural: str
    kind: str
    namespaced: bool
    extra_fields: tuple[str, ...] = ()
    # False where the registry's AllowUnconditionalUpdate is false: an update
    # (PUT) must then carry metadata.resourceVersion.
    unconditional_update: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @property
    def field_selectors(self) -> tuple[str, ...]:
        return ("metadata.name", "metadata.namespace", *self.extra_fields)


# Add a resource here to serve it; every verb works on every entry.
RESOURCES: tuple[Resource, ...] = (
    Resource("", "v1", "namespaces", "Namespace", False, ("status.phase",)),
    Resource("", "v1", "secrets", "Secret", True, ("type",)),
    Resource("", "v1", "configmaps", "ConfigMap", True),
    Resource("", "v1", "serviceaccounts", "ServiceAccount", True),
    Resource("", "v1", "pods", "Pod", True, ("spec.nodeName", "status.phase")),
    Resource("", "v1", "events", "Event", True),
    Resource("events.k8s.io", "v1", "events", "Event", True),
    Resource(
        "coordination.k8s.io", "v1", "leases", "Lease", True, unconditional_update=False
    ),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "mutatingwebhookconfigurations",
        "MutatingWebhookConfiguration",
        False,
    ),
    Resource(
        "admissionregistration.k8s.io",
        "v1",
        "validatingwebhookconfigurations",
        "ValidatingWebhookConfiguration",
        False,
    ),
)

NAMESPACES = RESOURCES[0]


def find_resource(group: str, version: str, plural: str) -> Resource | None:
    for resource in RESOURCES:
        if (resource.group, resource.version, resource.plural) == (
            group,
            version,
            plural,
        ):
            return resource
    return None


def resource(group: str, version: str, plural: str) -> Resource:
    """Return a served resource, e.g. `resource("", "v1", "secrets")`."""
    found = find_resource(group, version, plural)
    if found is None:
        raise KeyError(
            f"no fake resource {plural!r} in group {group!r} version {version!r}"
        )
    return found


def resource_of(obj: Object) -> Resource:
    """Find the resource of an object from its `apiVersion` and `kind`."""
    for resource in RESOURCES:
        if (resource.api_version, resource.kind) == (
            obj.get("apiVersion"),
            obj.get("kind"),
        ):
            return resource
    raise ValueError(
        f"no fake resource for apiVersion {obj.get('apiVersion')!r} "
        f"kind {obj.get('kind')!r}:"
        " add it to RESOURCES in tests/harness/kubestore.py"
    )


@dataclass(frozen=True)
class WatchEvent:
    """A stored change; `old` is the object before a MODIFIED change."""

    resource_version: int
    resource: Resource
    type: str  # ADDED, MODIFIED or DELETED
    obj: Object
    old: Object | None = None


def copy(obj: Object) -> Object:
    result: Object = orjson.loads(orjson.dumps(obj))
    return result


def now() -> str:
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


_GENERATE_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"


class Store:
    """Objects of every resource under one lock, with a watch event history."""

    def __init__(self, history_size: int = 1000) -> None:
        self.changed = threading.Condition()
        self._objects: dict[tuple[Resource, str, str], Object] = {}
        self._history: deque[WatchEvent] = deque(maxlen=history_size)
        self._revision = 1
        # Events at or below this revision may be gone from the history.
        self._horizon = 1

    @property
    def revision(self) -> int:
        with self.changed:
            return self._revision

    # Reads.

    def get(self, resource: Resource, namespace: str, name: str) -> Object:
        with self.changed:
            stored = self._objects.get((resource, namespace, name))
            if stored is None:
                raise kubestatus.not_found(resource.group, resource.plural, name)
            return copy(stored)

    def list_objects(
        self,
        resource: Resource,
        namespace: str,
        labels: list[Requirement] | None = None,
        fields: Predicate | None = None,
    ) -> tuple[list[Object], int]:
        """Return matching objects sorted by namespace and name, and the revision."""
        with self.changed:
            found = [
                copy(obj)
                for (res, ns, _), obj in self._objects.items()
                if res == resource
                and (not namespace or ns == namespace)
                and _selected(obj, labels, fields)
            ]
            revision = self._revision
        found.sort(
            key=lambda obj: (
                obj["metadata"].get("namespace", ""),
                obj["metadata"]["name"],
            )
        )
        return found, revision

    def events_after(self, revision: int) -> list[WatchEvent]:
        """Return events newer than `revision`, or raise 410 if some are gone."""
        with self.changed:
            if revision < self._horizon:
                raise kubestatus.expired(
                    f"too old resource version: {revision} ({self._horizon + 1})"
                )
            return [
                event for event in self._history if event.resource_version > revision
            ]

    def compact(self) -> None:
        """Drop the whole event history, as etcd compaction does."""
        with self.changed:
            self._history.clear()
            self._horizon = self._revision

    # Writes.

    def create(self, resource: Resource, namespace: str, obj: Object) -> Object:
        obj = copy(obj)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        metadata = obj.setdefault("metadata", {})
        with self.changed:
            self._check_namespace(resource, namespace, metadata)
            if not metadata.get("name") and metadata.get("generateName"):
                metadata["name"] = self._generate_name(
                    resource, namespace, metadata["generateName"]
                )
            name = metadata.get("name", "")
            _validate(resource, obj, namespace)
            if metadata.get("resourceVersion"):
                # etcd storage rejects this with a plain error: 500, no reason.
                raise kubestatus.ApiError(
                    500,
                    "",
                    "resourceVersion should not be set on objects to be created",
                )
            if (resource, namespace, name) in self._objects:
                raise kubestatus.already_exists(resource.group, resource.plural, name)
            if resource.namespaced:
                metadata["namespace"] = namespace
            metadata["uid"] = str(uuid.uuid4())
            metadata["creationTimestamp"] = now()
            _defaults(resource, obj)
            return self._write("ADDED", resource, obj)

    def update(
        self, resource: Resource, namespace: str, name: str, obj: Object
    ) -> Object:
        """Replace an object; a stale `metadata.resourceVersion` gives 409 Conflict."""
        obj = copy(obj)
        obj["apiVersion"], obj["kind"] = resource.api_version, resource.kind
        with self.changed:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise kubestatus.not_found(resource.group, resource.plural, name)
            metadata = obj.setdefault("metadata", {})
            if metadata.get("name", name) != name:
                raise kubestatus.bad_request(
                    f"the name of the object ({metadata['name']}) does not match "
                    f"the name on the URL ({name})"
                )
            # A uid in the body is a precondition, checked before the version.
            _check_preconditions(resource, current, {"uid": metadata.get("uid")})
            expected = metadata.get("resourceVersion")
            if not expected and not resource.unconditional_update:
                raise _version_required(resource, name)
            if expected and expected != current["metadata"]["resourceVersion"]:
                raise kubestatus.conflict(
                    resource.group, resource.plural, name, kubestatus.MODIFIED
                )
            _keep_system_fields(current, obj)
            if resource == NAMESPACES:
                # kube-apiserver sets this label on every write of a namespace.
                obj["metadata"].setdefault("labels", {})[
                    "kubernetes.io/metadata.name"
                ] = name
            if resource.kind == "Secret":
                # Defaulting runs on every write, so an update that leaves
                # out `type` asks for Opaque.
                obj.setdefault("type", "Opaque")
            _validate(resource, obj, namespace)
            _check_immutable(resource, current, obj)
            if obj == current:
                # A no-op update keeps the resourceVersion and sends no event.
                return copy(current)
            return self._after_update(resource, current, obj)

    def delete(
        self,
        resource: Resource,
        namespace: str,
        name: str,
        preconditions: dict[str, Any] | None = None,
    ) -> tuple[Object, bool]:
        """Delete or start deleting; return the object and whether it is gone."""
        with self.changed:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise kubestatus.not_found(resource.group, resource.plural, name)
            _check_preconditions(resource, current, preconditions or {})
            if resource == NAMESPACES or current["metadata"].get("finalizers"):
                return self._mark_deleting(resource, current), False
            return self._remove(resource, current), True

    def finalize_namespace(self, name: str) -> None:
        """Delete everything in a Terminating namespace, then the namespace."""
        with self.changed:
            for resource, namespace, object_name in list(self._objects):
                if resource.namespaced and namespace == name:
                    self._remove(
                        resource, self._objects[(resource, namespace, object_name)]
                    )
            current = self._objects.get((NAMESPACES, "", name))
            if current is not None:
                self._remove(NAMESPACES, current)

    def put(self, obj: Object) -> Object:
        """Create or replace an object as given, without a version check."""
        resource = resource_of(obj)
        namespace = (
            obj.get("metadata", {}).get("namespace", "") if resource.namespaced else ""
        )
        name = obj["metadata"]["name"]
        with self.changed:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                fresh = copy(obj)
                fresh["metadata"].pop("resourceVersion", None)
                return self.create(resource, namespace, fresh)
            replacement = copy(obj)
            replacement["metadata"]["resourceVersion"] = current["metadata"][
                "resourceVersion"
            ]
            replacement["metadata"].pop("uid", None)
            return self.update(resource, namespace, name, replacement)

    def remove(self, resource: Resource, namespace: str, name: str) -> None:
        """Delete at once, ignoring finalizers (test control)."""
        with self.changed:
            current = self._objects.get((resource, namespace, name))
            if current is None:
                raise kubestatus.not_found(resource.group, resource.plural, name)
            self._remove(resource, current)

    # Internals; callers hold the lock.

    def _check_namespace(
        self, resource: Resource, namespace: str, metadata: Object
    ) -> None:
        if not resource.namespaced:
            return
        if metadata.get("namespace", namespace) != namespace:
            raise kubestatus.bad_request(
                "the namespace of the provided object does not match the namespace "
                "sent on the request"
            )
        owner = self._objects.get((NAMESPACES, "", namespace))
        if owner is None:
            raise kubestatus.not_found("", "namespaces", namespace)
        if owner["metadata"].get("deletionTimestamp"):
            name = metadata.get("name", "")
            subject = (
                f'{kubestatus.qualified(resource.group, resource.plural)} "{name}"'
            )
            message = (
                f"{subject} is forbidden: unable to create new content in namespace "
                f"{namespace} because it is being terminated"
            )
            raise kubestatus.forbidden_because(
                resource.group, resource.plural, name, message
            )

    def _generate_name(self, resource: Resource, namespace: str, prefix: str) -> str:
        while True:
            suffix = "".join(random.choices(_GENERATE_ALPHABET, k=5))
            if (resource, namespace, prefix + suffix) not in self._objects:
                return prefix + suffix

    def _after_update(self, resource: Resource, current: Object, obj: Object) -> Object:
        metadata = obj["metadata"]
        if metadata.get("deletionTimestamp") and not metadata.get("finalizers"):
            return self._remove(resource, current)
        return self._write("MODIFIED", resource, obj, old=current)

    def _mark_deleting(self, resource: Resource, current: Object) -> Object:
        if current["metadata"].get("deletionTimestamp"):
            return copy(current)
        obj = copy(current)
        obj["metadata"]["deletionTimestamp"] = now()
        if resource == NAMESPACES:
            obj.setdefault("status", {})["phase"] = "Terminating"
        return self._write("MODIFIED", resource, obj, old=current)

    def _write(
        self, kind: str, resource: Resource, obj: Object, old: Object | None = None
    ) -> Object:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        key = (resource, obj["metadata"].get("namespace", ""), obj["metadata"]["name"])
        self._objects[key] = obj
        self._record(WatchEvent(self._revision, resource, kind, copy(obj), old))
        return copy(obj)

    def _remove(self, resource: Resource, current: Object) -> Object:
        self._revision += 1
        key = (
            resource,
            current["metadata"].get("namespace", ""),
            current["metadata"]["name"],
        )
        del self._objects[key]
        deleted = copy(current)
        deleted["metadata"]["resourceVersion"] = str(self._revision)
        self._record(WatchEvent(self._revision, resource, "DELETED", deleted))
        return copy(deleted)

    def _record(self, event: WatchEvent) -> None:
        if len(self._history) == self._history.maxlen:
            self._horizon = self._history[0].resource_version
        self._history.append(event)
        self.changed.notify_all()


def _selected(
    obj: Object, labels: list[Requirement] | None, fields: Predicate | None
) -> bool:
    if labels and not matches_all(labels, obj["metadata"].get("labels") or {}):
        return False
    return fields is None or fields(obj)


def _keep_system_fields(current: Object, obj: Object) -> None:
    for field in ("uid", "creationTimestamp", "deletionTimestamp", "namespace", "name"):
        if field in current["metadata"]:
            obj["metadata"][field] = current["metadata"][field]
    obj["metadata"]["resourceVersion"] = current["metadata"]["resourceVersion"]


def _defaults(resource: Resource, obj: Object) -> None:
    if resource.kind == "Secret":
        obj.setdefault("type", "Opaque")
    if resource == NAMESPACES:
        name = obj["metadata"]["name"]
        obj["metadata"].setdefault("labels", {})["kubernetes.io/metadata.name"] = name
        obj.setdefault("spec", {}).setdefault("finalizers", ["kubernetes"])
        obj.setdefault("status", {})["phase"] = "Active"


def _validate(resource: Resource, obj: Object, namespace: str) -> None:
    """Raise 422 or 400 where kube-apiserver rejects a write of this resource."""
    name = obj["metadata"].get("name", "")
    if not name:
        raise kubestatus.invalid(
            resource.kind,
            resource.group,
            "",
            [("metadata.name", "Required value: name or generateName is required")],
        )
    check = (
        kubevalidation.dns1123_label
        if resource == NAMESPACES
        else kubevalidation.dns1123_subdomain
    )
    causes = [("metadata.name", text) for text in check(name)]
    if resource.kind == "Secret":
        _decode_secret(obj)
        causes += _secret_key_causes(obj)
    if resource.kind == "Event" and not resource.group:
        causes += _event_namespace_causes(obj, namespace)
    if causes:
        raise kubestatus.invalid(resource.kind, resource.group, name, causes)


def _event_namespace_causes(event: Object, namespace: str) -> list[tuple[str, str]]:
    """Check a core/v1 Event's namespace as kube-apiserver's legacy event check does.

    Without `eventTime`, the involved object's namespace must be the event's,
    and an event about a cluster-scoped object belongs in "default".
    """
    if event.get("eventTime"):
        return []
    involved = str((event.get("involvedObject") or {}).get("namespace") or "")
    if involved == namespace or (not involved and namespace == "default"):
        return []
    return [
        (
            "involvedObject.namespace",
            f'Invalid value: "{involved}": does not match event.namespace',
        )
    ]


def _decode_secret(obj: Object) -> None:
    """Fold `stringData` into `data`; `data` that is not base64 gives 400."""
    data = obj.get("data") or {}
    for key, value in data.items():
        try:
            base64.b64decode(value, validate=True)
        except (binascii.Error, TypeError, ValueError) as error:
            raise kubestatus.bad_request(
                'Secret in version "v1" cannot be handled as a Secret: '
                f"illegal base64 data in key {key!r}: {error}"
            ) from None
    for key, value in (obj.pop("stringData", None) or {}).items():
        data[key] = base64.b64encode(str(value).encode()).decode()
    if data:
        obj["data"] = data


def _secret_key_causes(obj: Object) -> list[tuple[str, str]]:
    return [
        (f"data[{key}]", text)
        for key in obj.get("data") or {}
        for text in kubevalidation.config_key(key)
    ]


def _check_immutable(resource: Resource, current: Object, obj: Object) -> None:
    name = current["metadata"]["name"]
    if resource.kind == "Secret" and obj.get("type") != current.get("type"):
        # kube-apiserver's ValidateSecretUpdate rejects any change of `type`.
        invalid = f'Invalid value: "{obj.get("type")}": field is immutable'
        raise kubestatus.invalid(
            resource.kind, resource.group, name, [("type", invalid)]
        )
    if resource.kind not in ("Secret", "ConfigMap") or not current.get("immutable"):
        return
    for field in ("data", "binaryData", "immutable"):
        if current.get(field) != obj.get(field):
            raise kubestatus.invalid(
                resource.kind,
                resource.group,
                name,
                [(field, "Forbidden: field is immutable when `immutable` is set")],
            )


def _version_required(resource: Resource, name: str) -> kubestatus.ApiError:
    """Build the 422 for an update without resourceVersion where one is required.

    kube-apiserver names the resource, not the kind, in this message.
    """
    return kubestatus.invalid(
        resource.plural,
        resource.group,
        name,
        [
            (
                "metadata.resourceVersion",
                "Invalid value: 0x0: must be specified for an update",
            )
        ],
    )


def _check_preconditions(
    resource: Resource, current: Object, preconditions: dict[str, Any]
) -> None:
    metadata = current["metadata"]
    for field, label in (("uid", "UID"), ("resourceVersion", "ResourceVersion")):
        expected = preconditions.get(field)
        if expected and expected != metadata.get(field):
            detail = (
                f"Precondition failed: {label} in precondition: {expected}, "
                f"{label} in object meta: {metadata.get(field)}"
            )
            raise kubestatus.conflict(
                resource.group, resource.plural, metadata["name"], detail
            )


def objects_of(items: Iterable[Object]) -> list[Object]:
    """Sort objects so that namespaces come before what they contain."""
    return sorted(items, key=lambda obj: obj.get("kind") != "Namespace")
