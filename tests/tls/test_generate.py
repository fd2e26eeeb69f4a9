"""Certificate files as `certs generate` and development runs write them."""

from __future__ import annotations

import base64
import ipaddress
import re
import stat
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from webhook.tls import pki
from webhook.tls.generate import (
    CertificateFilesExistError,
    ca_bundle,
    generate_certificates,
    generate_development_certificates,
)


def _sans(cert_file: Path) -> tuple[list[str], list[str]]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    ips = [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    return san.get_values_for_type(x509.DNSName), ips


def test_generate_writes_service_names_and_extras(tmp_path: Path) -> None:
    paths = generate_certificates(
        tmp_path / "out",
        "secrets-webhook",
        "runai",
        dns_names=["webhook.example.com"],
        ip_addresses=["10.1.2.3", "fd00::1"],
        ca_days=30,
        leaf_days=10,
    )

    dns_names, ips = _sans(paths.cert)
    assert dns_names == [
        "secrets-webhook",
        "secrets-webhook.runai",
        "secrets-webhook.runai.svc",
        "secrets-webhook.runai.svc.cluster.local",
        "webhook.example.com",
    ]
    assert ips == ["10.1.2.3", "fd00::1"]
    assert [p.name for p in paths.all()] == ["ca.crt", "tls.crt", "tls.key"]


def test_generate_leaf_verifies_against_ca(tmp_path: Path) -> None:
    paths = generate_certificates(tmp_path, "svc", "ns", ca_days=30, leaf_days=10)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())

    leaf.verify_directly_issued_by(ca)
    constraints = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert constraints.ca
    usage = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert x509.oid.ExtendedKeyUsageOID.SERVER_AUTH in usage
    key = pki.load_private_key(paths.key.read_bytes())
    assert pki.key_matches(leaf, key)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert key.curve.name == "secp256r1"


def test_generate_validity_follows_days(tmp_path: Path) -> None:
    before = datetime.now(UTC)
    paths = generate_certificates(tmp_path, "svc", "ns", ca_days=30, leaf_days=10)
    ca = x509.load_pem_x509_certificate(paths.ca_cert.read_bytes())
    leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())

    slack = timedelta(minutes=1)
    assert abs(ca.not_valid_after_utc - (before + timedelta(days=30))) < slack
    assert abs(leaf.not_valid_after_utc - (before + timedelta(days=10))) < slack
    assert leaf.not_valid_before_utc < before


def test_generate_rsa_key_type(tmp_path: Path) -> None:
    paths = generate_certificates(
        tmp_path, "svc", "ns", ca_days=2, leaf_days=1, key_type="rsa"
    )
    key = pki.load_private_key(paths.key.read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey)
    assert key.key_size == 2048
    leaf = x509.load_pem_x509_certificate(paths.cert.read_bytes())
    usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    assert usage.key_encipherment


def test_generate_key_file_mode_is_0600(tmp_path: Path) -> None:
    paths = generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)
    assert stat.S_IMODE(paths.key.stat().st_mode) == 0o600
    assert stat.S_IMODE(paths.cert.stat().st_mode) == 0o644
    assert list(tmp_path.glob(".*")) == []


def test_generate_refuses_overwrite_without_force(tmp_path: Path) -> None:
    first = generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)
    old_cert = first.cert.read_bytes()

    with pytest.raises(CertificateFilesExistError) as caught:
        generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)

    message = str(caught.value)
    assert str(first.cert) in message
    assert "--force" in message
    assert first.cert.read_bytes() == old_cert


def test_generate_overwrites_with_force(tmp_path: Path) -> None:
    first = generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)
    old_cert = first.cert.read_bytes()
    again = generate_certificates(
        tmp_path, "svc", "ns", ca_days=2, leaf_days=1, force=True
    )
    assert again.cert.read_bytes() != old_cert


def test_generate_refuses_when_only_key_exists(tmp_path: Path) -> None:
    (tmp_path / "tls.key").write_text("old")
    with pytest.raises(CertificateFilesExistError, match=r"tls\.key"):
        generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"service": "Bad_Name"}, "invalid service name 'Bad_Name'"),
        ({"namespace": "-ns"}, "invalid namespace '-ns'"),
        ({"dns_names": ["bad name"]}, "invalid DNS name 'bad name'"),
        ({"ip_addresses": ["300.1.1.1"]}, "invalid IP address '300.1.1.1'"),
        ({"ca_days": 0}, "invalid CA validity 0 days"),
        ({"leaf_days": 40}, "would outlive its CA"),
    ],
)
def test_generate_rejects_invalid_input(
    tmp_path: Path, kwargs: dict[str, object], message: str
) -> None:
    arguments: dict[str, object] = {
        "service": "svc",
        "namespace": "ns",
        "ca_days": 30,
        "leaf_days": 10,
        **kwargs,
    }
    with pytest.raises(ValueError, match=re.escape(message)):
        generate_certificates(tmp_path, **arguments)  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_ca_bundle_is_base64_of_ca_file(tmp_path: Path) -> None:
    paths = generate_certificates(tmp_path, "svc", "ns", ca_days=2, leaf_days=1)
    bundle = ca_bundle(paths.ca_cert)
    assert base64.b64decode(bundle, validate=True) == paths.ca_cert.read_bytes()


def test_ca_bundle_rejects_non_certificate(tmp_path: Path) -> None:
    bad = tmp_path / "ca.crt"
    bad.write_text("not a certificate")
    with pytest.raises(ValueError):
        ca_bundle(bad)


def test_development_certificates_name_loopback(tmp_path: Path) -> None:
    paths = generate_development_certificates(tmp_path, "svc", "ns")
    dns_names, ips = _sans(paths.cert)
    assert "localhost" in dns_names
    assert "svc.ns.svc" in dns_names
    assert {ipaddress.ip_address(ip) for ip in ips} == {
        ipaddress.ip_address("127.0.0.1"),
        ipaddress.ip_address("::1"),
    }


def test_development_certificates_reused_while_valid(tmp_path: Path) -> None:
    first = generate_development_certificates(tmp_path, "svc", "ns")
    cert = first.cert.read_bytes()
    again = generate_development_certificates(tmp_path, "svc", "ns")
    assert again.cert.read_bytes() == cert


def test_development_certificates_replaced_when_broken(tmp_path: Path) -> None:
    first = generate_development_certificates(tmp_path, "svc", "ns")
    cert = first.cert.read_bytes()
    other_key = pki.KeyPair(x509.load_pem_x509_certificate(cert), pki.new_private_key())
    first.key.write_bytes(other_key.key_pem)

    again = generate_development_certificates(tmp_path, "svc", "ns")
    assert again.cert.read_bytes() != cert
    key = pki.load_private_key(again.key.read_bytes())
    assert pki.key_matches(x509.load_pem_x509_certificate(again.cert.read_bytes()), key)


def test_development_certificates_replaced_for_other_service(tmp_path: Path) -> None:
    generate_development_certificates(tmp_path, "svc", "ns")
    again = generate_development_certificates(tmp_path, "other", "ns")
    dns_names, _ = _sans(again.cert)
    assert "other.ns.svc" in dns_names
