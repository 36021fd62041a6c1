"""Fixtures for the bids tests."""

from __future__ import annotations

import pytest
from flask import Flask

from bidding.core.clock import Clock
from tests.bids.helpers import BidWorld, make_bid_world


@pytest.fixture
def bw(app: Flask, frozen_clock: Clock) -> BidWorld:
    return make_bid_world()
