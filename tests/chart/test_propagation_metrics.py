"""The controller's metrics port is reachable by Prometheus, and only that port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.chart.helm import NAMESPACE, RELEASE, find, render

PROPAGATION = f"{RELEASE}-propagation"
COMPONENT = "app.kubernetes.io/component"
ALL_ON: dict[str, Any] = {
    "propagation": {"enabled": True},
    "serviceMonitor": {"enabled": True},
    "networkPolicy": {"enabled": True},
}


def kinds_named(manifests: list[dict[str, Any]], name: str) -> set[str]:
    return {doc["kind"] for doc in manifests if doc["metadata"]["name"] == name}


def test_metrics_service_selects_controller_pods(helm: Path) -> None:
    manifests = render(helm, ALL_ON)
    service = find(manifests, "Service", PROPAGATION)
    deployment = find(manifests, "Deployment", PROPAGATION)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]

    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["selector"][COMPONENT] == "propagation"
    [port] = service["spec"]["ports"]
    [container] = deployment["spec"]["template"]["spec"]["containers"]
    [container_port] = container["ports"]
    assert port["name"] == "metrics"
    assert port["targetPort"] == container_port["name"] == "metrics"
    assert container_port["containerPort"] == 9090


def test_service_monitor_scrapes_controller(helm: Path) -> None:
    manifests = render(helm, ALL_ON)
    monitor = find(manifests, "ServiceMonitor", PROPAGATION)
    service = find(manifests, "Service", PROPAGATION)

    selector = monitor["spec"]["selector"]["matchLabels"]
    assert selector.items() <= service["metadata"]["labels"].items()
    # The webhook's own Service must not match, or it would be scraped twice.
    webhook_service = find(manifests, "Service", RELEASE)
    assert not selector.items() <= webhook_service["metadata"]["labels"].items()
    [endpoint] = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics"
    assert endpoint["scheme"] == "http"
    assert endpoint["path"] == "/metrics"


def test_network_policy_admits_metrics_port(helm: Path) -> None:
    values = {
        **ALL_ON,
        "networkPolicy": {
            "enabled": True,
            "metricsFrom": [{"namespaceSelector": {"matchLabels": {"team": "mon"}}}],
            "egress": [{"ports": [{"port": 443}]}],
        },
    }
    manifests = render(helm, values)
    policy = find(manifests, "NetworkPolicy", PROPAGATION)

    assert policy["spec"]["podSelector"]["matchLabels"][COMPONENT] == "propagation"
    [rule] = policy["spec"]["ingress"]
    assert rule["ports"] == [{"port": "metrics", "protocol": "TCP"}]
    assert rule["from"] == values["networkPolicy"]["metricsFrom"]
    # The controller calls the Kubernetes API, so it gets the same egress.
    assert policy["spec"]["egress"] == values["networkPolicy"]["egress"]


def test_nothing_for_controller_when_propagation_off(helm: Path) -> None:
    values = {**ALL_ON, "propagation": {"enabled": False}}
    assert kinds_named(render(helm, values), PROPAGATION) == set()


def test_monitor_and_policy_follow_their_switches(helm: Path) -> None:
    manifests = render(helm, {"propagation": {"enabled": True}})
    kinds = kinds_named(manifests, PROPAGATION)
    assert "Service" in kinds
    assert not kinds & {"ServiceMonitor", "NetworkPolicy"}
