"""The certificate authorities the center trusts (受信任的 CA) and their revocation lists.

A bid is accepted only if the bidder's signing certificate chains to one of these roots at
the server time and is not revoked (``crypto.pki.verify_chain``).

Configuration (``SUNBID_*`` settings, read from ``Settings.extra``):

* ``SUNBID_TRUST_ROOTS`` — path to a PEM bundle of root certificates (CA 根证书). Also the
  place for intermediates the CAs do not send with their certificates
  (``SUNBID_TRUST_INTERMEDIATES``, optional PEM bundle).
* ``SUNBID_CRLS`` — optional: comma-separated paths of PEM CRL files or directories of
  ``*.pem``/``*.crl`` files. Refreshed when a file changes (the CA operators' job is to
  keep them current; an expired CRL refuses with ``certificate_invalid``).

Without ``SUNBID_TRUST_ROOTS`` (the embedded/demo runtime) a **demo CA** is generated once
under ``<instance>/demo_ca/`` (``ca.pem``, ``ca.key`` mode 0600, and ``crl.pem`` once a
certificate is revoked). :func:`demo_issue_bidder_certificate` issues bidder certificates
from it (the accounts demo seeding calls it for the demo bidders) and
:func:`demo_revoke_certificate` revokes one. Never run a production center on the demo CA.
"""

from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from cryptography import x509
from flask import current_app, has_app_context

from bidding.config import Settings
from bidding.core.clock import now
from crypto.pki import (
    SigningPrivateKey,
    certificate_to_pem,
    create_crl,
    create_root_ca,
    crl_to_pem,
    generate_key,
    issue_certificate,
    load_certificates_pem,
    load_crl_pem,
    load_private_key_pem,
    private_key_to_pem,
)

log = logging.getLogger(__name__)

__all__ = [
    "DEMO_CA_DIR",
    "IssuedCertificate",
    "TrustStore",
    "demo_ca",
    "demo_issue_bidder_certificate",
    "demo_revoke_certificate",
    "load_trust_store",
    "trust_store",
]

DEMO_CA_DIR = "demo_ca"
DEMO_CA_NAME = "Sunbid Demo CA（演示根证书）"
_lock = threading.Lock()
_cache: dict[tuple[Any, ...], TrustStore] = {}


@dataclass(frozen=True)
class TrustStore:
    """Roots, extra intermediates and CRLs to validate bidders' certificates against."""

    roots: tuple[x509.Certificate, ...]
    intermediates: tuple[x509.Certificate, ...] = ()
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    demo: bool = False


@dataclass(frozen=True)
class IssuedCertificate:
    """A key pair and its certificate (PEM forms included for writing to files)."""

    private_key: SigningPrivateKey
    certificate: x509.Certificate

    @property
    def key_pem(self) -> bytes:
        return private_key_to_pem(self.private_key)

    @property
    def certificate_pem(self) -> bytes:
        return certificate_to_pem(self.certificate)


def _settings(settings: Settings | None) -> Settings:
    if settings is not None:
        return settings
    if has_app_context():
        found: Settings = current_app.extensions["sunbid_settings"]
        return found
    raise RuntimeError("no settings: pass them or call inside an app context")


# --------------------------------------------------------------------------- demo CA


def _demo_dir(settings: Settings) -> Path:
    return settings.instance_dir / DEMO_CA_DIR


def _write_secret(path: Path, data: bytes) -> bool:
    """Create ``path`` (0600) exclusively; False if another process made it first."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return False
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    return True


def demo_ca(settings: Settings | None = None) -> tuple[x509.Certificate, SigningPrivateKey]:
    """The demo root CA of this instance, generated on first use (ECDSA P-256, 20 years)."""
    settings = _settings(settings)
    folder = _demo_dir(settings)
    cert_path, key_path = folder / "ca.pem", folder / "ca.key"
    with _lock:
        if not cert_path.exists():
            folder.mkdir(parents=True, exist_ok=True)
            key = generate_key("p256")
            start = now() - timedelta(days=1)
            cert = create_root_ca(
                DEMO_CA_NAME,
                key,
                not_before=start,
                not_after=start + timedelta(days=365 * 20),
                organization="Sunbid 演示",
                path_length=1,
            )
            if _write_secret(key_path, private_key_to_pem(key)):
                tmp = cert_path.with_suffix(".tmp")
                tmp.write_bytes(certificate_to_pem(cert))
                tmp.replace(cert_path)
        cert = load_certificates_pem(cert_path.read_bytes())[0]
        key = load_private_key_pem(key_path.read_bytes())
    return cert, key


def _fit(text: str, limit: int = 64) -> str:
    """Shorten an X.509 name (CN, O) to what ``cryptography`` accepts: 64 UTF-8 bytes
    (RFC 5280's upper bound; a Chinese character takes 3)."""
    if len(text.encode()) <= limit:
        return text
    while len((text + "…").encode()) > limit:
        text = text[:-1]
    return text + "…"


def demo_issue_bidder_certificate(
    org: Any,
    *,
    settings: Settings | None = None,
    common_name: str | None = None,
    not_before: datetime | None = None,
    not_after: datetime | None = None,
    key_kind: str = "p256",
) -> IssuedCertificate:
    """Issue a bidder's signing certificate (投标人数字证书) from the demo CA.

    ``org`` is anything with ``credit_code`` and ``name`` (an ``Organisation``). The
    certificate carries the credit code as organizationIdentifier (so it can sign only
    that bidder's manifests), role ``bidder``, key usage digitalSignature and
    contentCommitment; valid from yesterday for two years unless told otherwise.
    """
    ca_cert, ca_key = demo_ca(settings)
    key = generate_key(key_kind)
    start = not_before or now() - timedelta(days=1)
    cert = issue_certificate(
        ca_cert,
        ca_key,
        _fit(common_name or f"{org.name} 投标专用证书"),
        key.public_key(),
        role="bidder",
        not_before=start,
        not_after=not_after or start + timedelta(days=730),
        org_code=org.credit_code,
        organization=_fit(org.name),
    )
    return IssuedCertificate(key, cert)


def demo_revoke_certificate(
    certificate: x509.Certificate,
    *,
    settings: Settings | None = None,
    at: datetime | None = None,
) -> Path:
    """Add ``certificate`` to the demo CA's CRL (``demo_ca/crl.pem``); returns its path."""
    settings = _settings(settings)
    ca_cert, ca_key = demo_ca(settings)
    path = _demo_dir(settings) / "crl.pem"
    revoked: dict[int, datetime] = {}
    number = 1
    if path.exists():
        old = load_crl_pem(path.read_bytes())
        revoked = {r.serial_number: r.revocation_date_utc for r in old}
        number = _crl_number(old) + 1
    moment = at or now()
    revoked[certificate.serial_number] = moment
    crl = create_crl(
        ca_cert,
        ca_key,
        revoked,
        this_update=min(moment, *revoked.values()),
        next_update=moment + timedelta(days=30),
        crl_number=number,
    )
    tmp = path.with_suffix(".tmp")
    tmp.write_bytes(crl_to_pem(crl))
    tmp.replace(path)
    return path


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    try:
        return int(crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number)
    except x509.ExtensionNotFound:
        return 0


# --------------------------------------------------------------------------- loading


def _crl_files(spec: str) -> list[Path]:
    files: list[Path] = []
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        path = Path(part).expanduser()
        if path.is_dir():
            files.extend(sorted(p for p in path.iterdir() if p.suffix in {".pem", ".crl"}))
        else:
            files.append(path)
    return files


def _stamp(paths: list[Path]) -> tuple[Any, ...]:
    out: list[Any] = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size))
        except FileNotFoundError:
            out.append((str(p), None, None))
    return tuple(out)


def load_trust_store(settings: Settings) -> TrustStore:
    """The trust store of ``settings`` (cached; reloaded when a file changes)."""
    roots_spec = settings.extra.get("trust_roots", "")
    demo = not roots_spec
    if demo:
        folder = _demo_dir(settings)
        roots_path = folder / "ca.pem"
        if not roots_path.exists():  # generated on first use (not re-read on every call)
            demo_ca(settings)
        crl_paths = [folder / "crl.pem"] if (folder / "crl.pem").exists() else []
        inter_paths: list[Path] = []
    else:
        roots_path = Path(roots_spec).expanduser()
        crl_paths = _crl_files(settings.extra.get("crls", ""))
        inter = settings.extra.get("trust_intermediates", "")
        inter_paths = [Path(inter).expanduser()] if inter else []
    key = _stamp([roots_path, *inter_paths, *crl_paths])
    with _lock:
        cached = _cache.get(key)
        if cached is not None:
            return cached
    roots = tuple(load_certificates_pem(roots_path.read_bytes()))
    intermediates = tuple(c for p in inter_paths for c in load_certificates_pem(p.read_bytes()))
    crls = tuple(load_crl_pem(p.read_bytes()) for p in crl_paths if p.exists())
    store = TrustStore(roots=roots, intermediates=intermediates, crls=crls, demo=demo)
    if demo and not settings.is_sqlite:
        log.warning("bids: no SUNBID_TRUST_ROOTS configured; trusting the demo CA only")
    with _lock:
        _cache[key] = store
    return store


def trust_store() -> TrustStore:
    """The current app's trust store."""
    return load_trust_store(_settings(None))
