"""Command-line flags of `serve`, each with an environment variable.

Every flag `--some-flag` can also be set through
`RUNAI_SECRETS_WEBHOOK_SOME_FLAG`; a flag given on the command line wins over
the environment. The parsed values end up in one frozen `ServeSettings`.
"""

from __future__ import annotations

import argparse
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

from webhook.admission.annotations import check_prefix
from webhook.admission.references import (
    MAX_LABEL_CHARS,
    is_dns_label,
    is_dns_subdomain,
)

ENV_PREFIX = "RUNAI_SECRETS_WEBHOOK_"
DEFAULT_ANNOTATION_PREFIX = "runai-secrets-webhook"
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR")

Number = TypeVar("Number", int, float)

# Reviews in flight per process before the excess gets 429. Lookups run 16
# API calls at once, so 64 reviews clear in about four rounds of API latency
# (tens of milliseconds each), far inside kube-apiserver's 10 s default
# timeout. The bodies held stay below 64 x 7 MiB in the worst case and are
# tens of KiB for a typical pod. An estimate, not a measured optimum.
DEFAULT_MAX_IN_FLIGHT = 64

# Bytes of review bodies in flight per process before the excess gets 429.
# The chart's memory limit is 256 MiB and an idle process takes about
# 100 MiB. A burst of 6.5 MiB UPDATE reviews grew the process by 6-7 bytes
# per body byte in flight, for the parsed JSON, the plan and the buffers
# (tests/reliability/test_memory_budget.py). 16 MiB of bodies, plus the one
# review always let in alone, so need up to about 7 x 23 = 160 MiB at the
# peak of a burst of the largest reviews: 260 MiB in the worst case, about
# 200 MiB as measured. That is two or three of the largest (7 MiB) reviews
# at once, and hundreds of typical ones of tens of KiB.
DEFAULT_MAX_IN_FLIGHT_BYTES = 16 * 1024 * 1024


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
    value = _number(text, float, "a number of seconds")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be >= 0")
    return value


def interval_seconds(text: str) -> float:
    """Parse an interval in seconds, which must be greater than 0."""
    value = _number(text, float, "a number of seconds")
    if not value > 0:
        raise argparse.ArgumentTypeError(f"invalid interval {text!r}: must be > 0")
    return value


def positive_int(text: str) -> int:
    """Parse a whole number that must be at least 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be >= 1")
    return value


def worker_count(text: str) -> int:
    """Parse a number of worker processes, at least 1."""
    value = _number(text, int, "a whole number")
    if value < 1:
        raise argparse.ArgumentTypeError(f"invalid worker count {text!r}: must be >= 1")
    return value


def non_negative_int(text: str) -> int:
    """Parse a count that must not be negative."""
    value = _number(text, int, "a whole number")
    if value < 0:
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: must be >= 0")
    return value


def port_number(text: str) -> int:
    """Parse a TCP port number; 0 lets the system pick a free port."""
    value = _number(text, int, "a whole number")
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"invalid port {text!r}: expected 0 to 65535")
    return value


def annotation_prefix(text: str) -> str:
    """Parse the prefix of annotation and label keys, a DNS-1123 subdomain."""
    try:
        check_prefix(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None
    return text


def namespace_name(text: str) -> str:
    """Parse a namespace name, a DNS-1123 label."""
    if not is_dns_label(text):
        raise argparse.ArgumentTypeError(
            f"invalid namespace {text!r}: use at most 63 lower case letters, "
            "digits or '-', starting and ending with a letter or digit, such as runai"
        )
    return text


# The name part of a label key (IsQualifiedName in Kubernetes).
_LABEL_NAME = re.compile(r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]")


def label_key(text: str) -> str:
    """Parse a label key: a name of at most 63 characters, after an optional prefix.

    The prefix, before a `/`, is a DNS-1123 subdomain, as Kubernetes requires.
    """
    prefix, _, name = text.rpartition("/")
    if (
        ("/" in text and not is_dns_subdomain(prefix))
        or len(name) > MAX_LABEL_CHARS
        or not _LABEL_NAME.fullmatch(name)
    ):
        raise argparse.ArgumentTypeError(
            f"invalid label key {text!r}: use an optional DNS-1123 subdomain and "
            "'/', then at most 63 letters, digits, '-', '_' or '.', starting and "
            "ending with a letter or digit, such as runai/queue"
        )
    return text


def _number(text: str, parse: Callable[[str], Number], expected: str) -> Number:
    try:
        value = parse(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"invalid value {text!r}: expected {expected}"
        ) from None
    # float() accepts "nan" and "inf", which no setting can use.
    if value != value or value in (float("inf"), float("-inf")):
        raise argparse.ArgumentTypeError(f"invalid value {text!r}: expected {expected}")
    return value


class EnvironmentValue(str):
    """A flag's text taken from its environment variable, not the command line.

    argparse converts a string default with the flag's type only when the
    flag is absent from the command line, so a bad variable is reported by
    `parse_args` like a bad flag, and a flag given on the command line wins.
    """

    variable: str

    def __new__(cls, text: str, variable: str) -> EnvironmentValue:
        value = super().__new__(cls, text)
        value.variable = variable
        return value


def checked_type(
    parse: Callable[[str], Any], choices: tuple[str, ...] | None
) -> Callable[[str], Any]:
    """Wrap a flag's type so that it checks `choices` and names the variable.

    argparse checks choices only for values given on the command line, not
    for defaults, so the wrapper checks them for environment values too.
    """

    def convert(text: str) -> Any:
        try:
            value = parse(text)
            if choices is not None and value not in choices:
                raise argparse.ArgumentTypeError(
                    f"invalid choice {text!r}: choose one of {', '.join(choices)}"
                )
        except (ValueError, argparse.ArgumentTypeError) as error:
            if isinstance(text, EnvironmentValue):
                raise argparse.ArgumentTypeError(
                    f"environment variable {text.variable}: {_reason(error, text)}"
                ) from None
            raise argparse.ArgumentTypeError(_reason(error, text)) from None
        return value

    convert.__name__ = getattr(parse, "__name__", "value")
    return convert


def _reason(error: Exception, text: str) -> str:
    if isinstance(error, argparse.ArgumentTypeError):
        return str(error)
    return f"invalid value {text!r}"


class _EnvironmentSwitch(argparse.BooleanOptionalAction):
    """A `--flag/--no-flag` switch whose environment value is parsed by argparse.

    Python 3.12 deprecates the `type` argument of BooleanOptionalAction, so
    the type is set after construction. argparse uses it only to convert the
    string default.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.type = checked_type(parse_bool, None)


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
            default = EnvironmentValue(environ[variable], variable)
        default_text = "unset" if self.default in (None, "") else repr(self.default)
        help_text = f"{self.help} Env: {variable}. Default: {default_text}."
        if self.is_switch:
            parser.add_argument(
                self.name,
                dest=self.dest,
                default=default,
                action=_EnvironmentSwitch,
                help=help_text,
            )
            return
        parser.add_argument(
            self.name,
            dest=self.dest,
            default=default,
            type=checked_type(self.type, self.choices),
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
        interval_seconds,
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
        "Name of the webhook's MutatingWebhookConfiguration: the self-managed "
        "mode sets its caBundle, and with --templates an ERROR is logged when its "
        "match conditions would keep objects from the admin template.",
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
        choices=LOG_LEVELS,
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
        annotation_prefix,
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
    Flag(
        "--workers",
        "Number of server processes sharing the port. Each has its own cache; "
        "/metrics adds up the counters of all of them.",
        1,
        worker_count,
        metavar="COUNT",
    ),
    Flag(
        "--max-in-flight",
        "Reviews one server process handles at once; more are answered at once "
        "with HTTP 429 and Retry-After, which kube-apiserver retries. 0: no limit.",
        DEFAULT_MAX_IN_FLIGHT,
        non_negative_int,
        metavar="COUNT",
    ),
    Flag(
        "--max-in-flight-bytes",
        "Bytes of request bodies one server process handles at once, by their "
        "Content-Length; a review that would pass it is answered with HTTP 429 "
        "and Retry-After, unless no other is in flight. Bounds memory, which "
        "grows 6-7 bytes per body byte. 0: no limit.",
        DEFAULT_MAX_IN_FLIGHT_BYTES,
        non_negative_int,
        metavar="BYTES",
    ),
    Flag(
        "--templates",
        'Apply Run:AI templates (ConfigMaps labelled runai/template: "true") to '
        "the objects reviewed, and serve /validate-template.",
        False,
        is_switch=True,
    ),
    Flag(
        "--template-namespace",
        "Namespace of the template ConfigMaps.",
        "runai",
        namespace_name,
        metavar="NAMESPACE",
    ),
    Flag(
        "--cluster-wide-secrets",
        "Accept a reference to a secret missing from the job's namespace when "
        '--source-namespace has it with the label runai/cluster-wide: "true", '
        "and create the copy once the review is allowed (not on dry runs).",
        False,
        is_switch=True,
    ),
    Flag(
        "--cluster-wide-copy-on-admission",
        "With --cluster-wide-secrets, create the copy for an allowed review "
        "that is not a dry run. With --no-cluster-wide-copy-on-admission the "
        "webhook writes nothing and the controller makes every copy.",
        True,
        is_switch=True,
    ),
    Flag(
        "--propagate",
        "Also run the propagation controller, which copies cluster-wide secrets "
        "into every project namespace; its flags are listed below.",
        False,
        is_switch=True,
    ),
    Flag(
        "--source-namespace",
        "Namespace of the cluster-wide secrets.",
        "runai",
        namespace_name,
        metavar="NAMESPACE",
    ),
    Flag(
        "--project-label",
        "Label that marks project namespaces, the only ones that get copies.",
        "runai/queue",
        label_key,
        metavar="LABEL",
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
    workers: int = 1
    max_in_flight: int = DEFAULT_MAX_IN_FLIGHT
    max_in_flight_bytes: int = DEFAULT_MAX_IN_FLIGHT_BYTES
    templates: bool = False
    template_namespace: str = "runai"
    cluster_wide_secrets: bool = False
    cluster_wide_copy_on_admission: bool = True
    propagate: bool = False
    source_namespace: str = "runai"
    project_label: str = "runai/queue"

    def secrets_dir_conflict(self) -> str | None:
        """Return an error when --secrets-dir is set with a flag that needs the API.

        Templates are ConfigMaps, and cluster-wide secrets and the controller
        read namespaces and write copies, all through the Kubernetes API,
        which a directory cannot stand in for.
        """
        if not self.secrets_dir:
            return None
        for flag, on, use in (
            ("--templates", self.templates, "reads template ConfigMaps from"),
            (
                "--cluster-wide-secrets",
                self.cluster_wide_secrets,
                "reads and writes secrets through",
            ),
            ("--propagate", self.propagate, "reads and writes secrets through"),
        ):
            if on:
                return (
                    f"{flag} {use} the Kubernetes API, so it cannot be combined "
                    "with --secrets-dir; drop one of the two flags"
                )
        return None

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
