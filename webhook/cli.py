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
from webhook.kube.config import new_api_client
from webhook.propagation.beside import serve_with_controller
from webhook.propagation.command import (
    add_controller_arguments,
    add_propagate_command,
    controller_from_args,
)
from webhook.server import runner
from webhook.server.logs import configure_logging
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
    # Read only with --propagate; argparse fails here if a name clashes.
    add_controller_arguments(parser)
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
    conflict = settings.secrets_dir_conflict()
    if conflict:
        print(f"error: {conflict}", file=sys.stderr)
        return 2
    if not settings.propagate:
        return runner.run(settings)
    if settings.workers > 1:
        # The controller runs in this parent process, which is not one of the
        # workers that serve /metrics, so its metrics would never be exported.
        print(
            "error: --propagate cannot be combined with --workers above 1, "
            "because /metrics is served by the worker processes and the "
            "controller's metrics would be lost; run the controller on its own "
            "with `runai-secrets-webhook propagate` (as the Helm chart does) "
            "or drop --workers",
            file=sys.stderr,
        )
        return 2

    configure_logging(settings.log_format, settings.log_level)
    try:
        controller = controller_from_args(args, new_api_client(settings.kubeconfig))
    except ValueError as error:
        print(f"error: invalid propagation settings: {error}", file=sys.stderr)
        return 2
    return serve_with_controller(controller, lambda: runner.run(settings))


SUBCOMMANDS: list[Callable[[Subparsers], object]] = [
    add_serve,
    add_certs_command,
    add_propagate_command,
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
    status: int = args.run(args)
    return status
