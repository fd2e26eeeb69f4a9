"""Key names from secret manifests and from API responses."""

from __future__ import annotations

from pathlib import Path

import pytest

from webhook.admission.lookups import LookupStatus
from webhook.kube.secrets import DirectorySecrets, key_names, status_message

SENTINEL = "sentinel-value-6f1c2"

MANIFESTS = f"""\
apiVersion: v1
kind: Secret
metadata:
  name: db-creds
  namespace: runai-team-a
data:
  username: YWxpY2U=
  password: aHVudGVyMg==
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: not-a-secret
  namespace: runai-team-a
data:
  config: "1"
---
apiVersion: v1
kind: Secret
metadata:
  name: plain
stringData:
  token: {SENTINEL}
"""


def test_directory_keeps_key_names_only(tmp_path: Path) -> None:
    (tmp_path / "secrets.yaml").write_text(MANIFESTS)
    (tmp_path / "README.txt").write_text("not read")

    secrets = DirectorySecrets(tmp_path)
    db = secrets.fetch("runai-team-a", "db-creds", 1.0)
    plain = secrets.fetch("default", "plain", 1.0)

    assert db.status is LookupStatus.FOUND
    assert db.keys == frozenset({"username", "password"})
    assert plain.keys == frozenset({"token"})
    assert SENTINEL not in repr(vars(secrets))


def test_directory_skips_other_kinds(tmp_path: Path) -> None:
    (tmp_path / "secrets.yml").write_text(MANIFESTS)

    secrets = DirectorySecrets(tmp_path)

    assert (
        secrets.fetch("runai-team-a", "not-a-secret", 1.0).status
        is LookupStatus.NOT_FOUND
    )
    assert (
        secrets.fetch("runai-team-b", "db-creds", 1.0).status is LookupStatus.NOT_FOUND
    )


def test_directory_parse_error_hides_line(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text(f"kind: Secret\ndata:\n  token: [{SENTINEL}\n")

    with pytest.raises(ValueError, match=r"bad\.yaml: invalid YAML at line") as raised:
        DirectorySecrets(tmp_path)

    assert SENTINEL not in str(raised.value)


def test_directory_must_exist(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        DirectorySecrets(tmp_path / "missing")


def test_key_names_from_data_and_string_data() -> None:
    assert key_names({"data": {"a": "x"}, "stringData": {"b": "y"}}) == frozenset(
        {"a", "b"}
    )
    assert key_names({"data": None}) == frozenset()
    assert key_names([]) == frozenset()


def test_status_message_is_cut() -> None:
    body = b'{"kind":"Status","message":"' + b"x" * 500 + b'"}'

    assert len(status_message(body)) == 200
    assert status_message(b"not json") == ""
    assert status_message(None) == ""


@pytest.mark.parametrize(
    ("metadata", "section", "problem"),
    [
        ("{name: Bad_Name}", "data: {}", "metadata.name 'Bad_Name' is not a valid"),
        ("{name: 42}", "data: {}", "metadata.name 42 is not a valid"),
        ("{name: ok, namespace: Team_A}", "data: {}", "metadata.namespace 'Team_A'"),
        ("{name: ok}", "data: [token]", "data is a list, not a mapping"),
        ("{name: ok}", "stringData: token", "stringData is a str, not a mapping"),
    ],
)
def test_directory_rejects_invalid_secret(
    tmp_path: Path, metadata: str, section: str, problem: str
) -> None:
    (tmp_path / "bad.yaml").write_text(
        f"kind: Secret\nmetadata: {metadata}\n{section}\n"
    )

    with pytest.raises(ValueError) as raised:
        DirectorySecrets(tmp_path)

    message = str(raised.value)
    assert message.startswith(f"{tmp_path / 'bad.yaml'}: ")
    assert problem in message
    assert "kube-apiserver would reject it" in message
