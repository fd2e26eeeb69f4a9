"""The serving TLS context: given certificate files, or development ones.

`server_ssl_context` is the one place that builds the context handed to
uvicorn, so that reloading certificates can be added here alone.
"""

from __future__ import annotations

import logging
import ssl
from pathlib import Path

from webhook.settings import ServeSettings

logger = logging.getLogger(__name__)

# Development certificates go here, relative to the working directory, when
# `serve` runs without --tls-cert-file and --tls-key-file.
DEVELOPMENT_CERTS_DIR = Path("certs")


def certificate_files(settings: ServeSettings) -> tuple[Path, Path]:
    """Return the certificate and key files, generating development ones if unset."""
    if settings.tls_cert_file and settings.tls_key_file:
        return Path(settings.tls_cert_file), Path(settings.tls_key_file)

    from webhook.tls.generate import generate_development_certificates

    paths = generate_development_certificates(
        DEVELOPMENT_CERTS_DIR, settings.service_name, settings.service_namespace
    )
    logger.info(
        "using development certificates",
        extra={"ca_file": str(paths.ca_cert), "cert_file": str(paths.cert)},
    )
    return paths.cert, paths.key


def server_ssl_context(settings: ServeSettings) -> ssl.SSLContext:
    """Build the TLS context: TLS 1.2 or later, client certificates if a CA is set."""
    cert_file, key_file = certificate_files(settings)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    # kube-apiserver speaks TLS 1.2 and 1.3; older versions have known attacks.
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    context.load_cert_chain(cert_file, key_file)
    if settings.client_ca_file:
        context.load_verify_locations(cafile=settings.client_ca_file)
        context.verify_mode = ssl.CERT_REQUIRED
    logger.info(
        "serving certificate loaded",
        extra={"cert_file": str(cert_file), "client_ca_file": settings.client_ca_file},
    )
    return context
