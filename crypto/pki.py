"""A small X.509 toolkit (证书工具): test and demo CAs, PEM helpers, chain validation.

Sunbid trusts certificates issued by CAs the trading center configures (in production the
bidders' certificates come from licensed CAs, usually on a USB key, 数字证书/UKey). This module
makes test and demo hierarchies (root → intermediate → leaf for bidders, experts,
guarantors, custodians and the platform) and validates chains *at a given time*.

Certificates made here carry two Sunbid attributes in the subject:

* the **role** as ``OU`` (organizationalUnitName), one of :data:`ROLES`;
* the **org code** (统一社会信用代码, unified social credit code, 18 characters with a
  GB 32100-2015 check character) as ``organizationIdentifier`` (2.5.4.97).

:func:`certificate_role` and :func:`certificate_org_code` read them back.

Chain validation (:func:`verify_chain`) is an explicit path walk rather than
``cryptography.x509.verification``: that verifier reports one opaque error, knows no CRLs and
applies Web-PKI profile rules (EKU, SAN) that do not fit signing certificates. The walk
here gives every refusal its own stable code (see :class:`CertificateError` subclasses)
and never reads the wall clock: the validation time is a parameter.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Literal, TypeAlias

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa, x25519
from cryptography.x509.oid import ExtensionOID, NameOID

from crypto.errors import CryptoError

__all__ = [
    "KEY_KINDS",
    "ROLES",
    "CRLExpiredError",
    "CRLInvalidError",
    "CRLMissingError",
    "CertificateError",
    "CertificateExpiredError",
    "CertificateInvalidError",
    "CertificateKeyUsageError",
    "CertificateNotYetValidError",
    "CertificatePathTooLongError",
    "CertificateRevokedError",
    "CertificateRoleError",
    "CertificateSignatureError",
    "CertificateUntrustedError",
    "KeyInvalidError",
    "KeyKind",
    "SigningPrivateKey",
    "SigningPublicKey",
    "certificate_org_code",
    "certificate_role",
    "certificate_to_pem",
    "create_crl",
    "create_root_ca",
    "crl_to_pem",
    "generate_key",
    "is_valid_org_code",
    "issue_certificate",
    "issue_intermediate",
    "key_id",
    "load_certificate_pem",
    "load_certificates_pem",
    "load_crl_pem",
    "load_private_key_pem",
    "load_public_key_pem",
    "load_x25519_private_key_pem",
    "private_key_to_pem",
    "public_key_to_pem",
    "verify_chain",
]

SigningPrivateKey: TypeAlias = (
    ec.EllipticCurvePrivateKey | ed25519.Ed25519PrivateKey | rsa.RSAPrivateKey
)
SigningPublicKey: TypeAlias = (
    ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey
)
KeyKind: TypeAlias = Literal["p256", "ed25519", "rsa2048", "rsa3072"]

KEY_KINDS: tuple[str, ...] = ("p256", "ed25519", "rsa2048", "rsa3072")
ROLES: tuple[str, ...] = (
    "bidder",  # 投标人
    "expert",  # 评标专家
    "guarantor",  # 担保机构 (bank, insurer, guarantee company)
    "platform",  # 交易平台 (receipts, opening records, notices)
    "custodian",  # 开标密钥保管人
    "tenderer",  # 招标人
    "agency",  # 招标代理
    "supervisor",  # 监督
    "center",  # 交易中心
)
KEY_USAGES: tuple[str, ...] = (
    "digital_signature",
    "content_commitment",
    "key_encipherment",
    "data_encipherment",
    "key_agreement",
    "key_cert_sign",
    "crl_sign",
)


# --------------------------------------------------------------------------- errors


class KeyInvalidError(CryptoError):
    """A key could not be generated, loaded or used (code ``key_invalid``)."""

    code = "key_invalid"


class CertificateError(CryptoError):
    """Base class of every certificate or CRL refusal (code ``certificate_invalid``)."""

    code = "certificate_invalid"


class CertificateInvalidError(CertificateError):
    """Malformed or unusable certificate: not a CA where one is needed, unknown critical
    extension, bad parameters when issuing."""

    code = "certificate_invalid"


class CertificateUntrustedError(CertificateError):
    """No path to a trust root: issuer not found, or a self-signed certificate that is not
    a trust root. ``details["reason"]`` is ``issuer_not_found`` or ``self_signed_untrusted``."""

    code = "certificate_untrusted"


class CertificateExpiredError(CertificateError):
    """A certificate on the path had expired at the validation time."""

    code = "certificate_expired"


class CertificateNotYetValidError(CertificateError):
    """A certificate on the path was not yet valid at the validation time."""

    code = "certificate_not_yet_valid"


class CertificateRevokedError(CertificateError):
    """A certificate on the path was revoked at or before the validation time."""

    code = "certificate_revoked"


class CertificateSignatureError(CertificateError):
    """A certificate's signature does not verify under its (named) issuer's key."""

    code = "certificate_signature_invalid"


class CertificateKeyUsageError(CertificateError):
    """The leaf lacks the required key usage, or a CA lacks ``keyCertSign``/``cRLSign``."""

    code = "certificate_key_usage"


class CertificatePathTooLongError(CertificateError):
    """The path exceeds ``max_intermediates`` or a CA's ``pathLenConstraint``."""

    code = "certificate_path_too_long"


class CertificateRoleError(CertificateError):
    """The leaf's Sunbid role (subject OU) is not the one required."""

    code = "certificate_role"


class CRLInvalidError(CertificateError):
    """A CRL naming a path issuer is not validly signed by that issuer."""

    code = "crl_invalid"


class CRLExpiredError(CertificateError):
    """A CRL's nextUpdate lies before the validation time (stale revocation data)."""

    code = "crl_expired"


class CRLMissingError(CertificateError):
    """``require_crl=True`` and no CRL was given for an issuer on the path."""

    code = "crl_missing"


# --------------------------------------------------------------------------- keys


def generate_key(kind: KeyKind | str) -> SigningPrivateKey:
    """Generate a signing key: ``"p256"`` (ECDSA P-256), ``"ed25519"``, ``"rsa3072"``,
    or ``"rsa2048"`` (tests only: faster to make)."""
    if kind == "p256":
        return ec.generate_private_key(ec.SECP256R1())
    if kind == "ed25519":
        return ed25519.Ed25519PrivateKey.generate()
    if kind == "rsa3072":
        return rsa.generate_private_key(public_exponent=65537, key_size=3072)
    if kind == "rsa2048":
        return rsa.generate_private_key(public_exponent=65537, key_size=2048)
    raise KeyInvalidError(f"unknown key kind {kind!r}", kind=kind, allowed=list(KEY_KINDS))


def key_id(public_key: SigningPublicKey | x509.Certificate) -> str:
    """Key identifier: lower-case hex SHA-256 of the DER SubjectPublicKeyInfo."""
    if isinstance(public_key, x509.Certificate):
        public_key = _signing_public_key(public_key)
    der = public_key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(der)
    return digest.finalize().hex()


def _signing_public_key(cert: x509.Certificate) -> SigningPublicKey:
    key = cert.public_key()
    if isinstance(key, ec.EllipticCurvePublicKey | ed25519.Ed25519PublicKey | rsa.RSAPublicKey):
        return key
    raise KeyInvalidError(
        "certificate key is not a supported signing key", key_type=type(key).__name__
    )


def _hash_for(key: SigningPrivateKey) -> hashes.SHA256 | None:
    return None if isinstance(key, ed25519.Ed25519PrivateKey) else hashes.SHA256()


# --------------------------------------------------------------------------- org codes

_USCC_CHARS = "0123456789ABCDEFGHJKLMNPQRTUWXY"
_USCC_WEIGHTS = tuple(pow(3, i, 31) for i in range(17))


def is_valid_org_code(code: str) -> bool:
    """True if ``code`` is a well-formed 统一社会信用代码 (18 chars, GB 32100-2015 check)."""
    if not isinstance(code, str) or len(code) != 18:
        return False
    if any(ch not in _USCC_CHARS for ch in code):
        return False
    total = sum(_USCC_CHARS.index(ch) * w for ch, w in zip(code[:17], _USCC_WEIGHTS, strict=True))
    return _USCC_CHARS[(31 - total % 31) % 31] == code[17]


# --------------------------------------------------------------------------- issuing


def _name(
    common_name: str,
    *,
    organization: str | None = None,
    role: str | None = None,
    org_code: str | None = None,
) -> x509.Name:
    attrs = [x509.NameAttribute(NameOID.COUNTRY_NAME, "CN")]
    if organization:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, organization))
    if role:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role))
    if org_code:
        attrs.append(x509.NameAttribute(NameOID.ORGANIZATION_IDENTIFIER, org_code))
    attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, common_name))
    return x509.Name(attrs)


def _check_times(not_before: datetime, not_after: datetime) -> None:
    for t in (not_before, not_after):
        if t.tzinfo is None:
            raise CertificateInvalidError("certificate times must be timezone-aware")
    if not_after <= not_before:
        raise CertificateInvalidError("not_after must be later than not_before")


def _key_usage(usages: Iterable[str]) -> x509.KeyUsage:
    wanted = set(usages)
    unknown = wanted - set(KEY_USAGES)
    if unknown:
        raise CertificateInvalidError(
            "unknown key usage", unknown=sorted(unknown), allowed=list(KEY_USAGES)
        )
    return x509.KeyUsage(
        digital_signature="digital_signature" in wanted,
        content_commitment="content_commitment" in wanted,
        key_encipherment="key_encipherment" in wanted,
        data_encipherment="data_encipherment" in wanted,
        key_agreement="key_agreement" in wanted,
        key_cert_sign="key_cert_sign" in wanted,
        crl_sign="crl_sign" in wanted,
        encipher_only=False,
        decipher_only=False,
    )


def create_root_ca(
    common_name: str,
    key: SigningPrivateKey,
    *,
    not_before: datetime,
    not_after: datetime,
    organization: str | None = None,
    path_length: int | None = 1,
) -> x509.Certificate:
    """Create a self-signed root CA certificate (根证书) for ``key``.

    ``path_length`` is the basicConstraints pathLenConstraint (``None``: unlimited).
    """
    _check_times(not_before, not_after)
    name = _name(common_name, organization=organization)
    public_key = key.public_key()
    return (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=path_length), critical=True)
        .add_extension(_key_usage(("key_cert_sign", "crl_sign")), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .sign(key, _hash_for(key))
    )


def _issue(
    issuer_cert: x509.Certificate,
    issuer_key: SigningPrivateKey,
    subject: x509.Name,
    public_key: SigningPublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    ca: bool,
    path_length: int | None,
    usages: Iterable[str],
) -> x509.Certificate:
    _check_times(not_before, not_after)
    if issuer_cert.public_key() != issuer_key.public_key():
        raise CertificateInvalidError("issuer_key does not belong to issuer_cert")
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
        )
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_cert.subject)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
        .add_extension(_key_usage(usages), critical=True)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(aki, critical=False)
        .sign(issuer_key, _hash_for(issuer_key))
    )


def issue_intermediate(
    issuer_cert: x509.Certificate,
    issuer_key: SigningPrivateKey,
    common_name: str,
    public_key: SigningPublicKey,
    *,
    not_before: datetime,
    not_after: datetime,
    organization: str | None = None,
    path_length: int | None = 0,
) -> x509.Certificate:
    """Issue an intermediate CA certificate (中间证书) signed by ``issuer_cert``/``issuer_key``."""
    return _issue(
        issuer_cert,
        issuer_key,
        _name(common_name, organization=organization),
        public_key,
        not_before=not_before,
        not_after=not_after,
        ca=True,
        path_length=path_length,
        usages=("key_cert_sign", "crl_sign"),
    )


def issue_certificate(
    issuer_cert: x509.Certificate,
    issuer_key: SigningPrivateKey,
    subject_cn: str,
    public_key: SigningPublicKey,
    *,
    role: str,
    not_before: datetime,
    not_after: datetime,
    org_code: str | None = None,
    organization: str | None = None,
    key_usage: Sequence[str] = ("digital_signature", "content_commitment"),
) -> x509.Certificate:
    """Issue an end-entity certificate for a bidder, expert, guarantor, the platform, ...

    ``role`` must be one of :data:`ROLES` and is written as the subject OU; ``org_code``
    (统一社会信用代码), when given, must pass the GB 32100-2015 check and is written as the
    subject organizationIdentifier. ``key_usage`` names bits of the (critical) KeyUsage
    extension, from :data:`KEY_USAGES` (CA bits are refused here).
    """
    if role not in ROLES:
        raise CertificateInvalidError("unknown role", role=role, allowed=list(ROLES))
    if org_code is not None and not is_valid_org_code(org_code):
        raise CertificateInvalidError("invalid 统一社会信用代码 (org code)", org_code=org_code)
    if {"key_cert_sign", "crl_sign"} & set(key_usage):
        raise CertificateInvalidError("end-entity certificates may not carry CA key usages")
    return _issue(
        issuer_cert,
        issuer_key,
        _name(subject_cn, organization=organization, role=role, org_code=org_code),
        public_key,
        not_before=not_before,
        not_after=not_after,
        ca=False,
        path_length=None,
        usages=key_usage,
    )


def create_crl(
    issuer_cert: x509.Certificate,
    issuer_key: SigningPrivateKey,
    revoked_serials: Iterable[int] | Mapping[int, datetime],
    *,
    this_update: datetime,
    next_update: datetime,
    crl_number: int = 1,
) -> x509.CertificateRevocationList:
    """Create a CRL (证书吊销列表) signed by the issuer.

    ``revoked_serials`` is either serial numbers (revoked at ``this_update``) or a mapping
    serial → revocation time.
    """
    _check_times(this_update, next_update)
    if isinstance(revoked_serials, Mapping):
        entries = dict(revoked_serials)
    else:
        entries = dict.fromkeys(revoked_serials, this_update)
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer_cert.subject)
        .last_update(this_update)
        .next_update(next_update)
        .add_extension(x509.CRLNumber(crl_number), critical=False)
    )
    for serial, when in sorted(entries.items()):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(serial).revocation_date(when).build()
        )
    return builder.sign(issuer_key, _hash_for(issuer_key))


# --------------------------------------------------------------------------- reading


def certificate_role(cert: x509.Certificate) -> str | None:
    """The Sunbid role written in the subject OU, or ``None``."""
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


def certificate_org_code(cert: x509.Certificate) -> str | None:
    """The 统一社会信用代码 in the subject organizationIdentifier, or ``None``."""
    values = cert.subject.get_attributes_for_oid(NameOID.ORGANIZATION_IDENTIFIER)
    if not values:
        return None
    value = values[0].value
    return value if isinstance(value, str) else value.decode("utf-8", "replace")


# --------------------------------------------------------------------------- PEM


def private_key_to_pem(
    key: SigningPrivateKey | x25519.X25519PrivateKey, passphrase: bytes | None = None
) -> bytes:
    """PKCS#8 PEM; encrypted with the best available scheme when ``passphrase`` is given."""
    encryption: serialization.KeySerializationEncryption = (
        serialization.BestAvailableEncryption(passphrase)
        if passphrase
        else serialization.NoEncryption()
    )
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption
    )


def _load_private(data: bytes, passphrase: bytes | None) -> object:
    try:
        return serialization.load_pem_private_key(data, password=passphrase)
    except TypeError as exc:  # password missing or given for an unencrypted key
        raise KeyInvalidError(f"cannot load private key: {exc}") from exc
    except (ValueError, UnsupportedAlgorithm) as exc:  # wrong passphrase, bad PEM
        raise KeyInvalidError("cannot load private key (bad data or wrong passphrase)") from exc


def load_private_key_pem(data: bytes, passphrase: bytes | None = None) -> SigningPrivateKey:
    """Load a PEM signing key (P-256, Ed25519 or RSA ≥ 2048), else :class:`KeyInvalidError`."""
    key = _load_private(data, passphrase)
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP256R1):
        return key
    if isinstance(key, ed25519.Ed25519PrivateKey):
        return key
    if isinstance(key, rsa.RSAPrivateKey) and key.key_size >= 2048:
        return key
    raise KeyInvalidError("unsupported signing key type", key_type=type(key).__name__)


def load_x25519_private_key_pem(
    data: bytes, passphrase: bytes | None = None
) -> x25519.X25519PrivateKey:
    """Load a PEM X25519 private key (custodian keys, bidders' decryption keys)."""
    key = _load_private(data, passphrase)
    if not isinstance(key, x25519.X25519PrivateKey):
        raise KeyInvalidError("not an X25519 private key", key_type=type(key).__name__)
    return key


def public_key_to_pem(key: SigningPublicKey | x25519.X25519PublicKey) -> bytes:
    """SubjectPublicKeyInfo PEM."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def load_public_key_pem(data: bytes) -> SigningPublicKey | x25519.X25519PublicKey:
    """Load a SubjectPublicKeyInfo PEM (signing key or X25519)."""
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, UnsupportedAlgorithm) as exc:
        raise KeyInvalidError("cannot load public key") from exc
    if isinstance(
        key,
        ec.EllipticCurvePublicKey
        | ed25519.Ed25519PublicKey
        | rsa.RSAPublicKey
        | x25519.X25519PublicKey,
    ):
        return key
    raise KeyInvalidError("unsupported public key type", key_type=type(key).__name__)


def certificate_to_pem(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate_pem(data: bytes) -> x509.Certificate:
    """Load exactly one PEM certificate."""
    certs = load_certificates_pem(data)
    if len(certs) != 1:
        raise CertificateInvalidError("expected exactly one certificate", found=len(certs))
    return certs[0]


def load_certificates_pem(data: bytes) -> list[x509.Certificate]:
    """Load every certificate in a PEM bundle (may be empty)."""
    if b"-----BEGIN" not in data:
        return []
    try:
        return x509.load_pem_x509_certificates(data)
    except ValueError as exc:
        raise CertificateInvalidError(f"malformed PEM certificate: {exc}") from exc


def crl_to_pem(crl: x509.CertificateRevocationList) -> bytes:
    return crl.public_bytes(serialization.Encoding.PEM)


def load_crl_pem(data: bytes) -> x509.CertificateRevocationList:
    try:
        return x509.load_pem_x509_crl(data)
    except ValueError as exc:
        raise CRLInvalidError(f"malformed PEM CRL: {exc}") from exc


# --------------------------------------------------------------------------- validation

_HANDLED_CRITICAL = {
    ExtensionOID.BASIC_CONSTRAINTS,
    ExtensionOID.KEY_USAGE,
    ExtensionOID.EXTENDED_KEY_USAGE,
    ExtensionOID.SUBJECT_ALTERNATIVE_NAME,
}


def _describe(cert: x509.Certificate) -> dict[str, object]:
    return {"subject": cert.subject.rfc4514_string(), "serial": format(cert.serial_number, "x")}


def _is_self_issued(cert: x509.Certificate) -> bool:
    return cert.subject == cert.issuer


def _signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(issuer)
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _build_path(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust_roots: Sequence[x509.Certificate],
    max_intermediates: int,
) -> list[x509.Certificate]:
    path = [leaf]
    current = leaf
    while current not in trust_roots:
        if len(path) - 1 > max_intermediates:
            raise CertificatePathTooLongError(
                "certificate path is too long", max_intermediates=max_intermediates
            )
        named = [c for c in trust_roots if c.subject == current.issuer] + [
            c for c in intermediates if c.subject == current.issuer and c not in path
        ]
        issuer = next((c for c in named if _signed_by(current, c)), None)
        if issuer is None:
            if named:
                raise CertificateSignatureError(
                    "certificate signature does not verify under its issuer's key",
                    **_describe(current),
                )
            reason = "self_signed_untrusted" if _is_self_issued(current) else "issuer_not_found"
            raise CertificateUntrustedError(
                "no path to a trusted root", reason=reason, **_describe(current)
            )
        path.append(issuer)
        current = issuer
    # The trust root itself does not count as an intermediate.
    if len(path) - 2 > max_intermediates:
        raise CertificatePathTooLongError(
            "certificate path is too long", max_intermediates=max_intermediates
        )
    return path


def _check_validity(path: Sequence[x509.Certificate], at: datetime) -> None:
    for cert in path:
        if at < cert.not_valid_before_utc:
            raise CertificateNotYetValidError(
                "certificate not yet valid",
                not_before=cert.not_valid_before_utc.isoformat(),
                at=at.isoformat(),
                **_describe(cert),
            )
        if at > cert.not_valid_after_utc:
            raise CertificateExpiredError(
                "certificate expired",
                not_after=cert.not_valid_after_utc.isoformat(),
                at=at.isoformat(),
                **_describe(cert),
            )


def _check_extensions(path: Sequence[x509.Certificate]) -> None:
    for cert in path:
        for ext in cert.extensions:
            if ext.critical and ext.oid not in _HANDLED_CRITICAL:
                raise CertificateInvalidError(
                    "unhandled critical extension", oid=ext.oid.dotted_string, **_describe(cert)
                )
    for depth, ca in enumerate(path[1:]):
        # depth = number of intermediate CAs between ``ca`` and the leaf.
        try:
            bc = ca.extensions.get_extension_for_class(x509.BasicConstraints).value
        except x509.ExtensionNotFound:
            bc = None
        if bc is None or not bc.ca:
            raise CertificateInvalidError("issuer is not a CA certificate", **_describe(ca))
        non_self_issued_below = sum(1 for c in path[1 : depth + 1] if not _is_self_issued(c))
        if bc.path_length is not None and non_self_issued_below > bc.path_length:
            raise CertificatePathTooLongError(
                "CA path length constraint exceeded",
                path_length=bc.path_length,
                **_describe(ca),
            )
        ku = _get_key_usage(ca)
        if ku is not None and not ku.key_cert_sign:
            raise CertificateKeyUsageError("CA lacks keyCertSign", **_describe(ca))


def _get_key_usage(cert: x509.Certificate) -> x509.KeyUsage | None:
    try:
        return cert.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        return None


def _check_leaf_usage(leaf: x509.Certificate, required: Sequence[str]) -> None:
    if not required:
        return
    unknown = set(required) - set(KEY_USAGES)
    if unknown:
        raise CertificateInvalidError("unknown key usage requested", unknown=sorted(unknown))
    ku = _get_key_usage(leaf)
    if ku is None:
        raise CertificateKeyUsageError(
            "certificate has no KeyUsage extension", required=list(required), **_describe(leaf)
        )
    missing = [name for name in required if not getattr(ku, name)]
    if missing:
        raise CertificateKeyUsageError(
            "certificate lacks the required key usage", missing=missing, **_describe(leaf)
        )


def _check_revocation(
    path: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    at: datetime,
    require_crl: bool,
) -> None:
    # The trust anchor (last element) is not checked against CRLs.
    for cert, issuer in itertools.pairwise(path):
        matching = [crl for crl in crls if crl.issuer == cert.issuer]
        if not matching and require_crl:
            raise CRLMissingError("no CRL for this certificate's issuer", **_describe(cert))
        for crl in matching:
            ku = _get_key_usage(issuer)
            try:
                valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
            except (TypeError, ValueError, UnsupportedAlgorithm):
                valid = False
            if not valid or (ku is not None and not ku.crl_sign):
                raise CRLInvalidError(
                    "CRL is not validly signed by the issuer",
                    issuer=issuer.subject.rfc4514_string(),
                )
            next_update = crl.next_update_utc
            if next_update is None or next_update < at:
                raise CRLExpiredError(
                    "CRL is stale at the validation time",
                    issuer=issuer.subject.rfc4514_string(),
                    next_update=None if next_update is None else next_update.isoformat(),
                    at=at.isoformat(),
                )
            entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
            if entry is not None and entry.revocation_date_utc <= at:
                raise CertificateRevokedError(
                    "certificate revoked",
                    revoked_at=entry.revocation_date_utc.isoformat(),
                    **_describe(cert),
                )


def verify_chain(
    leaf: x509.Certificate,
    intermediates: Sequence[x509.Certificate],
    trust_roots: Sequence[x509.Certificate],
    *,
    at: datetime,
    crls: Sequence[x509.CertificateRevocationList] = (),
    required_key_usage: str | Sequence[str] | None = "digital_signature",
    required_role: str | None = None,
    require_crl: bool = False,
    max_intermediates: int = 3,
) -> list[x509.Certificate]:
    """Validate ``leaf`` up to one of ``trust_roots`` as of time ``at``.

    Returns the path ``[leaf, intermediate..., root]``; raises a :class:`CertificateError`
    subclass on the first problem found, checked in this order:

    1. path building: each issuer is found by subject name among the trust roots, then the
       intermediates, and must have signed the certificate (``certificate_signature_invalid``
       when named issuers exist but none verifies; ``certificate_untrusted`` when none is
       named; ``certificate_path_too_long`` beyond ``max_intermediates`` intermediates);
    2. validity periods of every certificate on the path at ``at`` (``certificate_expired``,
       ``certificate_not_yet_valid``); ``at`` must be timezone-aware;
    3. unknown critical extensions (``certificate_invalid``), issuers being CAs, CA
       ``pathLenConstraint`` (``certificate_path_too_long``) and ``keyCertSign``;
    4. the leaf's KeyUsage holds every ``required_key_usage`` bit (``certificate_key_usage``;
       a missing KeyUsage extension is refused) and its role equals ``required_role``;
    5. revocation, for each non-root certificate, against every CRL whose issuer name is the
       certificate's issuer: the CRL must be signed by the path issuer (``crl_invalid``),
       its nextUpdate must not lie before ``at`` (``crl_expired``), and an entry for the
       serial whose revocation date is at or before ``at`` refuses (``certificate_revoked``).
       A later revocation does not invalidate a signature checked as of an earlier ``at``.
       With ``require_crl=True`` every non-root certificate needs a CRL (``crl_missing``).

    The wall clock is never read: pass the time the signature is claimed or accepted at.
    """
    if at.tzinfo is None or at.utcoffset() is None:
        raise CertificateInvalidError("validation time must be timezone-aware")
    if not trust_roots:
        raise CertificateUntrustedError("no trust roots configured", reason="no_trust_roots")
    path = _build_path(leaf, list(intermediates), list(trust_roots), max_intermediates)
    _check_validity(path, at)
    _check_extensions(path)
    usages = (required_key_usage,) if isinstance(required_key_usage, str) else required_key_usage
    _check_leaf_usage(leaf, tuple(usages or ()))
    if required_role is not None and certificate_role(leaf) != required_role:
        raise CertificateRoleError(
            "certificate role does not match",
            required=required_role,
            actual=certificate_role(leaf),
            **_describe(leaf),
        )
    _check_revocation(path, list(crls), at, require_crl)
    return path
