"""The command line options that the benchmark tools share."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from bench import __main__ as bench_main
from bench import calibrate
from bench.options import make_results_directory


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


def test_results_directory_is_created(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    directory = tmp_path / "a" / "b"

    make_results_directory(parser, directory)

    assert directory.is_dir()
