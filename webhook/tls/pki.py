"""Keys, a certificate authority and serving certificates, in memory.

Everything here is pure: the caller passes the current time, so the
self-managed mode can run on a test clock, and nothing touches the disk.
"""

from __future__ import annotations

import base64
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

KeyType = Literal["ecdsa", "rsa"]
KEY_TYPES: tuple[KeyType, ...] = ("ecdsa", "rsa")
PrivateKey = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey


class UnsupportedKeyError(ValueError):
    """Raised for a key whose algorithm or curve `cryptography` cannot use."""


# 2048 bits is the usual minimum for RSA. Larger keys make every handshake
# slower, and ECDSA P-256 is the default anyway.
RSA_KEY_BITS = 2048

# Certificates start a few minutes in the past so that a node whose clock
# runs slightly behind the issuer's still accepts them.
BACKDATE = timedelta(minutes=5)

# A namespace is a DNS-1123 label and a Service name a DNS-1035 label, which
# must also start with a letter. Both are at most 63 characters.
_DNS1123_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_DNS1035_LABEL = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")
# A DNS name for a SAN: lower-case labels, optionally a leading wildcard.
_DNS_NAME = re.compile(
    r"^(\*\.)?[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$"
)


@dataclass(frozen=True)
class KeyPair:
    """A certificate and its private key."""

    cert: x509.Certificate
    key: PrivateKey

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @property
    def key_pem(self) -> bytes:
        return self.key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )


def new_private_key(key_type: KeyType = "ecdsa") -> PrivateKey:
    """Generate an ECDSA P-256 key, or an RSA key of RSA_KEY_BITS bits."""
    if key_type == "ecdsa":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_KEY_BITS)
    raise ValueError(f"invalid key type {key_type!r}: expected one of {KEY_TYPES}")


def service_dns_names(
    service: str, namespace: str, cluster_domain: str = "cluster.local"
) -> list[str]:
    """Return the DNS names by which pods and kube-apiserver reach a Service."""
    _check_name("service name", service, _DNS1035_LABEL, "a letter")
    _check_name("namespace", namespace, _DNS1123_LABEL, "a letter or digit")
    host = service_host(service, namespace)
    return [service, f"{service}.{namespace}", host, f"{host}.{cluster_domain}"]


def service_host(service: str, namespace: str) -> str:
    """Return the name kube-apiserver checks in the certificate of a webhook Service."""
    return f"{service}.{namespace}.svc"


def _check_name(kind: str, value: str, pattern: re.Pattern[str], first: str) -> None:
    if not pattern.match(value):
        raise ValueError(
            f"invalid {kind} {value!r}: expected at most 63 lower-case letters, "
            f"digits or '-', starting with {first} and ending with a letter or digit"
        )


def create_ca(
    common_name: str, *, now: datetime, lifetime: timedelta, key_type: KeyType = "ecdsa"
) -> KeyPair:
    """Create a self-signed CA that may sign serving certificates only."""
    key = new_private_key(key_type)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
    public_key = key.public_key()
    builder = (
        _validity(x509.CertificateBuilder(), now, lifetime)
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        # path_length=0: the CA signs leaves, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(ca=True, rsa_key=False), critical=True)
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False
        )
    )
    return KeyPair(builder.sign(key, hashes.SHA256()), key)


def issue_leaf(
    ca: KeyPair,
    *,
    dns_names: Sequence[str],
    ip_addresses: Sequence[str] = (),
    now: datetime,
    lifetime: timedelta,
    key_type: KeyType = "ecdsa",
) -> KeyPair:
    """Issue a serving certificate signed by ca for the given names.

    The first DNS name (or, without one, the first IP address) is also the
    subject's common name, which clients ignore but people read.
    """
    sans = subject_alternative_names(dns_names, ip_addresses)
    if not sans:
        raise ValueError(
            "a serving certificate needs at least one DNS name or IP address"
        )
    key = new_private_key(key_type)
    common_name = dns_names[0] if dns_names else ip_addresses[0]
    ca_ski = ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    builder = (
        _validity(x509.CertificateBuilder(), now, lifetime)
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]))
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            _key_usage(ca=False, rsa_key=isinstance(key, rsa.RSAPrivateKey)),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski),
            critical=False,
        )
    )
    return KeyPair(builder.sign(ca.key, hashes.SHA256()), key)


def subject_alternative_names(
    dns_names: Iterable[str], ip_addresses: Iterable[str]
) -> list[x509.GeneralName]:
    """Check and convert DNS names and IP addresses, dropping repeats."""
    sans: list[x509.GeneralName] = []
    for dns_name in dict.fromkeys(dns_names):
        if not _DNS_NAME.match(dns_name) or len(dns_name) > 253:
            raise ValueError(
                f"invalid DNS name {dns_name!r}: expected lower-case labels of "
                "letters, digits and '-' separated by '.', at most 253 characters"
            )
        sans.append(x509.DNSName(dns_name))
    for text in dict.fromkeys(ip_addresses):
        try:
            address = ipaddress.ip_address(text)
        except ValueError:
            raise ValueError(
                f"invalid IP address {text!r}: expected an IPv4 or IPv6 address "
                "such as 10.0.0.1 or ::1"
            ) from None
        sans.append(x509.IPAddress(address))
    return sans


def ca_bundle_base64(ca_pem: bytes) -> str:
    """Encode PEM certificates as the caBundle field of a webhook configuration."""
    return base64.b64encode(ca_pem).decode("ascii")


def load_private_key(pem: bytes) -> PrivateKey:
    """Parse an unencrypted PEM private key. Raise ValueError if it is not one.

    An encrypted key raises TypeError, as in `cryptography`.
    """
    try:
        key = serialization.load_pem_private_key(pem, password=None)
    except UnsupportedAlgorithm as error:
        # For example an EC key on a curve that OpenSSL parses but
        # `cryptography` does not support, such as secp112r1. The message
        # names the algorithm or curve only, never key material.
        raise UnsupportedKeyError(
            f"unsupported private key algorithm: {error}"
        ) from None
    if not isinstance(key, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey):
        raise ValueError(
            f"unsupported private key type {type(key).__name__}: expected ECDSA or RSA"
        )
    return key


def key_matches(cert: x509.Certificate, key: PrivateKey) -> bool:
    """Return whether key is the private key of cert's public key.

    Raises UnsupportedKeyError if cert's public key uses an unsupported
    algorithm.
    """
    try:
        public_key = cert.public_key()
    except UnsupportedAlgorithm as error:
        raise UnsupportedKeyError(
            f"unsupported certificate public key algorithm: {error}"
        ) from None
    return public_key == key.public_key()


def _validity(
    builder: x509.CertificateBuilder, now: datetime, lifetime: timedelta
) -> x509.CertificateBuilder:
    if lifetime <= timedelta(0):
        raise ValueError(
            f"invalid certificate lifetime {lifetime}: expected more than zero"
        )
    return (
        builder.serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + lifetime)
    )


def _key_usage(*, ca: bool, rsa_key: bool) -> x509.KeyUsage:
    # keyEncipherment applies only to RSA keys (RSA key transport), so an
    # ECDSA leaf leaves it off.
    return x509.KeyUsage(
        digital_signature=True,
        content_commitment=False,
        key_encipherment=rsa_key,
        data_encipherment=False,
        key_agreement=False,
        key_cert_sign=ca,
        crl_sign=ca,
        encipher_only=False,
        decipher_only=False,
    )
