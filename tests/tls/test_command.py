"""The `certs generate` subcommand's flags, output and errors."""

from __future__ import annotations

import argparse
import base64
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import rsa

from tests.harness.service import REPOSITORY
from webhook.tls import pki
from webhook.tls.command import add_certs_command, run_certs


def _run(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="runai-secrets-webhook")
    add_certs_command(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    handler = args.run
    assert handler is run_certs
    result: int = handler(args)
    return result


def _dns_names(cert_file: Path) -> list[str]:
    cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return san.get_values_for_type(x509.DNSName)


def test_generate_prints_ca_bundle(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    status = _run(
        [
            "certs", "generate", "--service", "hook", "--namespace", "runai",
            "--out", str(tmp_path), "--dns-name", "a.example.com",
            "--dns-name", "b.example.com", "--ip", "127.0.0.1",
            "--ca-days", "20", "--leaf-days", "10",
        ]
    )  # fmt: skip

    out = capsys.readouterr()
    assert status == 0
    assert base64.b64decode(out.out.strip()) == (tmp_path / "ca.crt").read_bytes()
    assert str(tmp_path / "tls.key") in out.err
    assert _dns_names(tmp_path / "tls.crt")[-2:] == ["a.example.com", "b.example.com"]
    assert stat.S_IMODE((tmp_path / "tls.key").stat().st_mode) == 0o600


def test_generate_existing_files_fail_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["certs", "generate", "--service", "hook", "--namespace", "ns"]
    argv += ["--out", str(tmp_path)]
    assert _run(argv) == 0
    capsys.readouterr()

    assert _run(argv) == 1
    err = capsys.readouterr().err
    assert "already exist" in err
    assert "--force" in err
    assert _run([*argv, "--force"]) == 0


@pytest.mark.parametrize(
    ("flags", "error"),
    [
        (["--ip", "not-an-ip"], "invalid IP address 'not-an-ip'"),
        (["--ca-days", "0"], "invalid CA validity 0 days: expected at least 1"),
        (["--service", "Bad_Name"], "invalid service name 'Bad_Name'"),
    ],
)
def test_generate_invalid_value_is_usage_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: list[str], error: str
) -> None:
    argv = ["certs", "generate", "--service", "hook", "--namespace", "ns"]
    status = _run([*argv, "--out", str(tmp_path), *flags])

    assert status == 2
    assert error in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_generate_out_is_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "t4"
    out.write_text("not a directory\n")
    argv = ["certs", "generate", "--service", "hook", "--namespace", "ns"]

    assert _run([*argv, "--out", str(out)]) == 1

    err = capsys.readouterr().err
    assert f"--out {out}: exists and is not a directory" in err
    assert "pass a directory path" in err
    assert "Errno" not in err
    assert out.read_text() == "not a directory\n"


def test_generate_out_under_file_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "file").write_text("")
    out = tmp_path / "file" / "certs"
    argv = ["certs", "generate", "--service", "hook", "--namespace", "ns"]

    assert _run([*argv, "--out", str(out)]) == 1

    err = capsys.readouterr().err
    assert f"--out {out}: cannot write the files: Not a directory" in err
    assert "pass a directory that this user can create or write to" in err


def test_generate_reads_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_SERVICE", "from-env")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_NAMESPACE", "ns")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_OUT", str(tmp_path))
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_KEY_TYPE", "rsa")
    monkeypatch.setenv("RUNAI_SECRETS_WEBHOOK_LEAF_DAYS", "5")

    assert _run(["certs", "generate"]) == 0
    assert "from-env.ns.svc" in _dns_names(tmp_path / "tls.crt")
    key = pki.load_private_key((tmp_path / "tls.key").read_bytes())
    assert isinstance(key, rsa.RSAPrivateKey)
    cert = x509.load_pem_x509_certificate((tmp_path / "tls.crt").read_bytes())
    lifetime = cert.not_valid_after_utc - cert.not_valid_before_utc
    assert 5 * 86400 <= lifetime.total_seconds() <= 5 * 86400 + 600


def test_cli_runs_certs_generate(tmp_path: Path) -> None:
    command = [sys.executable, "-m", "webhook", "certs", "generate"]
    command += ["--service", "hook", "--namespace", "runai", "--out", str(tmp_path)]
    environment = {"PATH": "", "HOME": str(tmp_path), "PYTHONPATH": str(REPOSITORY)}

    result = subprocess.run(
        command, capture_output=True, text=True, env=environment, check=False
    )

    assert result.returncode == 0, result.stderr
    assert base64.b64decode(result.stdout.strip()) == (tmp_path / "ca.crt").read_bytes()
    assert "hook.runai.svc" in _dns_names(tmp_path / "tls.crt")
