"""Password hashing (口令散列) with Argon2id (argon2-cffi).

The hasher is process-wide. Tests switch to cheap parameters with
:func:`use_fast_hashing` (or ``SUNBID_PASSWORD_HASHING=fast``): a stored hash records its
own parameters, so either profile verifies the other's hashes.
"""

from __future__ import annotations

import threading

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

_lock = threading.Lock()
_hasher = PasswordHasher()
_dummy_hash: str | None = None


def use_fast_hashing() -> None:
    """Cheap Argon2 parameters, for tests only (never in production)."""
    global _hasher, _dummy_hash
    with _lock:
        _hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
        _dummy_hash = None


def use_default_hashing() -> None:
    global _hasher, _dummy_hash
    with _lock:
        _hasher = PasswordHasher()
        _dummy_hash = None


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """True when ``password`` matches ``stored_hash``; a damaged hash never matches."""
    try:
        return _hasher.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(stored_hash: str) -> bool:
    try:
        return _hasher.check_needs_rehash(stored_hash)
    except InvalidHashError:
        return True


def dummy_verify(password: str) -> None:
    """Spend the time a real verification takes (for unknown usernames)."""
    global _dummy_hash
    with _lock:
        if _dummy_hash is None:
            _dummy_hash = _hasher.hash("sunbid-dummy-password-for-timing")
        stored = _dummy_hash
    verify_password(stored, password)
