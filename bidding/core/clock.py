"""The platform clock (平台时钟): the only source of "now" for services.

Services call :func:`now`; tests freeze and move the clock through :data:`clock`. Times are
timezone-aware UTC; pages convert to Asia/Shanghai for display.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

SHANGHAI = ZoneInfo("Asia/Shanghai")


class Clock:
    """A wall clock that can be frozen and moved (for tests and drills)."""

    def __init__(self) -> None:
        self._frozen: datetime | None = None
        self._lock = threading.Lock()

    def now(self) -> datetime:
        with self._lock:
            if self._frozen is not None:
                return self._frozen
        return datetime.now(UTC)

    def freeze(self, at: datetime | None = None) -> datetime:
        at = at or datetime.now(UTC)
        if at.tzinfo is None:
            raise ValueError("freeze() needs an aware datetime")
        with self._lock:
            self._frozen = at.astimezone(UTC)
            return self._frozen

    def move(self, delta: timedelta) -> datetime:
        with self._lock:
            if self._frozen is None:
                raise RuntimeError("move() needs a frozen clock")
            self._frozen = self._frozen + delta
            return self._frozen

    def unfreeze(self) -> None:
        with self._lock:
            self._frozen = None

    @property
    def frozen(self) -> bool:
        return self._frozen is not None

    @contextmanager
    def frozen_at(self, at: datetime) -> Iterator[Clock]:
        self.freeze(at)
        try:
            yield self
        finally:
            self.unfreeze()


clock = Clock()


def now() -> datetime:
    """Current UTC time from the platform clock."""
    return clock.now()


def to_local(value: datetime) -> datetime:
    """Convert an aware UTC time to Asia/Shanghai for display."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(SHANGHAI)


def isoformat_z(value: datetime) -> str:
    """ISO 8601 in UTC with a ``Z`` suffix, as the API serialises times."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).isoformat().replace("+00:00", "Z")
