"""Fixtures of the opening tests: a world, a bid counter over the bids table, recorded emits."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask

from bidding.core.clock import Clock
from bidding.opening import services
from bidding.projects import services as project_services
from tests.opening.factories import count_current_bids
from tests.projects.factories import World, make_world


@pytest.fixture
def world(app: Flask, frozen_clock: Clock) -> World:
    return make_world()


@pytest.fixture(autouse=True)
def bid_counter() -> Iterator[None]:
    previous = project_services.set_bid_counter(count_current_bids)
    try:
        yield
    finally:
        project_services.set_bid_counter(previous)


class Emits(list[tuple[str, dict[str, Any], str]]):
    def names(self) -> list[str]:
        return [e for e, _, _ in self]


@pytest.fixture
def emits() -> Iterator[Emits]:
    recorded = Emits()
    previous = services.set_emitter(lambda e, d, r: recorded.append((e, dict(d), r)))
    try:
        yield recorded
    finally:
        services.set_emitter(previous)
