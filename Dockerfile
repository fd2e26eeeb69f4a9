# syntax=docker/dockerfile:1
#
# Image of runai-secrets-webhook. Build from the repository root:
#   docker build -t runai-secrets-webhook:0.1.0 .
#
# Dependencies come only from requirements.lock and requirements-build.lock,
# pinned with hashes; regenerate both with `bash .ci/lock.sh`. CI replays
# every RUN step of the builder stage in a local venv (.ci/image-steps.sh),
# so the image installs exactly what the tests ran against.

# NOTE: this digest of python:3.11-slim could not be checked against a
# registry where this file was written (none was reachable); it is the one
# published for that tag in several public Dockerfiles. Before a release,
# confirm it with `docker buildx imagetools inspect python:3.11-slim`, or
# pass your own with --build-arg PYTHON_IMAGE=...
ARG PYTHON_IMAGE=python:3.11-slim@sha256:9c900dea9e8fb7e16277c179b555cc72d29a352dbc33cff48ad5a0412fd5bfc7

FROM ${PYTHON_IMAGE} AS builder

# VENV is copied to the final stage; BUILD_VENV and DIST stay here.
ENV VENV=/opt/venv \
    BUILD_VENV=/opt/build \
    DIST=/opt/dist \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1
WORKDIR /src

COPY requirements.lock requirements-build.lock ./
# --require-hashes refuses any file whose hash is not in the lock, and
# --only-binary refuses source builds, which would run unpinned build tools.
RUN python -m venv "$VENV" \
    && "$VENV/bin/pip" install --require-hashes --no-deps --only-binary=:all: -r requirements.lock \
    && python -m venv "$BUILD_VENV" \
    && "$BUILD_VENV/bin/pip" install --require-hashes --no-deps --only-binary=:all: -r requirements-build.lock

COPY pyproject.toml README.md ./
COPY webhook ./webhook
# The package is built with the pinned setuptools from BUILD_VENV and
# installed without its dependencies, which the lock already provided.
RUN "$BUILD_VENV/bin/pip" wheel --no-deps --no-build-isolation --wheel-dir "$DIST" . \
    && "$VENV/bin/pip" install --no-deps --no-index "$DIST"/runai_secrets_webhook-*.whl \
    && "$VENV/bin/pip" check

FROM ${PYTHON_IMAGE}

ARG VERSION=0.1.0
LABEL org.opencontainers.image.title="runai-secrets-webhook" \
      org.opencontainers.image.description="Kubernetes mutating admission webhook that turns Run:AI SECRET:<secret>,<key> env references into checked secretKeyRef env vars" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="Apache-2.0" \
      org.opencontainers.image.base.name="docker.io/library/python:3.11-slim"

ENV PATH=/opt/venv/bin:$PATH \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1

# Only the venv, with the package in it, and owned by root, so the running
# process cannot change its own code.
COPY --from=builder /opt/venv /opt/venv

# A numeric uid and gid, because the kubelet can enforce runAsNonRoot only
# when the image's user is a number: it does not read the image's
# /etc/passwd. 65532 is outside the range Debian gives to system and login
# users, so it owns no file in the base image.
USER 65532:65532

EXPOSE 8443

# Exec form, so the server is PID 1 and gets SIGTERM directly. The
# subcommand is CMD rather than part of ENTRYPOINT so that the chart's
# propagation controller runs `runai-secrets-webhook propagate` from the
# same image; without arguments the image runs `runai-secrets-webhook serve`.
ENTRYPOINT ["runai-secrets-webhook"]
CMD ["serve"]
