"""Threshold opening keys (开标密钥): Shamir k-of-n sharing of an X25519 private key.

When a section is published the platform runs an *opening-key ceremony*
(:func:`generate_opening_key`): it makes an X25519 key pair, splits the 32-byte private key
into ``n`` shares of which any ``k`` restore it, encrypts each share to one custodian
(开标人 / 密钥保管人) with HPKE, publishes the public key, its fingerprint and one
commitment per share, and drops the private key. At the opening, ``k`` custodians decrypt
their shares (:func:`decrypt_share`) and the platform restores the key in memory
(:func:`combine_shares`), checking every share and the result.

Field. Shares are points of a random polynomial of degree ``k-1`` over the prime field
GF(p), ``p = 2**256 + 297`` (the smallest prime above 2**256). Every 32-byte string, read as
a big-endian integer, is below ``p``, so the private key embeds in the field without
reduction or bias, and a restored value ≥ 2**256 is itself proof of a bad share. Share
``i`` (1 ≤ i ≤ n ≤ 255) is ``f(i)``, written as 33 bytes big-endian (values reach p-1 > 2**256).
A prime field keeps the arithmetic to Python integers and one modular inverse per
Lagrange coefficient, which is easy to re-implement from the description in PROTOCOLS.md;
GF(2**8) byte-wise sharing would keep shares at 32 bytes but needs table arithmetic that
is easier to get subtly wrong and gains nothing here.

Share verification. The dealer (the platform, during the ceremony) is trusted to deal
consistent shares — the restored key is always checked against the published public key,
so a dealer fault cannot go unnoticed, only unattributed. What must be *attributed* is a
custodian handing in a wrong or corrupted share. For that the ceremony publishes, per
share, ``SHA-256("sunbid/opening-share-commitment/v1" ‖ 0x00 ‖ len16(ceremony_id) ‖
ceremony_id ‖ fingerprint(32) ‖ index(1) ‖ value(33))``. A share is 256+ bits of uniform
randomness (for k ≥ 2; for k = 1 it is the key itself), so the hash hides it, and SHA-256's
second-preimage resistance makes it binding. Feldman VSS was considered and rejected: it
needs a prime-order group whose exponent field is the sharing field, which would mean
sharing the clamped X25519 scalar modulo the Curve25519 group order and implementing group
arithmetic by hand in Python — more code to trust for a property (dealer honesty) that the
public-key check already gives us.

Limits: Python cannot reliably wipe memory; the key and shares live in ``bytes`` objects
until garbage-collected. Run reconstruction in a short-lived worker process.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hpke
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey

from crypto.errors import CryptoError

__all__ = [
    "FIELD_PRIME",
    "MAX_SHARES",
    "SHARE_VALUE_SIZE",
    "CeremonyFormatError",
    "EncryptedShare",
    "KeyMismatchError",
    "NotEnoughSharesError",
    "OpeningKeyCeremony",
    "Share",
    "ShareInvalidError",
    "ThresholdParameterError",
    "combine_secret",
    "combine_shares",
    "decrypt_share",
    "generate_opening_key",
    "partition_shares",
    "public_key_fingerprint",
    "share_commitment",
    "share_hpke_info",
    "split_secret",
    "verify_share",
]

FIELD_PRIME = 2**256 + 297
"""p = 2**256 + 297, the smallest prime above 2**256."""
SECRET_SIZE = 32
SHARE_VALUE_SIZE = 33
MAX_SHARES = 255
CEREMONY_VERSION = 1

_SHARE_FORMAT_TAG = 0x01
_COMMITMENT_LABEL = b"sunbid/opening-share-commitment/v1"
_HPKE_INFO_LABEL = b"sunbid/opening-share/v1"
_SUITE = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)

RandomBytes = Callable[[int], bytes]


# --------------------------------------------------------------------------- errors


class ThresholdParameterError(CryptoError):
    """k, n, ceremony id or custodian keys are out of range (code ``threshold_parameters``)."""

    code = "threshold_parameters"


class ShareInvalidError(CryptoError):
    """A share fails to decrypt, to parse or to match its published commitment.

    ``details["index"]`` (or ``details["indices"]``) names the offending share(s).
    """

    code = "share_invalid"


class NotEnoughSharesError(CryptoError):
    """Fewer than ``k`` distinct valid shares were offered.

    ``details``: ``k``, ``valid`` (indices of good shares), ``invalid`` (indices refused).
    """

    code = "not_enough_shares"


class KeyMismatchError(CryptoError):
    """Shares combined, but the result does not match the published opening public key
    (dealer fault, or shares from another ceremony without commitments)."""

    code = "opening_key_mismatch"


class CeremonyFormatError(CryptoError):
    """A serialised ceremony, share or encrypted share is malformed."""

    code = "ceremony_format"


# --------------------------------------------------------------------------- data types


@dataclass(frozen=True)
class Share:
    """One Shamir share: ``index`` in 1..255 (the x coordinate) and ``value`` = f(index)
    as 33 bytes big-endian."""

    index: int
    value: bytes

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or not 1 <= self.index <= MAX_SHARES:
            raise CeremonyFormatError("share index must be 1..255", index=self.index)
        if not isinstance(self.value, bytes) or len(self.value) != SHARE_VALUE_SIZE:
            raise CeremonyFormatError("share value must be 33 bytes", index=self.index)
        if int.from_bytes(self.value, "big") >= FIELD_PRIME:
            raise CeremonyFormatError("share value is not a field element", index=self.index)

    def to_bytes(self) -> bytes:
        """``0x01 ‖ index (1 byte) ‖ value (33 bytes)`` — 35 bytes."""
        return bytes((_SHARE_FORMAT_TAG, self.index)) + self.value

    @classmethod
    def from_bytes(cls, data: bytes) -> Share:
        if len(data) != 2 + SHARE_VALUE_SIZE or data[0] != _SHARE_FORMAT_TAG:
            raise CeremonyFormatError("malformed share bytes", length=len(data))
        return cls(index=data[1], value=bytes(data[2:]))

    def to_dict(self) -> dict[str, Any]:
        return {"index": self.index, "value": self.value.hex()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Share:
        try:
            return cls(index=int(data["index"]), value=bytes.fromhex(str(data["value"])))
        except (KeyError, TypeError, ValueError) as exc:
            raise CeremonyFormatError(f"malformed share: {exc}") from exc

    def __repr__(self) -> str:  # never print share material in logs
        return f"Share(index={self.index}, value=<redacted>)"


@dataclass(frozen=True)
class EncryptedShare:
    """A share sealed to one custodian with HPKE (RFC 9180 base mode,
    DHKEM(X25519, HKDF-SHA256), HKDF-SHA256, AES-256-GCM).

    ``ciphertext`` = ``enc (32 bytes) ‖ AEAD ciphertext of the 33-byte share value``.
    ``recipient_public_key`` is the custodian's raw 32-byte X25519 public key.
    """

    index: int
    recipient_public_key: bytes
    ciphertext: bytes

    def to_dict(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "recipient_public_key": self.recipient_public_key.hex(),
            "ciphertext": base64.b64encode(self.ciphertext).decode("ascii"),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> EncryptedShare:
        try:
            index = int(data["index"])
            recipient = bytes.fromhex(str(data["recipient_public_key"]))
            ciphertext = base64.b64decode(str(data["ciphertext"]), validate=True)
        except (KeyError, TypeError, ValueError) as exc:
            raise CeremonyFormatError(f"malformed encrypted share: {exc}") from exc
        if len(recipient) != 32:
            raise CeremonyFormatError("recipient public key must be 32 bytes", index=index)
        return cls(index=index, recipient_public_key=recipient, ciphertext=ciphertext)


@dataclass(frozen=True)
class OpeningKeyCeremony:
    """Public record of an opening-key ceremony: publish it with the tender.

    ``encrypted_shares[i]`` and ``share_commitments[i]`` belong to share index ``i + 1``.
    Contains no secret: the private key is not stored anywhere.
    """

    ceremony_id: str
    k: int
    n: int
    public_key_bytes: bytes
    fingerprint: str
    encrypted_shares: tuple[EncryptedShare, ...]
    share_commitments: tuple[str, ...]
    version: int = CEREMONY_VERSION

    @property
    def public_key(self) -> X25519PublicKey:
        return X25519PublicKey.from_public_bytes(self.public_key_bytes)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": self.version,
            "ceremony_id": self.ceremony_id,
            "k": self.k,
            "n": self.n,
            "public_key": self.public_key_bytes.hex(),
            "fingerprint": self.fingerprint,
            "encrypted_shares": [s.to_dict() for s in self.encrypted_shares],
            "share_commitments": list(self.share_commitments),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> OpeningKeyCeremony:
        """Parse and check consistency (sizes, fingerprint, index order, k ≤ n)."""
        try:
            version = int(data["version"])
            ceremony_id = str(data["ceremony_id"])
            k, n = int(data["k"]), int(data["n"])
            public_key_bytes = bytes.fromhex(str(data["public_key"]))
            fingerprint = str(data["fingerprint"])
            shares = tuple(EncryptedShare.from_dict(s) for s in data["encrypted_shares"])
            commitments = tuple(str(c) for c in data["share_commitments"])
        except (KeyError, TypeError, ValueError) as exc:
            raise CeremonyFormatError(f"malformed ceremony: {exc}") from exc
        if version != CEREMONY_VERSION:
            raise CeremonyFormatError("unsupported ceremony version", version=version)
        _check_parameters(k, n, ceremony_id)
        if len(public_key_bytes) != 32 or public_key_fingerprint(public_key_bytes) != fingerprint:
            raise CeremonyFormatError("public key and fingerprint do not match")
        if len(shares) != n or len(commitments) != n:
            raise CeremonyFormatError("expected n encrypted shares and n commitments", n=n)
        if [s.index for s in shares] != list(range(1, n + 1)):
            raise CeremonyFormatError("encrypted shares must be indexed 1..n in order")
        if any(len(c) != 64 or c != c.lower() for c in commitments):
            raise CeremonyFormatError("commitments must be 64 lower-case hex characters")
        return cls(
            ceremony_id=ceremony_id,
            k=k,
            n=n,
            public_key_bytes=public_key_bytes,
            fingerprint=fingerprint,
            encrypted_shares=shares,
            share_commitments=commitments,
            version=version,
        )


# --------------------------------------------------------------------------- helpers


def public_key_fingerprint(public_key: X25519PublicKey | bytes) -> str:
    """Opening-key fingerprint: lower-case hex SHA-256 of the raw 32-byte X25519 public key."""
    raw = public_key if isinstance(public_key, bytes) else public_key.public_bytes_raw()
    return hashlib.sha256(raw).hexdigest()


def _check_parameters(k: int, n: int, ceremony_id: str | None = None) -> None:
    if not (isinstance(k, int) and isinstance(n, int) and 1 <= k <= n <= MAX_SHARES):
        raise ThresholdParameterError("need 1 ≤ k ≤ n ≤ 255", k=k, n=n)
    if ceremony_id is not None:
        encoded = ceremony_id.encode("utf-8")
        if not ceremony_id or len(encoded) > 256 or not ceremony_id.isprintable():
            raise ThresholdParameterError("ceremony id must be 1..256 printable UTF-8 bytes")


def _len16(data: bytes) -> bytes:
    return struct.pack(">H", len(data)) + data


def share_commitment(ceremony_id: str, fingerprint: str, share: Share) -> str:
    """Hex SHA-256 commitment to ``share``, bound to the ceremony and opening key:
    ``SHA-256(label ‖ 0x00 ‖ len16(id) ‖ id ‖ fingerprint bytes (32) ‖ index ‖ value)``."""
    data = (
        _COMMITMENT_LABEL
        + b"\x00"
        + _len16(ceremony_id.encode("utf-8"))
        + bytes.fromhex(fingerprint)
        + bytes((share.index,))
        + share.value
    )
    return hashlib.sha256(data).hexdigest()


def share_hpke_info(ceremony_id: str, index: int, fingerprint: str) -> bytes:
    """HPKE ``info`` for share ``index``: ``label ‖ 0x00 ‖ len16(id) ‖ id ‖ index ‖
    fingerprint bytes (32)`` — a ciphertext cannot be replayed under another ceremony,
    index or opening key."""
    return (
        _HPKE_INFO_LABEL
        + b"\x00"
        + _len16(ceremony_id.encode("utf-8"))
        + bytes((index,))
        + bytes.fromhex(fingerprint)
    )


def _random_field_element(rng: RandomBytes) -> int:
    # Rejection sampling over 257-bit candidates: uniform in [0, p), accepts ~1/2 the time.
    while True:
        candidate = int.from_bytes(rng(33), "big") & ((1 << 257) - 1)
        if candidate < FIELD_PRIME:
            return candidate


def _eval_poly(coefficients: Sequence[int], x: int) -> int:
    result = 0
    for c in reversed(coefficients):
        result = (result * x + c) % FIELD_PRIME
    return result


# --------------------------------------------------------------------------- sharing


def split_secret(secret: bytes, k: int, n: int, rng: RandomBytes | None = None) -> list[Share]:
    """Split a 32-byte ``secret`` into ``n`` shares, any ``k`` of which restore it.

    ``f(x) = s + a1·x + … + a(k-1)·x^(k-1) mod p`` with ``s`` the secret as a big-endian
    integer and ``a1..a(k-1)`` uniform in GF(p); share ``i`` is ``(i, f(i))`` for i = 1..n.
    ``rng(nbytes)`` supplies randomness (default :func:`secrets.token_bytes`); pass a
    deterministic one only in tests.
    """
    _check_parameters(k, n)
    if not isinstance(secret, bytes) or len(secret) != SECRET_SIZE:
        raise ThresholdParameterError("secret must be 32 bytes")
    draw = rng or secrets.token_bytes
    coefficients = [int.from_bytes(secret, "big")]
    coefficients += [_random_field_element(draw) for _ in range(k - 1)]
    return [
        Share(index=i, value=_eval_poly(coefficients, i).to_bytes(SHARE_VALUE_SIZE, "big"))
        for i in range(1, n + 1)
    ]


def combine_secret(shares: Iterable[Share]) -> bytes:
    """Lagrange-interpolate ``f(0)`` from the given shares and return it as 32 bytes.

    All shares offered are used, so pass exactly the ``k`` you trust (duplicates of the same
    share are merged; two different values for one index raise :class:`ShareInvalidError`).
    This low-level function cannot tell a wrong share from a right one: with fewer than
    ``k`` shares or a bad share it returns a wrong secret, unless the result happens to
    fall outside 0..2**256-1, which raises :class:`ShareInvalidError`. Use
    :func:`combine_shares` for checked reconstruction.
    """
    points: dict[int, int] = {}
    for share in shares:
        value = int.from_bytes(share.value, "big")
        if points.setdefault(share.index, value) != value:
            raise ShareInvalidError("two different shares for one index", index=share.index)
    if not points:
        raise NotEnoughSharesError("no shares given", k=None, valid=[], invalid=[])
    secret = 0
    for xi, yi in points.items():
        numerator, denominator = 1, 1
        for xj in points:
            if xj != xi:
                numerator = numerator * xj % FIELD_PRIME  # (0 - xj) / (xi - xj), signs cancel
                denominator = denominator * (xj - xi) % FIELD_PRIME
        secret = (secret + yi * numerator * pow(denominator, -1, FIELD_PRIME)) % FIELD_PRIME
    if secret >= 1 << 256:
        raise ShareInvalidError(
            "shares do not interpolate to a 32-byte secret", indices=sorted(points)
        )
    return secret.to_bytes(SECRET_SIZE, "big")


# --------------------------------------------------------------------------- ceremony


def generate_opening_key(
    k: int,
    n: int,
    custodian_public_keys: Sequence[X25519PublicKey],
    *,
    ceremony_id: str,
    rng: RandomBytes | None = None,
) -> OpeningKeyCeremony:
    """Run an opening-key ceremony (开标密钥生成) for ``n`` custodians, threshold ``k``.

    Generates an X25519 key pair, splits the private key with :func:`split_secret`, seals
    share ``i`` to ``custodian_public_keys[i-1]`` with HPKE (info = :func:`share_hpke_info`),
    commits to each share (:func:`share_commitment`), checks that the first ``k`` shares
    restore the key, and returns only public material. Custodian keys must be distinct.
    """
    _check_parameters(k, n, ceremony_id)
    if len(custodian_public_keys) != n:
        raise ThresholdParameterError(
            "need exactly n custodian public keys", n=n, given=len(custodian_public_keys)
        )
    raw_keys = [pk.public_bytes_raw() for pk in custodian_public_keys]
    if len(set(raw_keys)) != n:
        raise ThresholdParameterError("custodian public keys must be distinct")

    private_key = X25519PrivateKey.generate()
    secret = private_key.private_bytes_raw()
    public_key_bytes = private_key.public_key().public_bytes_raw()
    del private_key
    fingerprint = public_key_fingerprint(public_key_bytes)

    shares = split_secret(secret, k, n, rng)
    if combine_secret(shares[:k]) != secret:  # pragma: no cover - arithmetic self-check
        raise KeyMismatchError("internal error: shares do not restore the key")
    del secret

    encrypted = tuple(
        EncryptedShare(
            index=share.index,
            recipient_public_key=raw,
            ciphertext=_SUITE.encrypt(
                share.value, pk, info=share_hpke_info(ceremony_id, share.index, fingerprint)
            ),
        )
        for share, pk, raw in zip(shares, custodian_public_keys, raw_keys, strict=True)
    )
    commitments = tuple(share_commitment(ceremony_id, fingerprint, s) for s in shares)
    return OpeningKeyCeremony(
        ceremony_id=ceremony_id,
        k=k,
        n=n,
        public_key_bytes=public_key_bytes,
        fingerprint=fingerprint,
        encrypted_shares=encrypted,
        share_commitments=commitments,
    )


def verify_share(share: Share, ceremony: OpeningKeyCeremony) -> None:
    """Check ``share`` against the ceremony's published commitment for its index.

    Raises :class:`ShareInvalidError` (``details["index"]``) if it does not match.
    """
    if not 1 <= share.index <= ceremony.n:
        raise ShareInvalidError("share index outside 1..n", index=share.index, n=ceremony.n)
    expected = ceremony.share_commitments[share.index - 1]
    actual = share_commitment(ceremony.ceremony_id, ceremony.fingerprint, share)
    if not hmac.compare_digest(expected, actual):
        raise ShareInvalidError("share does not match its published commitment", index=share.index)


def decrypt_share(
    encrypted_share: EncryptedShare,
    custodian_private_key: X25519PrivateKey,
    ceremony: OpeningKeyCeremony,
) -> Share:
    """Custodian side: open one's encrypted share and check it against the commitment.

    Raises :class:`ShareInvalidError` if the share is addressed to another key, fails to
    decrypt (wrong key, tampered ciphertext, other ceremony/index/opening key) or does
    not match its commitment.
    """
    index = encrypted_share.index
    own = custodian_private_key.public_key().public_bytes_raw()
    if own != encrypted_share.recipient_public_key:
        raise ShareInvalidError("this share is sealed to another custodian key", index=index)
    if not 1 <= index <= ceremony.n:
        raise ShareInvalidError("share index outside 1..n", index=index, n=ceremony.n)
    try:
        value = _SUITE.decrypt(
            encrypted_share.ciphertext,
            custodian_private_key,
            info=share_hpke_info(ceremony.ceremony_id, index, ceremony.fingerprint),
        )
    except (InvalidTag, ValueError) as exc:
        raise ShareInvalidError("share does not decrypt", index=index) from exc
    try:
        share = Share(index=index, value=value)
    except CeremonyFormatError as exc:
        raise ShareInvalidError("decrypted share is malformed", index=index) from exc
    verify_share(share, ceremony)
    return share


def partition_shares(
    shares: Iterable[Share], ceremony: OpeningKeyCeremony
) -> tuple[list[Share], list[int]]:
    """Split offered shares into (valid shares, sorted indices of invalid ones).

    A share is valid when it matches its published commitment. Duplicates of one valid
    share are kept once. Use it to tell custodians whose share was refused even when
    :func:`combine_shares` succeeds with the others.
    """
    good: dict[int, Share] = {}
    invalid: set[int] = set()
    for share in shares:
        try:
            verify_share(share, ceremony)
        except ShareInvalidError:
            invalid.add(share.index)
            continue
        good[share.index] = share
    return [good[i] for i in sorted(good)], sorted(invalid)


def combine_shares(shares: Iterable[Share], ceremony: OpeningKeyCeremony) -> X25519PrivateKey:
    """Restore the opening private key from ``k`` or more shares (开标解密).

    Every share is checked against its commitment; bad ones are set aside and their
    indices reported. If at least ``k`` distinct good shares remain, ``k`` of them (lowest
    indices) are combined and the result is checked against the published public key.

    Raises :class:`NotEnoughSharesError` (details ``k``, ``valid``, ``invalid``) when fewer
    than ``k`` good shares were offered, and :class:`KeyMismatchError` if good shares do
    not restore the published key (only possible through a dealer fault).
    """
    valid, invalid = partition_shares(shares, ceremony)
    good = {share.index: share for share in valid}
    if len(good) < ceremony.k:
        raise NotEnoughSharesError(
            f"need {ceremony.k} valid shares, got {len(good)}",
            k=ceremony.k,
            valid=sorted(good),
            invalid=sorted(invalid),
        )
    chosen = [good[i] for i in sorted(good)[: ceremony.k]]
    secret = combine_secret(chosen)
    key = X25519PrivateKey.from_private_bytes(secret)
    if key.public_key().public_bytes_raw() != ceremony.public_key_bytes:
        raise KeyMismatchError(
            "restored key does not match the published opening key",
            fingerprint=ceremony.fingerprint,
            used=sorted(good)[: ceremony.k],
        )
    return key
