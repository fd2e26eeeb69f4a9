from typing import Any

import pytest

from webhook.admission import InvalidWorkloadKinds, WorkloadKind, load_workload_kinds
from webhook.admission.podspecs import BUILTIN_KINDS, EnvLayout, find_pointer_targets


def builtin(kind: str) -> WorkloadKind:
    return next(entry for entry in BUILTIN_KINDS if entry.kind == kind)


def test_builtin_kinds_and_pointers() -> None:
    table = {entry.key(): (entry.pointers, entry.on_update) for entry in BUILTIN_KINDS}
    assert table == {
        ("", "v1", "Pod"): (("/spec",), False),
        ("batch", "v1", "Job"): (("/spec/template/spec",), False),
        ("batch", "v1", "CronJob"): (("/spec/jobTemplate/spec/template/spec",), True),
        ("apps", "v1", "Deployment"): (("/spec/template/spec",), True),
        ("apps", "v1", "StatefulSet"): (("/spec/template/spec",), True),
        ("apps", "v1", "ReplicaSet"): (("/spec/template/spec",), True),
        ("apps", "v1", "DaemonSet"): (("/spec/template/spec",), True),
        ("run.ai", "v1", "RunaiJob"): (("/spec/template/spec",), True),
        ("run.ai", "v2alpha1", "TrainingWorkload"): (
            ("/spec/environment/items",),
            True,
        ),
        ("run.ai", "v2alpha1", "InteractiveWorkload"): (
            ("/spec/environment/items",),
            True,
        ),
        ("run.ai", "v2alpha1", "DistributedWorkload"): (
            ("/spec/environment/items",),
            True,
        ),
    }


def test_only_v2_workloads_are_check_only() -> None:
    check_only = {entry.kind for entry in BUILTIN_KINDS if not entry.rewrites}
    assert check_only == {
        "TrainingWorkload",
        "InteractiveWorkload",
        "DistributedWorkload",
    }
    assert builtin("TrainingWorkload").layout is EnvLayout.ENVIRONMENT_ITEMS


PYTORCH: dict[str, Any] = {
    "spec": {
        "pytorchReplicaSpecs": {
            "Master": {"template": {"spec": {"containers": [{"name": "m"}]}}},
            "Worker": {"template": {"spec": {"containers": [{"name": "w"}]}}},
            "Broken": {"template": None},
        }
    }
}


def test_wildcard_over_map_keys() -> None:
    targets = list(
        find_pointer_targets(PYTORCH, "/spec/pytorchReplicaSpecs/*/template/spec")
    )
    assert [path for path, _ in targets] == [
        "/spec/pytorchReplicaSpecs/Master/template/spec",
        "/spec/pytorchReplicaSpecs/Worker/template/spec",
    ]
    assert targets[1][1] == {"containers": [{"name": "w"}]}


def test_wildcard_over_list_indexes() -> None:
    document = {"spec": {"replicas": [{"spec": 1}, {"other": 2}, {"spec": 3}]}}
    targets = list(find_pointer_targets(document, "/spec/replicas/*/spec"))
    assert targets == [("/spec/replicas/0/spec", 1), ("/spec/replicas/2/spec", 3)]


def test_list_index_token() -> None:
    document = {"a": [10, 20]}
    assert list(find_pointer_targets(document, "/a/1")) == [("/a/1", 20)]
    assert list(find_pointer_targets(document, "/a/2")) == []
    assert list(find_pointer_targets(document, "/a/01")) == []
    assert list(find_pointer_targets(document, "/a/-")) == []


def test_escaped_tokens_match_and_stay_escaped() -> None:
    document: dict[str, Any] = {"spec": {"a/b": {"c~d": {"spec": {}}}}}
    targets = list(find_pointer_targets(document, "/spec/a~1b/*/spec"))
    assert targets == [("/spec/a~1b/c~0d/spec", {})]


def test_missing_members_match_nothing() -> None:
    assert list(find_pointer_targets({"spec": "x"}, "/spec/template/spec")) == []
    assert list(find_pointer_targets(None, "/spec")) == []


VALID_ENTRY = {
    "group": "kubeflow.org",
    "version": "v1",
    "kind": "PyTorchJob",
    "podSpecs": ["/spec/pytorchReplicaSpecs/*/template/spec"],
}


def test_load_kind_config() -> None:
    kinds = load_workload_kinds(
        {"kinds": [VALID_ENTRY, {**VALID_ENTRY, "kind": "TFJob", "onUpdate": False}]}
    )
    assert kinds == (
        WorkloadKind(
            "kubeflow.org",
            "v1",
            "PyTorchJob",
            ("/spec/pytorchReplicaSpecs/*/template/spec",),
        ),
        WorkloadKind(
            "kubeflow.org",
            "v1",
            "TFJob",
            ("/spec/pytorchReplicaSpecs/*/template/spec",),
            on_update=False,
        ),
    )


def test_load_empty_kind_list() -> None:
    assert load_workload_kinds({"kinds": []}) == ()


def load_error(config: object) -> str:
    with pytest.raises(InvalidWorkloadKinds) as caught:
        load_workload_kinds(config)
    return str(caught.value)


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            None,
            "workload kinds configuration must be a mapping with a list under 'kinds'",
        ),
        (
            {"kind": []},
            "workload kinds configuration must be a mapping with a list under 'kinds'",
        ),
        (
            {"kinds": ["x"]},
            "kinds[0] must be a mapping with group, version, kind, podSpecs",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "podSpec": []}]},
            "kinds[0] has unknown field 'podSpec'. "
            "Allowed fields: group, kind, onUpdate, podSpecs, version.",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "kind": ""}]},
            "kinds[0].kind must be a non-empty string, not ''",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "version": 1}]},
            "kinds[0].version must be a non-empty string, not 1",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "podSpecs": []}]},
            "kinds[0].podSpecs must be a non-empty list of JSON Pointers, "
            "e.g. /spec/template/spec.",
        ),
        (
            {
                "kinds": [
                    VALID_ENTRY,
                    {**VALID_ENTRY, "podSpecs": ["/a", "spec/template"]},
                ]
            },
            "kinds[1].podSpecs[1] 'spec/template' is not a JSON Pointer. "
            "It must start with '/', e.g. /spec/template/spec.",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "podSpecs": ["/spec/~2/template/spec"]}]},
            "kinds[0].podSpecs[0] '/spec/~2/template/spec' is not a JSON Pointer: "
            "'~' must be followed by 0 or 1 (~0 for '~', ~1 for '/').",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "podSpecs": ["/spec/template/spec/"]}]},
            "kinds[0].podSpecs[0] '/spec/template/spec/' has an empty token, "
            "which names no field of a Kubernetes object. Remove the extra '/'.",
        ),
        (
            {"kinds": [{**VALID_ENTRY, "onUpdate": "yes"}]},
            "kinds[0].onUpdate must be true or false, not 'yes'",
        ),
        (
            {"kinds": [VALID_ENTRY, VALID_ENTRY]},
            "kinds[1]: kubeflow.org/v1 PyTorchJob is listed twice or is built in. "
            "Remove this entry.",
        ),
        (
            {
                "kinds": [
                    {
                        "group": "apps",
                        "version": "v1",
                        "kind": "Deployment",
                        "podSpecs": ["/x"],
                    }
                ]
            },
            "kinds[0]: apps/v1 Deployment is listed twice or is built in. "
            "Remove this entry.",
        ),
    ],
)
def test_bad_kind_config_names_entry(config: object, message: str) -> None:
    assert load_error(config) == message


def test_core_group_may_be_empty() -> None:
    entry = {
        "group": "",
        "version": "v1",
        "kind": "PodTemplate",
        "podSpecs": ["/template/spec"],
    }
    assert load_workload_kinds({"kinds": [entry]})[0].key() == ("", "v1", "PodTemplate")
