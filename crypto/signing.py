"""Detached signatures over canonical JSON documents (签名), bid manifests, signed documents.

Signing input. A document (a JSON object) is signed as::

    b"sunbid-signed-document-v1\\n" ‖ canonical_json(document)

(:func:`signing_input`). The fixed prefix keeps a Sunbid signature from ever being valid
as a signature over some other protocol's bytes made with the same certificate key;
documents also carry a ``"type"`` member so a manifest cannot pass as a receipt.

Algorithms, chosen by the key type (nothing in the signature selects them):

==========================  ===========================================================
key                         signature
==========================  ===========================================================
Ed25519                     Ed25519 (RFC 8032), 64 bytes
ECDSA P-256                 ECDSA with SHA-256, *raw* ``r ‖ s`` (2 × 32 bytes big-endian,
                            as WebCrypto produces), not DER
RSA ≥ 2048 bits             RSASSA-PSS, SHA-256, MGF1-SHA-256, salt length 32
==========================  ===========================================================

Other curves, smaller RSA keys and other key types raise :class:`UnsupportedKeyError`.

:class:`BidManifest` is what a bidder signs when sealing a bid (投标文件签名清单);
:func:`verify_manifest` checks the signer's certificate chain, that the certificate's
统一社会信用代码 is the manifest's ``bidder_id``, and the signature. :class:`SignedDocument`
wraps any signed JSON document (opening records, award notices, guarantee letters) with
its signature and the signer's certificate (or a key id) in one JSON file.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils

from crypto.canonical import CanonicalizationError, canonical_json, parse_json, parse_utc
from crypto.errors import CryptoError
from crypto.pki import (
    SigningPrivateKey,
    SigningPublicKey,
    certificate_org_code,
    certificate_to_pem,
    is_valid_org_code,
    key_id,
    load_certificate_pem,
    verify_chain,
)

__all__ = [
    "MANIFEST_TYPE",
    "SIGNING_PREFIX",
    "Algorithm",
    "BidManifest",
    "ManifestError",
    "ManifestSignerMismatchError",
    "SignatureInvalidError",
    "SignedDocument",
    "SignedDocumentFormatError",
    "UnsupportedKeyError",
    "sign_document",
    "sign_manifest",
    "signature_algorithm",
    "signing_input",
    "verify_document",
    "verify_manifest",
]

SIGNING_PREFIX = b"sunbid-signed-document-v1\n"
MANIFEST_TYPE = "sunbid.bid-manifest"
MANIFEST_VERSION = 1
SIGNED_DOCUMENT_VERSION = 1

Algorithm: TypeAlias = Literal["ed25519", "ecdsa-p256-sha256", "rsa-pss-sha256"]
_ALGORITHMS: tuple[str, ...] = ("ed25519", "ecdsa-p256-sha256", "rsa-pss-sha256")
_P256_ORDER_BYTES = 32
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class SignatureInvalidError(CryptoError):
    """The signature does not verify for this document and key."""

    code = "signature_invalid"


class UnsupportedKeyError(CryptoError):
    """The key type or size is not one Sunbid signs with."""

    code = "key_unsupported"


class ManifestError(CryptoError):
    """A bid manifest is malformed (missing, extra or ill-typed fields)."""

    code = "manifest_invalid"


class ManifestSignerMismatchError(CryptoError):
    """The signer's certificate does not carry the manifest's ``bidder_id`` (org code)."""

    code = "manifest_signer_mismatch"


class SignedDocumentFormatError(CryptoError):
    """A serialised :class:`SignedDocument` is malformed."""

    code = "signed_document_format"


# --------------------------------------------------------------------------- primitives


def _public_key(key: SigningPublicKey | x509.Certificate) -> SigningPublicKey:
    if isinstance(key, x509.Certificate):
        pub = key.public_key()
        if not isinstance(
            pub, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
        ):
            raise UnsupportedKeyError(
                "certificate key cannot verify signatures", key_type=type(pub).__name__
            )
        return pub
    return key


def signature_algorithm(key: SigningPrivateKey | SigningPublicKey | x509.Certificate) -> Algorithm:
    """Name of the algorithm this key signs with; raises :class:`UnsupportedKeyError`."""
    if isinstance(key, x509.Certificate):
        key = _public_key(key)
    if isinstance(key, ed25519.Ed25519PrivateKey | ed25519.Ed25519PublicKey):
        return "ed25519"
    if isinstance(key, ec.EllipticCurvePrivateKey | ec.EllipticCurvePublicKey):
        if isinstance(key.curve, ec.SECP256R1):
            return "ecdsa-p256-sha256"
        raise UnsupportedKeyError("only the P-256 curve is supported", curve=key.curve.name)
    if isinstance(key, rsa.RSAPrivateKey | rsa.RSAPublicKey):
        if key.key_size >= 2048:
            return "rsa-pss-sha256"
        raise UnsupportedKeyError("RSA keys must have at least 2048 bits", bits=key.key_size)
    raise UnsupportedKeyError("unsupported key type", key_type=type(key).__name__)


_PSS = padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32)


def signing_input(document: Mapping[str, Any]) -> bytes:
    """The exact bytes signed for ``document``: :data:`SIGNING_PREFIX` ‖ canonical JSON."""
    if not isinstance(document, Mapping):
        raise CanonicalizationError("a signed document must be a JSON object")
    return SIGNING_PREFIX + canonical_json(document)


def sign_document(private_key: SigningPrivateKey, document: Mapping[str, Any]) -> bytes:
    """Sign ``document`` (see the module docstring for the algorithm per key type)."""
    signature_algorithm(private_key)  # refuses unsupported keys
    return _sign(private_key, signing_input(document))


def _sign(private_key: SigningPrivateKey, message: bytes) -> bytes:
    """Sign a :func:`signing_input` (the key already checked)."""
    if isinstance(private_key, ed25519.Ed25519PrivateKey):
        return private_key.sign(message)
    if isinstance(private_key, ec.EllipticCurvePrivateKey):
        r, s = utils.decode_dss_signature(private_key.sign(message, ec.ECDSA(hashes.SHA256())))
        return r.to_bytes(_P256_ORDER_BYTES, "big") + s.to_bytes(_P256_ORDER_BYTES, "big")
    return private_key.sign(message, _PSS, hashes.SHA256())


def verify_document(
    public_key_or_certificate: SigningPublicKey | x509.Certificate,
    document: Mapping[str, Any],
    signature: bytes,
) -> None:
    """Verify a detached signature; raises :class:`SignatureInvalidError` on any mismatch.

    Only the signature is checked here — validate a certificate's chain with
    :func:`crypto.pki.verify_chain`, or use :func:`verify_manifest` /
    :meth:`SignedDocument.verify`.
    """
    key = _public_key(public_key_or_certificate)
    algorithm = signature_algorithm(key)
    message = signing_input(document)
    try:
        if isinstance(key, ed25519.Ed25519PublicKey):
            key.verify(signature, message)
        elif isinstance(key, ec.EllipticCurvePublicKey):
            if len(signature) != 2 * _P256_ORDER_BYTES:
                raise InvalidSignature
            r = int.from_bytes(signature[:_P256_ORDER_BYTES], "big")
            s = int.from_bytes(signature[_P256_ORDER_BYTES:], "big")
            key.verify(utils.encode_dss_signature(r, s), message, ec.ECDSA(hashes.SHA256()))
        else:
            if len(signature) != (key.key_size + 7) // 8:
                raise InvalidSignature
            key.verify(signature, message, _PSS, hashes.SHA256())
    except (InvalidSignature, ValueError) as exc:
        raise SignatureInvalidError(
            "signature does not verify", algorithm=algorithm, key_id=key_id(key)
        ) from exc


# --------------------------------------------------------------------------- manifests


def _require_hex64(name: str, value: object) -> str:
    if not isinstance(value, str) or not _HEX64.match(value):
        raise ManifestError(f"{name} must be 64 lower-case hex characters", field=name)
    return value


def _require_int(name: str, value: object, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ManifestError(f"{name} must be an integer ≥ {minimum}", field=name)
    return value


def _require_str(name: str, value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > 200:
        raise ManifestError(f"{name} must be a non-empty string (≤ 200 chars)", field=name)
    return value


@dataclass(frozen=True)
class BidManifest:
    """What a bidder signs when sealing a bid (投标文件签名清单).

    ``bidder_id`` is the bidder's 统一社会信用代码; the hex fields are lower-case SHA-256
    digests (``data_key_commitment`` as defined by the envelope format,
    ``opening_key_fingerprint`` as :func:`crypto.threshold.public_key_fingerprint`);
    ``sealed_at`` is ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``; ``format_version`` is the envelope
    format version. Construction validates every field (:class:`ManifestError`).
    """

    section_id: str
    bidder_id: str
    ciphertext_sha256: str
    ciphertext_size: int
    data_key_commitment: str
    segment_size: int
    opening_key_fingerprint: str
    sealed_at: str
    format_version: int = 1

    def __post_init__(self) -> None:
        _require_str("section_id", self.section_id)
        if not isinstance(self.bidder_id, str) or not is_valid_org_code(self.bidder_id):
            raise ManifestError("bidder_id must be a valid 统一社会信用代码", field="bidder_id")
        _require_hex64("ciphertext_sha256", self.ciphertext_sha256)
        _require_int("ciphertext_size", self.ciphertext_size, 0)
        _require_hex64("data_key_commitment", self.data_key_commitment)
        _require_int("segment_size", self.segment_size, 1)
        _require_hex64("opening_key_fingerprint", self.opening_key_fingerprint)
        try:
            parse_utc(self.sealed_at)
        except CanonicalizationError as exc:
            raise ManifestError(str(exc), field="sealed_at") from exc
        _require_int("format_version", self.format_version, 1)

    def to_document(self) -> dict[str, Any]:
        """The signed JSON object: these fields plus ``type`` and ``version``."""
        return {
            "type": MANIFEST_TYPE,
            "version": MANIFEST_VERSION,
            "section_id": self.section_id,
            "bidder_id": self.bidder_id,
            "ciphertext_sha256": self.ciphertext_sha256,
            "ciphertext_size": self.ciphertext_size,
            "data_key_commitment": self.data_key_commitment,
            "segment_size": self.segment_size,
            "opening_key_fingerprint": self.opening_key_fingerprint,
            "sealed_at": self.sealed_at,
            "format_version": self.format_version,
        }

    @classmethod
    def from_document(cls, document: Mapping[str, Any]) -> BidManifest:
        """Parse a manifest document; unknown or missing members are refused."""
        expected = set(cls.__dataclass_fields__) | {"type", "version"}
        keys = set(document)
        if keys != expected:
            raise ManifestError(
                "manifest members do not match",
                missing=sorted(expected - keys),
                unexpected=sorted(keys - expected),
            )
        if document["type"] != MANIFEST_TYPE or document["version"] != MANIFEST_VERSION:
            raise ManifestError(
                "not a version-1 bid manifest", type=document["type"], version=document["version"]
            )
        return cls(**{name: document[name] for name in cls.__dataclass_fields__})

    @property
    def sealed_at_datetime(self) -> datetime:
        return parse_utc(self.sealed_at)


def sign_manifest(private_key: SigningPrivateKey, manifest: BidManifest) -> bytes:
    """Sign ``manifest.to_document()``."""
    return sign_document(private_key, manifest.to_document())


def verify_manifest(
    manifest: BidManifest,
    signature: bytes,
    certificate: x509.Certificate,
    *,
    intermediates: Sequence[x509.Certificate],
    trust_roots: Sequence[x509.Certificate],
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    require_crl: bool = False,
    required_role: str | None = None,
) -> None:
    """Accept a sealed bid's manifest: chain, identity, then signature.

    1. :func:`crypto.pki.verify_chain` at time ``at`` with key usage ``digital_signature``
       (raises :class:`crypto.pki.CertificateError` subclasses);
    2. the certificate's 统一社会信用代码 equals ``manifest.bidder_id``
       (:class:`ManifestSignerMismatchError`);
    3. the signature over ``manifest.to_document()`` (:class:`SignatureInvalidError`).
    """
    verify_chain(
        certificate,
        intermediates,
        trust_roots,
        at=at,
        crls=crls,
        require_crl=require_crl,
        required_role=required_role,
    )
    org_code = certificate_org_code(certificate)
    if org_code != manifest.bidder_id:
        raise ManifestSignerMismatchError(
            "certificate does not belong to the manifest's bidder",
            bidder_id=manifest.bidder_id,
            certificate_org_code=org_code,
        )
    verify_document(certificate, manifest.to_document(), signature)


# --------------------------------------------------------------------------- signed documents


@dataclass(frozen=True)
class SignedDocument:
    """A JSON document with its detached signature, in one self-describing JSON file.

    Serialised (:meth:`to_json`, canonical JSON) as::

        {"version": 1, "document": {...}, "algorithm": "ed25519",
         "signature": "<base64>", "key_id": "<hex SHA-256 of the signer's SPKI>",
         "certificate": "<PEM or absent>", "intermediates": ["<PEM>", ...]}

    With a certificate, :meth:`verify` validates the chain and the signature; without one
    (a key known to the verifier by ``key_id``, e.g. the platform's published key),
    :meth:`verify_with_key` checks the signature against a given public key.
    """

    document: Mapping[str, Any]
    signature: bytes
    algorithm: Algorithm
    key_id: str
    certificate_pem: str | None = None
    intermediates_pem: tuple[str, ...] = field(default=())

    @classmethod
    def create(
        cls,
        private_key: SigningPrivateKey,
        document: Mapping[str, Any],
        *,
        certificate: x509.Certificate | None = None,
        intermediates: Sequence[x509.Certificate] = (),
    ) -> SignedDocument:
        """Sign ``document``; embed ``certificate`` (and ``intermediates``) if given.

        The certificate must carry ``private_key``'s public key.
        """
        kid = key_id(private_key.public_key())
        if certificate is not None and key_id(certificate) != kid:
            raise UnsupportedKeyError("certificate does not match the private key")
        algorithm = signature_algorithm(private_key)  # refuses unsupported keys
        canonical = canonical_json(document)
        frozen = parse_json(canonical)  # a private, validated copy
        return cls(
            document=frozen,
            # the copy's canonical form is ``canonical`` again: sign it without a second pass
            signature=_sign(private_key, SIGNING_PREFIX + canonical),
            algorithm=algorithm,
            key_id=kid,
            certificate_pem=(
                None if certificate is None else certificate_to_pem(certificate).decode("ascii")
            ),
            intermediates_pem=tuple(certificate_to_pem(c).decode("ascii") for c in intermediates),
        )

    @property
    def certificate(self) -> x509.Certificate | None:
        if self.certificate_pem is None:
            return None
        return load_certificate_pem(self.certificate_pem.encode("ascii"))

    @property
    def intermediates(self) -> list[x509.Certificate]:
        return [load_certificate_pem(p.encode("ascii")) for p in self.intermediates_pem]

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "version": SIGNED_DOCUMENT_VERSION,
            "document": dict(self.document),
            "algorithm": self.algorithm,
            "signature": base64.b64encode(self.signature).decode("ascii"),
            "key_id": self.key_id,
        }
        if self.certificate_pem is not None:
            data["certificate"] = self.certificate_pem
        if self.intermediates_pem:
            data["intermediates"] = list(self.intermediates_pem)
        return data

    def to_json(self) -> bytes:
        return canonical_json(self.to_dict())

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> SignedDocument:
        allowed = {"version", "document", "algorithm", "signature", "key_id"}
        allowed |= {"certificate", "intermediates"}
        if not set(data) <= allowed:
            raise SignedDocumentFormatError(
                "unexpected members", unexpected=sorted(set(data) - allowed)
            )
        try:
            version = data["version"]
            document = data["document"]
            algorithm = data["algorithm"]
            signature = base64.b64decode(str(data["signature"]), validate=True)
            kid = data["key_id"]
            cert = data.get("certificate")
            intermediates = data.get("intermediates", [])
        except (KeyError, ValueError) as exc:
            raise SignedDocumentFormatError(f"malformed signed document: {exc}") from exc
        if version != SIGNED_DOCUMENT_VERSION:
            raise SignedDocumentFormatError("unsupported version", version=version)
        if not isinstance(document, Mapping):
            raise SignedDocumentFormatError("document must be a JSON object")
        if algorithm not in _ALGORITHMS:
            raise SignedDocumentFormatError("unknown algorithm", algorithm=algorithm)
        if not isinstance(kid, str) or not _HEX64.match(kid):
            raise SignedDocumentFormatError("key_id must be 64 lower-case hex characters")
        if cert is not None and not isinstance(cert, str):
            raise SignedDocumentFormatError("certificate must be a PEM string")
        if not isinstance(intermediates, list) or not all(
            isinstance(p, str) for p in intermediates
        ):
            raise SignedDocumentFormatError("intermediates must be a list of PEM strings")
        return cls(
            document=document,
            signature=signature,
            algorithm=algorithm,
            key_id=kid,
            certificate_pem=cert,
            intermediates_pem=tuple(intermediates),
        )

    @classmethod
    def from_json(cls, data: bytes | str) -> SignedDocument:
        parsed = parse_json(data)
        if not isinstance(parsed, Mapping):
            raise SignedDocumentFormatError("a signed document file must be a JSON object")
        return cls.from_dict(parsed)

    def verify_with_key(self, public_key: SigningPublicKey | x509.Certificate) -> None:
        """Check the signature with a key the verifier already trusts (no chain check).

        Raises :class:`SignatureInvalidError` if the key's id or algorithm differs from the
        recorded ones or the signature does not verify.
        """
        key = _public_key(public_key)
        if key_id(key) != self.key_id:
            raise SignatureInvalidError(
                "document was signed by another key", expected=self.key_id, given=key_id(key)
            )
        if signature_algorithm(key) != self.algorithm:
            raise SignatureInvalidError("algorithm does not match the key")
        verify_document(key, self.document, self.signature)

    def verify(
        self,
        *,
        trust_roots: Sequence[x509.Certificate],
        at: datetime,
        crls: Sequence[x509.CertificateRevocationList] = (),
        extra_intermediates: Sequence[x509.Certificate] = (),
        required_role: str | None = None,
        require_crl: bool = False,
    ) -> x509.Certificate:
        """Validate the embedded certificate's chain at ``at`` and the signature.

        Returns the signer's certificate. Raises :class:`SignedDocumentFormatError` when no
        certificate is embedded, :class:`crypto.pki.CertificateError` subclasses for chain
        refusals and :class:`SignatureInvalidError` for the signature.
        """
        cert = self.certificate
        if cert is None:
            raise SignedDocumentFormatError("no certificate embedded; use verify_with_key")
        verify_chain(
            cert,
            [*self.intermediates, *extra_intermediates],
            trust_roots,
            at=at,
            crls=crls,
            required_role=required_role,
            require_crl=require_crl,
        )
        self.verify_with_key(cert)
        return cert
