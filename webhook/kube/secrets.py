"""Blocking sources of secret key names: the Kubernetes API and a directory.

Both return a `SecretLookup` with key names only. Secret values pass through
memory only while a response or manifest is parsed and are dropped at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import orjson
import urllib3
import yaml
from kubernetes import client
from kubernetes.config.config_exception import ConfigException

from webhook.admission.lookups import LookupStatus, SecretLookup
from webhook.admission.references import is_dns_label, is_dns_subdomain

logger = logging.getLogger(__name__)

# Foreign error text (API Status messages, exception strings) is cut to this
# many characters before it reaches a log line or a denial message.
MAX_DETAIL_CHARS = 200


class KeySource(Protocol):
    """A blocking lookup of the key names of one secret."""

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup: ...


def key_names(manifest: Any) -> frozenset[str]:
    """Return the key names of a Secret object, from `data` and `stringData`."""
    if not isinstance(manifest, dict):
        return frozenset()
    names: set[str] = set()
    for field in ("data", "stringData"):
        section = manifest.get(field)
        if isinstance(section, dict):
            names.update(str(key) for key in section)
    return frozenset(names)


def status_message(body: bytes | str | None) -> str:
    """Return the `message` of a Kubernetes Status body, cut to a safe length."""
    if not body:
        return ""
    try:
        status = orjson.loads(body)
    except orjson.JSONDecodeError:
        return ""
    message = status.get("message", "") if isinstance(status, dict) else ""
    return str(message)[:MAX_DETAIL_CHARS]


@dataclass(frozen=True)
class ProbeResult:
    """Outcome of one call that checks whether the secret source responds.

    `problem` is empty when the source responded without an error.
    """

    answered: bool
    problem: str = ""


class ClusterSecrets:
    """Read secrets through the official client, keeping only key names."""

    def __init__(
        self,
        api_client: client.ApiClient,
        reload_credentials: Callable[[], None] | None = None,
    ) -> None:
        """`reload_credentials` reads the token again after a 401."""
        self._api = client.CoreV1Api(api_client)
        self._reload = reload_credentials
        self._answered = threading.Event()

    @property
    def answered(self) -> bool:
        """Whether the API has returned any HTTP response, errors included."""
        return self._answered.is_set()

    @property
    def api_client(self) -> client.ApiClient:
        """The client this source reads with, whose token a 401 reloads in place."""
        api_client: client.ApiClient = self._api.api_client
        return api_client

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        """Read one secret's key names within `timeout` seconds.

        A 401 is retried once after the credentials are read again, because
        the token may have been rotated on disk. Nothing else is retried: a
        retry could outlive the review's deadline, so the caller decides.
        """
        deadline = time.monotonic() + timeout
        try:
            return self._fetch_once(namespace, name, timeout)
        except client.ApiException as error:
            if error.status != 401 or self._reload is None:
                return self._from_api_error(error)

        logger.info("API rejected the token, reading credentials again")
        try:
            self._reload()
        except (ConfigException, OSError, ValueError) as error:
            # Only the type: a parse error may quote a kubeconfig line with a token.
            logger.error(
                "reading credentials failed", extra={"error_type": type(error).__name__}
            )
            return SecretLookup.failed(
                LookupStatus.ERROR,
                "the API answered HTTP 401 and no new token was read",
            )
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return SecretLookup.failed(LookupStatus.TIMEOUT, "the API call timed out")
        try:
            return self._fetch_once(namespace, name, remaining)
        except client.ApiException as error:
            return self._from_api_error(error)

    def _fetch_once(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        """Make one call; raise ApiException for an HTTP error status."""
        try:
            # With _preload_content=False the client returns the raw urllib3
            # response, so no model object ever contains the values.
            response: Any = self._api.read_namespaced_secret(
                name, namespace, _preload_content=False, _request_timeout=timeout
            )
        except client.ApiException as error:
            if not error.status:
                return self._from_api_error(error)
            self._answered.set()
            raise
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return describe_transport_error(error)

        self._answered.set()
        try:
            keys = key_names(orjson.loads(response.data))
        except orjson.JSONDecodeError:
            return SecretLookup.failed(
                LookupStatus.ERROR, "the API returned a body that is not JSON"
            )
        finally:
            response.release_conn()
        return SecretLookup.found(keys)

    @property
    def location(self) -> str:
        """The API server's URL, from the kubeconfig or the in-cluster config."""
        return str(self._api.api_client.configuration.host)

    def probe(self, timeout: float) -> ProbeResult:
        """Call GET /api/v1 once. Any HTTP response, errors included, counts.

        The result contains why no response came back, or the 401 or 403 that
        the API returned. Either means wrong credentials, so every lookup
        would fail as well.
        """
        try:
            response: Any = self._api.get_api_resources(
                _preload_content=False, _request_timeout=timeout
            )
            response.release_conn()
        except client.ApiException as error:
            if not error.status:
                reason = str(error.reason or "")[:MAX_DETAIL_CHARS]
                return ProbeResult(answered=False, problem=f"TLS error: {reason}")
            self._answered.set()
            if error.status not in (401, 403):
                return ProbeResult(answered=True)
            message = status_message(error.body) or str(error.reason or "")
            return ProbeResult(
                answered=True,
                problem=f"the API answered HTTP {error.status}: {message}",
            )
        except (urllib3.exceptions.HTTPError, OSError) as error:
            return ProbeResult(
                answered=False, problem=describe_transport_error(error).detail
            )
        self._answered.set()
        return ProbeResult(answered=True)

    def _from_api_error(self, error: client.ApiException) -> SecretLookup:
        if not error.status:
            # Status 0 is the client's wrapper around a TLS failure.
            reason = str(error.reason or "")[:MAX_DETAIL_CHARS]
            return SecretLookup.failed(LookupStatus.ERROR, f"TLS error: {reason}")

        self._answered.set()
        if error.status == 404:
            return SecretLookup.not_found()
        message = status_message(error.body)
        if error.status == 403:
            return SecretLookup.failed(LookupStatus.FORBIDDEN, message)
        return SecretLookup.failed(
            LookupStatus.ERROR, f"the API answered HTTP {error.status}: {message}"
        )


def describe_transport_error(error: BaseException) -> SecretLookup:
    """Turn a connection failure or timeout into a failed lookup."""
    if isinstance(error, urllib3.exceptions.MaxRetryError) and error.reason:
        error = error.reason
    # urllib3 derives NewConnectionError (refused, unreachable) from its
    # ConnectTimeoutError, so it is checked first.
    if isinstance(error, urllib3.exceptions.NewConnectionError):
        return SecretLookup.failed(
            LookupStatus.ERROR, "the API call failed: connection refused or unreachable"
        )
    if isinstance(error, urllib3.exceptions.TimeoutError | TimeoutError):
        return SecretLookup.failed(LookupStatus.TIMEOUT, "the API call timed out")
    if isinstance(error, urllib3.exceptions.SSLError):
        # OpenSSL's reason, such as "certificate verify failed: unable to get
        # local issuer certificate", points at the kubeconfig's CA.
        reason = str(error)[:MAX_DETAIL_CHARS]
        return SecretLookup.failed(
            LookupStatus.ERROR, f"the API call failed: TLS error: {reason}"
        )
    return SecretLookup.failed(
        LookupStatus.ERROR, f"the API call failed: {type(error).__name__}"
    )


class DirectorySecrets:
    """Key names of the Secret manifests found in a directory.

    Files ending in .yaml, .yml or .json are read once at start, several
    documents per file allowed; other kinds of objects are skipped. A Secret
    without `metadata.namespace` belongs to namespace `default`, as with
    `kubectl apply`.
    """

    def __init__(self, directory: Path) -> None:
        if not directory.is_dir():
            raise FileNotFoundError(f"secrets directory {directory} does not exist")
        self.directory = directory
        self._keys: dict[tuple[str, str], frozenset[str]] = {}
        for path in sorted(directory.iterdir()):
            if path.suffix in {".yaml", ".yml", ".json"}:
                self._load(path)
        logger.info(
            "loaded secret manifests",
            extra={"directory": str(directory), "secrets": len(self._keys)},
        )

    answered = True

    def _load(self, path: Path) -> None:
        with path.open(encoding="utf-8") as stream:
            for document in iter_documents(stream.read(), path):
                if not isinstance(document, dict) or document.get("kind") != "Secret":
                    continue
                namespace, name = secret_identity(document, path)
                self._keys[(namespace, name)] = key_names(document)

    def fetch(self, namespace: str, name: str, timeout: float) -> SecretLookup:
        keys = self._keys.get((namespace, name))
        if keys is None:
            return SecretLookup.not_found()
        return SecretLookup.found(keys)

    @property
    def location(self) -> str:
        """The directory the Secret manifests were read from."""
        return str(self.directory)

    def probe(self, timeout: float) -> ProbeResult:
        return ProbeResult(answered=True)


def secret_identity(document: dict[str, Any], path: Path) -> tuple[str, str]:
    """Return the namespace and name of a Secret manifest read from `path`.

    Raises `ValueError` for a manifest that kube-apiserver would reject,
    because a Secret with an invalid name could never be referenced and
    would go unnoticed. The message names fields and types, never a value.
    """
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    name = metadata.get("name")
    if not name:
        raise ValueError(f"{path}: a Secret has no metadata.name")
    if not isinstance(name, str) or not is_dns_subdomain(name):
        raise _rejected(
            path,
            f"metadata.name {name!r} is not a valid Secret name (a DNS-1123 "
            "subdomain: lower case letters, digits, '-' and '.')",
        )
    namespace = metadata.get("namespace") or "default"
    if not isinstance(namespace, str) or not is_dns_label(namespace):
        raise _rejected(
            path,
            f"metadata.namespace {namespace!r} is not a valid namespace name (a "
            "DNS-1123 label: lower case letters, digits and '-', at most 63)",
        )
    for field in ("data", "stringData"):
        section = document.get(field)
        if section is not None and not isinstance(section, dict):
            type_name = type(section).__name__
            raise _rejected(
                path, f"{field} is a {type_name}, not a mapping of key names to values"
            )
    return namespace, name


def _rejected(path: Path, problem: str) -> ValueError:
    return ValueError(
        f"{path}: {problem}, so kube-apiserver would reject it. Fix the "
        "manifest or move it out of the secrets directory."
    )


def iter_documents(text: str, path: Path) -> Iterator[Any]:
    """Yield the YAML documents of one file, naming the file on a parse error."""
    try:
        yield from yaml.safe_load_all(text)
    except yaml.YAMLError as error:
        # The parser's own message quotes the offending line, which may hold
        # a secret value, so only the position is reported.
        mark = getattr(error, "problem_mark", None)
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ValueError(f"{path}: invalid YAML{where}") from None
