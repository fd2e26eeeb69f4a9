"""The fuzz targets pass on their seed corpus and catch a planted bug.

`python fuzz/run.py` fuzzes them under atheris; this replays the corpus
without atheris so the targets themselves stay correct in every test run.
"""

from __future__ import annotations

import pytest

from fuzz import targets
from fuzz.run import CORPUS, replay
from webhook.admission.references import SecretRef


def test_every_target_has_seeds() -> None:
    for name in targets.TARGETS:
        assert any((CORPUS / name).iterdir()), name


def test_seed_corpus_replays_cleanly() -> None:
    assert replay(list(targets.TARGETS)) >= 20


def test_reference_target_catches_normalising_parser(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A parser that strips blanks would accept a value Kubernetes rejects.
    def lenient(value: str) -> SecretRef:
        secret, key = value.removeprefix("SECRET:").split(",")
        return SecretRef(secret.strip(), key.strip())

    monkeypatch.setattr(targets, "parse_reference", lenient)

    with pytest.raises(AssertionError):
        targets.check_reference(b"SECRET: db , password")


def test_patch_target_checks_second_review() -> None:
    obj = (CORPUS / "patch" / "pod.json").read_bytes()

    targets.check_patch(obj)

    assert targets.decide_all_found(targets.as_object(obj)).patch
