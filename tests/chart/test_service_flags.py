"""The flags the chart passes to the service are flags the service accepts."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from tests.chart.helm import RELEASE, find, render
from webhook.cli import build_parser

# Every optional part on, in each certificate mode, so every flag appears.
ALL_PARTS: dict[str, Any] = {
    "templates": {"enabled": True},
    "propagation": {"enabled": True},
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

# NOTE: flags of the team's command-line contract that `serve` does not
# accept yet. The chart already passes them; a pod would exit with a usage
# error until they exist. test_pending_flags_still_missing fails as soon as
# one lands, so that it is taken off this list.
PENDING_FLAGS = {
    "--workers",
    "--project-label",
    "--templates",
    "--template-namespace",
    "--source-namespace",
}


# NOTE: the propagation controller's subcommand is not part of the CLI yet.
# test_pending_subcommands_still_missing fails once it is, so that its
# flags are then checked like those of serve.
PENDING_SUBCOMMANDS = {"propagate"}


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
