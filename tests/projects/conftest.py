"""Fixtures for the projects tests: a populated center, a bid counter, helpers that take a
section through its life."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from flask import Flask

from bidding.core.clock import Clock
from bidding.projects import services
from tests.projects.factories import World, make_world


@pytest.fixture
def world(app: Flask, frozen_clock: Clock) -> World:
    return make_world()


class BidCounts:
    """A bid counter for tests: ``counts[section_id]`` bids, default 0."""

    def __init__(self) -> None:
        self.counts: dict[object, int] = {}

    def __call__(self, section: services.Section) -> int:
        return self.counts.get(section.id, 0)


@pytest.fixture
def bid_counts() -> Iterator[BidCounts]:
    counter = BidCounts()
    previous = services.set_bid_counter(counter)
    try:
        yield counter
    finally:
        services.set_bid_counter(previous)
