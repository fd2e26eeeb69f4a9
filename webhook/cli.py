"""The `runai-secrets-webhook` command line.

Each subcommand is a function that adds its parser to the subparsers and sets
`run` on it. `SUBCOMMANDS` lists these functions, so a new subcommand takes
one line.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from typing import TypeAlias

from webhook import __version__
from webhook.server import runner
from webhook.settings import ServeSettings, add_serve_flags
from webhook.tls.command import add_certs_command

# A string, because argparse._SubParsersAction is not subscriptable at run time.
Subparsers: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"


def add_serve(subparsers: Subparsers) -> None:
    """Add `serve`: run the HTTPS admission webhook."""
    parser = subparsers.add_parser(
        "serve",
        help="run the HTTPS admission webhook",
        description="Serve POST /mutate, /healthz, /readyz and /metrics over HTTPS.",
    )
    add_serve_flags(parser)
    parser.set_defaults(run=run_serve)


def run_serve(args: argparse.Namespace) -> int:
    """Validate the `serve` settings and run the service until it stops."""
    settings = ServeSettings.from_namespace(args)
    if (settings.tls_cert_file is None) != (settings.tls_key_file is None):
        print(
            "error: --tls-cert-file and --tls-key-file must be given together",
            file=sys.stderr,
        )
        return 2
    return runner.run(settings)


SUBCOMMANDS: list[Callable[[Subparsers], object]] = [
    add_serve,
    add_certs_command,
]


def build_parser() -> argparse.ArgumentParser:
    """Build the parser with every registered subcommand."""
    parser = argparse.ArgumentParser(
        prog="runai-secrets-webhook",
        description="Admission webhook that turns SECRET:<secret>,<key> env "
        "values into checked secretKeyRef env vars.",
    )
    parser.add_argument("--version", action="version", version=__version__)
    subparsers = parser.add_subparsers(dest="command", required=True)
    for add in SUBCOMMANDS:
        add(subparsers)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Parse `argv` and run the chosen subcommand; return the exit status."""
    args = build_parser().parse_args(argv)
    # `certs` sets `handler` where the other subcommands set `run`.
    command = getattr(args, "run", None) or args.handler
    status: int = command(args)
    return status
