"""The `certs generate` subcommand."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from webhook.tls import pki
from webhook.tls.generate import (
    CertificateFilesExistError,
    OutputPathError,
    generate_certificates,
)

ENV_PREFIX = "RUNAI_SECRETS_WEBHOOK_"

# The CA's key is not kept, so the CA signs this one serving certificate and
# needs to live no longer than it. Renewing means a new CA and caBundle.
DEFAULT_CA_DAYS = 365
DEFAULT_LEAF_DAYS = 365


def add_certs_command(
    subparsers: argparse._SubParsersAction[argparse.ArgumentParser],
) -> None:
    """Add `certs generate` to the CLI's subcommands."""
    certs = subparsers.add_parser("certs", help="Create certificates for the webhook.")
    actions = certs.add_subparsers(dest="certs_command", required=True)
    generate = actions.add_parser(
        "generate",
        help="Write a CA and a serving certificate, and print the caBundle.",
        description=(
            "Write ca.crt, tls.crt and tls.key (mode 0600) for the webhook's "
            "Service, then print the base64 CA certificate for the caBundle of "
            "the MutatingWebhookConfiguration. Every flag can also be set with "
            f"the environment variable {ENV_PREFIX}<FLAG_IN_UPPER_SNAKE>, "
            "with a comma-separated list for a repeatable flag."
        ),
    )
    _add_generate_flags(generate)
    generate.set_defaults(run=run_certs)


def _add_generate_flags(generate: argparse.ArgumentParser) -> None:
    _flag(generate, "--service", required=True, help="Service name of the webhook.")
    _flag(generate, "--namespace", required=True, help="Namespace of the Service.")
    _flag(generate, "--out", type=Path, required=True, help="Directory to write to.")
    _flag(
        generate,
        "--dns-name",
        action="append",
        default=[],
        help="Extra DNS name for the serving certificate; repeatable.",
    )

    _flag(
        generate,
        "--ip",
        action="append",
        default=[],
        help="Extra IP address for the serving certificate; repeatable.",
    )

    _flag(
        generate,
        "--ca-days",
        type=int,
        default=DEFAULT_CA_DAYS,
        help="CA validity in days.",
    )
    _flag(
        generate,
        "--leaf-days",
        type=int,
        default=DEFAULT_LEAF_DAYS,
        help="Serving certificate validity in days.",
    )
    _flag(
        generate,
        "--key-type",
        choices=pki.KEY_TYPES,
        default="ecdsa",
        help="ecdsa (P-256) or rsa (2048 bits).",
    )

    generate.add_argument(
        "--force",
        action="store_true",
        default=_env_bool("--force"),
        help="Overwrite existing files (a new CA needs a new caBundle).",
    )


def run_certs(args: argparse.Namespace) -> int:
    """Run `certs generate`; print the caBundle and return the exit status."""
    try:
        paths = generate_certificates(
            args.out,
            args.service,
            args.namespace,
            dns_names=args.dns_name,
            ip_addresses=args.ip,
            ca_days=args.ca_days,
            leaf_days=args.leaf_days,
            key_type=args.key_type,
            force=args.force,
        )
    except OutputPathError as error:
        print(
            f"certs generate: --out {error.path}: {error.problem}; pass a directory "
            "path, which is created if it does not exist",
            file=sys.stderr,
        )
        return 1
    except CertificateFilesExistError as error:
        print(f"certs generate: {error}", file=sys.stderr)
        return 1
    except ValueError as error:
        # An invalid name, address or number of days is a usage error, so it
        # exits with status 2, as argparse's own errors do.
        print(f"certs generate: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(
            f"certs generate: --out {args.out}: cannot write the files: "
            f"{error.strerror} ({error.filename}); pass a directory that this "
            "user can create or write to",
            file=sys.stderr,
        )
        return 1

    for path in paths.all():
        print(f"wrote {path}", file=sys.stderr)
    print(pki.ca_bundle_base64(paths.ca_cert.read_bytes()))
    return 0


def _flag(parser: argparse.ArgumentParser, flag: str, **kwargs: object) -> None:
    """Add flag, taking its default from the environment variable if set."""
    value = os.environ.get(_env_name(flag))
    if value is not None:
        if kwargs.get("action") == "append":
            kwargs["default"] = [part for part in value.split(",") if part]
        else:
            kwargs["default"] = value
        kwargs["required"] = False
    parser.add_argument(flag, **kwargs)  # type: ignore[arg-type]


def _env_name(flag: str) -> str:
    return ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()


def _env_bool(flag: str) -> bool:
    return os.environ.get(_env_name(flag), "").lower() in {"1", "true", "yes"}
