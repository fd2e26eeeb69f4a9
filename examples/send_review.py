"""Send an AdmissionReview for an example manifest to a running webhook.

Plays kube-apiserver's part for one object: wraps the manifest in an
admission.k8s.io/v1 AdmissionReview (CREATE), POSTs it over HTTPS while
verifying the server against the development CA, applies the returned JSON
patch and prints the env of every container.

    python examples/send_review.py examples/jobs/runai-submit-pod.yaml

Exit status: 0 allowed, 1 denied, 2 the call failed.
"""

from __future__ import annotations

import argparse
import base64
import json
import ssl
import sys
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import jsonpatch
import yaml


def build_review(obj: dict[str, Any], namespace: str) -> dict[str, Any]:
    """Wrap `obj` in an AdmissionReview request as kube-apiserver sends it.

    kube-apiserver sends only objects in the request's namespace, so `obj`
    is put in `namespace`, as `kubectl apply -n` does with a manifest that
    names no namespace.
    """
    obj.setdefault("metadata", {})["namespace"] = namespace
    group, _, version = obj["apiVersion"].rpartition("/")
    kind = obj["kind"]
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": kind.lower() + "s"}
    request: dict[str, Any] = {
        "uid": str(uuid.uuid4()),
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "namespace": namespace,
        "operation": "CREATE",
        "userInfo": {"username": "example-user", "groups": ["system:authenticated"]},
        "object": obj,
        "oldObject": None,
        "dryRun": False,
        "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
    }
    name = obj.get("metadata", {}).get("name")
    if name:
        request["name"] = name
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": request,
    }


def connect(url: str, ca_file: str, seconds: float) -> ssl.SSLContext:
    """Wait until the CA file exists and GET /readyz succeeds; return the context.

    `serve` writes development certificates when it starts, so the script
    can run right after it.
    """
    give_up = time.monotonic() + seconds
    while True:
        try:
            context = ssl.create_default_context(cafile=ca_file)
            with urllib.request.urlopen(f"{url}/readyz", context=context, timeout=2):  # noqa: S310
                return context
        except OSError:
            if time.monotonic() > give_up:
                raise
            time.sleep(0.25)


def send(url: str, context: ssl.SSLContext, review: dict[str, Any]) -> dict[str, Any]:
    call = urllib.request.Request(  # noqa: S310 (the URL is the user's HTTPS endpoint)
        f"{url}/mutate?timeout=10s",
        data=json.dumps(review).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(call, context=context, timeout=15) as answer:  # noqa: S310
        result: dict[str, Any] = json.load(answer)
    return result


def containers(node: Any, path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Yield every container of every pod spec in `node`, with its location."""
    if isinstance(node, dict):
        for field in ("initContainers", "containers"):
            for container in node.get(field) or []:
                if isinstance(container, dict) and "image" in container:
                    yield f"{path}/{field}", container
        for key, value in node.items():
            if key not in ("initContainers", "containers"):
                yield from containers(value, f"{path}/{key}")
    elif isinstance(node, list):
        for index, item in enumerate(node):
            yield from containers(item, f"{path}/{index}")


def describe_env(entry: dict[str, Any]) -> str:
    reference = (entry.get("valueFrom") or {}).get("secretKeyRef")
    if reference:
        return f"{entry['name']} <- secret {reference['name']}, key {reference['key']}"
    return f"{entry['name']} = {entry.get('value', '')}"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "manifest", help="YAML file with one object, e.g. a Pod or a Job"
    )
    parser.add_argument(
        "--url", default="https://127.0.0.1:8443", help="webhook base URL"
    )
    parser.add_argument(
        "--ca-file", default="certs/ca.crt", help="CA that signed the server"
    )
    parser.add_argument(
        "--namespace",
        help="namespace to create the object in (default: the object's)",
    )
    parser.add_argument(
        "--wait",
        type=float,
        default=20.0,
        help="seconds to wait for the service (default 20)",
    )
    args = parser.parse_args()

    obj = yaml.safe_load(Path(args.manifest).read_text())
    namespace = args.namespace or obj.get("metadata", {}).get("namespace", "default")
    try:
        context = connect(args.url, args.ca_file, args.wait)
        response = send(args.url, context, build_review(obj, namespace))["response"]
    except OSError as error:
        if not Path(args.ca_file).exists():
            print(
                f"CA file {args.ca_file} does not exist after {args.wait:g} s: run "
                "this script from the directory where `serve` writes certs/, "
                "or pass --ca-file",
                file=sys.stderr,
            )
        else:
            print(f"call to {args.url} failed: {error}", file=sys.stderr)
        return 2

    for warning in response.get("warnings", []):
        print(f"Warning: {warning}")
    if not response["allowed"]:
        print(f"denied ({response['status']['code']}): {response['status']['message']}")
        return 1

    if "patch" in response:
        patch = json.loads(base64.b64decode(response["patch"]))
        obj = jsonpatch.apply_patch(obj, patch)
    metadata = obj["metadata"]
    print(
        f"allowed: {obj['kind']} {metadata.get('name') or metadata.get('generateName')}"
    )
    for where, container in containers(obj.get("spec", {}), "spec"):
        print(f"  {where} {container['name']}:")
        for entry in container.get("env") or []:
            print(f"    {describe_env(entry)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
