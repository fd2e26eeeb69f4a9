"""Availability defaults: replicas, disruption budget, spread, probes, shutdown."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chart.helm import RELEASE, find, render
from webhook.server.runner import GRACEFUL_SHUTDOWN_SECONDS


def webhook_pod(helm: Path, values: dict[str, Any] | None = None) -> dict[str, Any]:
    deployment = find(render(helm, values), "Deployment", RELEASE)
    pod: dict[str, Any] = deployment["spec"]["template"]
    return pod


def test_two_replicas_and_surge(helm: Path) -> None:
    deployment = find(render(helm), "Deployment", RELEASE)
    assert deployment["spec"]["replicas"] == 2
    assert deployment["spec"]["strategy"]["rollingUpdate"] == {
        "maxSurge": 1,
        "maxUnavailable": 0,
    }


def test_disruption_budget(helm: Path) -> None:
    manifests = render(helm)
    budget = find(manifests, "PodDisruptionBudget")
    deployment = find(manifests, "Deployment", RELEASE)
    assert budget["spec"]["minAvailable"] == 1
    assert budget["spec"]["selector"] == deployment["spec"]["selector"]


def test_spread_across_nodes(helm: Path) -> None:
    pod = webhook_pod(helm)
    (constraint,) = pod["spec"]["topologySpreadConstraints"]
    assert constraint["topologyKey"] == "kubernetes.io/hostname"
    assert constraint["maxSkew"] == 1
    assert constraint["whenUnsatisfiable"] == "DoNotSchedule"
    for key, value in constraint["labelSelector"]["matchLabels"].items():
        assert pod["metadata"]["labels"][key] == value


def test_probes_over_https(helm: Path) -> None:
    container = webhook_pod(helm)["spec"]["containers"][0]
    paths = {}
    for probe in ("startupProbe", "livenessProbe", "readinessProbe"):
        action = container[probe]["httpGet"]
        assert action["scheme"] == "HTTPS"
        assert action["port"] == "https"
        paths[probe] = action["path"]
    assert paths == {
        "startupProbe": "/healthz",
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
    }


def test_service_port_mapping(helm: Path) -> None:
    manifests = render(helm)
    service = find(manifests, "Service")
    (port,) = service["spec"]["ports"]
    container = find(manifests, "Deployment", RELEASE)["spec"]["template"]["spec"][
        "containers"
    ][0]
    assert port["port"] == 443
    assert port["targetPort"] == "https"
    assert container["ports"] == [
        {"name": "https", "containerPort": 8443, "protocol": "TCP"}
    ]
    assert "--port=8443" in container["args"]


def test_grace_longer_than_drain(helm: Path) -> None:
    pod = webhook_pod(helm)
    container = pod["spec"]["containers"][0]
    delay = container["lifecycle"]["preStop"]["sleep"]["seconds"]
    grace = pod["spec"]["terminationGracePeriodSeconds"]
    assert delay == 10
    # The kubelet kills the pod only after the service's own graceful stop.
    assert grace > delay + GRACEFUL_SHUTDOWN_SECONDS


def test_pre_stop_on_old_clusters(helm: Path) -> None:
    deployment = find(render(helm, kube_version="1.29.0"), "Deployment", RELEASE)
    pre_stop = deployment["spec"]["template"]["spec"]["containers"][0]["lifecycle"][
        "preStop"
    ]
    assert pre_stop == {"exec": {"command": ["sleep", "10"]}}


def test_resources_set(helm: Path) -> None:
    resources = webhook_pod(helm)["spec"]["containers"][0]["resources"]
    assert resources["requests"]["cpu"]
    assert resources["requests"]["memory"]
    assert resources["limits"]["memory"]
    # No CPU limit: throttling would add latency to every admission call.
    assert "cpu" not in resources["limits"]
