"""Command-line flags of `serve`, each with an environment variable.

Every flag `--some-flag` can also be set through
`RUNAI_SECRETS_WEBHOOK_SOME_FLAG`; a flag given on the command line wins over
the environment. The parsed values end up in one frozen `ServeSettings`.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ENV_PREFIX = "RUNAI_SECRETS_WEBHOOK_"
DEFAULT_ANNOTATION_PREFIX = "runai-secrets-webhook"

# Mount path of a pod's service account token. The file together with
# KUBERNETES_SERVICE_HOST means the process runs inside a cluster.
SERVICE_ACCOUNT_TOKEN = Path("/var/run/secrets/kubernetes.io/serviceaccount/token")


def env_name(flag: str) -> str:
    """Return the environment variable for a flag such as `--cache-ttl`."""
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def parse_bool(text: str) -> bool:
    """Parse a boolean flag value given in an environment variable."""
    lowered = text.strip().lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off", ""}:
        return False
    raise argparse.ArgumentTypeError(
        f"invalid boolean {text!r}: expected true or false"
    )


def positive_float(text: str) -> float:
    """Parse a number of seconds that must not be negative."""
    value = float(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be >= 0")
    return value


def port_number(text: str) -> int:
    """Parse a TCP port number."""
    value = int(text)
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0 to 65535")
    return value


@dataclass(frozen=True)
class Flag:
    """One command-line flag with its environment variable and default."""

    name: str
    help: str
    default: Any = None
    type: Callable[[str], Any] = str
    choices: tuple[str, ...] | None = None
    metavar: str | None = None
    is_switch: bool = False

    @property
    def dest(self) -> str:
        return self.name.lstrip("-").replace("-", "_")

    def add_to(
        self, parser: argparse.ArgumentParser, environ: Mapping[str, str]
    ) -> None:
        """Add the flag to `parser`, taking its default from `environ` if set."""
        variable = env_name(self.name)
        default = self.default
        if variable in environ:
            raw = environ[variable]
            default = parse_bool(raw) if self.is_switch else self.type(raw)
        shown = "unset" if self.default in (None, "") else repr(self.default)
        help_text = f"{self.help} Env: {variable}. Default: {shown}."
        if self.is_switch:
            parser.add_argument(
                self.name,
                dest=self.dest,
                default=default,
                action=argparse.BooleanOptionalAction,
                help=help_text,
            )
            return
        parser.add_argument(
            self.name,
            dest=self.dest,
            default=default,
            type=self.type,
            choices=self.choices,
            metavar=self.metavar,
            help=help_text,
        )


SERVE_FLAGS: tuple[Flag, ...] = (
    Flag("--host", "Address to listen on.", "0.0.0.0", metavar="ADDRESS"),  # noqa: S104
    Flag("--port", "HTTPS port to listen on.", 8443, port_number, metavar="PORT"),
    Flag(
        "--tls-cert-file",
        "PEM file with the serving certificate chain. Without it and "
        "--tls-key-file, development certificates are generated into certs/.",
        metavar="FILE",
    ),
    Flag("--tls-key-file", "PEM file with the serving private key.", metavar="FILE"),
    Flag(
        "--client-ca-file",
        "PEM file of CAs whose client certificates are required (mutual TLS).",
        metavar="FILE",
    ),
    Flag(
        "--cert-reload-interval",
        "Seconds between reads of --tls-cert-file and --tls-key-file; a new "
        "valid pair is served to new connections without a restart.",
        5.0,
        positive_float,
        metavar="SECONDS",
    ),
    Flag(
        "--self-managed-certs",
        "Keep a CA in the Secret --ca-secret-name, serve a certificate it "
        "signs, rotate both, and keep the caBundle of the webhook "
        "configurations current. Excludes --tls-cert-file.",
        False,
        is_switch=True,
    ),
    Flag(
        "--ca-secret-name",
        "Secret in --service-namespace that holds the self-managed CA.",
        "runai-secrets-webhook-ca",
        metavar="NAME",
    ),
    Flag(
        "--webhook-configuration-name",
        "MutatingWebhookConfiguration whose caBundle the self-managed mode sets.",
        "runai-secrets-webhook",
        metavar="NAME",
    ),
    Flag(
        "--validating-webhook-configuration-name",
        "ValidatingWebhookConfiguration whose caBundle the self-managed mode "
        "also sets; unset: none.",
        metavar="NAME",
    ),
    Flag(
        "--service-name",
        "Name of the Service in front of the webhook; development certificates "
        "are issued for <service-name>.<service-namespace>.svc.",
        "runai-secrets-webhook",
        metavar="NAME",
    ),
    Flag(
        "--service-namespace",
        "Namespace of that Service.",
        "runai-secrets-webhook",
        metavar="NAMESPACE",
    ),
    Flag(
        "--kubeconfig",
        "Kubeconfig file for the Kubernetes API. Unset: in-cluster config when "
        "running in a pod, else $KUBECONFIG or ~/.kube/config.",
        metavar="FILE",
    ),
    Flag(
        "--secrets-dir",
        "Read Secret manifests (YAML) from this directory instead of a cluster; "
        "only key names are kept.",
        metavar="DIR",
    ),
    Flag("--log-format", "Log line format.", "json", choices=("json", "text")),
    Flag(
        "--log-level",
        "Lowest log level written.",
        "INFO",
        str.upper,
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
    ),
    Flag(
        "--on-missing",
        "What to do when a referenced secret or key does not exist: deny the "
        "request, or convert the reference anyway and return a warning.",
        "deny",
        choices=("deny", "warn"),
    ),
    Flag(
        "--annotation-prefix",
        "Prefix of every annotation and label the webhook reads or writes.",
        DEFAULT_ANNOTATION_PREFIX,
        metavar="PREFIX",
    ),
    Flag(
        "--workload-kinds-file",
        "YAML file listing further workload kinds (group, version, kind and "
        "the JSON pointers of their pod specs) to look for references in.",
        metavar="FILE",
    ),
    Flag(
        "--cache-ttl",
        "Seconds a secret's key names found in the API are reused without a "
        "new call (0 disables the cache). Missing secrets or keys are never cached.",
        5.0,
        positive_float,
        metavar="SECONDS",
    ),
)


@dataclass(frozen=True)
class ServeSettings:
    """Parsed settings of `serve`."""

    host: str = "0.0.0.0"  # noqa: S104
    port: int = 8443
    tls_cert_file: str | None = None
    tls_key_file: str | None = None
    client_ca_file: str | None = None
    cert_reload_interval: float = 5.0
    self_managed_certs: bool = False
    ca_secret_name: str = "runai-secrets-webhook-ca"  # noqa: S105 - a name, not a secret
    webhook_configuration_name: str = "runai-secrets-webhook"
    validating_webhook_configuration_name: str | None = None
    service_name: str = "runai-secrets-webhook"
    service_namespace: str = "runai-secrets-webhook"
    kubeconfig: str | None = None
    secrets_dir: str | None = None
    log_format: str = "json"
    log_level: str = "INFO"
    on_missing: str = "deny"
    annotation_prefix: str = DEFAULT_ANNOTATION_PREFIX
    workload_kinds_file: str | None = None
    cache_ttl: float = 5.0

    @classmethod
    def from_namespace(cls, args: argparse.Namespace) -> ServeSettings:
        """Build settings from parsed arguments, ignoring unknown attributes."""
        known = {name for name in cls.__dataclass_fields__}
        return cls(**{k: v for k, v in vars(args).items() if k in known})


def add_serve_flags(
    parser: argparse.ArgumentParser, environ: Mapping[str, str] | None = None
) -> None:
    """Add every `serve` flag to `parser`."""
    source = os.environ if environ is None else environ
    for flag in SERVE_FLAGS:
        flag.add_to(parser, source)
