"""The serving certificates: given files, or development ones made on start.

`serving_certificates` is the one place that decides which certificate
files the server uses. `webhook.tls.serving.ServingCertificates` builds the
SSLContext handed to uvicorn and reloads the files when they change.
"""

from __future__ import annotations

import logging
from pathlib import Path

from webhook.settings import ServeSettings
from webhook.tls.generate import generate_development_certificates
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


def serving_certificates(settings: ServeSettings) -> ServingCertificates:
    """Load the serving pair (TLS 1.2 or later; client certificates if a CA is set).

    Raises OSError or ValueError when the files cannot be served.
    """
    cert_file, key_file = certificate_files(settings)
    client_ca = Path(settings.client_ca_file) if settings.client_ca_file else None
    serving = ServingCertificates.from_files(cert_file, key_file, client_ca)
    logger.info(
        "serving certificate loaded",
        extra={"cert_file": str(cert_file), "client_ca_file": settings.client_ca_file},
    )
    return serving
