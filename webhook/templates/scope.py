"""A check that the admin template can reach every object in scope.

An admin template adds env vars to objects that have no `SECRET:` value and
no annotation of ours. A `matchConditions` entry in the webhook's
MutatingWebhookConfiguration that lets kube-apiserver skip such objects
would therefore make them miss the admin template without any error. The
Helm chart leaves its skip condition out while templates are enabled; this
check catches a configuration that was installed or edited another way.

The check evaluates each match condition (CEL) against a probe: the CREATE
of a pod with one container, no env and no annotations. A condition that is
false, or that fails to evaluate, can skip objects in scope. It runs in the
template watcher's thread after each change to the templates, and logs one
ERROR each time an admin template with env vars appears while the
configuration can skip objects.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from kubernetes.client.exceptions import ApiException
from urllib3.exceptions import HTTPError

from webhook.templates.store import TemplateStore
from webhook.templates.watching import describe_error

logger = logging.getLogger(__name__)

PROBE_NAMESPACE = "probe-project"
_PROBE_POD: dict[str, Any] = {
    "apiVersion": "v1",
    "kind": "Pod",
    "metadata": {"generateName": "probe-", "namespace": PROBE_NAMESPACE},
    "spec": {"containers": [{"name": "main", "image": "busybox"}]},
}
_PROBE_REQUEST: dict[str, Any] = {
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "resource": {"group": "", "version": "v1", "resource": "pods"},
    "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
    "requestResource": {"group": "", "version": "v1", "resource": "pods"},
    "namespace": PROBE_NAMESPACE,
    "operation": "CREATE",
    "userInfo": {"username": "system:serviceaccount:kube-system:replicaset-controller"},
    "dryRun": False,
}

# Reads the webhook's MutatingWebhookConfiguration as the API's JSON object.
ReadConfiguration = Callable[[], Mapping[str, Any]]


@dataclass(frozen=True)
class SkippingCondition:
    """A match condition that keeps the probe pod from reaching the webhook."""

    webhook: str
    condition: str
    reason: str


def skipping_conditions(configuration: Mapping[str, Any]) -> list[SkippingCondition]:
    """Return the match conditions of `configuration` that skip the probe pod."""
    found = []
    for webhook in configuration.get("webhooks") or []:
        for condition in webhook.get("matchConditions") or []:
            reason = _skip_reason(str(condition.get("expression", "")))
            if reason:
                found.append(
                    SkippingCondition(
                        str(webhook.get("name", "")),
                        str(condition.get("name", "")),
                        reason,
                    )
                )
    return found


def _skip_reason(expression: str) -> str:
    # Imported here: the package loads its command-line tools with it, which
    # takes about half a second, and most configurations have no condition.
    import cel

    variables = {"object": _PROBE_POD, "oldObject": None, "request": _PROBE_REQUEST}
    try:
        result = cel.evaluate(expression, variables)
    except (ValueError, TypeError, RuntimeError) as error:
        return f"it failed to evaluate: {type(error).__name__}"
    return "" if result is True else f"it is {json.dumps(result)} for a pod without env"


def read_configuration_with(api: Any, name: str) -> ReadConfiguration:
    """Build a reader of configuration `name`.

    `api` is a `kubernetes.client.AdmissionregistrationV1Api`.
    """

    def read() -> Mapping[str, Any]:
        response = api.read_mutating_webhook_configuration(
            name, _preload_content=False, _request_timeout=10
        )
        body: Mapping[str, Any] = json.loads(response.data)
        return body

    return read


class AdminTemplateScopeCheck:
    """Logs an ERROR when an admin template exists but objects can skip the webhook.

    Use an instance as the `on_change` listener of a TemplateWatcher.
    """

    def __init__(
        self, read_configuration: ReadConfiguration, configuration_name: str
    ) -> None:
        self._read_configuration = read_configuration
        self._configuration_name = configuration_name
        self._checked = False

    def __call__(self, store: TemplateStore) -> None:
        admin = store.admin()
        if admin is None or not admin.entries:
            self._checked = False
            return
        if not self._checked:
            # A failed read is tried again at the next change of the templates.
            self._checked = self.check() is not None

    def check(self) -> list[SkippingCondition] | None:
        """Read the configuration and log each condition that skips the probe.

        Returns those conditions, or None when the configuration could not
        be read.
        """
        try:
            configuration = self._read_configuration()
        except (ApiException, HTTPError, OSError, ValueError) as error:
            logger.warning(
                "cannot read the webhook configuration to check that the admin "
                "template reaches every object",
                extra={
                    "configuration": self._configuration_name,
                    "error": describe_error(error),
                },
            )
            return None

        skipping = skipping_conditions(configuration)
        for found in skipping:
            logger.error(
                "admin template is set, but a match condition lets objects without "
                "a SECRET: value or annotation skip the webhook, so they miss the "
                "admin template; remove the condition (Helm: templates.enabled=true)",
                extra={
                    "configuration": self._configuration_name,
                    "webhook": found.webhook,
                    "condition": found.condition,
                    "reason": found.reason,
                },
            )
        return skipping
