"""Keeping a TemplateStore current with a list and watch of ConfigMaps.

The watcher lists the ConfigMaps with the template label in the template
namespace, then watches from the list's resourceVersion with bookmarks on.
A watch that ends after its server-side timeout resumes from the last
resourceVersion seen. A `410 Gone` means that the resourceVersion is too
old, so the watcher lists again at once. After any other failure it lists
again after an exponential backoff: 0.5 s, doubling up to 30 s.

An edit to a template therefore reaches the store as soon as the API server
sends the watch event, normally well under a second. While the API server
cannot be reached, the store keeps the last templates it had, and an edit
made meanwhile takes effect at most 30 s after the API server is back.
"""

from __future__ import annotations

import json
import logging
import random
import threading
from collections.abc import Callable, Mapping
from typing import Any

from kubernetes.client.exceptions import ApiException
from kubernetes.watch import Watch
from urllib3.exceptions import HTTPError

from webhook.templates.entries import Template
from webhook.templates.store import TemplateStore

logger = logging.getLogger(__name__)

TEMPLATE_LABEL = "runai/template"
TEMPLATE_SELECTOR = f"{TEMPLATE_LABEL}=true"

# The API server closes a watch after this many seconds; the client then
# resumes it. The read timeout is longer so that a silently dropped connection
# is noticed within WATCH_SECONDS + READ_SLACK_SECONDS.
WATCH_SECONDS = 60
READ_SLACK_SECONDS = 30
BACKOFF_INITIAL_SECONDS = 0.5
BACKOFF_MAX_SECONDS = 30.0

HTTP_GONE = 410

ReadTemplate = Callable[[Mapping[str, Any]], Template]


class Expired(Exception):
    """The watch's resourceVersion is too old and a new list is needed."""


class TemplateWatcher:
    """A background thread that keeps `store` equal to the template ConfigMaps.

    `api` is a `kubernetes.client.CoreV1Api`. `on_change` runs in the watcher
    thread after each change to the store, with the store as argument.
    """

    def __init__(
        self,
        api: Any,
        store: TemplateStore,
        namespace: str,
        read_template: ReadTemplate,
        on_change: Callable[[TemplateStore], None] | None = None,
    ) -> None:
        self._api = api
        self._store = store
        self._namespace = namespace
        self._read_template = read_template
        self._on_change = on_change
        self._stopped = threading.Event()
        self._watch: Watch | None = None
        self._thread = threading.Thread(
            target=self._run, name="template-watcher", daemon=True
        )

    def start(self) -> None:
        logger.info(
            "template watch starting",
            extra={"namespace": self._namespace, "selector": TEMPLATE_SELECTOR},
        )
        self._thread.start()

    def stop(self, timeout: float = 2.0) -> None:
        """Ask the thread to stop and wait up to `timeout` seconds for it.

        A watch blocked in a read ends only at the next event or at its
        server-side timeout. The thread is a daemon, so it never keeps the
        process alive.
        """
        self._stopped.set()
        if self._watch is not None:
            self._watch.stop()  # type: ignore[no-untyped-call]
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _run(self) -> None:
        delay = BACKOFF_INITIAL_SECONDS
        while not self._stopped.is_set():
            try:
                resource_version = self._list()
                delay = BACKOFF_INITIAL_SECONDS
                self._watch_from(resource_version)
            except Expired:
                logger.info("template watch expired, listing again")
            except (ApiException, HTTPError, OSError, ValueError) as error:
                # stop() closes the watch's connection, so the read fails.
                if self._stopped.is_set():
                    return
                wait = _jittered(delay)
                logger.warning(
                    "template watch failed, retrying",
                    extra={
                        "error": describe_error(error),
                        "retry_seconds": round(wait, 2),
                    },
                )
                delay = self._back_off(wait, delay)
            except Exception:
                # An unexpected error must not end the thread, or the store
                # would keep old templates for the rest of the process's life.
                wait = _jittered(delay)
                logger.exception(
                    "template watch failed unexpectedly, retrying",
                    extra={"retry_seconds": round(wait, 2)},
                )
                delay = self._back_off(wait, delay)

    def _back_off(self, wait: float, delay: float) -> float:
        """Wait `wait` seconds unless stopped; return the next base delay."""
        self._stopped.wait(wait)
        return min(delay * 2, BACKOFF_MAX_SECONDS)

    def _list(self) -> str:
        response = self._api.list_namespaced_config_map(
            self._namespace,
            label_selector=TEMPLATE_SELECTOR,
            _preload_content=False,
            _request_timeout=READ_SLACK_SECONDS,
        )
        body = json.loads(response.data)
        templates = [self._read_template(item) for item in body.get("items") or []]
        self._store.replace_all(templates)
        for template in templates:
            _log_if_invalid(template)
        logger.info("templates listed", extra={"templates": len(templates)})
        self._changed()
        return str(body["metadata"]["resourceVersion"])

    def _watch_from(self, resource_version: str) -> None:
        """Apply watch events until the watcher stops; return only then."""
        while not self._stopped.is_set():
            self._watch = Watch()  # type: ignore[no-untyped-call]
            events = self._watch.stream(  # type: ignore[no-untyped-call]
                self._api.list_namespaced_config_map,
                self._namespace,
                label_selector=TEMPLATE_SELECTOR,
                resource_version=resource_version,
                allow_watch_bookmarks=True,
                timeout_seconds=WATCH_SECONDS,
                _request_timeout=WATCH_SECONDS + READ_SLACK_SECONDS,
            )
            try:
                for event in events:
                    self._apply(event)
            except ApiException as error:
                if error.status == HTTP_GONE:
                    raise Expired from error
                raise
            resource_version = self._watch.resource_version or resource_version

    def _apply(self, event: Mapping[str, Any]) -> None:
        kind = event["type"]
        if kind == "BOOKMARK":
            return

        configmap = event["raw_object"]
        name = str(configmap.get("metadata", {}).get("name", ""))
        logger.debug("template event", extra={"event": kind, "template": name})
        if kind == "DELETED":
            self._store.remove(name)
        else:
            template = self._read_template(configmap)
            _log_if_invalid(template)
            self._store.put(template)
        self._changed()

    def _changed(self) -> None:
        if self._on_change is None:
            return
        try:
            self._on_change(self._store)
        except Exception:
            # A failing listener must not stop the watch that keeps templates
            # current; the traceback goes to the log instead.
            logger.exception("template change listener failed")


def _log_if_invalid(template: Template) -> None:
    # Only the name and the line: the message quotes the entry, and an entry
    # with a literal value may hold something that must not reach the logs.
    if template.error is not None:
        logger.warning(
            "template is invalid and will deny the objects it applies to",
            extra={"template": template.name, "line": template.error.line},
        )


def _jittered(seconds: float) -> float:
    # Spread the retries of several replicas so they do not list at once.
    return seconds * random.uniform(0.8, 1.2)  # noqa: S311 - not for security


def describe_error(error: Exception) -> str:
    """Describe an API or connection error in a few words, without its body."""
    if isinstance(error, ApiException):
        return f"HTTP {error.status} {error.reason}"
    return type(error).__name__
