"""Checks on a certificate chain and private key before the server uses them."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from cryptography import x509

from webhook.tls import pki


class InvalidPairError(ValueError):
    """Raised for a certificate and key that the server must not serve."""


@dataclass(frozen=True)
class ServingPair:
    """A checked certificate chain (leaf first) and the leaf's private key."""

    chain_pem: bytes
    key_pem: bytes
    chain: tuple[x509.Certificate, ...]

    @property
    def leaf(self) -> x509.Certificate:
        return self.chain[0]


def check_pair(chain_pem: bytes, key_pem: bytes, *, now: datetime) -> ServingPair:
    """Parse a PEM chain and key and check that they can be served at now.

    Raises InvalidPairError when either does not parse (an empty or
    half-written file, for example), the key does not belong to the first
    certificate, or that certificate is not valid at now.
    """
    try:
        chain = tuple(x509.load_pem_x509_certificates(chain_pem))
    except ValueError as error:
        raise InvalidPairError(f"certificate does not parse as PEM: {error}") from None
    try:
        key = pki.load_private_key(key_pem)
    except pki.UnsupportedKeyError as error:
        raise InvalidPairError(str(error)) from None
    except TypeError:
        raise InvalidPairError(
            "private key is encrypted: expected an unencrypted PEM key"
        ) from None
    except ValueError:
        # The parser's own message is left out, so no part of the key file
        # can reach a log line.
        raise InvalidPairError(
            "private key does not parse as an unencrypted PEM key (PKCS#8, "
            "PKCS#1 or SEC1)"
        ) from None

    leaf = chain[0]
    try:
        matches = pki.key_matches(leaf, key)
    except pki.UnsupportedKeyError as error:
        raise InvalidPairError(str(error)) from None
    if not matches:
        raise InvalidPairError(
            f"private key does not match the certificate {_subject(leaf)} "
            f"(serial {leaf.serial_number:x})"
        )
    if now < leaf.not_valid_before_utc:
        raise InvalidPairError(
            f"certificate {_subject(leaf)} is not valid before "
            f"{leaf.not_valid_before_utc.isoformat()}"
        )
    if now >= leaf.not_valid_after_utc:
        raise InvalidPairError(
            f"certificate {_subject(leaf)} expired at "
            f"{leaf.not_valid_after_utc.isoformat()}"
        )
    return ServingPair(chain_pem, key_pem, chain)


def describe(cert: x509.Certificate) -> dict[str, str]:
    """Return log fields for a certificate: subject, SANs, expiry and serial."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [*san.get_values_for_type(x509.DNSName)]
        names += [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    except x509.ExtensionNotFound:
        names = []
    return {
        "subject": _subject(cert),
        "sans": ",".join(names),
        "not_after": cert.not_valid_after_utc.isoformat(),
        "serial": f"{cert.serial_number:x}",
    }


def covers_dns_name(cert: x509.Certificate, host: str) -> bool:
    """Return whether a DNS name in the certificate's SANs matches `host`.

    A wildcard name such as `*.ns.svc` matches exactly one left-most label.
    """
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return False
    host = host.lower()
    first, _, rest = host.partition(".")
    for name in san.get_values_for_type(x509.DNSName):
        name = name.lower()
        if name == host:
            return True
        if name.startswith("*.") and first and name[2:] == rest:
            return True
    return False


def _subject(cert: x509.Certificate) -> str:
    return cert.subject.rfc4514_string() or "(empty subject)"
