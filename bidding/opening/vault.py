"""The platform's opening keys (开标保管密钥): the *vault* key and the *archive* key.

Both are X25519 key pairs held by the platform's workers, as files (PKCS#8 PEM, mode 0600):

* ``SUNBID_OPENING_VAULT_KEY_PATH`` / ``<instance>/opening_vault_key.pem`` — the **vault**:
  shares released by custodians and data keys handed over by bidders are sealed to it
  (a sunbid envelope, :func:`crypto.envelope.seal_bytes`, with the purpose, section and
  index bound into the envelope context) the moment they arrive, and opened only in the
  memory of the decryption task. They are erased from the database when the opening
  completes.
* ``SUNBID_OPENING_ARCHIVE_KEY_PATH`` / ``<instance>/opening_archive_key.pem`` — the
  **archive**: after a bid is decrypted its data key is sealed to it, so the decrypted bid
  stays encrypted at rest and only the platform can serve it to the committee.

Trust trade-off (documented in the report and here). From the first released share until
the opening completes, whoever holds *both* the database and the vault key file can
reconstruct the opening key once k shares are in — i.e. the platform's workers. That is
inherent in decrypting on the server: the platform will read the bids moments later
anyway. What the design keeps:

* nothing can be released before the bid deadline (the session only exists after it), so
  the vault never holds a share while bids are still sealed by law (DZ20 26–28);
* a database dump alone (backups, replicas, a leaked read-only account) reveals no share,
  no key: the vault key lives with the workers, not in the database;
* the reconstructed opening private key is never written anywhere (no file, no database
  row, no task message, no log): it is rebuilt in the memory of a decryption worker
  process and kept there only while that section's bids are being decrypted —
  :func:`opening_key` caches it per process and per session for at most
  ``SUNBID_OPENING_KEY_CACHE_SECONDS`` (default 600) after its last use, and drops it
  when the opening completes in that process (so 200 bids cost one reconstruction per
  worker process, not 200 vault unwraps and combinations);
* the shares are erased (NULLed, audit event) at completion; the ciphertext stays as the
  at-rest form of the plaintext, readable through the archive key only.

A deployment that does not want the platform to hold a vault at all would have custodians
combine client-side — which is what ``self_open`` (the bidder's own data key) already
supports bid by bid.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from flask import current_app

from bidding.config import Settings
from bidding.core.signing_key import create_key_file
from crypto.envelope import open_bytes, seal_bytes
from crypto.pki import load_x25519_private_key_pem

VAULT = "vault"
ARCHIVE = "archive"
_FILES = {VAULT: "opening_vault_key.pem", ARCHIVE: "opening_archive_key.pem"}
_SETTINGS = {VAULT: "opening_vault_key_path", ARCHIVE: "opening_archive_key_path"}
#: Small segments: the sealed secrets are 32–35 bytes.
_SEGMENT = 1024

_lock = threading.Lock()
_cache: dict[Path, X25519PrivateKey] = {}

#: Reconstructed opening keys of this process: (session id, valid shares) → (expiry, key).
_opening_keys: OrderedDict[tuple[uuid.UUID, int], tuple[float, X25519PrivateKey]] = OrderedDict()
_OPENING_KEYS_MAX = 4
DEFAULT_KEY_CACHE_SECONDS = 600.0


@dataclass(frozen=True)
class PlatformBox:
    """Seal and open small secrets to one of the platform's X25519 keys."""

    name: str
    private_key: X25519PrivateKey

    @property
    def public_key(self) -> X25519PublicKey:
        return self.private_key.public_key()

    def seal(self, secret: bytes, context: dict[str, str]) -> bytes:
        envelope, _ = seal_bytes(
            secret,
            [self.public_key],
            context={"purpose": self.name, **context},
            segment_size=_SEGMENT,
        )
        return envelope

    def open(self, sealed: bytes, context: dict[str, str]) -> bytes:
        return open_bytes(
            sealed,
            private_key=self.private_key,
            expected_context={"purpose": self.name, **context},
        )


def key_path(settings: Settings, name: str) -> Path:
    configured = settings.extra.get(_SETTINGS[name], "")
    if configured:
        return Path(configured).expanduser().resolve()
    return settings.instance_dir / _FILES[name]


def _load(settings: Settings, name: str) -> X25519PrivateKey:
    path = key_path(settings, name)
    with _lock:
        key = _cache.get(path)
        if key is not None:
            return key
        if path.exists():
            key = load_x25519_private_key_pem(path.read_bytes())
        elif settings.extra.get(_SETTINGS[name]):
            raise FileNotFoundError(f"SUNBID_{_SETTINGS[name].upper()}: no key file at {path}")
        else:
            key = _generate(path)
        _cache[path] = key
        return key


def _generate(path: Path) -> X25519PrivateKey:
    key = X25519PrivateKey.generate()
    return key if create_key_file(path, key) else load_x25519_private_key_pem(path.read_bytes())


def box(name: str, settings: Settings | None = None) -> PlatformBox:
    """The vault or archive box of the current app (or of ``settings``)."""
    if settings is None:
        settings = current_app.extensions["sunbid_settings"]
    assert settings is not None
    return PlatformBox(name, _load(settings, name))


def key_cache_seconds(settings: Settings | None = None) -> float:
    """*setting* ``SUNBID_OPENING_KEY_CACHE_SECONDS`` (default 600; 0 = rebuild the
    opening key for every bid)."""
    if settings is None:
        settings = current_app.extensions["sunbid_settings"]
    assert settings is not None
    try:
        return max(0.0, float(settings.extra.get("opening_key_cache_seconds", "")))
    except ValueError:
        return DEFAULT_KEY_CACHE_SECONDS


def opening_key(
    session_id: uuid.UUID,
    shares: int,
    rebuild: Callable[[], X25519PrivateKey],
    ttl: float,
) -> X25519PrivateKey:
    """The opening private key of a session, rebuilt by ``rebuild`` (vault-sealed shares →
    combined key) at most once per process while it is in use.

    Keyed by the session and its count of valid shares (shares are only ever added, and
    any ``k`` valid ones give the same key, checked against the published public key by
    ``combine_shares``). An entry lives ``ttl`` seconds after its last use; at most
    :data:`_OPENING_KEYS_MAX` sessions are held; a failing ``rebuild`` caches nothing.
    """
    key = (session_id, shares)
    at = time.monotonic()
    with _lock:
        for stale in [k for k, (expiry, _) in _opening_keys.items() if expiry <= at]:
            del _opening_keys[stale]
        hit = _opening_keys.get(key)
        if hit is not None:
            _opening_keys[key] = (at + ttl, hit[1])
            _opening_keys.move_to_end(key)
            return hit[1]
    private = rebuild()
    if ttl > 0:
        with _lock:
            _opening_keys[key] = (at + ttl, private)
            _opening_keys.move_to_end(key)
            while len(_opening_keys) > _OPENING_KEYS_MAX:
                _opening_keys.popitem(last=False)
    return private


def forget_opening_key(session_id: uuid.UUID | None = None) -> None:
    """Drop this process's cached opening key of ``session_id`` (all when None)."""
    with _lock:
        for key in [k for k in _opening_keys if session_id is None or k[0] == session_id]:
            del _opening_keys[key]


def forget_cached_keys() -> None:
    """Tests: drop loaded keys (e.g. to simulate a lost key file) and opening keys."""
    with _lock:
        _cache.clear()
        _opening_keys.clear()
