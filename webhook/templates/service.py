"""Templates as one part of the running service.

`TemplateService` owns the store, the watcher that fills it, the check of
the webhook's match conditions and the applications counter. The review
pipeline calls `select` before planning a review and `report` after
deciding it.
"""

from __future__ import annotations

import logging
from typing import Any

from kubernetes import client
from prometheus_client import CollectorRegistry

from webhook.admission.decisions import Decision
from webhook.admission.injection import InjectionOptions
from webhook.admission.reviews import Request
from webhook.templates.applying import TemplateSelection, select_templates
from webhook.templates.entries import read_template
from webhook.templates.reporting import new_application_counter, report_templates
from webhook.templates.scope import AdminTemplateScopeCheck, read_configuration_with
from webhook.templates.store import TemplateStore
from webhook.templates.watching import TemplateWatcher

logger = logging.getLogger(__name__)


class TemplateService:
    """Templates from `namespace`, kept current, applied to reviews.

    `api_client` is a `kubernetes.client.ApiClient`, and the watch keeps one
    of its connections open. With `configuration_name`, the service checks
    that MutatingWebhookConfiguration's match conditions whenever an admin
    template appears.
    """

    def __init__(
        self,
        api_client: Any,
        namespace: str,
        registry: CollectorRegistry,
        configuration_name: str | None = None,
    ) -> None:
        self.namespace = namespace
        self.store = TemplateStore()
        self._applications = new_application_counter(registry)

        scope_check = None
        if configuration_name:
            reader = read_configuration_with(
                client.AdmissionregistrationV1Api(api_client), configuration_name
            )
            scope_check = AdminTemplateScopeCheck(reader, configuration_name)
        self._watcher = TemplateWatcher(
            client.CoreV1Api(api_client),
            self.store,
            namespace,
            read_template,
            on_change=scope_check,
        )

    @property
    def loaded(self) -> bool:
        """Whether the templates have been listed at least once."""
        return self.store.loaded

    def start(self) -> None:
        self._watcher.start()

    def stop(self) -> None:
        self._watcher.stop()

    def select(self, request: Request, options: InjectionOptions) -> TemplateSelection:
        """Choose the templates for a review; raise Denied as `select_templates`."""
        return select_templates(request, options, self.store, self.namespace)

    def report(
        self,
        request: Request,
        decision: Decision,
        selection: TemplateSelection,
        log: logging.Logger | logging.LoggerAdapter[logging.Logger] = logger,
    ) -> Decision:
        """Add the audit annotation and warnings, count and log the templates."""
        return report_templates(request, decision, selection, self._applications, log)
