"""The floor servers send the webhook's response, and bench.ceiling loads them."""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import bodies, ceiling, floors, servicefloor, services, stages
from bench.asgi import ASGIApp
from bench.calibrate import Rounds
from bench.throughput import MUTATE_PATH
from webhook.admission.injection import InjectionOptions, Plan, decide, plan_review
from webhook.admission.reviews import encode_response, parse_review


def call(app: ASGIApp, body: bytes) -> tuple[int, dict[str, Any]]:
    """POST `body` to `app` in memory and return the status and the response."""
    sent: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message: Any) -> None:
        sent.append(message)

    async def post() -> None:
        scope = {"type": "http", "method": "POST", "path": "/mutate"}
        await app(scope, receive, send)

    asyncio.run(post())
    return sent[0]["status"], orjson.loads(sent[1]["body"])["response"]


def patch_of(response: dict[str, Any]) -> list[dict[str, Any]]:
    assert response["patchType"] == "JSONPatch"
    patch: list[dict[str, Any]] = orjson.loads(base64.b64decode(response["patch"]))
    return patch


def webhook_response(body: bytes) -> dict[str, Any]:
    """Return the webhook's own response to `body`, with every secret confirmed."""
    review = parse_review(body)
    plan = plan_review(review, InjectionOptions())
    assert isinstance(plan, Plan)
    decision = decide(plan, stages.confirming_lookups(plan))
    response: dict[str, Any] = orjson.loads(encode_response(review, decision))[
        "response"
    ]
    return response


def review_with(env: list[dict[str, str]], uid: str = "u-1") -> bytes:
    review = orjson.loads(bodies.training_review())
    review["request"]["uid"] = uid
    review["request"]["object"]["spec"]["containers"][0]["env"] = env
    review["request"]["object"]["spec"]["containers"][1]["env"] = []
    review["request"]["object"]["spec"]["initContainers"] = []
    return orjson.dumps(review)


def test_minimal_sends_webhook_response() -> None:
    body = bodies.training_review()
    ours = webhook_response(body)

    status, response = call(floors.floor_app("minimal"), body)

    assert status == 200
    assert response["allowed"] is True
    assert response["uid"] == ours["uid"]
    assert patch_of(response) == patch_of(ours)
    assert response["auditAnnotations"] == ours["auditAnnotations"]


def test_rewrite_sends_patch_without_marker() -> None:
    body = bodies.training_review()
    ours = patch_of(webhook_response(body))

    _, response = call(floors.floor_app("rewrite"), body)

    assert ours[-1]["path"] == floors.MARKER_PATH
    assert patch_of(response) == ours[:-1]


def test_sized_keeps_request_uid() -> None:
    review = orjson.loads(bodies.training_review())
    review["request"]["uid"] = "another-uid"
    body = orjson.dumps(review)
    ours = webhook_response(bodies.training_review())

    _, response = call(floors.floor_app("sized"), body)

    assert response["uid"] == "another-uid"
    assert {**response, "uid": ours["uid"]} == ours


@pytest.mark.parametrize(
    ("value", "code", "quoted"),
    [
        ("SECRET:db-creds,token", 403, "db-creds"),
        ("SECRET:unknown,username", 403, "unknown"),
        ("SECRET:Bad_Name,username", 400, "Bad_Name"),
        ("SECRET:db-creds", 400, "db-creds"),
        ("SECRET:db-creds,..", 400, ".."),
    ],
)
def test_minimal_rejects_bad_reference(value: str, code: int, quoted: str) -> None:
    env = [{"name": "A", "value": "SECRET:db-creds,username"}]
    body = review_with([*env, {"name": "B", "value": value}])

    _, response = call(floors.floor_app("minimal"), body)

    assert response["allowed"] is False
    assert response["status"]["code"] == code
    assert quoted in response["status"]["message"]
    assert "patch" not in response


def test_minimal_skips_plain_pod() -> None:
    body = review_with([{"name": "A", "value": "plain"}])

    _, response = call(floors.floor_app("minimal"), body)

    assert response == {"uid": "u-1", "allowed": True}


def test_bare_sends_webhook_response() -> None:
    body = bodies.training_review()

    status, response = call(floors.floor_app("bare"), body)

    assert status == 200
    assert response == webhook_response(body)


def test_bare_denies_missing_key() -> None:
    body = review_with([{"name": "A", "value": "SECRET:db-creds,token"}])

    _, response = call(floors.floor_app("bare"), body)

    assert response["allowed"] is False
    assert response["status"]["code"] == 403
    assert '"token"' in response["status"]["message"]


def test_floor_app_names_unknown_floor() -> None:
    with pytest.raises(
        ValueError, match=r"'fast'; use one of sized, rewrite, minimal, bare"
    ):
        floors.floor_app("fast")


def test_ceiling_summary_median_ratio() -> None:
    reference = Rounds("reference", [10000.0, 20000.0, 10000.0], [50.0, 50.0, 60.0])
    floor = Rounds("floor-rewrite", [7000.0, 8000.0, 9000.0], [70.0, 80.0, 90.0])

    in_process = {"reference": 12.0, "floor-rewrite": 24.0}

    summary = ceiling.summarize([reference, floor], in_process)

    servers = summary["servers"]
    # Per-round ratios 0.7, 0.4, 0.9: the median is 0.7, not 8000 / 10000.
    assert servers["floor-rewrite"]["ratio"] == 0.7
    assert servers["reference"]["ratio"] == 1.0
    assert servers["floor-rewrite"]["added_cpu_us"] == 30.0
    assert servers["floor-rewrite"]["added_in_process_us"] == 12.0
    # 30 us added under load for 12 us added in process.
    assert servers["floor-rewrite"]["wire_per_in_process"] == 2.5
    assert servers["reference"]["wire_per_in_process"] is None
    assert summary["target_ratio"] == 0.7


@pytest.mark.parametrize(
    ("in_process", "factor"), [(0.94, None), (0.96, 7.71), (-3.0, None)]
)
def test_wire_per_in_process_follows_printed_figure(
    in_process: float, factor: float | None
) -> None:
    """A time added in process that prints as 1.0 us gets a factor."""
    assert ceiling.wire_per_in_process(7.4, in_process) == factor


def test_time_in_process_covers_every_server() -> None:
    figures = ceiling.time_in_process(count=20)

    assert list(figures) == [
        "reference",
        *(f"floor-{name}" for name in floors.FLOORS),
        "service-minimal",
        "webhook",
    ]
    assert all(micros > 0 for micros in figures.values())


@pytest.mark.parametrize(
    "arguments", [["--rounds", "0"], ["--seconds", "0"], ["--count", "0"]]
)
def test_ceiling_rejects_bad_counts(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        ceiling.main(arguments)

    assert exit_info.value.code == 2
    assert arguments[0] in capsys.readouterr().err


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_ceiling_loads_every_server(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """One short round: each floor server returns a patch to wrk over TLS."""
    arguments = ["--rounds", "1", "--seconds", "1", "--count", "20"]
    assert ceiling.main([*arguments, "--results", str(tmp_path)]) == 0

    figures = json.loads((tmp_path / "ceiling.json").read_text())
    servers = figures["servers"]
    assert list(servers) == [
        "reference",
        "floor-sized",
        "floor-rewrite",
        "floor-minimal",
        "floor-bare",
        "service-minimal",
        "webhook",
    ]
    for server in servers.values():
        assert server["rate"] > 0
        assert server["cpu_us_per_review"] > 0
        assert server["in_process_us"] > 0
    assert figures["in_process_calls"] == 20
    assert figures["rounds"] == 1
    assert figures["seconds"] == 1
    assert figures["machine_at_start"]["time"] <= figures["machine_at_end"]["time"]
    assert "floor-minimal" in capsys.readouterr().out


def review_in(namespace: str) -> bytes:
    review = orjson.loads(bodies.training_review())
    review["request"]["namespace"] = namespace
    review["request"]["object"]["metadata"]["namespace"] = namespace
    return orjson.dumps(review)


JSON = {"Content-Type": "application/json"}

# Reviews that the served webhook patches or denies, by case.
BARE_CASES = {
    "benchmark review": bodies.training_review(),
    "missing key": review_with([{"name": "A", "value": "SECRET:db-creds,token"}]),
    "missing secret": review_with([{"name": "A", "value": "SECRET:gone,username"}]),
    "invalid reference": review_with([{"name": "A", "value": "SECRET:Bad_Name,x"}]),
    "no reference": review_with([{"name": "A", "value": "plain"}]),
    "other namespace": review_in("runai-team-b"),
}


def test_bare_matches_served_webhook() -> None:
    """`bare` must send what `serve` sends, on the fake API's secrets."""
    answers: dict[str, tuple[Any, Any]] = {}
    with services.running_stack() as stack:
        bare = services.start_floor(stack, "bare")
        try:
            with stack.client() as client:
                for case, body in BARE_CASES.items():
                    served = client.post(
                        stack.ours.url + MUTATE_PATH, content=body, headers=JSON
                    )
                    floor = client.post(
                        bare.url + MUTATE_PATH, content=body, headers=JSON
                    )
                    answers[case] = served.json()["response"], floor.json()["response"]
        finally:
            services.stop_server(bare)

    for case, (served, floor) in answers.items():
        assert floor == served, case
    assert answers["benchmark review"][0]["patchType"] == "JSONPatch"
    assert answers["no reference"][0] == {"uid": "u-1", "allowed": True}
    for case in ("missing key", "missing secret", "other namespace"):
        assert answers[case][0]["status"]["code"] == 403, case
    assert answers["invalid reference"][0]["status"]["code"] == 400


def test_service_floor_swaps_handler() -> None:
    """/mutate responds as `minimal` does, every other route as `serve` does."""
    body, other = bodies.training_review(), review_in("b")
    with services.running_stack() as stack:
        floor = services.start_service_floor(stack)
        try:
            with stack.client() as client:
                served = client.post(
                    stack.ours.url + MUTATE_PATH, content=body, headers=JSON
                )
                swapped = client.post(
                    floor.url + MUTATE_PATH, content=body, headers=JSON
                )
                # The two handlers word their denials differently.
                elsewhere = client.post(
                    floor.url + MUTATE_PATH, content=other, headers=JSON
                )
                wrong_method = client.get(floor.url + MUTATE_PATH)
                metrics = client.get(floor.url + "/metrics")
        finally:
            services.stop_server(floor)

    assert swapped.json()["response"] == served.json()["response"]
    assert elsewhere.content == floors.minimal_response(
        orjson.loads(other)["request"], floors.benchmark_keys()
    )
    # The service's own routes, which the floor servers do not have.
    assert wrong_method.status_code == 405
    assert "runai_secrets_webhook_reviews" in metrics.text


@pytest.mark.parametrize("option", [["--workers", "2"], ["--workers=1"]])
def test_service_floor_rejects_workers(
    option: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert servicefloor.main(["--port=1", *option]) == 2

    assert "--workers is not supported" in capsys.readouterr().err
