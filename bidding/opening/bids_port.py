"""What the opening needs from the bids domain, in one place.

The opening reads bids (it never changes their state: per-bid outcomes live in
:class:`bidding.opening.models.OpeningResult`) and the price sheet inside a decrypted
bid package (``bidding.bids.package.read_price_sheet``).
"""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import IO, Any

from sqlalchemy import select

from bidding.bids.models import Bid, BidState
from bidding.core import db
from bidding.core.errors import DomainError, ErrorCode
from bidding.projects.models import Section

__all__ = ["PACKAGE_ERRORS", "Bid", "PriceSheetUnreadable", "bids_to_open", "read_price_sheet"]

#: Codes ``read_price_sheet`` refuses a decrypted package with: all the bidder's fault.
PACKAGE_ERRORS = frozenset(
    {ErrorCode.BID_PACKAGE_INVALID, ErrorCode.PRICE_SHEET_MISSING, ErrorCode.PRICE_SHEET_INVALID}
)


class PriceSheetUnreadable(Exception):
    """The decrypted bid has no readable price sheet (开标一览表)."""

    def __init__(self, code: str, message: str, details: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.details = details or {}


def bids_to_open(section: Section) -> list[Bid]:
    """The section's current, committed bids in the order they were received."""
    return list(
        db.get_session().scalars(
            select(Bid)
            .where(
                Bid.section_id == section.id,
                Bid.is_current.is_(True),
                Bid.state == BidState.COMMITTED,
            )
            .order_by(Bid.committed_at, Bid.id)
        )
    )


def bid_by_id(bid_id: uuid.UUID) -> Bid | None:
    return db.get_session().get(Bid, bid_id)


def read_price_sheet(path: Path | IO[bytes], *, section: Section, bid: Bid) -> dict[str, Any]:
    """The price sheet of the decrypted package at ``path`` (a file, or a seekable binary
    stream such as :meth:`bidding.opening.pricesheet.PackageCapture.reader`) as a
    JSON-able dict.

    Raises :class:`PriceSheetUnreadable` with the bids domain's code when the package or
    its price sheet is missing, malformed or names another section or bidder.
    """
    from bidding.bids import package

    try:
        sheet = package.read_price_sheet(
            path, section_id=str(section.id), bidder_credit_code=bid.bidder.credit_code
        )
    except DomainError as exc:
        raise PriceSheetUnreadable(str(exc.code), exc.message, exc.details) from exc
    return sheet.to_dict()
