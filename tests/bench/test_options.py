"""The command line options that the benchmark tools share."""

from __future__ import annotations

import argparse
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import calibrate, ceiling, profile
from bench.options import INTERRUPTED, make_results_directory


def test_calibrate_rejects_bad_results_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A --results that cannot be created must fail before any load runs."""
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    arguments = ["--rounds", "1", "--seconds", "1", "--results", f"{blocker}/r"]

    with pytest.raises(SystemExit) as exit_info:
        calibrate.main(arguments)

    assert exit_info.value.code == 2
    assert f"--results {blocker}/r" in capsys.readouterr().err


def test_bench_rejects_bad_results_first(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")

    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["--quick", "--results", f"{blocker}/r"])

    assert exit_info.value.code == 2
    assert f"--results {blocker}/r" in capsys.readouterr().err


@pytest.mark.parametrize("main", [calibrate.main, profile.main])
@pytest.mark.parametrize("spin", ["nan", "inf", "-inf", "twenty"])
def test_tools_reject_non_finite_spin(
    main: Callable[[list[str]], int],
    spin: str,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    results = tmp_path / "results"

    with pytest.raises(SystemExit) as exit_info:
        main([f"--spin-us={spin}", "--results", str(results)])

    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "argument --spin-us" in err
    assert repr(spin) in err
    assert not results.exists()


@pytest.mark.parametrize("workers", ["0", "-2"])
def test_bench_rejects_bad_workers_first(
    workers: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A worker count below 1 must fail before any server starts."""
    results = tmp_path / "results"

    with pytest.raises(SystemExit) as exit_info:
        bench_main.main(["--quick", f"--workers={workers}", "--results", str(results)])

    assert exit_info.value.code == 2
    assert f"--workers must be at least 1, not {workers}" in capsys.readouterr().err
    assert not results.exists()


@pytest.mark.skipif(not Path("/proc/self").is_dir(), reason="needs Linux /proc")
def test_results_rejects_proc(capsys: pytest.CaptureFixture[str]) -> None:
    """No user, root included, can create a file in /proc."""
    parser = argparse.ArgumentParser()

    with pytest.raises(SystemExit) as exit_info:
        make_results_directory(parser, Path("/proc"))

    assert exit_info.value.code == 2
    assert "--results /proc is not writable" in capsys.readouterr().err


def test_results_directory_is_created(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    directory = tmp_path / "a" / "b"

    make_results_directory(parser, directory)

    assert directory.is_dir()


@pytest.mark.parametrize(
    ("main", "results_file"),
    [
        (bench_main.main, "results.json"),
        (calibrate.main, "calibration.json"),
        (profile.main, "profile.json"),
        (ceiling.main, "ceiling.json"),
    ],
)
def test_tools_stop_early_without_wrk(
    main: Callable[[list[str]], int],
    results_file: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """With neither wrk nor apt-get on PATH, a tool returns 2 and starts nothing."""
    monkeypatch.setenv("PATH", str(tmp_path))
    results = tmp_path / "results"

    code = main(["--results", str(results)])

    assert code == 2
    assert "wrk was not found" in capsys.readouterr().err
    assert not (results / results_file).exists()


def test_ctrl_c_ends_a_tool_with_one_line() -> None:
    """SIGINT mid-measurement exits 130 with a line, not a traceback."""
    tool = subprocess.Popen(
        [sys.executable, "-m", "bench.stages", "--count", "2000000"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert tool.stdout is not None
        # The first line comes just before the measurement starts.
        assert tool.stdout.readline().startswith("stages:")
        tool.send_signal(signal.SIGINT)
        _, err = tool.communicate(timeout=30)
    finally:
        tool.kill()
        tool.wait()

    assert tool.returncode == INTERRUPTED
    assert "Traceback" not in err
    assert "interrupted: no results were written" in err
