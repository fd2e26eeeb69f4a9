"""In-memory set of the templates in the template namespace.

The watch in `webhook.templates.watching` writes to the store and reviews
read from it, so a review never calls the API for a template. Writers
replace the whole mapping, so a reader always sees one consistent state
without taking the lock.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping

from webhook.templates.entries import Template

# Run:AI applies the template with this ConfigMap name to every job.
ADMIN_TEMPLATE = "template-admin"


class TemplateStore:
    """The current templates by ConfigMap name, and whether they were loaded."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._templates: Mapping[str, Template] = {}
        self._loaded = threading.Event()

    @property
    def loaded(self) -> bool:
        """Whether a full list of the templates has been stored at least once."""
        return self._loaded.is_set()

    def wait_loaded(self, timeout: float) -> bool:
        """Wait up to `timeout` seconds for the first full list."""
        return self._loaded.wait(timeout)

    def get(self, name: str) -> Template | None:
        return self._templates.get(name)

    def admin(self) -> Template | None:
        return self._templates.get(ADMIN_TEMPLATE)

    def names(self) -> list[str]:
        return sorted(self._templates)

    def replace_all(self, templates: Iterable[Template]) -> None:
        """Store a full list, dropping templates that are not in it."""
        with self._lock:
            self._templates = {template.name: template for template in templates}
        self._loaded.set()

    def put(self, template: Template) -> None:
        with self._lock:
            self._templates = {**self._templates, template.name: template}

    def remove(self, name: str) -> None:
        with self._lock:
            remaining = dict(self._templates)
            remaining.pop(name, None)
            self._templates = remaining
