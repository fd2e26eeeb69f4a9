"""AdmissionReview bodies for the benchmark, and the secrets they reference.

The main body is the review kube-apiserver sends when Run:AI's scheduler
creates the pod of a training job: an init container, two app containers,
twenty env vars, five of them `SECRET:<secret>,<key>` references, and the
labels, annotations, volumes and owner reference such a pod carries. Encoded,
it is about 4 KB.
"""

from __future__ import annotations

import uuid
from typing import Any

import orjson

NAMESPACE = "runai-team-a"

# Secrets that exist in the fake Kubernetes API, with their key names. The
# values are placeholders; the webhook reads only the names.
SECRETS: dict[str, tuple[str, ...]] = {
    "db-creds": ("username", "password"),
    "s3-creds": ("access-key-id", "secret-access-key"),
    "wandb": ("api-key",),
}

# The secret that the cost growth bodies reference; one key per reference.
BULK_SECRET = "bench-bulk"
BULK_KEYS = 1000

Json = dict[str, Any]


def env_var(name: str, value: str) -> Json:
    return {"name": name, "value": value}


def trainer_env() -> list[Json]:
    """Env of the main container: twelve plain values and four references."""
    return [
        env_var("RUNAI_JOB_NAME", "llm-finetune-7"),
        env_var("RUNAI_JOB_UUID", "5f0d8e9a-3c1b-4f7e-9a55-0c2b8e41d7aa"),
        env_var("RUNAI_PROJECT", "team-a"),
        env_var("NVIDIA_VISIBLE_DEVICES", "all"),
        env_var("WORLD_SIZE", "8"),
        env_var("MASTER_ADDR", "llm-finetune-7-0"),
        env_var("MASTER_PORT", "29500"),
        env_var("NCCL_DEBUG", "WARN"),
        env_var("DATASET_URI", "s3://datasets/team-a/instructions-v3"),
        env_var("CHECKPOINT_DIR", "/checkpoints/llm-finetune-7"),
        env_var("DB_USER", "SECRET:db-creds,username"),
        env_var("DB_PASSWORD", "SECRET:db-creds,password"),
        env_var("AWS_ACCESS_KEY_ID", "SECRET:s3-creds,access-key-id"),
        env_var("AWS_SECRET_ACCESS_KEY", "SECRET:s3-creds,secret-access-key"),
        env_var("PYTHONUNBUFFERED", "1"),
        env_var("OMP_NUM_THREADS", "8"),
    ]


def sidecar_env() -> list[Json]:
    """Env of the metrics sidecar: two plain values and one reference."""
    return [
        env_var("WANDB_API_KEY", "SECRET:wandb,api-key"),
        env_var("WANDB_PROJECT", "llm-finetune"),
        env_var("LOG_LEVEL", "info"),
    ]


def resources(cpu: str, memory: str, gpus: int = 0) -> Json:
    limits: Json = {"cpu": cpu, "memory": memory}
    if gpus:
        limits["nvidia.com/gpu"] = str(gpus)
    return {"requests": dict(limits), "limits": limits}


def containers() -> tuple[list[Json], list[Json]]:
    """Return the init containers and the app containers of the pod."""
    mounts = [
        {"name": "checkpoints", "mountPath": "/checkpoints"},
        {"name": "dshm", "mountPath": "/dev/shm"},
        {
            "name": "kube-api-access-7xq2m",
            "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
            "readOnly": True,
        },
    ]
    init = {
        "name": "fetch-dataset",
        "image": "registry.example.com/tools/fetch:1.4.2",
        "command": ["/bin/fetch", "--to", "/checkpoints/data"],
        "env": [env_var("FETCH_PARALLELISM", "16")],
        "resources": resources("1", "2Gi"),
        "volumeMounts": mounts[:1],
        "imagePullPolicy": "IfNotPresent",
    }
    trainer = {
        "name": "trainer",
        "image": "registry.example.com/team-a/llm-train:2026.11.3",
        "command": ["torchrun", "--nproc-per-node=8", "train.py"],
        "args": ["--config", "/workspace/configs/finetune.yaml"],
        "env": trainer_env(),
        "resources": resources("32", "256Gi", gpus=8),
        "volumeMounts": mounts,
        "ports": [{"containerPort": 29500, "protocol": "TCP"}],
        "imagePullPolicy": "IfNotPresent",
        "terminationMessagePath": "/dev/termination-log",
        "terminationMessagePolicy": "File",
    }
    sidecar = {
        "name": "metrics-agent",
        "image": "registry.example.com/tools/metrics-agent:0.9.1",
        "env": sidecar_env(),
        "resources": resources("250m", "256Mi"),
        "volumeMounts": mounts[2:],
        "imagePullPolicy": "IfNotPresent",
    }
    return [init], [trainer, sidecar]


def volumes() -> list[Json]:
    return [
        {
            "name": "checkpoints",
            "persistentVolumeClaim": {"claimName": "team-a-checkpoints"},
        },
        {"name": "dshm", "emptyDir": {"medium": "Memory", "sizeLimit": "64Gi"}},
        {
            "name": "kube-api-access-7xq2m",
            "projected": {
                "defaultMode": 420,
                "sources": [
                    {
                        "serviceAccountToken": {
                            "expirationSeconds": 3607,
                            "path": "token",
                        }
                    },
                    {
                        "configMap": {
                            "name": "kube-root-ca.crt",
                            "items": [{"key": "ca.crt", "path": "ca.crt"}],
                        }
                    },
                ],
            },
        },
    ]


def metadata() -> Json:
    return {
        "generateName": "llm-finetune-7-",
        "namespace": NAMESPACE,
        "labels": {
            "app": "runaijob",
            "project": "team-a",
            "release": "llm-finetune-7",
            "runai/queue": "team-a",
            "runai/pod-index": "0-0",
            "workloadKind": "TrainingWorkload",
            "controller-uid": "5f0d8e9a-3c1b-4f7e-9a55-0c2b8e41d7aa",
        },
        "annotations": {
            "pod-group-name": "pg-llm-finetune-7-5f0d8e9a",
            "user": "alice@example.com",
            "runai-calculated-status": "Pending",
            "runai/job-id": "5f0d8e9a-3c1b-4f7e-9a55-0c2b8e41d7aa",
        },
        "ownerReferences": [
            {
                "apiVersion": "run.ai/v1",
                "kind": "RunaiJob",
                "name": "llm-finetune-7",
                "uid": "5f0d8e9a-3c1b-4f7e-9a55-0c2b8e41d7aa",
                "controller": True,
                "blockOwnerDeletion": True,
            }
        ],
    }


def training_pod() -> Json:
    """Return the pod object of a Run:AI training job (see the module docstring)."""
    init, app = containers()
    return {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": metadata(),
        "spec": {
            "schedulerName": "runai-scheduler",
            "restartPolicy": "Never",
            "serviceAccountName": "default",
            "priorityClassName": "train",
            "initContainers": init,
            "containers": app,
            "volumes": volumes(),
            "securityContext": {"runAsUser": 1000, "fsGroup": 1000},
            "tolerations": [
                {
                    "key": "nvidia.com/gpu",
                    "operator": "Exists",
                    "effect": "NoSchedule",
                }
            ],
            "nodeSelector": {"run.ai/type": "dgx-h100"},
        },
    }


def review_of(pod: Json) -> Json:
    """Wrap a pod in the AdmissionReview of its CREATE, as kube-apiserver sends it."""
    return {
        "apiVersion": "admission.k8s.io/v1",
        "kind": "AdmissionReview",
        "request": {
            "uid": str(uuid.uuid4()),
            "kind": {"group": "", "version": "v1", "kind": "Pod"},
            "resource": {"group": "", "version": "v1", "resource": "pods"},
            "requestKind": {"group": "", "version": "v1", "kind": "Pod"},
            "requestResource": {"group": "", "version": "v1", "resource": "pods"},
            "namespace": NAMESPACE,
            "operation": "CREATE",
            "userInfo": {
                "username": "system:serviceaccount:runai:runai-job-controller",
                "uid": "0b8f0c61-9f43-4d0e-8a34-8c1f1c2b7e11",
                "groups": [
                    "system:serviceaccounts",
                    "system:serviceaccounts:runai",
                    "system:authenticated",
                ],
            },
            "object": pod,
            "oldObject": None,
            "dryRun": False,
            "options": {"apiVersion": "meta.k8s.io/v1", "kind": "CreateOptions"},
        },
    }


def encode(review: Json) -> bytes:
    return orjson.dumps(review)


def training_review() -> bytes:
    """Return the encoded review of `training_pod()`."""
    return encode(review_of(training_pod()))


def pod_with_env(entries: int, value_bytes: int = 16) -> Json:
    """Return a one-container pod with `entries` env vars; every tenth is a reference.

    References cycle through the keys of `BULK_SECRET`. Plain values are
    `value_bytes` long.
    """
    env: list[Json] = []
    for index in range(entries):
        if index % 10 == 0:
            key = f"key-{(index // 10) % BULK_KEYS}"
            env.append(env_var(f"REF_{index}", f"SECRET:{BULK_SECRET},{key}"))
        else:
            env.append(env_var(f"VAR_{index}", "v" * value_bytes))
    pod = training_pod()
    pod["spec"]["initContainers"] = []
    pod["spec"]["containers"] = [
        {"name": "main", "image": "registry.example.com/team-a/app:1", "env": env}
    ]
    return pod


def pod_of_size(size_bytes: int) -> Json:
    """Return a training pod padded with long plain env values to about `size_bytes`.

    The five references of `training_pod()` stay, so the review is patched.
    """
    pod = training_pod()
    value_bytes = 4096
    padding = size_bytes - len(encode(review_of(pod)))
    entry_bytes = value_bytes + len('{"name":"PAD_0000","value":""},')
    trainer = pod["spec"]["containers"][0]
    for index in range(max(0, padding // entry_bytes)):
        trainer["env"].append(env_var(f"PAD_{index:04d}", "p" * value_bytes))
    return pod
