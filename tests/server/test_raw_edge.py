"""The raw ASGI /mutate edge, called through the real app from `create_app`.

The endpoint reads headers and the query string from the ASGI scope itself,
so these tests send what Starlette used to normalise: repeated headers and
parameters, long and percent-encoded query strings, other methods and a
client that leaves mid-body.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator, MutableMapping
from typing import Any

import httpx
import orjson
import pytest

from tests.server.test_app import CountingEndpoint
from tests.server.test_mutate import pod_review
from webhook.admission.decisions import Decision, deny
from webhook.admission.reviews import MAX_REVIEW_BYTES, Review
from webhook.server import logs
from webhook.server.app import MutateFastPath, create_app
from webhook.server.logs import BoundLogger
from webhook.server.metrics import Metrics, new_metrics
from webhook.server.mutate import MutateEndpoint
from webhook.server.readiness import Readiness

JSON = "application/json"
REVIEW_FIELDS = (
    logs.UID,
    logs.NAMESPACE,
    logs.KIND,
    logs.NAME,
    logs.OPERATION,
    logs.USER,
)


class Reviewer:
    """A reviewer that allows everything and records the budget it was given."""

    def __init__(self, decision: Decision | None = None) -> None:
        self.decision = decision or Decision(allowed=True)
        self.budgets: list[float] = []

    async def __call__(
        self, review: Review, deadline: float, log: BoundLogger
    ) -> Decision:
        self.budgets.append(deadline - time.monotonic())
        return self.decision


def build_app(
    reviewer: Reviewer, metrics: Metrics
) -> tuple[MutateFastPath, CountingEndpoint]:
    readiness = Readiness(source_answered=lambda: True, certificate_ready=lambda: True)
    endpoint = CountingEndpoint(MutateEndpoint(reviewer, metrics))
    return create_app(endpoint, readiness, metrics), endpoint


@pytest.fixture
def reviewer() -> Reviewer:
    return Reviewer()


@pytest.fixture
def endpoint_and_app(reviewer: Reviewer) -> tuple[MutateFastPath, CountingEndpoint]:
    return build_app(reviewer, new_metrics())


@pytest.fixture
async def client(
    endpoint_and_app: tuple[MutateFastPath, CountingEndpoint],
) -> AsyncIterator[httpx.AsyncClient]:
    app, _ = endpoint_and_app
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(
        transport=transport, base_url="https://webhook.test"
    ) as http:
        yield http


def review_body() -> bytes:
    return orjson.dumps(pod_review())


async def post(
    client: httpx.AsyncClient,
    query: str = "timeout=10s",
    headers: list[tuple[str, str]] | None = None,
) -> httpx.Response:
    return await client.post(
        f"/mutate?{query}",
        content=review_body(),
        headers=headers if headers is not None else [("content-type", JSON)],
    )


def assert_length_matches(response: httpx.Response) -> None:
    lengths = response.headers.get_list("content-length")
    assert len(lengths) == 1, lengths
    assert int(lengths[0]) == len(response.content)


@pytest.mark.parametrize(
    ("first", "second", "status"),
    [(JSON, "text/plain", 200), ("text/plain", JSON, 415)],
)
async def test_first_content_type_wins(
    client: httpx.AsyncClient, first: str, second: str, status: int
) -> None:
    headers = [("content-type", first), ("content-type", second)]
    response = await post(client, headers=headers)
    assert response.status_code == status, response.text


@pytest.mark.parametrize(
    ("query", "budget"),
    [("timeout=30s&timeout=2s", 1.6), ("timeout=2s&timeout=30s", 29.0)],
)
async def test_last_timeout_wins(
    client: httpx.AsyncClient, reviewer: Reviewer, query: str, budget: float
) -> None:
    response = await post(client, query)
    assert response.status_code == 200, response.text
    assert len(reviewer.budgets) == 1
    assert budget - 0.5 < reviewer.budgets[0] <= budget


@pytest.mark.parametrize("size", [200, 300, 20_000])
async def test_long_query_string_works(
    client: httpx.AsyncClient, reviewer: Reviewer, size: int
) -> None:
    # 200 bytes is under the cached length and 300 is over it. Any client
    # may send 20 KB. All three must read the same timeout.
    query = "timeout=4s&pad=" + "x" * (size - len("timeout=4s&pad="))
    assert len(query) == size
    response = await post(client, query)
    assert response.status_code == 200, response.text
    assert 2.7 < reviewer.budgets[0] <= 3.2


async def test_percent_encoded_timeout_decoded(
    client: httpx.AsyncClient, reviewer: Reviewer
) -> None:
    # "1%C2%B5s" is "1µs" in UTF-8: a budget of under a microsecond, not the
    # 9 s default that an undecoded, invalid duration would give.
    response = await post(client, "timeout=1%C2%B5s")
    assert response.status_code == 200, response.text
    assert reviewer.budgets[0] < 0.01


@pytest.mark.parametrize("method", ["GET", "PUT", "PATCH", "DELETE", "OPTIONS"])
async def test_other_methods_get_405(
    client: httpx.AsyncClient,
    endpoint_and_app: tuple[MutateFastPath, CountingEndpoint],
    method: str,
) -> None:
    _, endpoint = endpoint_and_app
    response = await client.request(method, "/mutate?timeout=10s")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    assert response.headers["content-type"] == JSON
    assert response.json()["code"] == 405
    assert_length_matches(response)
    assert endpoint.calls == 0


async def test_trailing_slash_not_served(
    client: httpx.AsyncClient,
    endpoint_and_app: tuple[MutateFastPath, CountingEndpoint],
) -> None:
    # Only the exact path is a review; FastAPI no longer redirects /mutate/.
    _, endpoint = endpoint_and_app
    response = await client.post(
        "/mutate/", content=review_body(), headers={"content-type": JSON}
    )
    assert response.status_code == 404
    assert endpoint.calls == 0


async def test_disconnect_mid_body_gets_400(
    endpoint_and_app: tuple[MutateFastPath, CountingEndpoint],
) -> None:
    # httpx's ASGITransport cannot disconnect mid-body, so the ASGI messages
    # are sent directly.
    app, endpoint = endpoint_and_app
    incoming: list[MutableMapping[str, Any]] = [
        {"type": "http.request", "body": b'{"apiVersion":', "more_body": True},
        {"type": "http.disconnect"},
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> MutableMapping[str, Any]:
        return incoming.pop(0)

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    scope = {
        "type": "http",
        "method": "POST",
        "path": "/mutate",
        "query_string": b"timeout=10s",
        "headers": [(b"content-type", b"application/json")],
    }
    await app(scope, receive, send)

    assert endpoint.calls == 1
    assert sent[0]["status"] == 400
    content = orjson.loads(sent[1]["body"])
    assert "disconnected after 14 bytes" in content["message"]
    headers = dict(sent[0]["headers"])
    assert int(headers[b"content-length"]) == len(sent[1]["body"])


@pytest.mark.parametrize(
    ("content", "headers", "status"),
    [
        (review_body(), {"content-type": JSON}, 200),
        (b"", {"content-type": JSON}, 400),
        (b"{not json", {"content-type": JSON}, 400),
        (review_body(), {"content-type": "text/plain"}, 415),
        (
            b"{}",
            {"content-type": JSON, "content-length": str(MAX_REVIEW_BYTES + 1)},
            413,
        ),
    ],
)
async def test_content_length_matches_body(
    client: httpx.AsyncClient, content: bytes, headers: dict[str, str], status: int
) -> None:
    response = await client.post("/mutate", content=content, headers=headers)
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == JSON
    assert_length_matches(response)


class CountingFields:
    """`review_fields`, with a count of its calls."""

    def __init__(self, fail: bool = False) -> None:
        self.calls = 0
        self.fail = fail

    def __call__(self, request: MutableMapping[str, Any]) -> dict[str, object]:
        self.calls += 1
        if self.fail:
            raise KeyError("a field the picker expected")
        return picked_fields(request)


picked_fields = logs.review_fields


def mutate_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "webhook.server.mutate"]


@pytest.fixture
def counting(monkeypatch: pytest.MonkeyPatch) -> CountingFields:
    """Count the calls of `review_fields` that the endpoint's loggers make."""
    wrapper = CountingFields()
    monkeypatch.setattr(logs, "review_fields", wrapper)
    return wrapper


async def test_allowed_review_picks_no_fields_at_info(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    counting: CountingFields,
) -> None:
    caplog.set_level(logging.INFO, logger="webhook.server.mutate")

    response = await post(client)

    assert response.status_code == 200
    assert mutate_records(caplog) == []
    assert counting.calls == 0


async def test_debug_lines_carry_review_fields(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    counting: CountingFields,
) -> None:
    caplog.set_level(logging.DEBUG, logger="webhook.server.mutate")
    body = pod_review()

    response = await client.post(
        "/mutate", content=orjson.dumps(body), headers={"content-type": JSON}
    )

    assert response.status_code == 200
    records = mutate_records(caplog)
    assert [r.getMessage() for r in records] == ["review received", "review allowed"]
    expected = {
        logs.UID: body["request"]["uid"],
        logs.NAMESPACE: "runai-team-a",
        logs.KIND: "Pod",
        logs.NAME: "p",
        logs.OPERATION: "CREATE",
        logs.USER: "alice",
    }
    for record in records:
        assert {name: getattr(record, name) for name in REVIEW_FIELDS} == expected
    # Picked once per review, not once per line.
    assert counting.calls == 1


async def test_denied_line_carries_fields_at_info(
    caplog: pytest.LogCaptureFixture,
) -> None:
    app, _ = build_app(Reviewer(deny(403, "secret db not found")), new_metrics())
    caplog.set_level(logging.INFO, logger="webhook.server.mutate")
    body = pod_review()
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="https://t") as http:
        response = await http.post(
            "/mutate", content=orjson.dumps(body), headers={"content-type": JSON}
        )

    assert response.json()["response"]["allowed"] is False
    records = mutate_records(caplog)
    assert [r.getMessage() for r in records] == ["review denied"]
    assert getattr(records[0], logs.UID) == body["request"]["uid"]
    assert getattr(records[0], logs.USER) == "alice"


async def test_failed_field_pick_keeps_uid(
    client: httpx.AsyncClient,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(logs, "review_fields", CountingFields(fail=True))
    caplog.set_level(logging.DEBUG, logger="webhook.server.mutate")
    body = pod_review()

    response = await client.post(
        "/mutate", content=orjson.dumps(body), headers={"content-type": JSON}
    )

    assert response.status_code == 200
    assert response.json()["response"]["allowed"] is True
    records = mutate_records(caplog)
    assert records != []
    for record in records:
        assert getattr(record, logs.UID) == body["request"]["uid"]
        assert not hasattr(record, logs.USER)
