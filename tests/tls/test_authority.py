"""Rotation steps of the self-managed CA, on a test clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from cryptography import x509

from webhook.tls import authority, pki
from webhook.tls.authority import CAPolicy, InvalidCASecretError

START = datetime(2030, 1, 1, tzinfo=UTC)
POLICY = CAPolicy(ca_lifetime=timedelta(days=60), leaf_lifetime=timedelta(days=5))


def _serials(pem: bytes) -> list[int]:
    return [cert.serial_number for cert in x509.load_pem_x509_certificates(pem)]


def _at(fraction: float, ca: x509.Certificate) -> datetime:
    start, end = ca.not_valid_before_utc, ca.not_valid_after_utc
    return start + (end - start) * fraction + timedelta(seconds=1)


def test_new_state_trusts_signing_ca() -> None:
    state = authority.new_state(POLICY, START)
    assert state.next is None
    assert _serials(state.bundle(START)) == [state.signing.cert.serial_number]


def test_secret_data_round_trip() -> None:
    state = authority.new_state(POLICY, START)
    data = authority.to_secret_data(state, START)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt"}

    parsed = authority.from_secret_data(data)
    assert parsed.signing.cert == state.signing.cert
    assert pki.key_matches(parsed.signing.cert, parsed.signing.key)
    assert parsed.trusted == (state.signing.cert,)


def test_advance_before_publication_changes_nothing() -> None:
    state = authority.new_state(POLICY, START)
    later = _at(0.66, state.signing.cert) - timedelta(seconds=2)
    assert authority.advance(state, POLICY, later, next_published=True) is state


def test_publication_adds_next_ca_to_bundle() -> None:
    state = authority.new_state(POLICY, START)
    now = _at(2 / 3, state.signing.cert)

    published = authority.advance(state, POLICY, now, next_published=False)

    assert published.signing.cert == state.signing.cert
    assert published.next is not None
    assert _serials(published.bundle(now)) == [
        state.signing.cert.serial_number,
        published.next.cert.serial_number,
    ]
    data = authority.to_secret_data(published, now)
    assert set(data) == {"tls.crt", "tls.key", "ca.crt", "next.crt", "next.key"}
    parsed_next = authority.from_secret_data(data).next
    assert parsed_next is not None
    assert parsed_next.cert == published.next.cert


def test_promotion_waits_for_published_bundle() -> None:
    state = authority.new_state(POLICY, START)
    published = authority.advance(
        state, POLICY, _at(2 / 3, state.signing.cert), next_published=False
    )
    now = _at(5 / 6, state.signing.cert)

    waiting = authority.advance(published, POLICY, now, next_published=False)
    assert waiting is published

    promoted = authority.advance(published, POLICY, now, next_published=True)
    assert published.next is not None
    assert promoted.signing.cert == published.next.cert
    assert promoted.next is None
    assert set(_serials(promoted.bundle(now))) == {
        state.signing.cert.serial_number,
        published.next.cert.serial_number,
    }


def test_old_ca_leaves_bundle_after_expiry() -> None:
    state = authority.new_state(POLICY, START)
    old = state.signing.cert
    state = authority.advance(state, POLICY, _at(2 / 3, old), next_published=False)
    state = authority.advance(state, POLICY, _at(5 / 6, old), next_published=True)

    before_expiry = old.not_valid_after_utc - timedelta(seconds=1)
    assert authority.advance(state, POLICY, before_expiry, next_published=True) is state

    after_expiry = old.not_valid_after_utc + timedelta(seconds=1)
    retired = authority.advance(state, POLICY, after_expiry, next_published=True)
    assert retired.trusted == (state.signing.cert,)
    assert _serials(retired.bundle(after_expiry)) == [state.signing.cert.serial_number]


def test_expired_signing_ca_replaced() -> None:
    state = authority.new_state(POLICY, START)
    now = state.signing.cert.not_valid_after_utc + timedelta(days=1)
    replaced = authority.advance(state, POLICY, now, next_published=False)
    assert replaced.signing.cert != state.signing.cert
    assert replaced.signing.cert.not_valid_after_utc > now
    assert _serials(replaced.bundle(now)) == [replaced.signing.cert.serial_number]


def _next_published_then_expired() -> tuple[authority.CAState, pki.KeyPair, datetime]:
    """Return a state with a next CA, that CA, and a time after the signing CA."""
    state = authority.new_state(POLICY, START)
    old = state.signing.cert
    published = authority.advance(state, POLICY, _at(2 / 3, old), next_published=False)
    assert published.next is not None
    return published, published.next, old.not_valid_after_utc + timedelta(days=1)


def test_expired_signing_ca_promotes_published_next() -> None:
    # Every caBundle already trusts the next CA, so promoting it keeps calls
    # working, where a brand-new CA would be rejected until it is published.
    published, upcoming, now = _next_published_then_expired()

    promoted = authority.advance(published, POLICY, now, next_published=True)

    assert promoted.signing.cert == upcoming.cert
    assert promoted.next is None
    assert _serials(promoted.bundle(now)) == [upcoming.cert.serial_number]


def test_expired_signing_ca_with_unpublished_next_replaced() -> None:
    published, upcoming, now = _next_published_then_expired()

    replaced = authority.advance(published, POLICY, now, next_published=False)

    assert replaced.signing.cert not in (published.signing.cert, upcoming.cert)
    assert replaced.next is None


def test_bundle_order_is_fixed() -> None:
    state = authority.new_state(POLICY, START)
    now = _at(2 / 3, state.signing.cert)
    published = authority.advance(state, POLICY, now, next_published=False)
    reversed_state = authority.CAState(
        published.signing, published.next, tuple(reversed(published.trusted))
    )
    assert reversed_state.bundle(now) == published.bundle(now)


def test_leaf_lifetime_ends_with_ca() -> None:
    state = authority.new_state(POLICY, START)
    end = state.signing.cert.not_valid_after_utc
    assert (
        authority.leaf_lifetime(POLICY, state.signing.cert, START)
        == POLICY.leaf_lifetime
    )
    near_end = end - timedelta(days=1)
    assert authority.leaf_lifetime(POLICY, state.signing.cert, near_end) == timedelta(
        days=1
    )


def test_leaf_rotation_at_two_thirds() -> None:
    state = authority.new_state(POLICY, START)
    leaf = pki.issue_leaf(
        state.signing, dns_names=["svc"], now=START, lifetime=timedelta(days=3)
    )
    rotation = authority.leaf_rotation_time(leaf.cert)
    lifetime = leaf.cert.not_valid_after_utc - leaf.cert.not_valid_before_utc
    assert rotation == leaf.cert.not_valid_before_utc + lifetime * 2 / 3


def test_policy_rejects_leaf_longer_than_overlap() -> None:
    with pytest.raises(ValueError, match="longer than the CA overlap"):
        CAPolicy(ca_lifetime=timedelta(days=60), leaf_lifetime=timedelta(days=11))


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda data: data.pop("tls.key"), "has no key 'tls.key'"),
        (lambda data: data.update({"tls.crt": b"garbage"}), "is invalid"),
        (
            lambda data: data.update(
                {
                    "tls.key": pki.KeyPair(
                        authority.new_state(POLICY, START).signing.cert,
                        pki.new_private_key(),
                    ).key_pem
                }
            ),
            "does not match",
        ),
    ],
)
def test_invalid_secret_data_rejected(change: object, message: str) -> None:
    data = authority.to_secret_data(authority.new_state(POLICY, START), START)
    change(data)  # type: ignore[operator]
    with pytest.raises(InvalidCASecretError, match=message):
        authority.from_secret_data(data)


def test_leaf_certificate_is_not_a_ca() -> None:
    state = authority.new_state(POLICY, START)
    leaf = pki.issue_leaf(
        state.signing, dns_names=["svc"], now=START, lifetime=timedelta(days=1)
    )
    data = authority.to_secret_data(state, START)
    data["tls.crt"], data["tls.key"] = leaf.cert_pem, leaf.key_pem
    with pytest.raises(InvalidCASecretError, match="not a CA certificate"):
        authority.from_secret_data(data)
