"""Self-managed certificates: one shared CA in a Secret, one leaf per replica.

Each reconcile, which runs at start and then every resync interval:

1. reads the webhook configurations, to learn what their caBundles contain;
2. reads the CA Secret, creating it if absent (POST; on 409 AlreadyExists
   the winner's CA is read back), and applies the rotation steps that are
   due (see webhook.tls.authority), writing with the resourceVersion read;
3. patches the caBundle of every webhook entry whose value differs from
   the Secret's `ca.crt`;
4. issues this replica a new serving certificate if it has none, if the
   signing CA changed, or at two thirds of the certificate's lifetime, but
   only once every caBundle contains the signing CA. Until then the previous
   certificate stays in use.

The serving key lives only in memory. Until the first certificate signed by
the CA is served, a throwaway self-signed one lets liveness probes connect,
and ready() stays false.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

import urllib3
from cryptography import x509
from kubernetes import client as k8s

from webhook.tls import authority, pki
from webhook.tls.authority import CAPolicy, CAState, InvalidCASecretError
from webhook.tls.cluster import (
    MUTATING,
    VALIDATING,
    ClusterClient,
    WebhookConfiguration,
    describe_error,
)
from webhook.tls.pairs import ServingPair, describe
from webhook.tls.reload import Clock, utc_now

logger = logging.getLogger(__name__)

# Seconds between reconciles. Rotation steps are days apart, so a minute is
# plenty. It also bounds how long a caBundle changed by hand stays wrong.
DEFAULT_RESYNC_INTERVAL = 60.0
# Seconds before a failed reconcile (API down, RBAC missing) is first
# retried; the wait doubles with each further failure.
DEFAULT_RETRY_INTERVAL = 1.0
# A write that keeps meeting a conflict gives up after this many fresh
# reads, and the next reconcile tries again.
MAX_WRITE_ATTEMPTS = 5

Install = Callable[[ServingPair, Sequence[x509.Certificate], bool], None]


@dataclass(frozen=True)
class SelfManagedOptions:
    """Options of the self-managed mode: CA Secret, configurations, lifetimes."""

    service_name: str
    service_namespace: str
    ca_secret_name: str
    mutating_webhook_configuration: str
    validating_webhook_configuration: str | None = None
    extra_dns_names: tuple[str, ...] = ()
    extra_ip_addresses: tuple[str, ...] = ()
    policy: CAPolicy = field(default_factory=CAPolicy)
    resync_interval: float = DEFAULT_RESYNC_INTERVAL
    retry_interval: float = DEFAULT_RETRY_INTERVAL

    def __post_init__(self) -> None:
        # Raise ValueError for a bad name now, not in the background task.
        pki.subject_alternative_names(self.dns_names(), self.extra_ip_addresses)
        for name in ("resync_interval", "retry_interval"):
            if getattr(self, name) <= 0:
                raise ValueError(
                    f"invalid {name} {getattr(self, name)} s: expected more than 0"
                )

    def dns_names(self) -> list[str]:
        names = pki.service_dns_names(self.service_name, self.service_namespace)
        return [*names, *self.extra_dns_names]


class SelfManagedCertificates:
    """Keeps the CA Secret, the caBundles and this replica's leaf current."""

    def __init__(
        self,
        options: SelfManagedOptions,
        cluster: ClusterClient,
        install: Install,
        *,
        clock: Clock = utc_now,
    ) -> None:
        self.options = options
        self._cluster = cluster
        self._install = install
        self._clock = clock
        self._leaf: x509.Certificate | None = None
        self._issuer: x509.Certificate | None = None

    def install_bootstrap(self) -> None:
        """Serve a throwaway self-signed certificate until the real one exists."""
        now = self._clock()
        ca = pki.create_ca("bootstrap", now=now, lifetime=timedelta(days=1))
        leaf = pki.issue_leaf(
            ca, dns_names=self.options.dns_names(), now=now, lifetime=timedelta(days=1)
        )
        self._install(_pair(leaf), (), False)

    def reconcile(self) -> None:
        """Run the four steps of the module docstring once."""
        now = self._clock()
        configs = self._read_configurations()
        state = self._sync_secret(configs, now)
        bundle = pki.ca_bundle_base64(state.bundle(now))
        published = [self._publish(config, bundle) for config in configs]
        self._ensure_leaf(state, now, published)

    async def run(self) -> None:
        """Reconcile until cancelled; Kubernetes calls run in a worker thread.

        After a failure the next attempt comes after retry_interval, and the
        wait doubles with each further failure up to resync_interval.
        """
        retry = self.options.retry_interval
        while True:
            try:
                await asyncio.to_thread(self.reconcile)
            except (
                k8s.ApiException,
                urllib3.exceptions.HTTPError,
                OSError,
                RuntimeError,
            ) as error:
                logger.error(
                    "self-managed certificate reconcile failed; retrying",
                    extra={
                        "error": describe_error(error),
                        "status": getattr(error, "status", None),
                        "retry_seconds": retry,
                    },
                )
                await asyncio.sleep(retry)
                retry = min(retry * 2, self.options.resync_interval)
                continue

            retry = self.options.retry_interval
            await asyncio.sleep(self.options.resync_interval)

    def _read_configurations(self) -> list[WebhookConfiguration]:
        configured = [(MUTATING, self.options.mutating_webhook_configuration)]
        if self.options.validating_webhook_configuration:
            configured.append(
                (VALIDATING, self.options.validating_webhook_configuration)
            )
        configs = []
        for kind, name in configured:
            config = self._cluster.read_webhook_configuration(kind, name)
            if config is None:
                # Nothing can call the webhook through a configuration that
                # does not exist; its caBundle is set once it appears.
                logger.warning(
                    "webhook configuration not found",
                    extra={"kind": kind, "configuration": name},
                )
                continue
            configs.append(config)
        return configs

    def _sync_secret(
        self, configs: list[WebhookConfiguration], now: datetime
    ) -> CAState:
        policy = self.options.policy
        for _ in range(MAX_WRITE_ATTEMPTS):
            stored = self._cluster.read_secret()
            if stored is None:
                state = authority.new_state(policy, now)
                if self._cluster.create_secret(authority.to_secret_data(state, now)):
                    logger.info("created CA Secret", extra=self._secret_fields(state))
                    return state
                continue  # another replica created it first: use theirs

            current: authority.CAState | None = None
            try:
                current = authority.from_secret_data(stored.data)
            except InvalidCASecretError as error:
                logger.error(
                    "CA Secret is invalid; replacing it with a new CA",
                    extra={"secret": self._cluster.secret_name, "reason": str(error)},
                )
                state = authority.new_state(policy, now)
            else:
                published = current.next is not None and _all_trust(
                    configs, current.next.cert
                )
                state = authority.advance(
                    current, policy, now, next_published=published
                )
            data = authority.to_secret_data(state, now)
            # Data that parses but differs from what the state writes, such as
            # a rebuilt ca.crt, is written back once.
            if state is current and data == dict(stored.data):
                return state

            if self._cluster.replace_secret(data, stored):
                logger.info("updated CA Secret", extra=self._secret_fields(state))
                return state
        raise RuntimeError(
            f"CA Secret {self.options.service_namespace}/{self._cluster.secret_name} "
            f"changed during each of {MAX_WRITE_ATTEMPTS} attempts to update it"
        )

    def _publish(
        self, config: WebhookConfiguration, bundle: str
    ) -> WebhookConfiguration:
        """Patch config's caBundles to bundle; return the config as it now is.

        A patch that meets a concurrent change is retried on a fresh read,
        so replicas that start together all see their CA published at once.
        """
        for _ in range(MAX_WRITE_ATTEMPTS):
            if config.trusts_only(bundle):
                return config
            if self._cluster.patch_bundles(config, bundle):
                logger.info(
                    "patched caBundle",
                    extra={"kind": config.kind, "configuration": config.name},
                )
                bundles = tuple((name, bundle) for name, _ in config.bundles)
                return replace(config, bundles=bundles)
            fresh = self._cluster.read_webhook_configuration(config.kind, config.name)
            if fresh is None:
                return config
            config = fresh
        return config

    def _ensure_leaf(
        self, state: CAState, now: datetime, configs: list[WebhookConfiguration]
    ) -> None:
        signing = state.signing.cert
        leaf = self._leaf
        if (
            leaf is not None
            and self._issuer == signing
            and now < authority.leaf_rotation_time(leaf)
        ):
            return
        if not _all_trust(configs, signing):
            logger.warning(
                "waiting for every caBundle to trust the signing CA before issuing",
                extra={"serial": f"{signing.serial_number:x}"},
            )
            return

        lifetime = authority.leaf_lifetime(self.options.policy, signing, now)
        issued = pki.issue_leaf(
            state.signing,
            dns_names=self.options.dns_names(),
            ip_addresses=self.options.extra_ip_addresses,
            now=now,
            lifetime=lifetime,
            key_type=self.options.policy.key_type,
        )
        self._install(_pair(issued), (signing,), True)
        self._leaf, self._issuer = issued.cert, signing
        logger.info("issued serving certificate", extra=describe(issued.cert))

    def _secret_fields(self, state: CAState) -> dict[str, str]:
        return {
            "secret": f"{self.options.service_namespace}/{self._cluster.secret_name}",
            "signing_serial": f"{state.signing.cert.serial_number:x}",
            "next_serial": f"{state.next.cert.serial_number:x}" if state.next else "",
        }


def _all_trust(configs: list[WebhookConfiguration], ca: x509.Certificate) -> bool:
    """Return whether every entry's caBundle of every config contains ca."""
    return all(
        _bundle_contains(bundle, ca)
        for config in configs
        for _, bundle in config.bundles
    )


def _bundle_contains(bundle_b64: str, ca: x509.Certificate) -> bool:
    try:
        certs = x509.load_pem_x509_certificates(base64.b64decode(bundle_b64))
    except ValueError:
        return False
    return any(cert == ca for cert in certs)


def _pair(issued: pki.KeyPair) -> ServingPair:
    return ServingPair(issued.cert_pem, issued.key_pem, (issued.cert,))
