"""Reading wrk's output, and the Lua script against the reference server."""

from __future__ import annotations

import json
import shutil
import ssl
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
import trustme

from bench import bodies, services
from bench.wrk import parse_output, run_wrk


def wrk_line(**fields: object) -> str:
    data: dict[str, object] = {
        "requests": 1000,
        "duration_us": 2_000_000,
        "checked": 1000,
        "failed": 0,
        "errors": {"connect": 0, "read": 0, "write": 0, "status": 0, "timeout": 0},
        "latency_us": {
            "min": 100,
            "max": 9000,
            "mean": 500.0,
            "percentiles": {"50": 400, "99": 2000, "99.9": 8000},
        },
    }
    data.update(fields)
    return "Running 2s test\nBENCH-JSON " + json.dumps(data) + "\n"


def test_parse_output_figures() -> None:
    result = parse_output(wrk_line())

    assert result.rate == 500.0
    assert result.percentile(50) == 0.4
    assert result.percentile(99.9) == 8.0
    assert result.max_ms == 9.0
    assert result.failed == 0


def test_parse_output_counts_unchecked_as_failed() -> None:
    errors = {"connect": 1, "read": 2, "write": 0, "status": 5, "timeout": 3}
    result = parse_output(wrk_line(checked=990, failed=5, errors=errors))

    assert result.failed == 15
    assert result.socket_errors == 6


def test_parse_output_without_marker() -> None:
    with pytest.raises(ValueError, match="no BENCH-JSON line"):
        parse_output("Running 2s test\n")


def test_parse_output_rejects_no_response() -> None:
    with pytest.raises(ValueError, match=r"no response in 2\.0 s"):
        parse_output(wrk_line(requests=0, checked=0))


@contextmanager
def running_reference(
    directory: Path, extra: Sequence[str] = ()
) -> Iterator[tuple[services.Server, Path]]:
    """Start the reference server with `extra` options; yield it and its CA file."""
    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key = directory / "tls.crt", directory / "tls.key"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca_file = directory / "ca.crt"
    ca.cert_pem.write_to_path(str(ca_file))

    port = services.free_port()
    args = services.reference_args(port, cert, key, extra)
    env = services.isolated_environment(directory)
    server = services.start_server("reference", args, port, directory, env)
    try:
        services.wait_ready(server, ca_file)
        yield server, ca_file
    finally:
        services.stop_server(server)


@pytest.fixture
def reference(tmp_path: Path) -> Iterator[tuple[services.Server, Path]]:
    """Start the reference server; yield it and its CA file."""
    with running_reference(tmp_path) as started:
        yield started


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_lua_script_checks_responses(
    reference: tuple[services.Server, Path], tmp_path: Path
) -> None:
    server, _ = reference
    body = tmp_path / "review.json"
    body.write_bytes(bodies.training_review())
    url = server.url + "/mutate"

    accepted = run_wrk(url, body, '"allowed":true', 1, connections=2)
    rejected = run_wrk(url, body, '"patchType"', 1, connections=2)

    assert accepted.requests > 0
    assert accepted.failed == 0
    assert accepted.socket_errors == 0
    assert rejected.requests > 0
    assert rejected.failed == rejected.requests


def test_reference_answers_with_uid(reference: tuple[services.Server, Path]) -> None:
    server, ca_file = reference
    review = bodies.training_review()
    uid = json.loads(review)["request"]["uid"]

    answer = httpx.post(
        server.url + "/mutate",
        content=review,
        verify=ssl.create_default_context(cafile=ca_file),
    )

    assert answer.status_code == 200
    assert answer.json()["response"] == {"uid": uid, "allowed": True}


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_think_time_keeps_fraction(
    reference: tuple[services.Server, Path], tmp_path: Path
) -> None:
    """A think time of 9.9 ms must wait longer on average than one of 9 ms.

    wrk truncates each wait to whole milliseconds, so without the script's
    rounding both would wait 9 ms and reach the same rate.
    """
    server, _ = reference
    body = tmp_path / "review.json"
    body.write_bytes(bodies.training_review())
    url = server.url + "/mutate"

    whole = run_wrk(url, body, '"allowed":true', 2, connections=4, think_ms=9.0)
    fraction = run_wrk(url, body, '"allowed":true', 2, connections=4, think_ms=9.9)

    # Cycles of about 9.3 and 10.2 ms: the rate drops by about 9%.
    assert fraction.failed == 0
    assert fraction.rate < whole.rate * 0.96


@pytest.mark.skipif(shutil.which("wrk") is None, reason="wrk is not installed")
def test_run_wrk_rejects_silent_server(tmp_path: Path) -> None:
    """A server that responds only after the run ends gives no figures."""
    body = tmp_path / "review.json"
    body.write_bytes(bodies.training_review())
    # Two seconds of busy loop before each response, longer than the run.
    with running_reference(tmp_path, ["--spin-us=2000000"]) as (server, _):
        with pytest.raises(ValueError, match="wrk got no response"):
            run_wrk(server.url + "/mutate", body, '"allowed":true', 1, connections=1)
