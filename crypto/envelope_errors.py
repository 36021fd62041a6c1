"""Errors raised by the sealed-bid envelope (投标文件数字信封) modules.

Every class subclasses :class:`crypto.errors.CryptoError` and carries a stable ``code``.
The platform maps the codes to its own error codes; ``sunbid-crypto`` prints them and maps
them to exit codes (see ``crypto/CLI.md``). Details (``err.details``) name the failing
segment, stanza or field where one is known.

Hierarchy::

    CryptoError
      EnvelopeError                        envelope_error
        EnvelopeFormatError                envelope_format        malformed / hostile bytes
          UnsupportedVersionError          envelope_version_unsupported
          EnvelopeLimitError               envelope_limit_exceeded
          TruncatedEnvelopeError           envelope_truncated
          TrailingDataError                envelope_trailing_data
        EnvelopeArgumentError              envelope_invalid_argument  caller's mistake
        UnsupportedRecipientError          envelope_recipient_unsupported
        NoMatchingRecipientError           envelope_no_matching_recipient
        RecipientUnwrapError               envelope_unwrap_failed
        KeyCommitmentError                 envelope_key_commitment
        HeaderAuthError                    envelope_header_auth
        SegmentAuthError                   envelope_segment_auth
        ContextMismatchError               envelope_context_mismatch
        CiphertextHashMismatchError        envelope_hash_mismatch
"""

from __future__ import annotations

from crypto.errors import CryptoError

__all__ = [
    "CiphertextHashMismatchError",
    "ContextMismatchError",
    "EnvelopeArgumentError",
    "EnvelopeError",
    "EnvelopeFormatError",
    "EnvelopeLimitError",
    "HeaderAuthError",
    "KeyCommitmentError",
    "NoMatchingRecipientError",
    "RecipientUnwrapError",
    "SegmentAuthError",
    "TrailingDataError",
    "TruncatedEnvelopeError",
    "UnsupportedRecipientError",
    "UnsupportedVersionError",
]


class EnvelopeError(CryptoError):
    """Base class of every envelope error."""

    code = "envelope_error"


class EnvelopeFormatError(EnvelopeError):
    """The bytes are not a well-formed envelope (wrong magic, bad field, bad length)."""

    code = "envelope_format"


class UnsupportedVersionError(EnvelopeFormatError):
    """The magic matches but the format version (or payload suite) is not one we read."""

    code = "envelope_version_unsupported"


class EnvelopeLimitError(EnvelopeFormatError):
    """A length or count is beyond the documented limits (checked before allocating)."""

    code = "envelope_limit_exceeded"


class TruncatedEnvelopeError(EnvelopeFormatError):
    """The envelope ends before its final segment (截断)."""

    code = "envelope_truncated"


class TrailingDataError(EnvelopeFormatError):
    """Bytes follow the final segment."""

    code = "envelope_trailing_data"


class EnvelopeArgumentError(EnvelopeError):
    """The caller passed an invalid argument (segment size, context field, key length)."""

    code = "envelope_invalid_argument"


class UnsupportedRecipientError(EnvelopeError):
    """A recipient key type (or size, or curve) that the format does not support."""

    code = "envelope_recipient_unsupported"


class NoMatchingRecipientError(EnvelopeError):
    """No recipient stanza is addressed to the given private key."""

    code = "envelope_no_matching_recipient"


class RecipientUnwrapError(EnvelopeError):
    """A stanza addressed to the key did not decrypt (tampered stanza or wrong key)."""

    code = "envelope_unwrap_failed"


class KeyCommitmentError(EnvelopeError):
    """The recovered data key does not match the commitment (密钥承诺) in the header.

    Raised for a data key handed over by a bidder, for a key unwrapped from a stanza that
    wraps a different key than the others (a malicious envelope), and when the header's
    commitment differs from the one in the signed bid manifest.
    """

    code = "envelope_key_commitment"


class HeaderAuthError(EnvelopeError):
    """The header MAC does not verify under the (committed) data key: header tampered."""

    code = "envelope_header_auth"


class SegmentAuthError(EnvelopeError):
    """A segment's AES-GCM tag does not verify (flipped, reordered, duplicated, spliced).

    ``details["segment"]`` is the zero-based index of the failing segment. None of that
    segment's plaintext has been written.
    """

    code = "envelope_segment_auth"


class ContextMismatchError(EnvelopeError):
    """A context field in the header differs from the value the caller expected."""

    code = "envelope_context_mismatch"


class CiphertextHashMismatchError(EnvelopeError):
    """The envelope's SHA-256 differs from the expected (signed) value."""

    code = "envelope_hash_mismatch"
