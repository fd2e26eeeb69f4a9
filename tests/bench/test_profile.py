"""Reading perf's report and splitting a server's CPU time by area."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import profile

DSO_REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
# Samples: 15K of event 'cpu-clock:ppp'
# Overhead  Shared Object
# ........  ........................
#
    44.51%  libpython3.11.so.1.0
    23.74%  [kernel.kallsyms]
    10.93%  orjson.cpython-311-x86_64-linux-gnu.so
     6.48%  libc.so.6
     5.71%  libcrypto.so.3
     3.86%  loop.cpython-311-x86_64-linux-gnu.so
     2.21%  libssl.so.3
     1.58%  parser.cpython-311-x86_64-linux-gnu.so
     0.98%  binascii.cpython-311-x86_64-linux-gnu.so


#
# (Cannot load tips.txt file, please install perf!)
#
"""

SYMBOL_REPORT = """\
# Overhead  Shared Object  Symbol
    11.69%  libpython3.11.so.1.0   [.] _PyEval_EvalFrameDefault
    11.06%  [kernel.kallsyms]      [k] _raw_spin_unlock_irqrestore
"""


def test_parse_report_skips_comments() -> None:
    rows = profile.parse_report(DSO_REPORT)

    assert len(rows) == 9
    assert rows["libpython3.11.so.1.0"] == pytest.approx(44.51)
    assert rows["[kernel.kallsyms]"] == pytest.approx(23.74)
    assert sum(rows.values()) == pytest.approx(100.0)


def test_parse_report_keeps_symbol_names() -> None:
    rows = profile.parse_report(SYMBOL_REPORT)

    assert rows == {
        "libpython3.11.so.1.0 [.] _PyEval_EvalFrameDefault": pytest.approx(11.69),
        "[kernel.kallsyms] [k] _raw_spin_unlock_irqrestore": pytest.approx(11.06),
    }


@pytest.mark.parametrize(
    ("shared_object", "area"),
    [
        ("libpython3.11.so.1.0", "Python interpreter"),
        ("python3.11", "Python interpreter"),
        ("[kernel.kallsyms]", "kernel"),
        ("libcrypto.so.3", "TLS (OpenSSL)"),
        ("_ssl.cpython-311-x86_64-linux-gnu.so", "TLS (OpenSSL)"),
        ("orjson.cpython-311-x86_64-linux-gnu.so", "JSON (orjson, msgspec)"),
        ("_core.cpython-311-x86_64-linux-gnu.so", "JSON (orjson, msgspec)"),
        ("loop.cpython-311-x86_64-linux-gnu.so", "event loop and HTTP parser"),
        ("url_parser.cpython-311-x86_64-linux-gnu.so", "event loop and HTTP parser"),
        ("libc.so.6", "C library"),
        ("binascii.cpython-311-x86_64-linux-gnu.so", "other"),
        ("[vdso]", "other"),
    ],
)
def test_area_of_shared_objects(shared_object: str, area: str) -> None:
    assert profile.area_of(shared_object) == area


def test_by_area_returns_fractions() -> None:
    areas = profile.by_area(profile.parse_report(DSO_REPORT), "webhook")

    assert sum(areas.values()) == pytest.approx(1.0)
    assert areas["TLS (OpenSSL)"] == pytest.approx(0.0571 + 0.0221)
    assert areas["other"] == pytest.approx(0.0098)


# All that `perf report --sort dso --stdio` (perf 6.1) writes to stdout for
# a perf.data without samples. It exits with 0.
EMPTY_REPORT = """\
# To display the perf.data header info, please use --header/--header-only options.
#
"""


def test_by_area_rejects_empty_report() -> None:
    with pytest.raises(profile.ProfileError) as error:
        profile.by_area(profile.parse_report(EMPTY_REPORT), "webhook")

    message = str(error.value)
    assert "perf recorded no samples of webhook" in message
    assert "perf record -p" in message


def test_profile_takes_median_of_rounds() -> None:
    server = profile.Profile(
        "webhook",
        cpu_us=[100.0, 200.0, 150.0],
        areas=[{"kernel": 0.5}, {"kernel": 0.1}, {"kernel": 0.2}],
        symbols=[{"a": 10.0, "b": 50.0}, {"a": 20.0}, {"a": 30.0, "b": 10.0}],
    )

    # Per round: 50, 20 and 30 us.
    assert server.area_us() == {"kernel": pytest.approx(30.0)}
    # Symbol "a": 10, 40 and 45 us; "b": 50, 0 and 15 us.
    top = server.top_symbols(2)
    assert [name for name, _ in top] == ["a", "b"]
    assert [us for _, us in top] == pytest.approx([40.0, 15.0])
    assert [name for name, _ in server.top_symbols(1)] == ["a"]


def test_main_without_perf_names_package(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # wrk is found (and never run), so the missing perf is what stops it.
    wrk = tmp_path / "wrk"
    wrk.write_text("#!/bin/sh\nexit 1\n")
    wrk.chmod(0o755)
    monkeypatch.setenv("PATH", str(tmp_path))

    with pytest.raises(SystemExit) as exit_info:
        profile.main(["--results", str(tmp_path / "results")])

    assert exit_info.value.code == 1
    assert "linux-perf" in capsys.readouterr().err
    assert not (tmp_path / "results").exists()


@pytest.mark.parametrize(
    "arguments", [["--rounds", "0"], ["--seconds", "0"], ["--spin-us", "-1"]]
)
def test_main_rejects_bad_options(
    arguments: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        profile.main(arguments)

    assert exit_info.value.code == 2
    assert arguments[0] in capsys.readouterr().err


def test_area_us_adds_up_to_total() -> None:
    """The areas of one server must add up to its median CPU time per review."""
    server = profile.Profile(
        "webhook",
        cpu_us=[100.0, 150.0, 200.0],
        areas=[
            {"kernel": 0.5, "other": 0.5},
            {"kernel": 0.2, "other": 0.8},
            {"kernel": 0.4, "other": 0.6},
        ],
    )

    areas = server.area_us()

    # The round of 150 us is the median one: 30 us kernel, 120 us other.
    assert areas == {"kernel": pytest.approx(30.0), "other": pytest.approx(120.0)}
    assert sum(areas.values()) == pytest.approx(150.0)


def test_area_us_averages_middle_rounds() -> None:
    server = profile.Profile(
        "webhook",
        cpu_us=[400.0, 100.0, 300.0, 200.0],
        areas=[
            {"kernel": 0.5, "other": 0.5},
            {"kernel": 0.9, "other": 0.1},
            {"kernel": 0.1, "other": 0.9},
            {"kernel": 0.5, "other": 0.5},
        ],
    )

    areas = server.area_us()

    # Middle rounds 200 us (100 + 100) and 300 us (30 + 270).
    assert areas == {"kernel": pytest.approx(65.0), "other": pytest.approx(185.0)}
    assert sum(areas.values()) == pytest.approx(250.0)


# `perf evlist -v` lines of perf 6.1, shortened, for root and, with
# kernel.perf_event_paranoid at 2, for an unprivileged user.
ROOT_EVLIST = (
    "cpu-clock:pppH: type: 1, size: 128, { sample_period, sample_freq }: 999, "
    "sample_type: IP|TID|TIME|PERIOD, disabled: 1, inherit: 1, freq: 1"
)
USER_ONLY_EVLIST = (
    "cpu-clock:u: type: 1, size: 128, { sample_period, sample_freq }: 999, "
    "sample_type: IP|TID|TIME|PERIOD, disabled: 1, inherit: 1, "
    "exclude_kernel: 1, exclude_hv: 1, freq: 1"
)


def fake_perf(directory: Path, evlist: str) -> str:
    """Write a perf that prints `evlist` for `perf evlist` and fails otherwise."""
    script = directory / "perf"
    script.write_text(
        f'#!/bin/sh\nif [ "$1" = evlist ]; then echo "{evlist}"; exit 0; fi\nexit 1\n'
    )
    script.chmod(0o755)
    return str(script)


def test_kernel_check_rejects_user_only(tmp_path: Path) -> None:
    perf = fake_perf(tmp_path, USER_ONLY_EVLIST)

    with pytest.raises(profile.ProfileError) as error:
        profile.check_kernel_sampled(perf, tmp_path / "webhook.perf.data", "webhook")

    message = str(error.value)
    assert "only the user space of webhook" in message
    assert "kernel.perf_event_paranoid to 1 or lower" in message


def test_kernel_check_accepts_root_samples(tmp_path: Path) -> None:
    perf = fake_perf(tmp_path, ROOT_EVLIST)

    profile.check_kernel_sampled(perf, tmp_path / "webhook.perf.data", "webhook")


def test_kernel_check_reports_evlist_failure(tmp_path: Path) -> None:
    perf = tmp_path / "perf"
    perf.write_text("#!/bin/sh\necho 'no such file' >&2\nexit 1\n")
    perf.chmod(0o755)

    with pytest.raises(profile.ProfileError, match=r"perf evlist failed.*no such file"):
        profile.check_kernel_sampled(
            str(perf), tmp_path / "webhook.perf.data", "webhook"
        )


def test_main_rejects_bad_results_first(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A --results that cannot be created must fail before any load runs."""
    fake_perf(tmp_path, ROOT_EVLIST)
    monkeypatch.setenv("PATH", f"{tmp_path}:{os.environ['PATH']}")
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.raises(SystemExit) as exit_info:
        profile.main(["--rounds", "1", "--seconds", "1", "--results", f"{blocker}/r"])

    assert exit_info.value.code == 2
    assert f"--results {blocker}/r" in capsys.readouterr().err


@pytest.fixture
def fake_recorders() -> Iterator[list[subprocess.Popen[str]]]:
    """Fake `perf record` processes, each killed with its children at the end."""
    recorders: list[subprocess.Popen[str]] = []
    yield recorders
    for recorder in recorders:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(recorder.pid, signal.SIGKILL)
        recorder.wait()


def start_fake_recorder(
    directory: Path, script: str, recorders: list[subprocess.Popen[str]]
) -> subprocess.Popen[str]:
    """Start `script` as `perf record` in its own process group; wait until it runs."""
    path = directory / "perf"
    path.write_text("#!/bin/sh\n" + script)
    path.chmod(0o755)
    recorder = subprocess.Popen(
        [str(path), "record"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    recorders.append(recorder)
    assert recorder.stderr is not None
    assert recorder.stderr.readline() == "started\n"
    return recorder


def test_stop_recorder_returns_stderr(
    tmp_path: Path, fake_recorders: list[subprocess.Popen[str]]
) -> None:
    # `wait` on a background sleep lets the INT trap run at once.
    recorder = start_fake_recorder(
        tmp_path,
        "sleep 30 & child=$!\n"
        "trap 'kill $child; echo stopped >&2; exit 0' INT\n"
        "echo started >&2\n"
        "wait\n",
        fake_recorders,
    )

    errors = profile.stop_recorder(recorder, "webhook")

    assert errors == "stopped\n"
    assert recorder.returncode == 0


def test_stop_recorder_kills_stuck_perf(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fake_recorders: list[subprocess.Popen[str]],
) -> None:
    monkeypatch.setattr(profile, "PERF_STOP_SECONDS", 0.5)
    recorder = start_fake_recorder(
        tmp_path, "trap '' INT\necho started >&2\nexec sleep 30\n", fake_recorders
    )

    with pytest.raises(profile.ProfileError) as error:
        profile.stop_recorder(recorder, "webhook")

    assert "perf record of webhook did not stop within 0.5 s" in str(error.value)
    assert recorder.poll() is not None


@pytest.mark.parametrize(
    ("errors", "shown"),
    [("", "nothing on stderr"), ("Permission denied\n", "Permission denied")],
)
def test_check_recorded_rejects_empty_file(
    tmp_path: Path, errors: str, shown: str
) -> None:
    data = tmp_path / "perf.data"
    data.write_bytes(b"")

    with pytest.raises(profile.ProfileError) as error:
        profile.check_recorded(data, 0, errors, "webhook")

    message = str(error.value)
    assert "of webhook (exit status 0, " + shown + ")" in message
    assert "perf_event_paranoid" in message


def test_check_recorded_accepts_written_file(tmp_path: Path) -> None:
    data = tmp_path / "perf.data"
    data.write_bytes(b"PERFILE2")

    profile.check_recorded(data, 0, "", "webhook")


def test_print_summary_skips_empty_symbol_lists(
    capsys: pytest.CaptureFixture[str],
) -> None:
    server = {"cpu_us_per_review": 50.0, "areas_us": {"kernel": 50.0}}
    figures = {
        "reference": {**server, "top_symbols_us": []},
        "webhook": {**server, "top_symbols_us": [{"symbol": "main", "us": 1.0}]},
    }

    profile.print_summary(figures)

    printed = capsys.readouterr().out
    assert "reference: symbols" not in printed
    assert "webhook: symbols" in printed
