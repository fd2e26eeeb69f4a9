"""The `propagate` subcommand and the controller flags `serve --propagate` shares.

Every flag can also be set with the environment variable
`RUNAI_SECRETS_WEBHOOK_<FLAG_IN_UPPER_SNAKE>`; a flag on the command line
wins over the variable.
"""

from __future__ import annotations

import argparse
import logging
import os
import signal
import socket
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import Any

from kubernetes import config as kube_config
from kubernetes.client import ApiClient, Configuration
from kubernetes.config.config_exception import ConfigException
from prometheus_client import start_http_server

from webhook.kube.config import KubeconfigError, load_kubeconfig_file
from webhook.propagation.controller import Controller
from webhook.propagation.settings import (
    LeaseTiming,
    Marks,
    PropagationSettings,
    WatchTiming,
)
from webhook.settings import (
    LOG_LEVELS,
    EnvironmentValue,
    annotation_prefix,
    checked_type,
    interval_seconds,
    label_key,
    namespace_name,
    port_number,
    positive_int,
)

logger = logging.getLogger(__name__)

ENV_PREFIX = "RUNAI_SECRETS_WEBHOOK_"
SERVICE_ACCOUNT_NAMESPACE = Path(
    "/var/run/secrets/kubernetes.io/serviceaccount/namespace"
)


# Attributes every LogRecord has; anything else came in through `extra`.
_RECORD_ATTRIBUTES = frozenset(vars(logging.makeLogRecord({}))) | {"message", "asctime"}


class FieldsFormatter(logging.Formatter):
    """Text log lines with the `extra` fields appended as key=value pairs."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s %(message)s")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = {
            key: value
            for key, value in vars(record).items()
            if key not in _RECORD_ATTRIBUTES
        }
        pairs = " ".join(f"{key}={value!r}" for key, value in sorted(fields.items()))
        return f"{line} {pairs}" if pairs else line


def env_default(flag: str, default: Any = None) -> Any:
    """Return the value of the flag's environment variable, or `default`."""
    name = ENV_PREFIX + flag.lstrip("-").replace("-", "_").upper()
    if name in os.environ:
        return EnvironmentValue(os.environ[name], name)
    return default


def _add(
    parser: argparse._ActionsContainer, flag: str, default: Any, **kwargs: Any
) -> None:
    if "type" in kwargs:
        kwargs["type"] = checked_type(kwargs["type"], kwargs.get("choices"))
    parser.add_argument(flag, default=env_default(flag, default), **kwargs)


def _csv(value: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in value.split(",") if item.strip())


def add_shared_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the flags `propagate` has in common with `serve`."""
    _add(
        parser, "--kubeconfig", None, help="kubeconfig file; default: in-cluster config"
    )
    _add(
        parser,
        "--source-namespace",
        "runai",
        type=namespace_name,
        help="namespace of the cluster-wide secrets",
    )
    _add(
        parser,
        "--project-label",
        "runai/queue",
        type=label_key,
        help="label that marks project namespaces",
    )
    _add(
        parser,
        "--annotation-prefix",
        "runai-secrets-webhook",
        type=annotation_prefix,
        help="prefix of the labels and annotations this program reads and writes",
    )
    _add(
        parser,
        "--log-level",
        "INFO",
        type=str.upper,
        choices=LOG_LEVELS,
        help="lowest log level written: DEBUG, INFO, WARNING or ERROR",
    )


# The controller's own flags: (flag, default, type, help text).
CONTROLLER_FLAGS: tuple[tuple[str, Any, Callable[[str], Any], str], ...] = (
    ("--copy-labels", "", _csv,
     "comma-separated source label keys copied to projects; 'prefix/*' allowed"),
    ("--copy-annotations", "", _csv,
     "comma-separated source annotation keys copied to projects"),
    ("--resync-period", 300.0, interval_seconds,
     "seconds between full resyncs of every source"),
    ("--conflict-retry", 30.0, interval_seconds,
     "seconds between checks of a project whose secret blocks a copy"),
    ("--lease-name", "runai-secrets-webhook-propagation", str,
     "name of the coordination.k8s.io Lease that elects the leader"),
    ("--lease-namespace", None, str,
     "namespace of the Lease; default: the pod's own namespace"),
    ("--lease-duration", 15.0, interval_seconds,
     "seconds a standby waits for an unrenewed Lease before taking over"),
    ("--renew-deadline", 10.0, interval_seconds,
     "seconds after the last renew at which the leader stops writing"),
    ("--retry-period", 2.0, interval_seconds,
     "seconds between attempts to acquire or renew the Lease"),
    ("--identity", None, str,
     "holder identity in the Lease; default: host name and a random suffix"),
    ("--watch-timeout", 300, positive_int,
     "server-side timeoutSeconds of each watch request"),
    ("--watch-idle-timeout", 90.0, interval_seconds,
     "seconds without an event or bookmark after which a watch is restarted"),
    ("--request-timeout", 10.0, interval_seconds,
     "client-side timeout of every other API request, in seconds"),
)  # fmt: skip


def add_controller_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the controller's own flags, for `propagate` and `serve --propagate`."""
    group = parser.add_argument_group("propagation controller")
    for flag, default, kind, text in CONTROLLER_FLAGS:
        _add(group, flag, default, type=kind, help=text)


def add_propagate_command(subparsers: Any) -> argparse.ArgumentParser:
    """Add `propagate`, which runs the controller alone, to a subparsers object."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "propagate",
        help="copy cluster-wide secrets from the source namespace to every project",
        description=__doc__,
    )
    add_shared_arguments(parser)
    add_controller_arguments(parser)
    _add(parser, "--metrics-host", "0.0.0.0", help="address of the metrics listener")  # noqa: S104
    _add(
        parser,
        "--metrics-port",
        9090,
        type=port_number,
        help="port of the Prometheus metrics listener; 0 turns it off",
    )
    parser.set_defaults(run=run_propagate)
    return parser


def settings_from_args(args: argparse.Namespace) -> PropagationSettings:
    lease = LeaseTiming(args.lease_duration, args.renew_deadline, args.retry_period)
    lease.validate()
    watch = WatchTiming(
        server_timeout=args.watch_timeout,
        client_margin=max(5.0, args.watch_timeout * 0.05),
        idle_timeout=args.watch_idle_timeout,
    )
    return PropagationSettings(
        source_namespace=args.source_namespace,
        project_label=args.project_label,
        marks=Marks(args.annotation_prefix),
        copy_labels=tuple(args.copy_labels),
        copy_annotations=tuple(args.copy_annotations),
        resync_period=args.resync_period,
        conflict_retry=args.conflict_retry,
        request_timeout=args.request_timeout,
        watch=watch,
        lease=lease,
    )


def load_client(kubeconfig: str | None) -> ApiClient:
    """Return an API client from a kubeconfig file, or from the in-cluster config.

    Without a file this never reads ~/.kube/config or $KUBECONFIG, so a
    forgotten flag cannot aim the controller at another cluster. Raises
    `SystemExit` with the fix when the file or the in-cluster config is not
    usable.
    """
    configuration = Configuration()
    if kubeconfig:
        try:
            load_kubeconfig_file(
                kubeconfig, configuration, "pass a readable kubeconfig as --kubeconfig"
            )
        except KubeconfigError as error:
            raise SystemExit(str(error)) from None
    else:
        try:
            kube_config.load_incluster_config(  # type: ignore[no-untyped-call]
                client_configuration=configuration
            )
        except ConfigException as error:
            raise SystemExit(
                f"no in-cluster config ({error}); run in a pod with a service "
                "account, or pass --kubeconfig FILE"
            ) from None
    # urllib3 would retry each failed call three times and log a warning
    # for each. The controller backs off and retries on its own instead.
    configuration.retries = 0
    return ApiClient(configuration)


def _lease_namespace(args: argparse.Namespace) -> str:
    if args.lease_namespace:
        return str(args.lease_namespace)
    try:
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip()
    except OSError as error:
        raise SystemExit(
            f"--lease-namespace is not set and {SERVICE_ACCOUNT_NAMESPACE} cannot be "
            f"read ({error.strerror}); pass --lease-namespace NAMESPACE"
        ) from error


def controller_from_args(args: argparse.Namespace, client: ApiClient) -> Controller:
    """Build the controller that `serve --propagate` runs beside the webhook."""
    identity = args.identity or f"{socket.gethostname()}_{uuid.uuid4().hex[:8]}"
    return Controller(
        client,
        settings_from_args(args),
        lease_namespace=_lease_namespace(args),
        lease_name=args.lease_name,
        identity=identity,
    )


def run_propagate(args: argparse.Namespace) -> int:
    """Run the controller until SIGTERM or SIGINT, then release the Lease.

    Returns 1 when a controller thread failed, so the pod is restarted.
    """
    if not logging.getLogger().handlers:
        handler = logging.StreamHandler()
        handler.setFormatter(FieldsFormatter())
        logging.basicConfig(level=str(args.log_level).upper(), handlers=[handler])
    try:
        controller = controller_from_args(args, load_client(args.kubeconfig))
    except ValueError as error:
        raise SystemExit(f"invalid propagation settings: {error}") from error
    if args.metrics_port:
        start_http_server(args.metrics_port, args.metrics_host)
        logger.info("metrics listening", extra={"port": args.metrics_port})

    stop = threading.Event()

    def request_stop(signum: int, frame: FrameType | None) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, request_stop)
    signal.signal(signal.SIGINT, request_stop)
    controller.run(stop)
    if controller.failed.is_set():
        logger.error("propagation controller failed; exiting so it is restarted")
        return 1
    return 0
