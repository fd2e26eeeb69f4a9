"""Limits that stop a large review early, before it costs much CPU."""

import pytest

from tests.admission.builders import container, env, pod, review, run
from webhook.admission.annotations import MAX_ANNOTATIONS_BYTES, parse_env_annotation
from webhook.admission.errors import Denied
from webhook.admission.scanning import MAX_SECRETS_PER_REVIEW, Scan

KEY = "runai-secrets-webhook/env"
LINE = "V{}=SECRET:db-creds,username\n"


def test_oversized_env_annotation_denied_first() -> None:
    # Lines that would each fail to parse: the size check must come first.
    text = "not a valid line\n" * (MAX_ANNOTATIONS_BYTES // 17 + 1)

    with pytest.raises(Denied) as raised:
        parse_env_annotation(text, KEY, 'Pod "web"')

    message = raised.value.message
    assert raised.value.code == 400
    assert KEY in message
    assert f"{len(text)} bytes" in message
    assert f"limit of {MAX_ANNOTATIONS_BYTES} bytes" in message


def test_env_annotation_at_the_limit_parsed() -> None:
    lines = [LINE.format(number) for number in range(10_000)]
    text = "".join(lines)
    text = text[: text.rindex("\n", 0, MAX_ANNOTATIONS_BYTES) + 1]

    additions = parse_env_annotation(text, KEY, 'Pod "web"')

    assert len(additions) == text.count("\n")


def test_large_env_annotation_review_denied_with_its_size() -> None:
    text = "".join(LINE.format(number) for number in range(95_000))
    obj = pod(container("main"), annotations={KEY: text})

    decision = run(review(obj))

    assert not decision.allowed
    assert f"annotation {KEY} has {len(text)} bytes" in decision.message


def test_scan_stops_at_the_first_secret_past_the_limit() -> None:
    entries = [env(f"V{number}", f"SECRET:s{number},k") for number in range(5_000)]
    scan = Scan('Pod "web"')

    with pytest.raises(Denied) as raised:
        scan.scan_container(container("main", *entries), "/spec/containers/0")

    assert f"more than {MAX_SECRETS_PER_REVIEW} different secrets" in (
        raised.value.message
    )
    # The uses recorded before the stop: the limit, not the 5,000 entries.
    assert len(scan.uses) == MAX_SECRETS_PER_REVIEW
