"""Readiness for `/readyz`: a certificate is loaded and the secret source responded."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass
class Readiness:
    """Conditions for taking traffic; all must hold.

    `source_answered` returns whether the Kubernetes API (or the secrets
    directory) has responded at least once. `certificate_ready` returns
    whether a valid certificate that clients can verify is served (false
    in self-managed mode until the CA's caBundle is published and its first
    certificate issued). `templates_loaded` returns whether the templates
    have been listed, and is None without templates. `stopping` turns true
    on SIGTERM so that the endpoint is removed while in-flight reviews finish.
    """

    source_answered: Callable[[], bool]
    certificate_ready: Callable[[], bool]
    stopping: bool = False
    templates_loaded: Callable[[], bool] | None = None

    def problems(self) -> list[str]:
        """Return why the service is not ready; empty when it is."""
        found: list[str] = []
        if self.stopping:
            found.append("the service is shutting down")
        if not self.certificate_ready():
            found.append("no serving certificate that is valid now is loaded")
        if not self.source_answered():
            found.append(
                "the Kubernetes API has not answered yet; the WARNING log lines "
                "'secret source not reachable' give the API address and the error"
            )
        if self.templates_loaded is not None and not self.templates_loaded():
            found.append("the templates have not been listed yet")
        return found
