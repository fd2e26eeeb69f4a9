import re

import pytest

from webhook.admission import InjectionOptions, SecretLookup
from webhook.admission.subjects import describe_subject

from .builders import container, env, pod, review, run

# kube-apiserver keeps an audit annotation only when its key matches this
# and has at most 63 characters.
AUDIT_KEY = re.compile(r"[A-Za-z0-9][-A-Za-z0-9_.]*[A-Za-z0-9]")


def test_default_options() -> None:
    options = InjectionOptions()
    assert options.annotation_prefix == "runai-secrets-webhook"
    assert options.on_missing == "deny"
    assert options.keys.injected == "runai-secrets-webhook/injected"
    assert ("", "v1", "Pod") in options.kinds


def test_options_compare_by_settings() -> None:
    assert InjectionOptions() == InjectionOptions()
    assert InjectionOptions(on_missing="warn") != InjectionOptions()
    assert hash(InjectionOptions()) == hash(InjectionOptions())


def test_invalid_on_missing_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"on_missing 'Warn' is not valid\. Use 'deny' or 'warn'\."
    ):
        InjectionOptions(on_missing="Warn")  # type: ignore[arg-type]


@pytest.mark.parametrize("prefix", ["", "Runai", "a/b", "-x", "x" * 254])
def test_invalid_prefix_is_rejected(prefix: str) -> None:
    with pytest.raises(ValueError) as caught:
        InjectionOptions(annotation_prefix=prefix)
    assert str(caught.value) == (
        f"annotation prefix {prefix!r} is not valid: use a DNS-1123 subdomain of at "
        "most 253 characters, such as runai-secrets-webhook or secrets.example.com"
    )


def test_dotted_prefix_is_accepted() -> None:
    options = InjectionOptions(annotation_prefix="secrets.example.com")
    assert options.keys.env == "secrets.example.com/env"


def test_audit_annotation_keys_are_valid() -> None:
    obj = pod(container("app", env("A", "SECRET:db-creds,username")))
    decision = run(
        review(obj),
        {"db-creds": SecretLookup.not_found()},
        InjectionOptions(on_missing="warn"),
    )
    assert decision.audit_annotations
    for key in decision.audit_annotations:
        assert len(key) <= 63
        assert AUDIT_KEY.fullmatch(key), key


def test_subject_names() -> None:
    named = review(pod(name="web"))["request"]
    assert describe_subject(named, pod(name="web")) == 'Pod "web"'
    generated = pod(name=None, generateName="web-")
    assert (
        describe_subject(review(generated)["request"], generated)
        == 'Pod with generateName "web-"'
    )
    anonymous = pod(name=None)
    assert (
        describe_subject(review(anonymous)["request"], anonymous)
        == "Pod without a name"
    )
