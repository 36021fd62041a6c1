"""One exception family for everything ``crypto`` refuses.

Every module raises a subclass of :class:`CryptoError`; callers that only need to know
"this input was refused" catch the base class, and the subclasses carry a stable ``code``
that the platform maps to its own error codes and the CLI maps to exit codes.
"""

from __future__ import annotations


class CryptoError(Exception):
    """Base class of every error raised by the ``crypto`` package."""

    code: str = "crypto_error"

    def __init__(self, message: str, **details: object) -> None:
        super().__init__(message)
        self.message = message
        self.details = details
