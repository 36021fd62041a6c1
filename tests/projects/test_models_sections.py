"""Section model: the state machine table, the transition helper and CHECK constraints."""

from __future__ import annotations

import itertools
import uuid
from decimal import Decimal

import pytest
from flask import Flask
from sqlalchemy.exc import IntegrityError

from bidding.core import db
from bidding.core.errors import InvalidTransition
from bidding.core.states import allowed_targets, can_transition, transition
from bidding.projects.models import (
    SECTION_TRANSITIONS,
    Project,
    ProjectKind,
    Section,
    SectionState,
    Subject,
)
from tests.projects.factories import make_world

S = SectionState


def _project_and_section(app: Flask) -> Section:
    w = make_world(bidders=0)
    project = Project(
        transaction_code=f"T{uuid.uuid4().hex[:20]}",
        code=f"P{uuid.uuid4().hex[:10]}",
        name="测试项目",
        kind=ProjectKind.TENDERING,
        subject=Subject.WORKS,
        tenderer_id=w.tenderer.id,
        center_id=w.center.id,
        region_code="540200",
        created_by_id=w.agent.id,
    )
    db.get_session().add(project)
    db.get_session().flush()
    section = Section(
        project_id=project.id,
        serial=1,
        code=project.code + "001",
        name="一标段",
        estimated_price=Decimal("1000000.00"),
        bid_deposit=Decimal("20000.00"),
        created_by_id=w.agent.id,
    )
    db.get_session().add(section)
    db.get_session().flush()
    return section


def test_the_main_line_matches_design() -> None:
    line = [
        S.DRAFT,
        S.UNDER_REVIEW,
        S.PUBLISHED,
        S.CLOSED,
        S.OPENING,
        S.OPENED,
        S.EVALUATING,
        S.EVALUATED,
        S.PUBLICITY,
        S.AWARDED,
        S.CONTRACTED,
        S.ARCHIVED,
    ]
    for a, b in itertools.pairwise(line):
        assert b in SECTION_TRANSITIONS[a], (a, b)
    assert S.FAILED in SECTION_TRANSITIONS[S.CLOSED]
    assert S.FAILED not in SECTION_TRANSITIONS[S.PUBLISHED]  # fail only after the deadline
    assert S.CANCELLED in SECTION_TRANSITIONS[S.DRAFT]
    assert SECTION_TRANSITIONS[S.ARCHIVED] == frozenset()
    assert set(SECTION_TRANSITIONS) == set(SectionState)


def test_transition_helper(app: Flask) -> None:
    section = _project_and_section(app)
    assert section.state == S.DRAFT and section.version == 1
    assert can_transition(section, S.UNDER_REVIEW)
    assert not can_transition(section, S.PUBLISHED)
    with pytest.raises(InvalidTransition) as info:
        transition(section, S.PUBLISHED)
    assert info.value.code == "invalid_transition"
    assert info.value.http_status == 409
    assert info.value.details["from"] == "draft"
    assert info.value.details["allowed"] == ["cancelled", "under_review"]
    assert transition(section, S.UNDER_REVIEW) == S.DRAFT
    db.get_session().flush()
    assert section.version == 2
    assert section.etag == f'"{section.id.hex}-2"'
    assert S.PUBLISHED in allowed_targets(section)


def test_published_section_needs_a_key(app: Flask) -> None:
    section = _project_and_section(app)
    section.state = S.PUBLISHED
    with pytest.raises(IntegrityError):
        db.get_session().flush()
    db.get_session().rollback()


def test_cancelled_section_needs_a_reason(app: Flask) -> None:
    section = _project_and_section(app)
    section.state = S.CANCELLED
    with pytest.raises(IntegrityError):
        db.get_session().flush()
    db.get_session().rollback()


def test_maximum_price_positive(app: Flask) -> None:
    section = _project_and_section(app)
    section.maximum_price = Decimal("-1.00")
    with pytest.raises(IntegrityError):
        db.get_session().flush()
    db.get_session().rollback()
