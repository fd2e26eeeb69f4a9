import jsonpatch

from webhook.admission.patches import (
    add_env_entries,
    escape_token,
    join_pointer,
    replace_env_entry,
    set_annotation,
    unescape_token,
)


def test_escape_tokens() -> None:
    assert (
        escape_token("runai-secrets-webhook/injected")
        == "runai-secrets-webhook~1injected"
    )
    assert escape_token("odd~key") == "odd~0key"
    assert escape_token("~1") == "~01"
    assert unescape_token(escape_token("a/~1~0/b")) == "a/~1~0/b"


def test_join_pointer() -> None:
    assert join_pointer("/spec", "containers", 0, "env") == "/spec/containers/0/env"
    assert join_pointer("", "a/b") == "/a~1b"


def test_replace_env_entry() -> None:
    entry = {"name": "A", "value": "x"}
    assert replace_env_entry("/spec/containers/1", 3, entry) == {
        "op": "replace",
        "path": "/spec/containers/1/env/3",
        "value": entry,
    }


def test_add_whole_env_array_when_missing() -> None:
    entries = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    operations = add_env_entries("/spec/containers/0", False, entries)
    assert operations == [
        {"op": "add", "path": "/spec/containers/0/env", "value": entries}
    ]
    container = {"name": "app"}
    assert (
        jsonpatch.apply_patch(container, [{**operations[0], "path": "/env"}])["env"]
        == entries
    )


def test_append_to_existing_env() -> None:
    entries = [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}]
    operations = add_env_entries("/spec/containers/0", True, entries)
    assert [operation["path"] for operation in operations] == [
        "/spec/containers/0/env/-",
        "/spec/containers/0/env/-",
    ]
    assert add_env_entries("/spec/containers/0", True, []) == []


def test_annotation_on_object_without_annotations() -> None:
    obj = {"metadata": {"name": "x"}}
    operation = set_annotation(obj["metadata"], "a/b", "v")
    assert operation == {
        "op": "add",
        "path": "/metadata/annotations",
        "value": {"a/b": "v"},
    }
    assert jsonpatch.apply_patch(obj, [operation])["metadata"]["annotations"] == {
        "a/b": "v"
    }


def test_annotation_on_null_annotations() -> None:
    obj = {"metadata": {"annotations": None}}
    patched = jsonpatch.apply_patch(obj, [set_annotation(obj["metadata"], "k", "v")])
    assert patched["metadata"]["annotations"] == {"k": "v"}


def test_annotation_on_object_without_metadata() -> None:
    operation = set_annotation(None, "k", "v")
    assert jsonpatch.apply_patch({}, [operation]) == {
        "metadata": {"annotations": {"k": "v"}}
    }


def test_annotation_beside_escaped_keys() -> None:
    annotations = {"team.example.com/owner": "ml", "odd~key": "1"}
    obj = {"metadata": {"annotations": dict(annotations)}}
    operation = set_annotation(
        obj["metadata"], "runai-secrets-webhook/injected", "app/A"
    )
    assert operation["path"] == "/metadata/annotations/runai-secrets-webhook~1injected"
    patched = jsonpatch.apply_patch(obj, [operation])
    assert patched["metadata"]["annotations"] == {
        **annotations,
        "runai-secrets-webhook/injected": "app/A",
    }


def test_annotation_replaces_existing_value() -> None:
    obj = {"metadata": {"annotations": {"k": "old"}}}
    patched = jsonpatch.apply_patch(obj, [set_annotation(obj["metadata"], "k", "new")])
    assert patched["metadata"]["annotations"] == {"k": "new"}
