"""The self-managed CA: its Secret layout and its rotation schedule.

All replicas share one CA, kept in a Secret of type kubernetes.io/tls in
the webhook's namespace:

- `tls.crt`, `tls.key`: the signing CA, which issues the serving
  certificates.
- `ca.crt`: every CA that kube-apiserver must trust, in PEM. Besides the
  signing CA this is, for a while, the next CA (before it signs) or the
  previous CA (until it expires).
- `next.crt`, `next.key`: the next CA, present between its publication
  and its promotion.

A CA with validity from B to E moves through these steps:

1. At B + 2/3 (E - B) the next CA is made and added to `ca.crt`, so that it
   reaches the caBundle of the webhook configuration.
2. At B + 5/6 (E - B), once every caBundle contains the next CA, it becomes
   the signing CA. Leaves of the old CA stay valid and trusted.
3. After E the old CA leaves `ca.crt`. Every leaf it signed has expired by
   then, because a leaf never outlives its CA.

An expired or unreadable signing CA is replaced at once, unless it expired
after its next CA reached every caBundle: that next CA is then promoted. A
replaced CA is the only case in which kube-apiserver may briefly reject the
served certificate.
The functions here are pure: the caller passes the time and does the I/O.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from webhook.tls import pki

logger = logging.getLogger(__name__)

SIGNING_CERT = "tls.crt"
SIGNING_KEY = "tls.key"
TRUSTED = "ca.crt"
NEXT_CERT = "next.crt"
NEXT_KEY = "next.key"

PUBLISH_AT = 2 / 3
PROMOTE_AT = 5 / 6


class InvalidCASecretError(ValueError):
    """Raised for CA Secret data that does not hold a usable CA."""


@dataclass(frozen=True)
class CAPolicy:
    """Lifetimes and key type of the CAs and the serving certificates."""

    ca_lifetime: timedelta = timedelta(days=365)
    leaf_lifetime: timedelta = timedelta(days=30)
    key_type: pki.KeyType = "ecdsa"
    common_name: str = "runai-secrets-webhook CA"

    def __post_init__(self) -> None:
        # A leaf of the old CA issued just before the promotion still gets
        # its full lifetime only if that lifetime fits into the overlap.
        overlap = self.ca_lifetime * (1 - PROMOTE_AT)
        if self.leaf_lifetime > overlap:
            raise ValueError(
                f"invalid lifetimes: a serving certificate of {self.leaf_lifetime} "
                f"is longer than the CA overlap of {overlap} (1/6 of the CA "
                "lifetime); use a shorter serving certificate or a longer CA"
            )


@dataclass(frozen=True)
class CAState:
    """The CAs in the Secret: the signing CA, the next CA and the trusted set."""

    signing: pki.KeyPair
    next: pki.KeyPair | None
    trusted: tuple[x509.Certificate, ...]

    def bundle(self, now: datetime) -> bytes:
        """Return the PEM caBundle: trusted CAs valid at now, oldest first.

        The signing CA is always included, so the bundle is never empty.
        The order is fixed, so every replica computes the same bytes.
        """
        certs = {
            _serial(cert): cert
            for cert in self.trusted
            if now < cert.not_valid_after_utc
        }
        certs[_serial(self.signing.cert)] = self.signing.cert
        ordered = sorted(
            certs.values(), key=lambda c: (c.not_valid_before_utc, _serial(c))
        )
        return b"".join(
            cert.public_bytes(serialization.Encoding.PEM) for cert in ordered
        )


def from_secret_data(data: Mapping[str, bytes]) -> CAState:
    """Parse decoded Secret data. Raise InvalidCASecretError if it is unusable."""
    try:
        signing = _load_ca(data, SIGNING_CERT, SIGNING_KEY)
        next_ca = _load_ca(data, NEXT_CERT, NEXT_KEY) if NEXT_CERT in data else None
    except KeyError as error:
        raise InvalidCASecretError(f"CA Secret has no key {error}") from None
    except (ValueError, TypeError, x509.ExtensionNotFound) as error:
        raise InvalidCASecretError(f"CA Secret is invalid: {error}") from None

    try:
        trusted = tuple(x509.load_pem_x509_certificates(data[TRUSTED]))
    except (KeyError, ValueError):
        # Replacing a usable CA over its bundle alone would make kube-apiserver
        # reject the leaves other replicas serve, so the bundle is rebuilt from
        # the CAs that sign now or next. A previous CA listed there is lost.
        logger.warning(
            "CA Secret has no readable ca.crt; rebuilding it from the signing CA"
        )
        required = [signing.cert] + ([next_ca.cert] if next_ca else [])
        trusted = tuple(required)
    return CAState(signing, next_ca, trusted)


def to_secret_data(state: CAState, now: datetime) -> dict[str, bytes]:
    """Return the Secret data for state, keys as in the module docstring."""
    data = {
        SIGNING_CERT: state.signing.cert_pem,
        SIGNING_KEY: state.signing.key_pem,
        TRUSTED: state.bundle(now),
    }
    if state.next is not None:
        data[NEXT_CERT] = state.next.cert_pem
        data[NEXT_KEY] = state.next.key_pem
    return data


def new_state(policy: CAPolicy, now: datetime) -> CAState:
    """Create a first CA."""
    ca = _new_ca(policy, now)
    return CAState(ca, None, (ca.cert,))


def advance(
    state: CAState, policy: CAPolicy, now: datetime, *, next_published: bool
) -> CAState:
    """Return the state after the rotation steps due at now, or state itself.

    next_published is whether every caBundle already contains the next CA;
    without it the next CA is not promoted.
    """
    signing = state.signing.cert
    if now >= signing.not_valid_after_utc:
        upcoming = state.next
        if upcoming and next_published and now < upcoming.cert.not_valid_after_utc:
            # Every caBundle already trusts the next CA, so promoting it keeps
            # calls working. A brand-new CA fails them until it is published.
            logger.warning(
                "signing CA expired; promoting the next CA",
                extra={"serial": _serial(signing)},
            )
            live = tuple(c for c in state.trusted if now < c.not_valid_after_utc)
            return CAState(upcoming, None, _unique((*live, upcoming.cert)))
        logger.warning(
            "signing CA expired; replacing it", extra={"serial": _serial(signing)}
        )
        return new_state(policy, now)

    if state.next is None and now >= _at(signing, PUBLISH_AT):
        upcoming = _new_ca(policy, now)
        return CAState(state.signing, upcoming, (*state.trusted, upcoming.cert))

    if state.next is not None and next_published and now >= _at(signing, PROMOTE_AT):
        trusted = (*state.trusted, state.next.cert)
        return CAState(state.next, None, _unique(trusted))

    live = tuple(cert for cert in state.trusted if now < cert.not_valid_after_utc)
    required = [state.signing.cert] + ([state.next.cert] if state.next else [])
    repaired = _unique((*live, *required))
    if {_serial(c) for c in repaired} != {_serial(c) for c in state.trusted}:
        return replace(state, trusted=repaired)
    return state


def leaf_rotation_time(leaf: x509.Certificate) -> datetime:
    """Return when a serving certificate is replaced: 2/3 into its lifetime."""
    return _at(leaf, 2 / 3)


def leaf_lifetime(
    policy: CAPolicy, signing: x509.Certificate, now: datetime
) -> timedelta:
    """Return the lifetime of a leaf issued now, cut so it ends with its CA."""
    return min(policy.leaf_lifetime, signing.not_valid_after_utc - now)


def _new_ca(policy: CAPolicy, now: datetime) -> pki.KeyPair:
    return pki.create_ca(
        policy.common_name,
        now=now,
        lifetime=policy.ca_lifetime,
        key_type=policy.key_type,
    )


def _load_ca(data: Mapping[str, bytes], cert_key: str, key_key: str) -> pki.KeyPair:
    cert = x509.load_pem_x509_certificate(data[cert_key])
    try:
        key = pki.load_private_key(data[key_key])
    except pki.UnsupportedKeyError as error:
        raise ValueError(f"{key_key}: {error}") from None
    except (ValueError, TypeError):
        # The parser's message is left out, so no part of a key is logged.
        raise ValueError(f"{key_key} is not an unencrypted PEM private key") from None
    if not pki.key_matches(cert, key):
        raise ValueError(f"{key_key} does not match {cert_key}")
    constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    if not constraints.ca:
        raise ValueError(f"{cert_key} is not a CA certificate")
    return pki.KeyPair(cert, key)


def _at(cert: x509.Certificate, fraction: float) -> datetime:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return start + (end - start) * fraction


def _unique(certs: tuple[x509.Certificate, ...]) -> tuple[x509.Certificate, ...]:
    return tuple({_serial(cert): cert for cert in certs}.values())


def _serial(cert: x509.Certificate) -> str:
    return f"{cert.serial_number:x}"
