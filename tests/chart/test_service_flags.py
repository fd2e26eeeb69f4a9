"""The flags the chart passes to the service are flags the service accepts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import RELEASE, HelmError, find, render
from webhook.admission.reviews import MAX_REVIEW_BYTES
from webhook.cli import build_parser
from webhook.settings import (
    DEFAULT_MAX_IN_FLIGHT,
    DEFAULT_MAX_IN_FLIGHT_BYTES,
    env_name,
)

# Every optional part on, in each certificate mode, so every flag appears.
ALL_PARTS: dict[str, Any] = {
    "workers": 2,
    "templates": {"enabled": True},
    # copyOnAdmission off adds its --no- flag to the arguments.
    "propagation": {"enabled": True, "copyOnAdmission": False},
    "workloadKinds": [
        {
            "group": "kubeflow.org",
            "version": "v1",
            "kind": "PyTorchJob",
            "resource": "pytorchjobs",
            "podSpecs": ["/spec/pytorchReplicaSpecs/*/template/spec"],
        }
    ],
}
MODES: dict[str, dict[str, Any]] = {
    "selfManaged": {"mode": "selfManaged"},
    "certManager": {"mode": "certManager"},
    "secret": {"mode": "secret", "secret": {"name": "tls", "caBundle": "Y2EK"}},
}

# Flags the chart passes that `serve` does not accept yet (none at present).
# A pod would exit with a usage error until they exist.
# test_pending_flags_still_missing fails as soon as one lands, so that it is
# taken off this set.
PENDING_FLAGS: set[str] = set()

MIB = 1024 * 1024


# Subcommands the chart runs that the CLI does not have yet.
# test_pending_subcommands_still_missing fails once one lands, so that its
# flags are then checked like those of serve.
PENDING_SUBCOMMANDS: set[str] = set()


def subcommands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    (subparsers,) = [
        action
        for action in parser._actions
        if isinstance(action, argparse._SubParsersAction)
    ]
    return dict(subparsers.choices)


def flags_of(subcommand: str) -> set[str]:
    parser = subcommands()[subcommand]
    return {option for action in parser._actions for option in action.option_strings}


def serve_flags() -> set[str]:
    return flags_of("serve")


def chart_args(helm: Path, mode: str) -> list[str]:
    values = {**ALL_PARTS, "certificates": MODES[mode]}
    deployment = find(render(helm, values), "Deployment", RELEASE)
    args: list[str] = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    return args


@pytest.mark.parametrize("mode", MODES)
def test_chart_flags_known_to_serve(helm: Path, mode: str) -> None:
    args = chart_args(helm, mode)
    assert args[0] == "serve"
    passed = {arg.partition("=")[0] for arg in args[1:]}
    unknown = passed - serve_flags() - PENDING_FLAGS
    assert unknown == set()


@pytest.mark.parametrize("mode", MODES)
def test_chart_args_parse(helm: Path, mode: str) -> None:
    known = serve_flags()
    args = [
        arg
        for arg in chart_args(helm, mode)
        if arg.partition("=")[0] in known | {"serve"}
    ]
    parsed = build_parser().parse_args(args)
    assert parsed.port == 8443
    assert parsed.annotation_prefix == "runai-secrets-webhook"
    assert parsed.service_name == RELEASE
    if mode != "selfManaged":
        assert parsed.tls_cert_file == "/etc/runai-secrets-webhook/tls/tls.crt"
        assert parsed.tls_key_file == "/etc/runai-secrets-webhook/tls/tls.key"


@pytest.mark.parametrize("mode", MODES)
def test_extra_env_for_passed_flag_fails(helm: Path, mode: str) -> None:
    # The flag would win over the variable, so the variable would do nothing.
    values: dict[str, Any] = {"certificates": MODES[mode]}
    deployment = find(render(helm, values), "Deployment", RELEASE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    flags = {arg.partition("=")[0] for arg in args[1:]}
    assert "--log-level" in flags

    for flag in sorted(flags):
        variable = env_name(flag)
        extra_env = [{"name": variable, "value": "1"}]
        with pytest.raises(HelmError, match=f"extraEnv sets {variable}, but"):
            render(helm, {**values, "extraEnv": extra_env})


def test_extra_env_for_other_flag_renders(helm: Path) -> None:
    extra_env = [
        {"name": "RUNAI_SECRETS_WEBHOOK_CERT_RELOAD_INTERVAL", "value": "30"},
        {"name": "HTTPS_PROXY", "value": "http://proxy.example:3128"},
    ]

    deployment = find(render(helm, {"extraEnv": extra_env}), "Deployment", RELEASE)

    assert deployment["spec"]["template"]["spec"]["containers"][0]["env"] == extra_env


@pytest.mark.parametrize("mode", MODES)
def test_default_args_parse_fully(helm: Path, mode: str) -> None:
    # With the optional parts off, the chart passes no pending flag, so a
    # default install starts with the service as it is today.
    values = {"certificates": MODES[mode]}
    deployment = find(render(helm, values), "Deployment", RELEASE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = build_parser().parse_args(args)
    assert parsed.command == "serve"


def test_pending_flags_still_missing() -> None:
    assert PENDING_FLAGS & serve_flags() == set()


def test_pending_subcommands_still_missing() -> None:
    assert PENDING_SUBCOMMANDS & set(subcommands()) == set()


def test_propagation_flags_known(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    deployment = find(manifests, "Deployment", f"{RELEASE}-propagation")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[0] == "propagate"
    if "propagate" in PENDING_SUBCOMMANDS:
        pytest.skip("the propagate subcommand is not part of the CLI yet")
    passed = {arg.partition("=")[0] for arg in args[1:]}
    assert passed - flags_of("propagate") == set()


def test_propagation_turns_on_resolver(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    deployment = find(manifests, "Deployment", RELEASE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = build_parser().parse_args(args)

    assert parsed.cluster_wide_secrets is True
    assert parsed.source_namespace == "runai"
    assert parsed.project_label == "runai/queue"
    # The controller has its own Deployment; the webhook pods do not run it.
    assert parsed.propagate is False


def test_default_install_resolver_off(helm: Path) -> None:
    deployment = find(render(helm, {}), "Deployment", RELEASE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    parsed = build_parser().parse_args(args)

    assert parsed.cluster_wide_secrets is False
    assert parsed.propagate is False


def test_default_limits_match_the_service_and_memory(helm: Path) -> None:
    deployment = find(render(helm), "Deployment", RELEASE)
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    args = container["args"]

    assert f"--max-in-flight={DEFAULT_MAX_IN_FLIGHT}" in args
    assert f"--max-in-flight-bytes={DEFAULT_MAX_IN_FLIGHT_BYTES}" in args
    # The budget is derived from this limit in webhook/settings.py: about
    # 100 MiB idle plus 7 bytes per body byte in flight, with room for one
    # largest review let in alone.
    assert container["resources"]["limits"]["memory"] == "256Mi"
    worst_mib = 100 + 7 * (DEFAULT_MAX_IN_FLIGHT_BYTES + MAX_REVIEW_BYTES) / MIB
    assert worst_mib < 256 * 1.05
