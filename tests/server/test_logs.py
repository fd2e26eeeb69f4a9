"""Log lines: JSON and text formats, fields bound once per review."""

from __future__ import annotations

import io
import logging

import orjson

from webhook.server.logs import bind, configure_logging, review_fields

REQUEST = {
    "uid": "u-1",
    "namespace": "runai-team-a",
    "kind": {"group": "", "version": "v1", "kind": "Pod"},
    "operation": "CREATE",
    "userInfo": {"username": "alice", "groups": ["g"]},
    "object": {"metadata": {"generateName": "job-1-"}, "spec": {"secret": "x"}},
}


def test_review_fields_without_body() -> None:
    fields = review_fields(REQUEST)

    assert fields == {
        "uid": "u-1",
        "namespace": "runai-team-a",
        "kind": "Pod",
        "object_name": "job-1-*",
        "operation": "CREATE",
        "user": "alice",
    }


def test_review_fields_of_wrong_types() -> None:
    nested: list[object] = []
    for _ in range(1000):
        nested = [nested]
    request = {
        **REQUEST,
        "name": nested,
        "userInfo": {"username": {"a": 1}},
        "namespace": "n" * 10_000,
    }

    fields = review_fields(request)

    assert fields["object_name"] == "job-1-*"
    assert fields["user"] == ""
    assert fields["namespace"] == "n" * 256


def test_json_line_of_forged_review_fields() -> None:
    nested: list[object] = []
    for _ in range(1000):
        nested = [nested]
    stream = io.StringIO()
    configure_logging("json", "INFO", stream)
    fields = review_fields({**REQUEST, "name": nested})

    bind(logging.getLogger("test.review"), fields).info("template reviewed")
    line = orjson.loads(stream.getvalue().splitlines()[-1])

    assert line["message"] == "template reviewed"
    assert line["object_name"] == "job-1-*"


def test_json_line_carries_bound_fields() -> None:
    stream = io.StringIO()
    configure_logging("json", "DEBUG", stream)
    log = bind(logging.getLogger("test.review"), review_fields(REQUEST))

    log.info("review denied", extra={"code": 403})
    line = orjson.loads(stream.getvalue().splitlines()[-1])

    assert line["message"] == "review denied"
    assert line["level"] == "INFO"
    assert line["uid"] == "u-1"
    assert line["user"] == "alice"
    assert line["code"] == 403
    assert "spec" not in line


def test_text_line_has_key_values() -> None:
    stream = io.StringIO()
    configure_logging("text", "INFO", stream)

    bind(logging.getLogger("test.review"), {"uid": "u-2"}).info("review denied")
    logging.getLogger("test.review").debug("hidden")

    output = stream.getvalue()
    assert "INFO test.review: review denied uid=u-2" in output
    assert "hidden" not in output
