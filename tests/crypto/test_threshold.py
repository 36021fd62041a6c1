"""Shamir sharing over GF(2**256 + 297) and the opening-key ceremony."""

from __future__ import annotations

import contextlib
import itertools
import json
import random
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import threshold
from crypto.threshold import (
    FIELD_PRIME,
    EncryptedShare,
    OpeningKeyCeremony,
    Share,
    combine_secret,
    combine_shares,
    decrypt_share,
    generate_opening_key,
    split_secret,
)


def _is_probable_prime(n: int) -> bool:
    d, s = n - 1, 0
    while d % 2 == 0:
        d, s = d // 2, s + 1
    rng = random.Random(1)
    for _ in range(32):
        x = pow(rng.randrange(2, n - 1), d, n)
        if x in (1, n - 1):
            continue
        for _ in range(s - 1):
            x = pow(x, 2, n)
            if x == n - 1:
                break
        else:
            return False
    return True


def test_field_prime_is_smallest_prime_above_2_256() -> None:
    assert FIELD_PRIME == 2**256 + 297
    assert _is_probable_prime(FIELD_PRIME)
    assert not any(_is_probable_prime(2**256 + i) for i in range(1, 297, 2))


secrets32 = st.binary(min_size=32, max_size=32)


@st.composite
def k_n_subset(draw: st.DrawFn) -> tuple[int, int, list[int]]:
    n = draw(st.integers(1, 12))
    k = draw(st.integers(1, n))
    subset = draw(st.permutations(range(n)))[: draw(st.integers(k, n))]
    return k, n, subset


@settings(max_examples=60, deadline=None)
@given(secrets32, k_n_subset())
def test_any_k_subset_reconstructs(secret: bytes, params: tuple[int, int, list[int]]) -> None:
    k, n, subset = params
    shares = split_secret(secret, k, n)
    assert [s.index for s in shares] == list(range(1, n + 1))
    assert combine_secret(shares[i] for i in subset) == secret


@settings(max_examples=40, deadline=None)
@given(secrets32, st.integers(2, 10), st.data())
def test_k_minus_1_shares_do_not_reconstruct(secret: bytes, k: int, data: st.DataObject) -> None:
    shares = split_secret(secret, k, k + 2)
    subset = data.draw(st.permutations(shares))[: k - 1]
    # An interpolated value ≥ 2**256 raises ShareInvalidError: also no secret.
    with contextlib.suppress(threshold.ShareInvalidError):
        assert combine_secret(subset) != secret


@settings(max_examples=40, deadline=None)
@given(secrets32, secrets32, st.integers(2, 8), st.data())
def test_k_minus_1_shares_are_consistent_with_any_secret(
    secret: bytes, other: bytes, k: int, data: st.DataObject
) -> None:
    # Perfect secrecy, constructively: for any candidate secret there is a k-th point that
    # together with the k-1 known shares interpolates to it.
    shares = split_secret(secret, k, k)
    known = data.draw(st.permutations(shares))[: k - 1]
    missing = next(s.index for s in shares if s not in known)
    points = [(0, int.from_bytes(other, "big"))] + [
        (s.index, int.from_bytes(s.value, "big")) for s in known
    ]
    y = 0
    for xi, yi in points:
        num = den = 1
        for xj, _ in points:
            if xj != xi:
                num = num * (missing - xj) % FIELD_PRIME
                den = den * (xi - xj) % FIELD_PRIME
        y = (y + yi * num * pow(den, -1, FIELD_PRIME)) % FIELD_PRIME
    forged = Share(missing, y.to_bytes(33, "big"))
    assert combine_secret([*known, forged]) == other


def test_deterministic_rng_and_k1() -> None:
    stream = itertools.count()

    def rng(n: int) -> bytes:
        return bytes(next(stream) % 256 for _ in range(n))

    secret = bytes(range(32))
    a = split_secret(secret, 3, 5, rng=rng)
    stream = itertools.count()
    b = split_secret(secret, 3, 5, rng=rng)
    assert a == b
    # k = 1: every share carries the secret itself.
    assert {combine_secret([s]) for s in split_secret(secret, 1, 4)} == {secret}


@pytest.mark.parametrize(("k", "n"), [(0, 3), (4, 3), (1, 256), (-1, 2)])
def test_parameter_limits(k: int, n: int) -> None:
    with pytest.raises(threshold.ThresholdParameterError) as err:
        split_secret(bytes(32), k, n)
    assert err.value.code == "threshold_parameters"


def test_share_serialisation() -> None:
    share = split_secret(bytes(32), 2, 3)[1]
    assert Share.from_bytes(share.to_bytes()) == share
    assert len(share.to_bytes()) == 35
    assert Share.from_dict(json.loads(json.dumps(share.to_dict()))) == share
    assert "value" not in repr(share).replace("value=<redacted>", "")
    for bad in (b"", b"\x02" + share.to_bytes()[1:], share.to_bytes()[:-1]):
        with pytest.raises(threshold.CeremonyFormatError):
            Share.from_bytes(bad)
    with pytest.raises(threshold.CeremonyFormatError):
        Share(0, bytes(33))
    with pytest.raises(threshold.CeremonyFormatError):
        Share(1, FIELD_PRIME.to_bytes(33, "big"))
    with pytest.raises(threshold.CeremonyFormatError):
        Share.from_dict({"index": 1, "value": "zz"})


def test_conflicting_duplicate_and_empty() -> None:
    a, b = split_secret(bytes(32), 2, 2)
    assert combine_secret([a, a, b]) == bytes(32)
    with pytest.raises(threshold.ShareInvalidError):
        combine_secret([a, Share(1, b.value), b])
    with pytest.raises(threshold.NotEnoughSharesError):
        combine_secret([])


# --------------------------------------------------------------------------- ceremony


@pytest.fixture(scope="module")
def ceremony(custodian_keys: list[X25519PrivateKey]) -> OpeningKeyCeremony:
    return generate_opening_key(
        3, 5, [k.public_key() for k in custodian_keys], ceremony_id="section-2025-001/opening"
    )


def _all_shares(ceremony: OpeningKeyCeremony, keys: list[X25519PrivateKey]) -> list[Share]:
    return [
        decrypt_share(es, key, ceremony)
        for es, key in zip(ceremony.encrypted_shares, keys, strict=True)
    ]


def test_ceremony_public_record(ceremony: OpeningKeyCeremony) -> None:
    assert ceremony.k == 3 and ceremony.n == 5
    assert len(ceremony.public_key_bytes) == 32
    assert ceremony.fingerprint == threshold.public_key_fingerprint(ceremony.public_key)
    assert len(ceremony.encrypted_shares) == len(ceremony.share_commitments) == 5
    data = json.loads(json.dumps(ceremony.to_dict()))
    assert OpeningKeyCeremony.from_dict(data) == ceremony


def test_ceremony_restores_key_from_any_k(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey]
) -> None:
    shares = _all_shares(ceremony, custodian_keys)
    for subset in itertools.combinations(shares, 3):
        key = combine_shares(subset, ceremony)
        assert key.public_key().public_bytes_raw() == ceremony.public_key_bytes
    with pytest.raises(threshold.NotEnoughSharesError) as err:
        combine_shares(shares[:2], ceremony)
    assert err.value.code == "not_enough_shares"
    assert err.value.details == {"k": 3, "valid": [1, 2], "invalid": []}
    # The same share twice counts once.
    with pytest.raises(threshold.NotEnoughSharesError):
        combine_shares([shares[0], shares[0], shares[1]], ceremony)


def test_bad_shares_identified_and_skipped(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey]
) -> None:
    shares = _all_shares(ceremony, custodian_keys)
    corrupted = Share(2, (int.from_bytes(shares[1].value, "big") ^ 1).to_bytes(33, "big"))
    offered = [shares[0], corrupted, shares[2], shares[3]]
    valid, invalid = threshold.partition_shares(offered, ceremony)
    assert invalid == [2] and [s.index for s in valid] == [1, 3, 4]
    key = combine_shares(offered, ceremony)
    assert key.public_key().public_bytes_raw() == ceremony.public_key_bytes
    with pytest.raises(threshold.NotEnoughSharesError) as err:
        combine_shares([shares[0], corrupted, shares[2]], ceremony)
    assert err.value.details["invalid"] == [2]
    with pytest.raises(threshold.ShareInvalidError) as err2:
        threshold.verify_share(corrupted, ceremony)
    assert err2.value.details["index"] == 2
    with pytest.raises(threshold.ShareInvalidError):
        threshold.verify_share(Share(9, shares[0].value), ceremony)


@settings(max_examples=30, deadline=None)
@given(st.integers(0, 4), st.integers(0, 32 * 8 + 7))
def test_any_bit_flip_detected(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey], which: int, bit: int
) -> None:
    share = _all_shares(ceremony, custodian_keys)[which]
    value = bytearray(share.value)
    value[bit // 8] ^= 1 << (bit % 8)
    if int.from_bytes(value, "big") >= FIELD_PRIME:
        return
    with pytest.raises(threshold.ShareInvalidError):
        threshold.verify_share(Share(share.index, bytes(value)), ceremony)


def test_share_from_another_ceremony_refused(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey]
) -> None:
    other = generate_opening_key(
        3, 5, [k.public_key() for k in custodian_keys], ceremony_id="another"
    )
    foreign = _all_shares(other, custodian_keys)
    with pytest.raises(threshold.NotEnoughSharesError) as err:
        combine_shares(foreign, ceremony)
    assert err.value.details["invalid"] == [1, 2, 3, 4, 5]
    # An encrypted share moved to another ceremony record does not decrypt (HPKE info).
    moved = replace(other, encrypted_shares=ceremony.encrypted_shares)
    with pytest.raises(threshold.ShareInvalidError):
        decrypt_share(moved.encrypted_shares[0], custodian_keys[0], moved)


def test_decrypt_share_refusals(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey]
) -> None:
    es = ceremony.encrypted_shares[0]
    with pytest.raises(threshold.ShareInvalidError):  # addressed to custodian 1, not 2
        decrypt_share(es, custodian_keys[1], ceremony)
    tampered = replace(es, ciphertext=es.ciphertext[:-1] + bytes([es.ciphertext[-1] ^ 1]))
    with pytest.raises(threshold.ShareInvalidError):
        decrypt_share(tampered, custodian_keys[0], ceremony)
    swapped_index = replace(es, index=2)  # HPKE info binds the index
    with pytest.raises(threshold.ShareInvalidError):
        decrypt_share(swapped_index, custodian_keys[0], ceremony)
    assert EncryptedShare.from_dict(es.to_dict()) == es


def test_dealer_fault_detected(
    ceremony: OpeningKeyCeremony, custodian_keys: list[X25519PrivateKey]
) -> None:
    # Consistent commitments over shares of a *different* secret: every share checks out,
    # but the restored key is not the published one.
    wrong = split_secret(bytes(32), 3, 5)
    forged = replace(
        ceremony,
        share_commitments=tuple(
            threshold.share_commitment(ceremony.ceremony_id, ceremony.fingerprint, s) for s in wrong
        ),
    )
    with pytest.raises(threshold.KeyMismatchError) as err:
        combine_shares(wrong, forged)
    assert err.value.code == "opening_key_mismatch"


def test_ceremony_parameter_refusals(custodian_keys: list[X25519PrivateKey]) -> None:
    pubs = [k.public_key() for k in custodian_keys]
    with pytest.raises(threshold.ThresholdParameterError):
        generate_opening_key(3, 4, pubs, ceremony_id="x")  # 5 keys for n = 4
    with pytest.raises(threshold.ThresholdParameterError):
        generate_opening_key(2, 3, [pubs[0], pubs[0], pubs[1]], ceremony_id="x")
    with pytest.raises(threshold.ThresholdParameterError):
        generate_opening_key(2, 3, pubs[:3], ceremony_id="")
    with pytest.raises(threshold.ThresholdParameterError):
        generate_opening_key(4, 3, pubs[:3], ceremony_id="x")


def test_ceremony_from_dict_refusals(ceremony: OpeningKeyCeremony) -> None:
    good = ceremony.to_dict()
    mutations = [
        {"version": 2},
        {"fingerprint": "00" * 32},
        {"k": 6},
        {"share_commitments": good["share_commitments"][:-1]},
        {"encrypted_shares": list(reversed(good["encrypted_shares"]))},
        {"public_key": "zz"},
    ]
    for change in mutations:
        with pytest.raises(CryptoErrorTypes):
            OpeningKeyCeremony.from_dict({**good, **change})
    bad = dict(good)
    del bad["k"]
    with pytest.raises(threshold.CeremonyFormatError):
        OpeningKeyCeremony.from_dict(bad)


CryptoErrorTypes = (threshold.CeremonyFormatError, threshold.ThresholdParameterError)


def test_worked_example_from_protocols_md() -> None:
    # crypto/PROTOCOLS.md §1.6: k = 2, n = 3, a1 = 2**255 + 12345.
    secret = bytes(range(32))
    coefficients = [(2**255 + 12345).to_bytes(33, "big")]
    shares = split_secret(secret, 2, 3, rng=lambda n: coefficients.pop(0))
    tail = "0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d"
    assert [s.value.hex() for s in shares] == [
        "0080" + tail + "4e58",
        "0000" + tail + "7d68",
        "0080" + tail + "ada1",
    ]
    assert combine_secret([shares[2], shares[1]]) == secret
    fp = threshold.public_key_fingerprint(bytes(32))
    assert fp == "66687aadf862bd776c8fc18b8e9f8e20089714856ee233b3902a591d0d5f2925"
    assert threshold.share_commitment("demo-ceremony", fp, shares[0]) == (
        "1a355d4b2d76f4e0e33ace6f49a9fc947da93f2d5bf9b03fb669364e5a35d649"
    )
    assert threshold.share_hpke_info("demo-ceremony", 1, fp) == (
        b"sunbid/opening-share/v1\x00\x00\x0ddemo-ceremony\x01" + bytes.fromhex(fp)
    )
