"""Recipient stanzas (收件人密钥封装): wrapping an envelope's data key to public keys.

A sealed-bid envelope's 32-byte data key (数据密钥) is wrapped once per recipient. Three
stanza types exist (byte layouts in ``crypto/FORMAT.md``):

=====  ==========================================  =====================================
type   recipient key                               wrapping
=====  ==========================================  =====================================
0x01   X25519 public key (the opening key 开标密钥,  HPKE (RFC 9180) mode base,
       or a bidder's X25519 key)                   DHKEM(X25519, HKDF-SHA256),
                                                   HKDF-SHA256, AES-256-GCM
0x02   EC P-256 key (e.g. from an X.509            HPKE mode base, DHKEM(P-256,
       certificate)                                HKDF-SHA256), HKDF-SHA256, AES-256-GCM
0x03   RSA key, 2048..4096 bits (certificate)      RSAES-OAEP, SHA-256, MGF1-SHA-256
=====  ==========================================  =====================================

Every stanza names its recipient by a key id: SHA-256 of the recipient public key's DER
``SubjectPublicKeyInfo``, identical whether the key came bare or inside a certificate.
Each stanza is bound to its envelope: the HPKE ``info`` (or the OAEP label) is the
*binding* string :func:`stanza_binding` computed from the header's fixed fields and
context block, the stanza type and the key id. A stanza copied into another envelope
therefore no longer unwraps.

Production wrapping uses ``cryptography``'s HPKE (``hazmat.primitives.hpke``) and RSA
OAEP. For known-answer tests the module can also wrap *deterministically* with a caller
supplied random-byte source (``rng``): then HPKE and OAEP are computed here, from the RFC
9180 / RFC 8017 definitions, with the ephemeral key and OAEP seed drawn from ``rng``; the
results decrypt with the library's own implementations (the tests check both ways).
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final

from cryptography import x509
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, hpke, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa, x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from crypto.envelope_errors import (
    EnvelopeFormatError,
    RecipientUnwrapError,
    UnsupportedRecipientError,
)

__all__ = [
    "DATA_KEY_SIZE",
    "KEY_ID_SIZE",
    "STANZA_P256_HPKE",
    "STANZA_RSA_OAEP_SHA256",
    "STANZA_X25519_HPKE",
    "PrivateKey",
    "PublicKey",
    "Recipient",
    "RecipientKey",
    "Rng",
    "Stanza",
    "key_id",
    "recipient_key",
    "stanza_binding",
    "stanza_body_length_ok",
    "unwrap_stanza",
    "wrap_data_key",
]

DATA_KEY_SIZE: Final = 32
KEY_ID_SIZE: Final = 32

STANZA_X25519_HPKE: Final = 0x01
STANZA_P256_HPKE: Final = 0x02
STANZA_RSA_OAEP_SHA256: Final = 0x03

_X25519_BODY: Final = 32 + DATA_KEY_SIZE + 16  # enc ‖ AES-256-GCM(data key)
_P256_BODY: Final = 65 + DATA_KEY_SIZE + 16
RSA_MIN_BITS: Final = 2048
RSA_MAX_BITS: Final = 4096

_BINDING_LABEL: Final = b"sunbid-envelope/v1 stanza\x00"

PublicKey = x25519.X25519PublicKey | ec.EllipticCurvePublicKey | rsa.RSAPublicKey
"""A bare recipient public key."""

PrivateKey = x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
"""A private key that can unwrap a stanza."""

Recipient = PublicKey | x509.Certificate
"""What :func:`crypto.envelope.seal` accepts as a recipient."""

Rng = Callable[[int], bytes]
"""A source of random bytes, ``rng(n) -> n bytes`` (``os.urandom`` by default)."""


@dataclass(frozen=True, slots=True)
class RecipientKey:
    """A recipient normalised to its public key, stanza type and key id."""

    public_key: PublicKey
    stanza_type: int
    key_id: bytes
    body_length: int


@dataclass(frozen=True, slots=True)
class Stanza:
    """One recipient stanza as it appears in the header."""

    stanza_type: int
    key_id: bytes
    body: bytes

    def encode(self) -> bytes:
        """Wire encoding: type u8 ‖ key id (32) ‖ body length u16 BE ‖ body."""
        return (
            bytes([self.stanza_type]) + self.key_id + len(self.body).to_bytes(2, "big") + self.body
        )


def key_id(public_key: PublicKey) -> bytes:
    """SHA-256 of the key's DER ``SubjectPublicKeyInfo`` (the stanza's recipient id)."""
    spki = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def recipient_key(recipient: Recipient) -> RecipientKey:
    """Normalise a recipient (bare key or X.509 certificate) and check it is supported.

    Raises :class:`UnsupportedRecipientError` for other key types, EC curves other than
    P-256 and RSA moduli outside 2048..4096 bits. Certificate validity, chain and key usage
    are the caller's concern (``crypto.pki``); only the certificate's key is used here.
    """
    if isinstance(recipient, x509.Certificate):
        try:
            pub = recipient.public_key()
        except Exception as exc:  # unsupported algorithm in the certificate
            raise UnsupportedRecipientError(f"certificate public key is not usable: {exc}") from exc
    else:
        pub = recipient
    if isinstance(pub, x25519.X25519PublicKey):
        return RecipientKey(pub, STANZA_X25519_HPKE, key_id(pub), _X25519_BODY)
    if isinstance(pub, ec.EllipticCurvePublicKey):
        if not isinstance(pub.curve, ec.SECP256R1):
            raise UnsupportedRecipientError(
                f"EC recipient keys must be on P-256, not {pub.curve.name}",
                curve=pub.curve.name,
            )
        return RecipientKey(pub, STANZA_P256_HPKE, key_id(pub), _P256_BODY)
    if isinstance(pub, rsa.RSAPublicKey):
        if not RSA_MIN_BITS <= pub.key_size <= RSA_MAX_BITS:
            raise UnsupportedRecipientError(
                f"RSA recipient keys must have {RSA_MIN_BITS}..{RSA_MAX_BITS} bits",
                key_size=pub.key_size,
            )
        return RecipientKey(pub, STANZA_RSA_OAEP_SHA256, key_id(pub), (pub.key_size + 7) // 8)
    raise UnsupportedRecipientError(
        f"unsupported recipient key type {type(pub).__name__}", key_type=type(pub).__name__
    )


def private_key_id(private_key: PrivateKey) -> bytes:
    """Key id of the public half of ``private_key``."""
    return key_id(private_key.public_key())


def stanza_body_length_ok(stanza_type: int, length: int) -> bool:
    """Whether ``length`` is a valid body length for ``stanza_type`` (format check)."""
    if stanza_type == STANZA_X25519_HPKE:
        return length == _X25519_BODY
    if stanza_type == STANZA_P256_HPKE:
        return length == _P256_BODY
    if stanza_type == STANZA_RSA_OAEP_SHA256:
        return RSA_MIN_BITS // 8 <= length <= RSA_MAX_BITS // 8
    return False


def stanza_binding(core_hash: bytes, stanza_type: int, kid: bytes) -> bytes:
    """The HPKE ``info`` / OAEP label binding a stanza to its envelope and recipient.

    ``"sunbid-envelope/v1 stanza" ‖ 0x00 ‖ core_hash (32) ‖ type (1) ‖ key id (32)``,
    where ``core_hash`` is SHA-256 of the header's fixed part and context block.
    """
    return _BINDING_LABEL + core_hash + bytes([stanza_type]) + kid


# --------------------------------------------------------------------------- wrapping

_SUITE_X25519: Final = hpke.Suite(hpke.KEM.X25519, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)
_SUITE_P256: Final = hpke.Suite(hpke.KEM.P256, hpke.KDF.HKDF_SHA256, hpke.AEAD.AES_256_GCM)


def _oaep(label: bytes) -> padding.OAEP:
    return padding.OAEP(
        mgf=padding.MGF1(algorithm=hashes.SHA256()), algorithm=hashes.SHA256(), label=label
    )


def wrap_data_key(
    recipient: RecipientKey, data_key: bytes, binding: bytes, *, rng: Rng | None = None
) -> Stanza:
    """Wrap ``data_key`` to ``recipient`` under ``binding`` (see :func:`stanza_binding`).

    With ``rng`` (tests only) the wrapping is deterministic given the bytes ``rng`` returns.
    """
    if len(data_key) != DATA_KEY_SIZE:
        raise ValueError("data key must be 32 bytes")
    pub = recipient.public_key
    if isinstance(pub, x25519.X25519PublicKey):
        if rng is None:
            body = _SUITE_X25519.encrypt(data_key, pub, info=binding)
        else:
            eph = x25519.X25519PrivateKey.from_private_bytes(rng(32))
            body = _hpke_seal_base(_X25519_KEM, pub, eph, binding, data_key)
    elif isinstance(pub, ec.EllipticCurvePublicKey):
        if rng is None:
            body = _SUITE_P256.encrypt(data_key, pub, info=binding)
        else:
            eph_ec = _p256_scalar_key(rng)
            body = _hpke_seal_base(_P256_KEM, pub, eph_ec, binding, data_key)
    else:
        if rng is None:
            body = pub.encrypt(data_key, _oaep(binding))
        else:
            body = _rsa_oaep_encrypt_deterministic(pub, data_key, binding, rng(32))
    assert len(body) == recipient.body_length
    return Stanza(recipient.stanza_type, recipient.key_id, body)


def unwrap_stanza(stanza: Stanza, private_key: PrivateKey, binding: bytes) -> bytes:
    """Recover the data key from ``stanza`` with ``private_key``.

    Raises :class:`RecipientUnwrapError` if the stanza does not decrypt (tampered stanza
    or binding, or a key of the wrong type) and :class:`EnvelopeFormatError` if the
    recovered key is not 32 bytes.
    """
    try:
        if stanza.stanza_type == STANZA_X25519_HPKE and isinstance(
            private_key, x25519.X25519PrivateKey
        ):
            dk = _SUITE_X25519.decrypt(stanza.body, private_key, info=binding)
        elif stanza.stanza_type == STANZA_P256_HPKE and isinstance(
            private_key, ec.EllipticCurvePrivateKey
        ):
            dk = _SUITE_P256.decrypt(stanza.body, private_key, info=binding)
        elif stanza.stanza_type == STANZA_RSA_OAEP_SHA256 and isinstance(
            private_key, rsa.RSAPrivateKey
        ):
            if len(stanza.body) != (private_key.key_size + 7) // 8:
                raise ValueError("RSA stanza length does not match the key")
            dk = private_key.decrypt(stanza.body, _oaep(binding))
        else:
            raise RecipientUnwrapError(
                "stanza type does not match the private key type",
                stanza_type=stanza.stanza_type,
            )
    except RecipientUnwrapError:
        raise
    except (InvalidTag, ValueError) as exc:
        raise RecipientUnwrapError(
            "recipient stanza failed to decrypt (tampered or not for this key)",
            stanza_type=stanza.stanza_type,
        ) from exc
    if len(dk) != DATA_KEY_SIZE:
        raise EnvelopeFormatError("wrapped data key is not 32 bytes", length=len(dk))
    return dk


# ------------------------------------------------- deterministic HPKE (RFC 9180), tests only


@dataclass(frozen=True, slots=True)
class _Kem:
    kem_id: int
    n_secret: int


_X25519_KEM: Final = _Kem(0x0020, 32)
_P256_KEM: Final = _Kem(0x0010, 32)
_KDF_HKDF_SHA256: Final = 0x0001
_AEAD_AES_256_GCM: Final = 0x0002


def _extract(salt: bytes, ikm: bytes) -> bytes:
    return hmac.new(salt, ikm, hashlib.sha256).digest()


def _expand(prk: bytes, info: bytes, length: int) -> bytes:
    out = b""
    block = b""
    counter = 1
    while len(out) < length:
        block = hmac.new(prk, block + info + bytes([counter]), hashlib.sha256).digest()
        out += block
        counter += 1
    return out[:length]


def _labeled_extract(suite_id: bytes, salt: bytes, label: bytes, ikm: bytes) -> bytes:
    return _extract(salt, b"HPKE-v1" + suite_id + label + ikm)


def _labeled_expand(suite_id: bytes, prk: bytes, label: bytes, info: bytes, length: int) -> bytes:
    return _expand(prk, length.to_bytes(2, "big") + b"HPKE-v1" + suite_id + label + info, length)


def _serialize(pub: x25519.X25519PublicKey | ec.EllipticCurvePublicKey) -> bytes:
    if isinstance(pub, x25519.X25519PublicKey):
        return pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return pub.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )


def _p256_scalar_key(rng: Rng) -> ec.EllipticCurvePrivateKey:
    order = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
    scalar = int.from_bytes(rng(32), "big") % (order - 1) + 1
    return ec.derive_private_key(scalar, ec.SECP256R1())


def _hpke_seal_base(
    kem: _Kem,
    pk_r: x25519.X25519PublicKey | ec.EllipticCurvePublicKey,
    sk_e: x25519.X25519PrivateKey | ec.EllipticCurvePrivateKey,
    info: bytes,
    plaintext: bytes,
) -> bytes:
    """HPKE single-shot seal, mode base, with a given ephemeral key: ``enc ‖ ct``."""
    if isinstance(sk_e, x25519.X25519PrivateKey):
        assert isinstance(pk_r, x25519.X25519PublicKey)
        dh = sk_e.exchange(pk_r)
    else:
        assert isinstance(pk_r, ec.EllipticCurvePublicKey)
        dh = sk_e.exchange(ec.ECDH(), pk_r)
    enc = _serialize(sk_e.public_key())
    kem_suite = b"KEM" + kem.kem_id.to_bytes(2, "big")
    kem_context = enc + _serialize(pk_r)
    eae_prk = _labeled_extract(kem_suite, b"", b"eae_prk", dh)
    shared = _labeled_expand(kem_suite, eae_prk, b"shared_secret", kem_context, kem.n_secret)

    suite_id = (
        b"HPKE"
        + kem.kem_id.to_bytes(2, "big")
        + _KDF_HKDF_SHA256.to_bytes(2, "big")
        + _AEAD_AES_256_GCM.to_bytes(2, "big")
    )
    psk_id_hash = _labeled_extract(suite_id, b"", b"psk_id_hash", b"")
    info_hash = _labeled_extract(suite_id, b"", b"info_hash", info)
    ks_context = b"\x00" + psk_id_hash + info_hash
    secret = _labeled_extract(suite_id, shared, b"secret", b"")
    key = _labeled_expand(suite_id, secret, b"key", ks_context, 32)
    base_nonce = _labeled_expand(suite_id, secret, b"base_nonce", ks_context, 12)
    return enc + AESGCM(key).encrypt(base_nonce, plaintext, b"")


def _mgf1_sha256(seed: bytes, length: int) -> bytes:
    out = b""
    counter = 0
    while len(out) < length:
        out += hashlib.sha256(seed + counter.to_bytes(4, "big")).digest()
        counter += 1
    return out[:length]


def _rsa_oaep_encrypt_deterministic(
    pub: rsa.RSAPublicKey, message: bytes, label: bytes, seed: bytes
) -> bytes:
    """RSAES-OAEP-ENCRYPT (RFC 8017 §7.1.1), SHA-256 / MGF1-SHA-256, with a given seed."""
    k = (pub.key_size + 7) // 8
    h_len = 32
    l_hash = hashlib.sha256(label).digest()
    ps = b"\x00" * (k - len(message) - 2 * h_len - 2)
    db = l_hash + ps + b"\x01" + message
    masked_db = bytes(a ^ b for a, b in zip(db, _mgf1_sha256(seed, k - h_len - 1), strict=True))
    masked_seed = bytes(a ^ b for a, b in zip(seed, _mgf1_sha256(masked_db, h_len), strict=True))
    em = b"\x00" + masked_seed + masked_db
    numbers = pub.public_numbers()
    c = pow(int.from_bytes(em, "big"), numbers.e, numbers.n)
    return c.to_bytes(k, "big")
