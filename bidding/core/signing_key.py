"""The platform's Ed25519 signing key (平台签名密钥).

The platform signs what it vouches for — tree heads of the audit log now, bid receipts and
published records later — with one Ed25519 key:

* ``SUNBID_SIGNING_KEY_PATH`` names a PKCS#8 PEM file (unencrypted; protect it with file
  permissions or a secret mount);
* otherwise the key lives in ``<instance>/platform_signing_key.pem``, generated on first
  use with mode 0600.

The public key is published (``GET /api/v1/audit/public-key``) with its fingerprint (key id),
the lowercase hex SHA-256 of its DER SubjectPublicKeyInfo, as :func:`crypto.pki.key_id`
computes it for receipts. A self-signed platform certificate
is a later concern.
"""

from __future__ import annotations

import os
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from cryptography.hazmat.primitives.asymmetric.types import PrivateKeyTypes
from flask import current_app, has_app_context

from bidding.config import Settings
from crypto.pki import key_id

DEFAULT_FILENAME = "platform_signing_key.pem"

_lock = threading.Lock()
_cache: dict[Path, PlatformKey] = {}
_default_settings: Settings | None = None


def fingerprint_of(public_key: Ed25519PublicKey) -> str:
    """The key id: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo (as receipts use)."""
    return key_id(public_key)


def verify_with(public_key: Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    """True if ``signature`` is ``public_key``'s Ed25519 signature of ``data``."""
    try:
        public_key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True)
class PlatformKey:
    """The loaded platform key: sign, verify, and the public parts to publish."""

    private_key: Ed25519PrivateKey
    path: Path

    @property
    def public_key(self) -> Ed25519PublicKey:
        return self.private_key.public_key()

    @property
    def public_raw(self) -> bytes:
        return self.public_key.public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def public_pem(self) -> str:
        return self.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        ).decode("ascii")

    @property
    def fingerprint(self) -> str:
        return fingerprint_of(self.public_key)

    def sign(self, data: bytes) -> bytes:
        return self.private_key.sign(data)

    def verify(self, signature: bytes, data: bytes) -> bool:
        return verify_with(self.public_key, signature, data)


def key_path(settings: Settings) -> Path:
    """Where the key of ``settings`` lives."""
    if settings.signing_key_path:
        return Path(settings.signing_key_path).expanduser().resolve()
    return settings.instance_dir / DEFAULT_FILENAME


def load_platform_key(settings: Settings) -> PlatformKey:
    """Load the key named by ``settings`` (generating the default one on first use)."""
    path = key_path(settings)
    with _lock:
        cached = _cache.get(path)
        if cached is not None:
            return cached
        if path.exists():
            key = _read(path)
        elif settings.signing_key_path:
            raise FileNotFoundError(f"SUNBID_SIGNING_KEY_PATH: no key file at {path}")
        else:
            key = _generate(path)
        loaded = PlatformKey(key, path)
        _cache[path] = loaded
        return loaded


def _read(path: Path) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path}: the platform signing key must be an Ed25519 private key")
    return key


def create_key_file(path: Path, key: PrivateKeyTypes) -> bool:
    """Write ``key`` (PKCS#8 PEM, mode 0600) to ``path`` unless the file exists.

    ``O_EXCL``: two processes starting at once never overwrite each other's key; the one
    that loses gets ``False`` and must read the winner's file.
    """
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # written in full to a private file first, then linked into place (atomic, fails if
    # the name exists): a loser never reads a winner's half-written file
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(pem)
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
    finally:
        tmp.unlink(missing_ok=True)
    path.chmod(0o600)
    return True


def _generate(path: Path) -> Ed25519PrivateKey:
    key = Ed25519PrivateKey.generate()
    return key if create_key_file(path, key) else _read(path)


def use_settings(settings: Settings) -> None:
    """Remember ``settings`` for code that runs without an app context (threads, CLI)."""
    global _default_settings
    _default_settings = settings


def platform_key() -> PlatformKey:
    """The key of the current app (or of the last app initialised in this process)."""
    settings: Settings | None = None
    if has_app_context():
        settings = current_app.extensions.get("sunbid_settings")
    if settings is None:
        settings = _default_settings
    if settings is None:
        raise RuntimeError("no app settings: call inside an app context")
    return load_platform_key(settings)
