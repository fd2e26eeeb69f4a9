"""Warnings and audit annotations from webhook responses, kept as kube-apiserver does.

Warnings follow the recorder in k8s.io/apiserver/pkg/endpoints/filters
(Kubernetes 1.30): duplicates are dropped, a text with a control character
is dropped, and once the texts pass 4096 characters in total every warning
is cut to 256 characters and later ones are dropped when the total is full.
"""

from __future__ import annotations

import re
import unicodedata

TOTAL_CHARACTERS = 4 * 1024
ITEM_CHARACTERS = 256
# A qualified name's name part, which is what a webhook's audit key must be.
_AUDIT_KEY = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def _valid_text(text: str) -> bool:
    return not any(unicodedata.category(char) == "Cc" for char in text)


class WarningRecorder:
    """The `Warning:` lines one request returns to the user."""

    def __init__(self) -> None:
        self._ordered: list[str] = []
        self._written: list[str] = []
        self._total = 0
        self._truncating = False

    def add(self, text: str) -> None:
        if not text or text in self._ordered:
            return
        if self._truncating and self._total >= TOTAL_CHARACTERS:
            return
        self._ordered.append(text)
        if self._truncating:
            text = text[:ITEM_CHARACTERS]
        if not _valid_text(text):
            return
        if self._total + len(text) <= TOTAL_CHARACTERS or self._truncating:
            self._total += len(text)
            self._written.append(text)
            return
        # Over the limit: cut every warning so far and start again.
        self._truncating = True
        self._total = 0
        self._written = []
        for earlier in self._ordered:
            cut = earlier[:ITEM_CHARACTERS]
            if _valid_text(cut):
                self._total += len(cut)
                self._written.append(cut)

    def headers(self) -> list[str]:
        return list(self._written)


class AuditAnnotations:
    """Audit annotations of one request; invalid webhook keys are dropped silently."""

    def __init__(self) -> None:
        self._values: dict[str, str] = {}

    def add_webhook(self, webhook: str, key: str, value: str) -> None:
        """Store `key` as `<webhook>/<key>` if it is a valid qualified name part."""
        if len(key) > 63 or not _AUDIT_KEY.fullmatch(key):
            return
        self.add_system(f"{webhook}/{key}", value)

    def add_system(self, key: str, value: str) -> None:
        # An existing key keeps its first value: the apiserver refuses to overwrite it.
        self._values.setdefault(key, value)

    def values(self) -> dict[str, str]:
        return dict(self._values)
