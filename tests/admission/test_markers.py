from webhook.admission.markers import MAX_MARKER_CHARS, marker_operation, marker_value


def test_marker_lists_sorted_unique_names() -> None:
    assert (
        marker_value(None, ["app/B", "app/A", "init/C", "app/A"])
        == "app/A,app/B,init/C"
    )


def test_marker_keeps_names_of_earlier_pass() -> None:
    assert marker_value("app/A,init/C", ["sidecar/A"]) == "app/A,init/C,sidecar/A"


def test_marker_ignores_non_string_previous() -> None:
    assert marker_value(5, ["app/A"]) == "app/A"


def test_long_marker_is_cut_with_count() -> None:
    names = [f"app/VARIABLE_{index:05d}" for index in range(10_000)]
    value = marker_value(None, names)
    assert len(value) <= MAX_MARKER_CHARS
    listed = value.split(",")
    left_out = int(listed[-1].removeprefix("+"))
    assert listed[-1].startswith("+")
    assert len(listed) - 1 + left_out == 10_000
    assert listed[:-1] == sorted(names)[: len(listed) - 1]


def test_cut_marker_merges_without_count_token() -> None:
    names = [f"app/VARIABLE_{index:05d}" for index in range(200)]
    first = marker_value(None, names)
    assert marker_value(first, []).split(",")[0] == "app/VARIABLE_00000"
    assert all(
        not token.startswith("+") for token in marker_value(first, []).split(",")[:-1]
    )


def test_marker_operation_path() -> None:
    obj = {"metadata": {"annotations": {"k": "v"}}}
    operation = marker_operation(obj, "p/injected", ["app/A"])
    assert operation == {
        "op": "add",
        "path": "/metadata/annotations/p~1injected",
        "value": "app/A",
    }


def test_marker_operation_merges_existing() -> None:
    obj = {"metadata": {"annotations": {"p/injected": "app/A"}}}
    assert marker_operation(obj, "p/injected", ["side/B"])["value"] == "app/A,side/B"
