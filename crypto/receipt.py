"""Platform-signed submission receipts (投标回执).

When the platform accepts a sealed bid it signs a receipt naming the bid, the section, the
bidder, the SHA-256 of the exact ciphertext it stored, its own clock's time, and the index
of the acceptance event in the transparency log (optionally the tree size and root of a
signed tree head that includes it). The bidder keeps the receipt as a JSON file and can
verify it offline with the platform's published certificate or public key; with the log
index it can later ask for an inclusion proof.

Signed document (see :mod:`crypto.signing` for the signing input)::

    {"type": "sunbid.receipt", "version": 1, "bid_id": ..., "section_id": ...,
     "bidder_id": ..., "ciphertext_sha256": ..., "server_time": "...Z", "log_index": 17,
     "tree_size": 18, "root_hash": "..."}        # the last two only when given

Receipt file (:meth:`Receipt.to_json`): that document plus ``"algorithm"``, ``"key_id"``
(hex SHA-256 of the platform key's SPKI) and ``"signature"`` (base64), as canonical JSON.
The platform signs with Ed25519 or ECDSA P-256 only (cheap, fixed-size signatures).
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, ed25519

from crypto.canonical import CanonicalizationError, canonical_json, parse_json, parse_utc
from crypto.errors import CryptoError
from crypto.pki import SigningPrivateKey, SigningPublicKey, key_id
from crypto.signing import (
    SignatureInvalidError,
    UnsupportedKeyError,
    sign_document,
    signature_algorithm,
    verify_document,
)

__all__ = [
    "RECEIPT_TYPE",
    "Receipt",
    "ReceiptFormatError",
    "issue_receipt",
    "verify_receipt",
]

RECEIPT_TYPE = "sunbid.receipt"
RECEIPT_VERSION = 1
_HEX64 = re.compile(r"^[0-9a-f]{64}$")
_FIELD_NAMES = (
    "bid_id",
    "section_id",
    "bidder_id",
    "ciphertext_sha256",
    "server_time",
    "log_index",
    "tree_size",
    "root_hash",
)
_REQUIRED = _FIELD_NAMES[:6]


class ReceiptFormatError(CryptoError):
    """Receipt fields or a receipt file are malformed."""

    code = "receipt_invalid"


def _check_fields(values: Mapping[str, Any]) -> None:
    for name in ("bid_id", "section_id", "bidder_id"):
        value = values[name]
        if not isinstance(value, str) or not value or len(value) > 200:
            raise ReceiptFormatError(f"{name} must be a non-empty string", field=name)
    if not isinstance(values["ciphertext_sha256"], str) or not _HEX64.match(
        values["ciphertext_sha256"]
    ):
        raise ReceiptFormatError("ciphertext_sha256 must be 64 lower-case hex characters")
    try:
        parse_utc(values["server_time"])
    except CanonicalizationError as exc:
        raise ReceiptFormatError(str(exc), field="server_time") from exc
    log_index, tree_size, root_hash = values["log_index"], values["tree_size"], values["root_hash"]
    if isinstance(log_index, bool) or not isinstance(log_index, int) or log_index < 0:
        raise ReceiptFormatError("log_index must be an integer ≥ 0", field="log_index")
    if (tree_size is None) != (root_hash is None):
        raise ReceiptFormatError("tree_size and root_hash go together")
    if tree_size is not None:
        if isinstance(tree_size, bool) or not isinstance(tree_size, int) or tree_size <= log_index:
            raise ReceiptFormatError("tree_size must be an integer > log_index", field="tree_size")
        if not isinstance(root_hash, str) or not _HEX64.match(root_hash):
            raise ReceiptFormatError("root_hash must be 64 lower-case hex characters")


@dataclass(frozen=True)
class Receipt:
    """A signed receipt (回执). Build it with :func:`issue_receipt`; check it with
    :func:`verify_receipt`. ``signature`` is over :meth:`to_document`."""

    bid_id: str
    section_id: str
    bidder_id: str
    ciphertext_sha256: str
    server_time: str
    log_index: int
    tree_size: int | None
    root_hash: str | None
    algorithm: str
    key_id: str
    signature: bytes

    def to_document(self) -> dict[str, Any]:
        """The signed JSON object."""
        doc: dict[str, Any] = {"type": RECEIPT_TYPE, "version": RECEIPT_VERSION}
        for name in _FIELD_NAMES:
            value = getattr(self, name)
            if value is not None:
                doc[name] = value
        return doc

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.to_document(),
            "algorithm": self.algorithm,
            "key_id": self.key_id,
            "signature": base64.b64encode(self.signature).decode("ascii"),
        }

    def to_json(self) -> bytes:
        """Canonical JSON for the bidder's receipt file."""
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Receipt:
        """Parse a receipt file's object (does not verify the signature)."""
        allowed = {*_FIELD_NAMES, "type", "version", "algorithm", "key_id", "signature"}
        missing = {*_REQUIRED, "type", "version", "algorithm", "key_id", "signature"} - set(data)
        if missing or not set(data) <= allowed:
            raise ReceiptFormatError(
                "receipt members do not match",
                missing=sorted(missing),
                unexpected=sorted(set(data) - allowed),
            )
        if data["type"] != RECEIPT_TYPE or data["version"] != RECEIPT_VERSION:
            raise ReceiptFormatError("not a version-1 receipt")
        values: dict[str, Any] = {name: data.get(name) for name in _FIELD_NAMES}
        _check_fields(values)
        kid = data["key_id"]
        if not isinstance(kid, str) or not _HEX64.match(kid):
            raise ReceiptFormatError("key_id must be 64 lower-case hex characters")
        if data["algorithm"] not in ("ed25519", "ecdsa-p256-sha256"):
            raise ReceiptFormatError("unsupported receipt algorithm", algorithm=data["algorithm"])
        try:
            signature = base64.b64decode(str(data["signature"]), validate=True)
        except ValueError as exc:
            raise ReceiptFormatError("signature is not base64") from exc
        return cls(
            **values,
            algorithm=str(data["algorithm"]),
            key_id=kid,
            signature=signature,
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> Receipt:
        parsed = parse_json(data)
        if not isinstance(parsed, Mapping):
            raise ReceiptFormatError("a receipt file must be a JSON object")
        return cls.from_dict(parsed)


def _check_platform_key(key: SigningPrivateKey | SigningPublicKey) -> str:
    if not isinstance(
        key,
        ed25519.Ed25519PrivateKey
        | ed25519.Ed25519PublicKey
        | ec.EllipticCurvePrivateKey
        | ec.EllipticCurvePublicKey,
    ):
        raise UnsupportedKeyError("receipts are signed with Ed25519 or ECDSA P-256 only")
    return signature_algorithm(key)


def issue_receipt(platform_key: SigningPrivateKey, fields: Mapping[str, Any]) -> Receipt:
    """Sign a receipt (签发回执) with the platform's Ed25519 or P-256 key.

    ``fields`` holds ``bid_id``, ``section_id``, ``bidder_id`` (strings),
    ``ciphertext_sha256`` (hex), ``server_time`` (``...Z``; format it with
    :func:`crypto.canonical.format_utc`), ``log_index`` (int ≥ 0) and optionally
    ``tree_size`` (> log_index) with ``root_hash`` (hex). Other keys are refused.
    """
    unknown = set(fields) - set(_FIELD_NAMES)
    missing = set(_REQUIRED) - set(fields)
    if unknown or missing:
        raise ReceiptFormatError(
            "receipt fields do not match", missing=sorted(missing), unexpected=sorted(unknown)
        )
    values: dict[str, Any] = {name: fields.get(name) for name in _FIELD_NAMES}
    _check_fields(values)
    algorithm = _check_platform_key(platform_key)
    unsigned = Receipt(
        **values, algorithm=algorithm, key_id=key_id(platform_key.public_key()), signature=b""
    )
    signature = sign_document(platform_key, unsigned.to_document())
    return replace(unsigned, signature=signature)


def verify_receipt(
    receipt: Receipt, platform_certificate_or_public_key: SigningPublicKey | x509.Certificate
) -> None:
    """Verify a receipt offline against the platform's certificate or public key.

    Raises :class:`crypto.signing.SignatureInvalidError` if the receipt was signed by
    another key or does not verify. (Checking the platform certificate's own chain is
    separate: :func:`crypto.pki.verify_chain`.)
    """
    key = platform_certificate_or_public_key
    public = key.public_key() if isinstance(key, x509.Certificate) else key
    if not isinstance(public, ed25519.Ed25519PublicKey | ec.EllipticCurvePublicKey):
        raise UnsupportedKeyError("receipts are signed with Ed25519 or ECDSA P-256 only")
    if key_id(public) != receipt.key_id:
        raise SignatureInvalidError(
            "receipt was signed by another key", expected=receipt.key_id, given=key_id(public)
        )
    if _check_platform_key(public) != receipt.algorithm:
        raise SignatureInvalidError("receipt algorithm does not match the key")
    verify_document(public, receipt.to_document(), receipt.signature)
