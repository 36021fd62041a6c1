"""Sealed-bid envelopes (投标文件数字信封): streaming AES-256-GCM with wrapped data keys.

A bidder's client seals the bid (documents + price sheet, 开标一览表) with a fresh random
32-byte data key (数据密钥) into an envelope::

    header  = fixed fields ‖ context fields ‖ recipient stanzas ‖ header MAC
    payload = segment records, each  word(4) ‖ AES-256-GCM(segment) ‖ tag(16)

The byte layout, key derivations, nonce construction and limits are specified in
``crypto/FORMAT.md``; this module is the reference implementation. In short:

* the data key is wrapped once per recipient (:mod:`crypto.recipients`): to the section's
  opening key (开标密钥, X25519, HPKE) *and* to the bidder's own key or certificate, so
  either the custodians' quorum or the bidder can open the bid;
* the header carries a key commitment (密钥承诺) ``HMAC-SHA256(HKDF(dk, "...commitment
  key"), "...key commitment")`` and every recovered data key is checked against it, so all
  recipient paths yield the same plaintext (:class:`KeyCommitmentError` otherwise);
* a header MAC under a key derived from the data key authenticates the whole header, and
  every segment's associated data contains SHA-256 of the header;
* segment nonce = 7-byte random prefix ‖ 32-bit segment counter ‖ last-segment flag, so
  truncation, reordering, duplication and splicing fail; the final segment is marked both
  in the clear (its word) and in the nonce, so truncation at a segment boundary and data
  after the final segment are reported precisely.

Sealing and opening stream in constant memory (a few segment-sized buffers) with
``AESGCM.encrypt_into`` / ``decrypt_into`` into preallocated buffers. The SHA-256 of the
envelope bytes (the "ciphertext hash" a bidder signs in its manifest) is computed in the
same single pass, in a helper thread for large segments so it overlaps with AES-GCM and
I/O (both ``cryptography`` and ``hashlib`` release the GIL).

Opening never writes plaintext whose tag has not verified: each segment is decrypted into
a scratch buffer that is written out only after its tag checks (and scrubbed otherwise).
Plaintext of segments *before* a failure has been written by the time an error is raised
(that is what streaming means): callers must treat any exception as "discard the output"
(the CLI writes to a temporary file and renames it only on success).
"""

from __future__ import annotations

import hashlib
import hmac
import io
import os
import re
import struct
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from types import TracebackType
from typing import Final, Protocol

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from crypto.envelope_errors import (
    CiphertextHashMismatchError,
    ContextMismatchError,
    EnvelopeArgumentError,
    EnvelopeError,
    EnvelopeFormatError,
    EnvelopeLimitError,
    HeaderAuthError,
    KeyCommitmentError,
    NoMatchingRecipientError,
    RecipientUnwrapError,
    SegmentAuthError,
    TrailingDataError,
    TruncatedEnvelopeError,
    UnsupportedRecipientError,
    UnsupportedVersionError,
)
from crypto.recipients import (
    DATA_KEY_SIZE,
    KEY_ID_SIZE,
    PrivateKey,
    Recipient,
    RecipientKey,
    Rng,
    Stanza,
    private_key_id,
    recipient_key,
    stanza_binding,
    stanza_body_length_ok,
    unwrap_stanza,
    wrap_data_key,
)

__all__ = [
    "DEFAULT_SEGMENT_SIZE",
    "FORMAT_VERSION",
    "MAGIC",
    "MAX_CONTEXT_FIELDS",
    "MAX_HEADER_SIZE",
    "MAX_SEGMENT_SIZE",
    "MAX_STANZAS",
    "MIN_SEGMENT_SIZE",
    "CiphertextHashMismatchError",
    "ContextMismatchError",
    "EnvelopeArgumentError",
    "EnvelopeError",
    "EnvelopeFormatError",
    "EnvelopeHeader",
    "EnvelopeInfo",
    "EnvelopeInspector",
    "EnvelopeLimitError",
    "HeaderAuthError",
    "KeyCommitmentError",
    "NoMatchingRecipientError",
    "OpenResult",
    "ReadableStream",
    "RecipientUnwrapError",
    "SealResult",
    "SegmentAuthError",
    "TrailingDataError",
    "TruncatedEnvelopeError",
    "UnsupportedRecipientError",
    "UnsupportedVersionError",
    "WritableStream",
    "check_data_key",
    "ciphertext_size_for",
    "inspect_envelope",
    "key_commitment",
    "open_bytes",
    "open_envelope",
    "parse_header",
    "read_header",
    "seal",
    "seal_bytes",
    "unwrap_data_key",
]

# ----------------------------------------------------------------------------- constants

MAGIC: Final = b"\x89SUNBID\n"
FORMAT_VERSION: Final = 1
PAYLOAD_SUITE: Final = 1  # AES-256-GCM segments, HKDF-SHA256 derivations
FIXED_HEADER_SIZE: Final = 64
HEADER_MAC_SIZE: Final = 32
NONCE_PREFIX_SIZE: Final = 7
COMMITMENT_SIZE: Final = 32
TAG_SIZE: Final = 16
WORD_SIZE: Final = 4
FINAL_FLAG: Final = 0x8000_0000
LENGTH_MASK: Final = 0x7FFF_FFFF

MIN_SEGMENT_SIZE: Final = 64
MAX_SEGMENT_SIZE: Final = 16 * 1024 * 1024
DEFAULT_SEGMENT_SIZE: Final = 1024 * 1024
MAX_SEGMENTS: Final = 2**32
MAX_CONTEXT_FIELDS: Final = 32
MAX_CONTEXT_KEY: Final = 64
MAX_CONTEXT_VALUE: Final = 1024
MAX_STANZAS: Final = 64
MAX_STANZA_BODY: Final = 512
_STANZA_OVERHEAD: Final = 1 + KEY_ID_SIZE + 2
_CONTEXT_OVERHEAD: Final = 1 + 2
MAX_HEADER_SIZE: Final = (
    FIXED_HEADER_SIZE
    + MAX_CONTEXT_FIELDS * (_CONTEXT_OVERHEAD + MAX_CONTEXT_KEY + MAX_CONTEXT_VALUE)
    + MAX_STANZAS * (_STANZA_OVERHEAD + MAX_STANZA_BODY)
    + HEADER_MAC_SIZE
)  # 70,016 bytes

_THREAD_MIN_SEGMENT: Final = 64 * 1024
_RING: Final = 3

_LABEL_COMMIT_KEY: Final = b"sunbid-envelope/v1 commitment key"
_LABEL_COMMIT_MSG: Final = b"sunbid-envelope/v1 key commitment"
_LABEL_PAYLOAD_KEY: Final = b"sunbid-envelope/v1 payload key"
_LABEL_HEADER_KEY: Final = b"sunbid-envelope/v1 header mac key"

_CONTEXT_KEY_RE: Final = re.compile(r"[a-z0-9][a-z0-9_.-]{0,63}")
_FIXED: Final = struct.Struct(">8sBBHII7sB32sBBH")
assert _FIXED.size == FIXED_HEADER_SIZE


# ----------------------------------------------------------------------------- streams


class ReadableStream(Protocol):
    """A binary source: anything with ``readinto`` (files, ``BytesIO``, sockets' files)."""

    def readinto(self, buffer: memoryview, /) -> int | None: ...


class WritableStream(Protocol):
    """A binary sink: anything with ``write``."""

    def write(self, data: memoryview, /) -> int | None: ...


def _read_full(src: ReadableStream, view: memoryview) -> int:
    """Fill ``view`` from ``src``; return the bytes read (less than asked only at EOF)."""
    total = 0
    size = len(view)
    while total < size:
        got = src.readinto(view[total:])
        if got is None:
            raise EnvelopeArgumentError("non-blocking stream returned no data")
        if got == 0:
            break
        total += got
    return total


def _write_all(dst: WritableStream, view: memoryview) -> None:
    done = 0
    size = len(view)
    while done < size:
        n = dst.write(view[done:])
        if n is None:  # raw non-blocking stream
            raise EnvelopeArgumentError("non-blocking stream accepted no data")
        done += n


class _HashPipe:
    """SHA-256 over the envelope bytes, optionally in one helper thread.

    ``update`` returns a future (threaded) the caller waits on before reusing the buffer.
    A single worker keeps the updates in submission order.
    """

    def __init__(self, threaded: bool) -> None:
        self._h = hashlib.sha256()
        self._pool = (
            ThreadPoolExecutor(max_workers=1, thread_name_prefix="sunbid-sha256")
            if threaded
            else None
        )
        self._last: Future[None] | None = None
        self.size = 0

    def update(self, data: memoryview) -> Future[None] | None:
        self.size += len(data)
        if self._pool is None:
            self._h.update(data)
            return None
        fut = self._pool.submit(self._h.update, data)
        self._last = fut
        return fut

    def digest(self) -> bytes:
        if self._last is not None:
            self._last.result()
        return self._h.digest()

    def __enter__(self) -> _HashPipe:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)


def _use_threads(threads: bool | None, segment_size: int) -> bool:
    return segment_size >= _THREAD_MIN_SEGMENT if threads is None else threads


# ----------------------------------------------------------------------------- key schedule


def _hkdf(data_key: bytes, label: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=label).derive(data_key)


def key_commitment(data_key: bytes) -> bytes:
    """The 32-byte commitment to a data key stored in the header (密钥承诺).

    ``HMAC-SHA256(key=HKDF-SHA256(dk, salt="", info="sunbid-envelope/v1 commitment key"),
    msg="sunbid-envelope/v1 key commitment")``.
    """
    _check_data_key_length(data_key)
    ck = _hkdf(data_key, _LABEL_COMMIT_KEY)
    return hmac.new(ck, _LABEL_COMMIT_MSG, hashlib.sha256).digest()


def _header_mac(data_key: bytes, header_without_mac: bytes) -> bytes:
    return hmac.new(_hkdf(data_key, _LABEL_HEADER_KEY), header_without_mac, hashlib.sha256).digest()


def _check_data_key_length(data_key: bytes) -> None:
    if len(data_key) != DATA_KEY_SIZE:
        raise EnvelopeArgumentError("a data key is 32 bytes", length=len(data_key))


def _nonce(prefix: bytes, index: int, final: bool) -> bytes:
    return prefix + index.to_bytes(4, "big") + (b"\x01" if final else b"\x00")


# ----------------------------------------------------------------------------- header


@dataclass(frozen=True, eq=False)
class EnvelopeHeader:
    """A parsed envelope header. ``raw`` is the exact header bytes (MAC included)."""

    version: int
    segment_size: int
    nonce_prefix: bytes
    key_commitment: bytes
    context: Mapping[str, str]
    stanzas: tuple[Stanza, ...]
    raw: bytes
    core_hash: bytes = field(repr=False)
    sha256: bytes = field(repr=False)

    @property
    def mac(self) -> bytes:
        """The header MAC (last 32 header bytes)."""
        return self.raw[-HEADER_MAC_SIZE:]

    @property
    def size(self) -> int:
        """Header length in bytes."""
        return len(self.raw)

    def recipient_key_ids(self) -> list[bytes]:
        """The key ids of the recipient stanzas, in header order."""
        return [s.key_id for s in self.stanzas]

    def find_stanza(self, private_key: PrivateKey) -> tuple[int, Stanza]:
        """The stanza addressed to ``private_key`` (by key id) and its index."""
        kid = private_key_id(private_key)
        for index, stanza in enumerate(self.stanzas):
            if hmac.compare_digest(stanza.key_id, kid):
                return index, stanza
        raise NoMatchingRecipientError(
            "no recipient stanza in this envelope is addressed to this key",
            key_id=kid.hex(),
        )

    def binding(self, stanza: Stanza) -> bytes:
        """The HPKE info / OAEP label that binds ``stanza`` to this header."""
        return stanza_binding(self.core_hash, stanza.stanza_type, stanza.key_id)

    def fields(self) -> dict[str, object]:
        """JSON-friendly summary of the header (hex for bytes)."""
        return {
            "format": "sunbid-envelope",
            "version": self.version,
            "segment_size": self.segment_size,
            "nonce_prefix": self.nonce_prefix.hex(),
            "key_commitment": self.key_commitment.hex(),
            "context": dict(self.context),
            "recipients": [{"type": s.stanza_type, "key_id": s.key_id.hex()} for s in self.stanzas],
            "header_size": self.size,
            "header_sha256": self.sha256.hex(),
        }


def _check_fixed(fixed: bytes) -> tuple[int, int, int, int]:
    """Validate the 64-byte fixed part; return (header size, segment size, C, R)."""
    (
        magic,
        version,
        suite,
        flags,
        header_size,
        segment_size,
        _prefix,
        reserved1,
        _commit,
        n_context,
        n_stanzas,
        reserved2,
    ) = _FIXED.unpack(fixed)
    if magic != MAGIC:
        raise EnvelopeFormatError("not a Sunbid envelope (bad magic)", magic=magic.hex())
    if version != FORMAT_VERSION:
        raise UnsupportedVersionError(
            f"unsupported envelope format version {version}", version=version
        )
    if suite != PAYLOAD_SUITE:
        raise UnsupportedVersionError(f"unsupported payload suite {suite}", suite=suite)
    if flags or reserved1 or reserved2:
        raise EnvelopeFormatError("reserved header fields must be zero", field="reserved")
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise EnvelopeLimitError(
            f"segment size {segment_size} outside {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE}",
            field="segment_size",
            value=segment_size,
        )
    if n_context > MAX_CONTEXT_FIELDS:
        raise EnvelopeLimitError(
            f"{n_context} context fields (at most {MAX_CONTEXT_FIELDS})",
            field="context_count",
            value=n_context,
        )
    if not 1 <= n_stanzas <= MAX_STANZAS:
        raise EnvelopeLimitError(
            f"{n_stanzas} recipient stanzas (1..{MAX_STANZAS} allowed)",
            field="stanza_count",
            value=n_stanzas,
        )
    lowest = (
        FIXED_HEADER_SIZE
        + n_context * (_CONTEXT_OVERHEAD + 1)
        + n_stanzas * (_STANZA_OVERHEAD + 80)
        + HEADER_MAC_SIZE
    )
    highest = (
        FIXED_HEADER_SIZE
        + n_context * (_CONTEXT_OVERHEAD + MAX_CONTEXT_KEY + MAX_CONTEXT_VALUE)
        + n_stanzas * (_STANZA_OVERHEAD + MAX_STANZA_BODY)
        + HEADER_MAC_SIZE
    )
    if not lowest <= header_size <= highest:
        raise EnvelopeLimitError(
            f"header size {header_size} impossible for {n_context} context fields and "
            f"{n_stanzas} stanzas",
            field="header_size",
            value=header_size,
        )
    return header_size, segment_size, n_context, n_stanzas


def parse_header(data: bytes) -> EnvelopeHeader:
    """Parse and validate a complete header (exactly the header bytes, MAC included).

    Only structure is checked here; the header MAC needs the data key
    (:func:`check_data_key`). Raises :class:`EnvelopeFormatError` subclasses.
    """
    if len(data) < FIXED_HEADER_SIZE:
        if data and not MAGIC.startswith(data[: len(MAGIC)]):
            raise EnvelopeFormatError("not a Sunbid envelope (bad magic)")
        raise TruncatedEnvelopeError("envelope ends inside the header", segment=None)
    header_size, segment_size, n_context, n_stanzas = _check_fixed(data[:FIXED_HEADER_SIZE])
    if len(data) < header_size:
        raise TruncatedEnvelopeError("envelope ends inside the header", segment=None)
    if len(data) > header_size:
        raise EnvelopeFormatError("bytes after the header MAC", field="header_size")
    fixed = _FIXED.unpack(data[:FIXED_HEADER_SIZE])
    prefix: bytes = fixed[6]
    commitment: bytes = fixed[8]
    end = header_size - HEADER_MAC_SIZE
    pos = FIXED_HEADER_SIZE

    def need(n: int, what: str) -> None:
        if pos + n > end:
            raise EnvelopeFormatError(f"{what} runs past the header end", field=what)

    context: dict[str, str] = {}
    previous = b""
    for i in range(n_context):
        need(1, "context")
        klen = data[pos]
        pos += 1
        if not 1 <= klen <= MAX_CONTEXT_KEY:
            raise EnvelopeFormatError("bad context key length", field="context", index=i)
        need(klen + 2, "context")
        kbytes = data[pos : pos + klen]
        pos += klen
        vlen = int.from_bytes(data[pos : pos + 2], "big")
        pos += 2
        if vlen > MAX_CONTEXT_VALUE:
            raise EnvelopeLimitError("context value too long", field="context", index=i)
        need(vlen, "context")
        vbytes = data[pos : pos + vlen]
        pos += vlen
        try:
            key = kbytes.decode("ascii")
            value = vbytes.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise EnvelopeFormatError("context field is not valid text", index=i) from exc
        if not _CONTEXT_KEY_RE.fullmatch(key):
            raise EnvelopeFormatError("bad context key", field="context", index=i)
        if kbytes <= previous:
            raise EnvelopeFormatError(
                "context keys must be unique and sorted", field="context", index=i
            )
        previous = kbytes
        context[key] = value
    core_end = pos
    stanzas: list[Stanza] = []
    seen: set[bytes] = set()
    for i in range(n_stanzas):
        need(_STANZA_OVERHEAD, "stanza")
        stype = data[pos]
        kid = data[pos + 1 : pos + 1 + KEY_ID_SIZE]
        blen = int.from_bytes(data[pos + 1 + KEY_ID_SIZE : pos + _STANZA_OVERHEAD], "big")
        pos += _STANZA_OVERHEAD
        if not stanza_body_length_ok(stype, blen):
            raise EnvelopeFormatError(
                f"stanza {i}: unknown type {stype} or bad body length {blen}",
                field="stanza",
                index=i,
            )
        need(blen, "stanza")
        if kid in seen:
            raise EnvelopeFormatError("two stanzas for the same key", field="stanza", index=i)
        seen.add(kid)
        stanzas.append(Stanza(stype, kid, data[pos : pos + blen]))
        pos += blen
    if pos != end:
        raise EnvelopeFormatError("header length does not match its contents", field="header_size")
    return EnvelopeHeader(
        version=FORMAT_VERSION,
        segment_size=segment_size,
        nonce_prefix=prefix,
        key_commitment=commitment,
        context=context,
        stanzas=tuple(stanzas),
        raw=bytes(data),
        core_hash=hashlib.sha256(data[:core_end]).digest(),
        sha256=hashlib.sha256(data).digest(),
    )


def read_header(src: ReadableStream) -> EnvelopeHeader:
    """Read and parse the header from the start of ``src`` (left positioned after it).

    Reads the 64-byte fixed part first and checks every length and count against the
    documented caps before reading (at most :data:`MAX_HEADER_SIZE` bytes) the rest.
    """
    fixed = bytearray(FIXED_HEADER_SIZE)
    got = _read_full(src, memoryview(fixed))
    if got < FIXED_HEADER_SIZE:
        return parse_header(bytes(fixed[:got]))  # raises the right error
    header_size, _s, _c, _r = _check_fixed(bytes(fixed))
    rest = bytearray(header_size - FIXED_HEADER_SIZE)
    got = _read_full(src, memoryview(rest))
    if got < len(rest):
        raise TruncatedEnvelopeError("envelope ends inside the header", segment=None)
    return parse_header(bytes(fixed) + bytes(rest))


def _encode_context(context: Mapping[str, str]) -> tuple[int, bytes]:
    if len(context) > MAX_CONTEXT_FIELDS:
        raise EnvelopeArgumentError(
            f"at most {MAX_CONTEXT_FIELDS} context fields", count=len(context)
        )
    out = bytearray()
    for key in sorted(context, key=lambda k: k.encode("ascii", "replace")):
        value = context[key]
        if not isinstance(key, str) or not _CONTEXT_KEY_RE.fullmatch(key):
            raise EnvelopeArgumentError(
                "context keys are 1..64 chars of [a-z0-9_.-], starting with [a-z0-9]",
                key=key,
            )
        if not isinstance(value, str):
            raise EnvelopeArgumentError("context values are strings", key=key)
        vbytes = value.encode("utf-8")
        if len(vbytes) > MAX_CONTEXT_VALUE:
            raise EnvelopeArgumentError(
                f"context value longer than {MAX_CONTEXT_VALUE} bytes", key=key
            )
        kbytes = key.encode("ascii")
        out += bytes([len(kbytes)]) + kbytes + len(vbytes).to_bytes(2, "big") + vbytes
    return len(context), bytes(out)


def _build_header(
    data_key: bytes,
    nonce_prefix: bytes,
    segment_size: int,
    context: Mapping[str, str],
    recipients: Sequence[RecipientKey],
    rng: Rng | None,
    stanza_data_keys: Sequence[bytes] | None = None,
) -> EnvelopeHeader:
    """Assemble, wrap and MAC a header. ``stanza_data_keys`` is a test hook (malicious
    envelopes whose stanzas wrap different keys)."""
    if not MIN_SEGMENT_SIZE <= segment_size <= MAX_SEGMENT_SIZE:
        raise EnvelopeArgumentError(
            f"segment size must be {MIN_SEGMENT_SIZE}..{MAX_SEGMENT_SIZE} bytes",
            segment_size=segment_size,
        )
    if not 1 <= len(recipients) <= MAX_STANZAS:
        raise EnvelopeArgumentError(
            f"an envelope needs 1..{MAX_STANZAS} recipients", count=len(recipients)
        )
    if len({r.key_id for r in recipients}) != len(recipients):
        raise EnvelopeArgumentError("the same recipient key is given twice")
    n_context, context_block = _encode_context(context)
    header_size = (
        FIXED_HEADER_SIZE
        + len(context_block)
        + sum(_STANZA_OVERHEAD + r.body_length for r in recipients)
        + HEADER_MAC_SIZE
    )
    fixed = _FIXED.pack(
        MAGIC,
        FORMAT_VERSION,
        PAYLOAD_SUITE,
        0,
        header_size,
        segment_size,
        nonce_prefix,
        0,
        key_commitment(data_key),
        n_context,
        len(recipients),
        0,
    )
    core = fixed + context_block
    core_hash = hashlib.sha256(core).digest()
    wrapped = stanza_data_keys if stanza_data_keys is not None else [data_key] * len(recipients)
    body = bytearray(core)
    for rk, dk in zip(recipients, wrapped, strict=True):
        binding = stanza_binding(core_hash, rk.stanza_type, rk.key_id)
        body += wrap_data_key(rk, dk, binding, rng=rng).encode()
    body += _header_mac(data_key, bytes(body))
    assert len(body) == header_size
    return parse_header(bytes(body))


def check_data_key(header: EnvelopeHeader, data_key: bytes) -> None:
    """Check a data key against the header: commitment first, then the header MAC.

    Raises :class:`KeyCommitmentError` or :class:`HeaderAuthError`.
    """
    _check_data_key_length(data_key)
    if not hmac.compare_digest(key_commitment(data_key), header.key_commitment):
        raise KeyCommitmentError(
            "data key does not match the envelope's key commitment",
            key_commitment=header.key_commitment.hex(),
        )
    expected = _header_mac(data_key, header.raw[:-HEADER_MAC_SIZE])
    if not hmac.compare_digest(expected, header.mac):
        raise HeaderAuthError("envelope header failed authentication (tampered header)")


def unwrap_data_key(header: EnvelopeHeader, private_key: PrivateKey) -> bytes:
    """Recover the envelope's data key with one recipient's private key.

    A bidder uses this to hand over only the data key (不交私钥, 只交数据密钥) when the
    custodians cannot open. The key is checked against the commitment and header MAC.
    Raises :class:`NoMatchingRecipientError`, :class:`RecipientUnwrapError`,
    :class:`KeyCommitmentError` or :class:`HeaderAuthError`.
    """
    return _unwrap(header, private_key)[1]


def _unwrap(header: EnvelopeHeader, private_key: PrivateKey) -> tuple[int, bytes]:
    index, stanza = header.find_stanza(private_key)
    try:
        dk = unwrap_stanza(stanza, private_key, header.binding(stanza))
    except RecipientUnwrapError as exc:
        exc.details["stanza"] = index
        raise
    try:
        check_data_key(header, dk)
    except EnvelopeError as exc:
        exc.details["stanza"] = index
        raise
    return index, dk


# ----------------------------------------------------------------------------- results


@dataclass(frozen=True)
class EnvelopeInfo:
    """What a pass over an envelope established (without or with a key)."""

    header: EnvelopeHeader
    ciphertext_sha256: bytes
    ciphertext_size: int
    plaintext_size: int
    segment_count: int

    @property
    def key_commitment(self) -> bytes:
        return self.header.key_commitment

    @property
    def segment_size(self) -> int:
        return self.header.segment_size

    @property
    def header_bytes(self) -> bytes:
        return self.header.raw

    @property
    def header_sha256(self) -> bytes:
        return self.header.sha256

    def manifest_fields(self) -> dict[str, str | int]:
        """The values a bidder signs in its bid manifest (投标清单), bytes as lower hex."""
        return {
            "envelope_format": f"sunbid-envelope/v{self.header.version}",
            "ciphertext_sha256": self.ciphertext_sha256.hex(),
            "ciphertext_size": self.ciphertext_size,
            "key_commitment": self.header.key_commitment.hex(),
            "segment_size": self.header.segment_size,
            "header_sha256": self.header.sha256.hex(),
        }


@dataclass(frozen=True)
class SealResult(EnvelopeInfo):
    """Result of :func:`seal`: ciphertext hash and size computed in the same pass."""


@dataclass(frozen=True)
class OpenResult(EnvelopeInfo):
    """Result of :func:`open_envelope`. ``stanza_index`` is None when a data key was given."""

    stanza_index: int | None = None


def ciphertext_size_for(plaintext_size: int, header_size: int, segment_size: int) -> int:
    """Exact envelope size for a plaintext size (what :func:`seal` will write)."""
    segments = max(1, -(-plaintext_size // segment_size))
    return header_size + plaintext_size + segments * (WORD_SIZE + TAG_SIZE)


# ----------------------------------------------------------------------------- seal


def seal(
    src: ReadableStream,
    dst: WritableStream,
    recipients: Sequence[Recipient],
    *,
    context: Mapping[str, str] | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    progress: Callable[[int], None] | None = None,
    threads: bool | None = None,
    _rng: Rng | None = None,
) -> SealResult:
    """Seal ``src`` into an envelope written to ``dst``, readable by every recipient.

    ``recipients``: X25519 public keys (the opening key), EC P-256 / RSA public keys or
    X.509 certificates. ``context``: opaque text fields bound into the header, e.g.
    ``{"section_id": ..., "opening_key_fingerprint": ...}``; the platform checks them on upload
    and before opening (:func:`open_envelope` ``expected_context``). ``progress`` is called
    with the plaintext byte count of each segment. ``threads`` overlaps SHA-256 with
    AES-GCM in a helper thread (default: for segments of 64 KiB or more).

    ``_rng`` (tests only) replaces ``os.urandom`` for the data key, the nonce prefix, the
    HPKE ephemeral keys and the OAEP seeds, making the envelope deterministic.
    """
    rng: Rng = _rng if _rng is not None else os.urandom
    keys = [recipient_key(r) for r in recipients]
    data_key = rng(DATA_KEY_SIZE)
    prefix = rng(NONCE_PREFIX_SIZE)
    header = _build_header(data_key, prefix, segment_size, context or {}, keys, _rng)
    return _seal_payload(src, dst, header, data_key, progress, threads)


def _seal_payload(
    src: ReadableStream,
    dst: WritableStream,
    header: EnvelopeHeader,
    data_key: bytes,
    progress: Callable[[int], None] | None,
    threads: bool | None,
) -> SealResult:
    seg = header.segment_size
    aead = AESGCM(_hkdf(data_key, _LABEL_PAYLOAD_KEY))
    prefix = header.nonce_prefix
    header_hash = header.sha256
    threaded = _use_threads(threads, seg)
    ring = _RING if threaded else 1
    in_bufs = [bytearray(seg), bytearray(seg)]
    in_views = [memoryview(b) for b in in_bufs]
    out_bufs = [bytearray(WORD_SIZE + seg + TAG_SIZE) for _ in range(ring)]
    out_views = [memoryview(b) for b in out_bufs]
    pending: list[Future[None] | None] = [None] * ring
    pack_word = struct.Struct(">I").pack_into
    plaintext_size = 0
    with _HashPipe(threaded) as pipe:
        head_view = memoryview(header.raw)
        pipe.update(head_view)
        _write_all(dst, head_view)
        cur = 0
        n = _read_full(src, in_views[0])
        index = 0
        while True:
            nxt = 0
            if n == seg:
                nxt = _read_full(src, in_views[1 - cur])
                final = nxt == 0
            else:
                final = True
            if index >= MAX_SEGMENTS:
                raise EnvelopeLimitError("plaintext needs more than 2**32 segments")
            word = n | FINAL_FLAG if final else n
            slot = index % ring
            waiting = pending[slot]
            if waiting is not None:
                waiting.result()
            out = out_views[slot]
            pack_word(out_bufs[slot], 0, word)
            aead.encrypt_into(
                _nonce(prefix, index, final),
                in_views[cur][:n],
                header_hash + out[:WORD_SIZE].tobytes(),
                out[WORD_SIZE : WORD_SIZE + n + TAG_SIZE],
            )
            record = out[: WORD_SIZE + n + TAG_SIZE]
            pending[slot] = pipe.update(record)
            _write_all(dst, record)
            plaintext_size += n
            if progress is not None:
                progress(n)
            if final:
                break
            cur = 1 - cur
            n = nxt
            index += 1
        digest = pipe.digest()
        size = pipe.size
    return SealResult(
        header=header,
        ciphertext_sha256=digest,
        ciphertext_size=size,
        plaintext_size=plaintext_size,
        segment_count=index + 1,
    )


# ----------------------------------------------------------------------------- open


def _records(
    src: ReadableStream, seg: int, pipe: _HashPipe, ring: int
) -> Iterator[tuple[int, bool, int, memoryview]]:
    """Yield ``(index, final, plaintext length, record body)`` for each segment record.

    Structure only (lengths, final flag, truncation); authentication is the caller's, and
    so is calling :func:`_expect_end` after the final record. Every byte read goes through
    ``pipe``. A body view stays valid until the next-but-``ring`` record is read.
    """
    word_buf = bytearray(WORD_SIZE)
    got = _read_full(src, memoryview(word_buf))
    if got < WORD_SIZE:
        raise TruncatedEnvelopeError(
            "envelope truncated: no segment after the header"
            if got == 0
            else "envelope truncated inside segment 0",
            segment=0,
        )
    pipe.update(memoryview(bytes(word_buf)))
    word = int.from_bytes(word_buf, "big")
    bufs = [bytearray(seg + TAG_SIZE + WORD_SIZE) for _ in range(ring)]
    views = [memoryview(b) for b in bufs]
    pending: list[Future[None] | None] = [None] * ring
    index = 0
    while True:
        final = bool(word & FINAL_FLAG)
        length = word & LENGTH_MASK
        if length > seg or (not final and length != seg):
            raise EnvelopeFormatError(
                f"segment {index} has a bad length word", segment=index, length=length
            )
        body_len = length + TAG_SIZE
        want = body_len if final else body_len + WORD_SIZE
        slot = index % ring
        waiting = pending[slot]
        if waiting is not None:
            waiting.result()
        view = views[slot]
        got = _read_full(src, view[:want])
        if got < body_len:
            raise TruncatedEnvelopeError(
                f"envelope truncated inside segment {index}", segment=index
            )
        if got < want:
            raise TruncatedEnvelopeError(
                f"envelope truncated after segment {index}: the final segment is missing",
                segment=index + 1,
            )
        pending[slot] = pipe.update(view[:got])
        if final:
            yield index, True, length, view[:body_len]
            return
        yield index, False, length, view[:body_len]
        word = int.from_bytes(view[body_len:want], "big")
        index += 1
        if index >= MAX_SEGMENTS:
            raise EnvelopeLimitError("more than 2**32 segments")


def _expect_end(src: ReadableStream, index: int) -> None:
    """Refuse any byte after the final record ``index``."""
    if _read_full(src, memoryview(bytearray(1))):
        raise TrailingDataError(f"data after the final segment ({index})", segment=index)


def _check_expectations(
    header: EnvelopeHeader,
    expected_context: Mapping[str, str] | None,
    expected_key_commitment: bytes | None,
) -> None:
    for key, value in (expected_context or {}).items():
        actual = header.context.get(key)
        if actual != value:
            raise ContextMismatchError(
                f"envelope context {key!r} is {actual!r}, expected {value!r}",
                field=key,
                expected=value,
                actual=actual,
            )
    if expected_key_commitment is not None and not hmac.compare_digest(
        expected_key_commitment, header.key_commitment
    ):
        raise KeyCommitmentError(
            "envelope key commitment differs from the signed manifest",
            expected=expected_key_commitment.hex(),
            actual=header.key_commitment.hex(),
        )


def _check_hash(digest: bytes, expected: bytes | None) -> None:
    if expected is not None and not hmac.compare_digest(digest, expected):
        raise CiphertextHashMismatchError(
            "envelope SHA-256 differs from the expected value",
            expected=expected.hex(),
            actual=digest.hex(),
        )


def open_envelope(
    src: ReadableStream,
    dst: WritableStream,
    *,
    private_key: PrivateKey | None = None,
    data_key: bytes | None = None,
    expected_ciphertext_sha256: bytes | None = None,
    expected_key_commitment: bytes | None = None,
    expected_context: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    threads: bool | None = None,
    header: EnvelopeHeader | None = None,
) -> OpenResult:
    """Open an envelope with one recipient's private key or with the raw data key.

    Exactly one of ``private_key`` (opening key, bidder key, certificate key) or
    ``data_key`` (handed over by the bidder) must be given. The header's context fields
    and key commitment are checked against ``expected_context`` and
    ``expected_key_commitment`` (from the signed manifest) before any key is used; the
    recovered key must match the commitment and header MAC; every segment must
    authenticate; the SHA-256 of the envelope bytes is computed in the same pass and
    compared with ``expected_ciphertext_sha256`` at the end.

    Plaintext is written to ``dst`` one authenticated segment at a time. On any exception
    the output is incomplete and must be discarded.

    ``header``: the header already read from ``src`` with :func:`read_header` (e.g. to
    find the data key first), ``src`` being positioned right after it; it is then not
    read or parsed again. Every check is the same: its bytes are still the first ones
    hashed and authenticated.
    """
    if (private_key is None) == (data_key is None):
        raise EnvelopeArgumentError("give exactly one of private_key or data_key")
    if header is None:
        header = read_header(src)
    _check_expectations(header, expected_context, expected_key_commitment)
    stanza_index: int | None = None
    if private_key is not None:
        stanza_index, dk = _unwrap(header, private_key)
    else:
        assert data_key is not None
        dk = bytes(data_key)
        check_data_key(header, dk)
    seg = header.segment_size
    aead = AESGCM(_hkdf(dk, _LABEL_PAYLOAD_KEY))
    prefix = header.nonce_prefix
    header_hash = header.sha256
    threaded = _use_threads(threads, seg)
    scratch = bytearray(seg)
    scratch_view = memoryview(scratch)
    plaintext_size = 0
    count = 0
    with _HashPipe(threaded) as pipe:
        pipe.update(memoryview(header.raw))
        for index, final, length, body in _records(src, seg, pipe, _RING if threaded else 1):
            word = (length | FINAL_FLAG if final else length).to_bytes(4, "big")
            out = scratch_view[:length]
            try:
                aead.decrypt_into(_nonce(prefix, index, final), body, header_hash + word, out)
            except InvalidTag:
                scratch[:length] = bytes(length)  # scrub unauthenticated plaintext
                raise SegmentAuthError(
                    f"segment {index} failed authentication", segment=index
                ) from None
            if final:
                _expect_end(src, index)
            _write_all(dst, out)
            plaintext_size += length
            count = index + 1
            if progress is not None:
                progress(length)
        digest = pipe.digest()
        size = pipe.size
    _check_hash(digest, expected_ciphertext_sha256)
    return OpenResult(
        header=header,
        ciphertext_sha256=digest,
        ciphertext_size=size,
        plaintext_size=plaintext_size,
        segment_count=count,
        stanza_index=stanza_index,
    )


def inspect_envelope(
    src: ReadableStream,
    *,
    expected_ciphertext_sha256: bytes | None = None,
    expected_key_commitment: bytes | None = None,
    expected_context: Mapping[str, str] | None = None,
    progress: Callable[[int], None] | None = None,
    threads: bool | None = None,
) -> EnvelopeInfo:
    """Check an envelope's structure and compute its SHA-256 without any key.

    What the platform runs on upload, before any key exists: header well-formed and within
    limits, context and key commitment as expected, every segment record well-formed, the
    final segment present, nothing after it, and the SHA-256 equal to the signed one.
    Segment tags are *not* verified (that needs the data key).
    """
    header = read_header(src)
    _check_expectations(header, expected_context, expected_key_commitment)
    seg = header.segment_size
    threaded = _use_threads(threads, seg)
    plaintext_size = 0
    count = 0
    with _HashPipe(threaded) as pipe:
        pipe.update(memoryview(header.raw))
        for index, final, length, _body in _records(src, seg, pipe, _RING if threaded else 1):
            plaintext_size += length
            count = index + 1
            if final:
                _expect_end(src, index)
            if progress is not None:
                progress(length)
        digest = pipe.digest()
        size = pipe.size
    _check_hash(digest, expected_ciphertext_sha256)
    return EnvelopeInfo(
        header=header,
        ciphertext_sha256=digest,
        ciphertext_size=size,
        plaintext_size=plaintext_size,
        segment_count=count,
    )


class EnvelopeInspector:
    """:func:`inspect_envelope` in push mode: feed the bytes as they arrive, then finish.

    For a server that receives an envelope from the network and forwards it to storage:
    the bytes pass through :meth:`update` on their way (a tee), so one pass both stores
    and checks them, and nothing has to be read back. The checks, their order and the
    errors are those of :func:`inspect_envelope` (header well-formed and within limits,
    context and key commitment as expected, every record's length word, the final
    segment present, nothing after it, SHA-256 of every byte fed): the same input gives
    the same exception, whatever the chunking.

    :meth:`update` raises as soon as the input is known to be bad (a bad header or length
    word, a byte after the final segment); :meth:`finish` raises for truncation and a hash
    mismatch. Errors are sticky: once raised, every later call raises the same error.
    Nothing is buffered but the header (≤ :data:`MAX_HEADER_SIZE`) and a length word.
    Segment tags are *not* verified (that needs the data key).

    ``hashing=False`` is for a caller that hashes the same bytes itself (a store computing
    the SHA-256 of what it writes): the structure is checked as usual, the bytes are not
    hashed a second time, and the result's ``ciphertext_sha256`` is empty.
    """

    _FIXED_PART, _HEADER, _WORD, _BODY, _END = range(5)

    def __init__(
        self,
        *,
        expected_ciphertext_sha256: bytes | None = None,
        expected_key_commitment: bytes | None = None,
        expected_context: Mapping[str, str] | None = None,
        hashing: bool = True,
    ) -> None:
        if not hashing and expected_ciphertext_sha256 is not None:
            raise EnvelopeArgumentError("an expected SHA-256 needs hashing=True")
        self._expected_sha256 = expected_ciphertext_sha256
        self._expected_commitment = expected_key_commitment
        self._expected_context = dict(expected_context or {})
        self._hash = hashlib.sha256() if hashing else None
        self._size = 0
        self._state = self._FIXED_PART
        self._buf = bytearray()
        self._need = FIXED_HEADER_SIZE
        self._header: EnvelopeHeader | None = None
        self._index = 0
        self._final = False
        self._remaining = 0
        self._plaintext = 0
        self._error: EnvelopeError | None = None
        self._result: EnvelopeInfo | None = None

    @property
    def header(self) -> EnvelopeHeader | None:
        """The parsed header, once all of it has arrived and passed its checks."""
        return self._header

    @property
    def size(self) -> int:
        """Bytes fed so far."""
        return self._size

    @property
    def failed(self) -> EnvelopeError | None:
        """The error already raised, if any."""
        return self._error

    def update(self, data: bytes | bytearray | memoryview) -> None:
        """Feed the next bytes of the envelope."""
        if self._error is not None:
            raise self._error
        if self._result is not None:
            raise EnvelopeArgumentError("the inspection is finished")
        view = memoryview(data).cast("B")
        if not len(view):
            return
        if self._hash is not None:
            self._hash.update(view)
        self._size += len(view)
        try:
            self._consume(view)
        except EnvelopeError as exc:
            self._error = exc
            raise

    def finish(self) -> EnvelopeInfo:
        """End of input: check completeness and the hash; return what the pass found."""
        if self._error is not None:
            raise self._error
        if self._result is not None:
            return self._result
        try:
            self._result = self._finish()
        except EnvelopeError as exc:
            self._error = exc
            raise
        return self._result

    def _consume(self, view: memoryview) -> None:
        pos, n = 0, len(view)
        while pos < n:
            state = self._state
            if state == self._BODY:
                take = min(self._remaining, n - pos)
                self._remaining -= take
                pos += take
                if not self._remaining:
                    self._end_record()
                continue
            if state == self._END:
                raise TrailingDataError(
                    f"data after the final segment ({self._index})", segment=self._index
                )
            take = min(self._need - len(self._buf), n - pos)
            self._buf += view[pos : pos + take]
            pos += take
            if len(self._buf) == self._need:
                self._complete_field()

    def _complete_field(self) -> None:
        if self._state == self._FIXED_PART:
            self._need = _check_fixed(bytes(self._buf))[0]
            self._state = self._HEADER
        elif self._state == self._HEADER:
            header = parse_header(bytes(self._buf))
            _check_expectations(header, self._expected_context, self._expected_commitment)
            self._header = header
            self._buf = bytearray()
            self._state, self._need = self._WORD, WORD_SIZE
        else:  # a record's length word
            assert self._header is not None
            word = int.from_bytes(self._buf, "big")
            self._buf.clear()
            final = bool(word & FINAL_FLAG)
            length = word & LENGTH_MASK
            if length > self._header.segment_size or (
                not final and length != self._header.segment_size
            ):
                raise EnvelopeFormatError(
                    f"segment {self._index} has a bad length word",
                    segment=self._index,
                    length=length,
                )
            self._final = final
            self._plaintext += length
            self._remaining = length + TAG_SIZE
            self._state = self._BODY

    def _end_record(self) -> None:
        if self._final:
            self._state = self._END
            return
        self._index += 1
        if self._index >= MAX_SEGMENTS:
            raise EnvelopeLimitError("more than 2**32 segments")
        self._state, self._need = self._WORD, WORD_SIZE

    def _finish(self) -> EnvelopeInfo:
        state, index = self._state, self._index
        if state == self._FIXED_PART:
            parse_header(bytes(self._buf))  # raises the right error for < 64 bytes
            raise AssertionError("unreachable")  # pragma: no cover
        if state == self._HEADER:
            raise TruncatedEnvelopeError("envelope ends inside the header", segment=None)
        if state == self._WORD and index == 0:
            raise TruncatedEnvelopeError(
                "envelope truncated: no segment after the header"
                if not self._buf
                else "envelope truncated inside segment 0",
                segment=0,
            )
        if state == self._WORD:
            raise TruncatedEnvelopeError(
                f"envelope truncated after segment {index - 1}: the final segment is missing",
                segment=index,
            )
        if state == self._BODY:
            raise TruncatedEnvelopeError(
                f"envelope truncated inside segment {index}", segment=index
            )
        assert self._header is not None
        digest = b"" if self._hash is None else self._hash.digest()
        _check_hash(digest, self._expected_sha256)
        return EnvelopeInfo(
            header=self._header,
            ciphertext_sha256=digest,
            ciphertext_size=self._size,
            plaintext_size=self._plaintext,
            segment_count=index + 1,
        )


# ----------------------------------------------------------------------------- in memory


def seal_bytes(
    plaintext: bytes,
    recipients: Sequence[Recipient],
    *,
    context: Mapping[str, str] | None = None,
    segment_size: int = DEFAULT_SEGMENT_SIZE,
    _rng: Rng | None = None,
) -> tuple[bytes, SealResult]:
    """:func:`seal` for data already in memory; returns ``(envelope, result)``."""
    out = io.BytesIO()
    result = seal(
        io.BytesIO(plaintext),
        out,
        recipients,
        context=context,
        segment_size=segment_size,
        _rng=_rng,
    )
    return out.getvalue(), result


def open_bytes(
    envelope: bytes,
    *,
    private_key: PrivateKey | None = None,
    data_key: bytes | None = None,
    expected_ciphertext_sha256: bytes | None = None,
    expected_key_commitment: bytes | None = None,
    expected_context: Mapping[str, str] | None = None,
) -> bytes:
    """:func:`open_envelope` for an envelope in memory; returns the plaintext."""
    out = io.BytesIO()
    open_envelope(
        io.BytesIO(envelope),
        out,
        private_key=private_key,
        data_key=data_key,
        expected_ciphertext_sha256=expected_ciphertext_sha256,
        expected_key_commitment=expected_key_commitment,
        expected_context=expected_context,
    )
    return out.getvalue()
