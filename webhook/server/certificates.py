"""The serving certificates: given files, development ones, or self-managed.

`serving_certificates` is the one place that chooses how the server gets its
certificate; webhook.tls does the work and keeps it current.
"""

from __future__ import annotations

import logging
from pathlib import Path

from prometheus_client import CollectorRegistry

from webhook.kube.config import new_api_client
from webhook.settings import ServeSettings
from webhook.tls.context import ClientCAFileError
from webhook.tls.generate import generate_development_certificates
from webhook.tls.pki import service_host
from webhook.tls.reload import CertificateFilesError
from webhook.tls.selfmanaged import SelfManagedOptions
from webhook.tls.serving import ServingCertificates

logger = logging.getLogger(__name__)

# Development certificates go here, relative to the working directory, when
# `serve` runs without --tls-cert-file and --tls-key-file.
DEVELOPMENT_CERTS_DIR = Path("certs")


def certificate_files(settings: ServeSettings) -> tuple[Path, Path]:
    """Return the certificate and key files, generating development ones if unset."""
    if settings.tls_cert_file and settings.tls_key_file:
        return Path(settings.tls_cert_file), Path(settings.tls_key_file)

    paths = generate_development_certificates(
        DEVELOPMENT_CERTS_DIR, settings.service_name, settings.service_namespace
    )
    logger.info(
        "using development certificates",
        extra={"ca_file": str(paths.ca_cert), "cert_file": str(paths.cert)},
    )
    return paths.cert, paths.key


def serving_certificates(
    settings: ServeSettings, registry: CollectorRegistry
) -> ServingCertificates:
    """Build the serving certificates; raise OSError or ValueError if impossible.

    A file that cannot be used raises ValueError naming its flag, the path,
    the problem and the fix.
    """
    try:
        return _build_serving_certificates(settings, registry)
    except ClientCAFileError as error:
        raise ValueError(
            f"--client-ca-file {error.path}: {error.problem}; pass a PEM file "
            "with the CA certificates that sign kube-apiserver's client "
            "certificate, or leave the flag out to accept any client"
        ) from None
    except CertificateFilesError as error:
        raise ValueError(_certificate_files_message(settings, error)) from None


def _certificate_files_message(
    settings: ServeSettings, error: CertificateFilesError
) -> str:
    if settings.tls_cert_file and settings.tls_key_file:
        return (
            f"--tls-cert-file {error.cert_file} and --tls-key-file "
            f"{error.key_file}: {error.problem}; pass a readable PEM certificate "
            "chain (leaf first) that is valid now and the unencrypted PEM "
            "private key of its first certificate"
        )
    return (
        f"development certificate files {error.cert_file} and {error.key_file}: "
        f"{error.problem}; delete them so that serve creates new ones, or pass "
        "--tls-cert-file and --tls-key-file"
    )


def _build_serving_certificates(
    settings: ServeSettings, registry: CollectorRegistry
) -> ServingCertificates:
    client_ca_file = Path(settings.client_ca_file) if settings.client_ca_file else None
    if settings.self_managed_certs:
        if settings.tls_cert_file or settings.tls_key_file:
            raise ValueError(
                "--self-managed-certs cannot be combined with --tls-cert-file or "
                "--tls-key-file: drop one of them"
            )
        options = SelfManagedOptions(
            service_name=settings.service_name,
            service_namespace=settings.service_namespace,
            ca_secret_name=settings.ca_secret_name,
            mutating_webhook_configuration=settings.webhook_configuration_name,
            validating_webhook_configuration=settings.validating_webhook_configuration_name,
        )
        logger.info(
            "using self-managed certificates",
            extra={
                "ca_secret": f"{settings.service_namespace}/{settings.ca_secret_name}"
            },
        )
        return ServingCertificates.self_managed(
            options,
            new_api_client(settings.kubeconfig),
            client_ca_file,
            registry=registry,
        )

    cert_file, key_file = certificate_files(settings)
    return ServingCertificates.from_files(
        cert_file,
        key_file,
        client_ca_file,
        poll_interval=settings.cert_reload_interval,
        registry=registry,
        service_host=service_host(settings.service_name, settings.service_namespace),
    )
