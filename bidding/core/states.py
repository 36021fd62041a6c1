"""State machines (状态机): one ``transition()`` helper for every stateful model.

A stateful model keeps its state in a ``StrEnum`` column (stored as VARCHAR with a CHECK
constraint, see :func:`enum_column`) and declares its allowed moves as a class attribute::

    class Section(IdMixin, Base):
        TRANSITIONS: ClassVar[Mapping[SectionState, frozenset[SectionState]]] = {
            SectionState.DRAFT: frozenset({SectionState.UNDER_REVIEW, SectionState.CANCELLED}),
            ...
        }
        state: Mapped[SectionState] = mapped_column(enum_column(SectionState, "section_state"))

Services move it only through :func:`transition`, which refuses any move not declared with
:class:`~bidding.core.errors.InvalidTransition` (HTTP 409, code ``invalid_transition``) and
returns the previous state for the audit event.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import StrEnum
from typing import Any, ClassVar, Protocol, TypeVar

from flask_babel import gettext as _
from sqlalchemy import Enum

from bidding.core.errors import ErrorCode, InvalidTransition

__all__ = [
    "InvalidTransition",
    "Stateful",
    "allowed_targets",
    "can_transition",
    "check_transitions",
    "enum_column",
    "transition",
]

S = TypeVar("S", bound=StrEnum)


class Stateful(Protocol):
    """A model with a ``state`` and a class-level ``TRANSITIONS`` table."""

    state: Any
    TRANSITIONS: ClassVar[Mapping[Any, frozenset[Any]]]


def enum_column(cls: type[StrEnum], name: str, *, length: int = 32) -> Enum:
    """A ``StrEnum`` column stored as its value (VARCHAR + CHECK constraint, portable)."""
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=length,
        values_callable=lambda e: [m.value for m in e],
        validate_strings=True,
    )


def allowed_targets(obj: Stateful) -> frozenset[Any]:
    """The states ``obj`` may move to from its current state."""
    table: Mapping[Any, frozenset[Any]] = type(obj).TRANSITIONS
    return table.get(obj.state, frozenset())


def can_transition(obj: Stateful, target: StrEnum) -> bool:
    return target in allowed_targets(obj)


def transition(obj: Stateful, target: S, *, message: str | None = None) -> S:
    """Move ``obj`` to ``target`` if its ``TRANSITIONS`` allow it; return the old state.

    Raises :class:`InvalidTransition` (409 ``invalid_transition``) with ``details``
    ``{"object_type", "from", "to", "allowed"}`` otherwise. Does not flush or audit: the
    calling service records the event with the returned previous state.
    """
    current = obj.state
    allowed = allowed_targets(obj)
    if target not in allowed:
        raise InvalidTransition(
            message
            or _(
                "当前状态（%(current)s）下不能进行该操作（目标状态：%(target)s）。",
                current=str(current),
                target=str(target),
            ),
            code=ErrorCode.INVALID_TRANSITION,
            details={
                "object_type": type(obj).__name__,
                "from": str(current),
                "to": str(target),
                "allowed": sorted(str(s) for s in allowed),
            },
        )
    obj.state = target
    previous: S = current
    return previous


def check_transitions(states: Iterable[StrEnum], table: Mapping[Any, Iterable[Any]]) -> None:
    """Sanity-check a transition table at import time: every state and target is known."""
    known = set(states)
    for source, targets in table.items():
        if source not in known:
            raise ValueError(f"unknown source state {source!r}")
        for target in targets:
            if target not in known:
                raise ValueError(f"unknown target state {target!r} from {source!r}")
