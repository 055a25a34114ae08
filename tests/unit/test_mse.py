"""MSE/PE state machines against each other (pure logic) and their typed errors."""

from __future__ import annotations

import hashlib
import random

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from peer import mse
from peer.mse import (
    CRYPTO_PLAINTEXT,
    CRYPTO_RC4,
    MseError,
    MseInitiator,
    MseResponder,
    Rc4,
    is_plain_handshake,
)

SKEY = hashlib.sha1(b"torrent").digest()
HS = b"\x13BitTorrent protocol" + bytes(8) + SKEY + b"-MB0001-" + bytes(12)


def _pump(a: MseInitiator, b: MseResponder, chunk: int = 7) -> None:
    """Deliver bytes both ways in small chunks until both are done."""
    for _ in range(10_000):
        out_a, out_b = a.data_to_send(), b.data_to_send()
        for k in range(0, len(out_a), chunk):
            if not b.done:
                b.receive(out_a[k:k + chunk])
        for k in range(0, len(out_b), chunk):
            if not a.done:
                a.receive(out_b[k:k + chunk])
        if a.done and b.done and not out_a and not out_b:
            return
    raise AssertionError("no progress")


def test_rc4_known_vector() -> None:
    # RFC 6229-style classic vector: key "Key", plaintext "Plaintext", no drop.
    assert Rc4(b"Key", drop=0).crypt(b"Plaintext").hex() == "bbf316e8d940af0ad3"


@pytest.mark.parametrize(("a_plain", "b_plain", "method"), [
    (True, True, CRYPTO_PLAINTEXT),  # both allow plaintext: plaintext wins
    (False, True, CRYPTO_RC4),  # initiator insists on RC4
    (True, False, CRYPTO_RC4),  # responder insists on RC4
])
def test_negotiation(a_plain: bool, b_plain: bool, method: int) -> None:
    a = MseInitiator(SKEY, HS, random.Random(1), allow_plaintext=a_plain)
    b = MseResponder([b"x" * 20, SKEY], random.Random(2), allow_plaintext=b_plain)
    _pump(a, b)
    assert a.result is not None and b.result is not None
    assert a.result.method == b.result.method == method
    assert b.result.initial_payload == HS and b.result.skey == SKEY
    # The payload stream works in both directions after the handshake.
    assert b.result.decrypt(a.result.encrypt(b"hello")) == b"hello"
    assert a.result.decrypt(b.result.encrypt(b"world")) == b"world"
    if method == CRYPTO_RC4:
        assert a.result.encrypt(b"abc") != b"abc"


def test_payload_after_handshake_in_same_segment() -> None:
    a = MseInitiator(SKEY, HS, random.Random(3), allow_plaintext=False)
    b = MseResponder([SKEY], random.Random(4))
    b.receive(a.data_to_send())
    a.receive(b.data_to_send())
    b.receive(a.data_to_send())
    assert b.result is not None
    reply = b.data_to_send() + b.result.encrypt(HS)
    a.receive(reply)
    assert a.result is not None and a.result.initial_payload == HS


def test_unknown_infohash_is_typed() -> None:
    a = MseInitiator(SKEY, HS, random.Random(5))
    b = MseResponder([b"y" * 20], random.Random(6))
    b.receive(a.data_to_send())
    a.receive(b.data_to_send())
    with pytest.raises(MseError) as e:
        b.receive(a.data_to_send())
    assert e.value.reason == "unknown_infohash"


def test_no_common_method() -> None:
    a = MseInitiator(SKEY, HS, random.Random(5), allow_rc4=False)
    b = MseResponder([SKEY], random.Random(6), allow_plaintext=False)
    b.receive(a.data_to_send())
    a.receive(b.data_to_send())
    with pytest.raises(MseError) as e:
        b.receive(a.data_to_send())
    assert e.value.reason == "no_common_crypto"


def test_is_plain_handshake() -> None:
    assert is_plain_handshake(HS[:5]) is None
    assert is_plain_handshake(HS) is True
    assert is_plain_handshake(b"\x13BitTorrent protocoX") is False
    assert is_plain_handshake(b"\x99") is False


def test_sync_marker_scan_is_bounded() -> None:
    b = MseResponder([SKEY], random.Random(7))
    b.receive(mse.P.to_bytes(96, "big")[:1] + bytes(95))  # a 96-byte "public key"
    with pytest.raises(MseError) as e:
        for _ in range(100):
            b.receive(bytes(64))
    assert e.value.reason in ("no_sync", "bad_dh_key")


FUZZ = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@FUZZ
@given(st.binary(min_size=0, max_size=900), st.integers(0, 2**32))
def test_responder_fuzz(data: bytes, seed: int) -> None:
    b = MseResponder([SKEY], random.Random(seed))
    try:
        b.receive(b"\x01" + data)
    except MseError:
        pass


@FUZZ
@given(st.binary(min_size=0, max_size=900), st.integers(0, 2**32))
def test_initiator_fuzz(data: bytes, seed: int) -> None:
    a = MseInitiator(SKEY, HS, random.Random(seed))
    try:
        a.receive(bytes([2]) + data)
    except MseError:
        pass


@FUZZ
@given(st.integers(0, 2**32), st.integers(0, 2**16))
def test_initiator_fuzz_after_exchange(seed: int, noise_seed: int) -> None:
    """Garbage after a valid key exchange (where the encrypted fields are)."""
    a = MseInitiator(SKEY, HS, random.Random(seed))
    b = MseResponder([SKEY], random.Random(seed + 1))
    b.receive(a.data_to_send())
    yb = b.data_to_send()
    noise = random.Random(noise_seed).randbytes(700) if hasattr(random.Random, "randbytes") \
        else bytes(700)
    try:
        a.receive(yb[:96] + noise)
    except MseError:
        pass
