"""The in-process breakdown and the calibration arithmetic of the benchmark."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest

from bench import bodies, calibrate, floors, reference, services, stages
from webhook.admission.decisions import Decision
from webhook.admission.injection import InjectionOptions, Plan, plan_review
from webhook.admission.reviews import parse_review


def test_stages_time_every_step() -> None:
    figures = stages.measure(count=50, repeats=2)

    assert set(figures) == {
        "json",
        "parse",
        "plan",
        "plan-plain",
        "plan-empty",
        "decide",
        "encode",
        "decode",
        "quick",
        "reference",
        "bare",
        "endpoint",
        "endpoint-full",
    }
    assert all(micros > 0 for micros in figures.values())
    # Both parse the body too and then plan, decide and encode.
    assert figures["endpoint"] > figures["reference"]
    assert figures["endpoint-full"] > figures["reference"]
    assert figures["bare"] > figures["reference"]
    assert figures["parse"] >= figures["json"] * 0.5


def test_pod_variants_drop_references_then_env() -> None:
    body = bodies.training_review()

    plain = stages.pod_variant(body, "plain")
    empty = stages.pod_variant(body, "none")

    options = InjectionOptions()
    full_plan = plan_review(parse_review(body), options)
    assert isinstance(full_plan, Plan)
    assert full_plan.uses
    # Without references there is nothing to look up: the plan is a decision.
    assert isinstance(plan_review(plain, options), Decision)
    plain_pod = plain["request"].get("object")
    empty_pod = empty["request"].get("object")
    assert plain_pod is not None
    assert empty_pod is not None
    spec = plain_pod["spec"]
    values = [entry.get("value") for c in spec["containers"] for entry in c["env"]]
    assert "plain" in values
    assert not any(str(value).startswith("SECRET:") for value in values)
    empty_spec = empty_pod["spec"]
    assert all(c["env"] == [] for c in empty_spec["containers"])
    assert all(c["env"] == [] for c in empty_spec["initContainers"])


def test_stages_main_writes_figures(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    arguments = ["--count", "20", "--repeats", "1", "--results", str(tmp_path)]

    assert stages.main(arguments) == 0

    record = json.loads((tmp_path / "stages.json").read_text())
    assert set(record["stages_us"]) >= {"plan", "plan-empty", "endpoint", "bare"}
    expected = record["stages_us"]["endpoint"] - record["stages_us"]["reference"]
    assert record["added_us"] == pytest.approx(expected, abs=0.02)
    full = record["stages_us"]["endpoint-full"] - record["stages_us"]["reference"]
    assert record["added_full_path_us"] == pytest.approx(full, abs=0.02)
    assert record["count"] == 20
    assert record["machine_at_start"]["time"] <= record["machine_at_end"]["time"]
    assert "stages.json" in capsys.readouterr().out


def test_spinning_reference_adds_the_busy_loop() -> None:
    calls = []

    async def app(scope: object, receive: object, send: object) -> None:
        calls.append(scope)

    slower = reference.spinning(app, 0.002)
    post = {"type": "http", "method": "POST"}
    begin = time.perf_counter()
    asyncio.run(slower(post, None, None))  # type: ignore[arg-type]
    spent = time.perf_counter() - begin

    assert calls == [post]
    assert spent >= 0.002


def test_summary_turns_the_target_into_a_budget() -> None:
    plain = calibrate.Rounds("reference", [10000.0], [60.0])
    spinning = calibrate.Rounds("reference+spin", [6000.0], [96.0])
    ours = calibrate.Rounds("webhook", [5000.0], [150.0])

    summary = calibrate.summarize(20.0, [plain, spinning, ours])

    # 20 us of busy loop cost 36 us of server CPU: a factor of 1.8.
    assert summary["cost_per_added_us"] == pytest.approx(1.8)
    assert summary["webhook_added_cpu_us"] == pytest.approx(90.0)
    # 0.7 of the reference's rate allows 60 / 0.7 = 85.7 us per review.
    assert summary["target_added_cpu_us"] == pytest.approx(25.7, abs=0.05)
    assert summary["target_in_process_us"] == pytest.approx(14.3, abs=0.05)


def test_tree_cpu_seconds_counts_this_process() -> None:
    before = services.tree_cpu_seconds(os.getpid())
    end = time.perf_counter() + 0.05
    while time.perf_counter() < end:
        pass
    after = services.tree_cpu_seconds(os.getpid())

    assert after - before > 0


def test_summary_rejects_noisy_calibration() -> None:
    plain = calibrate.Rounds("reference", [10000.0], [60.0])
    spinning = calibrate.Rounds("reference+spin", [9000.0], [58.0])
    ours = calibrate.Rounds("webhook", [5000.0], [150.0])

    with pytest.raises(RuntimeError, match="too noisy to calibrate"):
        calibrate.summarize(20.0, [plain, spinning, ours])


def test_calibrate_rejects_zero_rounds(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        calibrate.main(["--rounds", "0"])

    assert exit_info.value.code == 2
    assert "--rounds" in capsys.readouterr().err


@pytest.mark.parametrize(
    "arguments",
    [["--count", "0"], ["--count", "-5"], ["--repeats", "0"]],
)
def test_stages_rejects_bad_counts(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        stages.main(arguments)

    assert exit_info.value.code == 2
    assert arguments[0] in capsys.readouterr().err


def timed_messages(
    app: stages.ASGICallable, body: bytes
) -> list[MutableMapping[str, Any]]:
    """Call `app` once as `timed_asgi` does; return the ASGI messages it sent."""
    sent: list[MutableMapping[str, Any]] = []

    async def recording(scope: Any, receive: Any, send: Any) -> None:
        async def record(message: MutableMapping[str, Any]) -> None:
            sent.append(message)

        await app(scope, receive, record)

    loop = stages.new_event_loop()
    try:
        stages.timed_asgi(loop, recording, body)(1)
    finally:
        loop.close()
    return sent


@pytest.mark.parametrize("stage", ["endpoint", "bare"])
def test_timed_stages_patch_every_reference(stage: str) -> None:
    """The request that `timed_asgi` sends must come back patched in full."""
    body = bodies.training_review()
    app: stages.ASGICallable = (
        stages.patching_endpoint(body)
        if stage == "endpoint"
        else floors.bare_app(floors.benchmark_keys())
    )
    sent = timed_messages(app, body)

    assert sent[0]["status"] == 200
    assert b'"patchType":"JSONPatch"' in sent[1]["body"]
    response = orjson.loads(sent[1]["body"])["response"]
    assert response["allowed"] is True
    patch = orjson.loads(base64.b64decode(response["patch"]))
    references = {
        operation["value"]["name"]: operation["value"]["valueFrom"]["secretKeyRef"]
        for operation in patch
        if operation["path"].startswith("/spec/containers/")
    }
    assert references == {
        "DB_USER": {"name": "db-creds", "key": "username"},
        "DB_PASSWORD": {"name": "db-creds", "key": "password"},
        "AWS_ACCESS_KEY_ID": {"name": "s3-creds", "key": "access-key-id"},
        "AWS_SECRET_ACCESS_KEY": {"name": "s3-creds", "key": "secret-access-key"},
        "WANDB_API_KEY": {"name": "wandb", "key": "api-key"},
    }


def test_patching_endpoint_looks_up_other_secrets() -> None:
    """A secret missing from the filled cache is looked up, as `serve` does."""
    training = bodies.training_review()
    review = orjson.loads(training)
    env = review["request"]["object"]["spec"]["containers"][0]["env"]
    env.append({"name": "EXTRA", "value": "SECRET:not-in-cache,key"})
    body = orjson.dumps(review)

    endpoint_sent = timed_messages(stages.patching_endpoint(training), body)
    bare_sent = timed_messages(floors.bare_app(floors.benchmark_keys()), body)
    endpoint = orjson.loads(endpoint_sent[1]["body"])["response"]
    bare = orjson.loads(bare_sent[1]["body"])["response"]

    assert endpoint["status"]["code"] == 403
    assert "not-in-cache" in endpoint["status"]["message"]
    assert endpoint == bare
