"""Fixtures of the notifications tests: the opening tests' world (projects factories) and
bid counter over the bids table, and their HTTP helper with bearer tokens."""

from __future__ import annotations

import pytest
from flask.testing import FlaskClient

from tests.opening.conftest import bid_counter, world  # noqa: F401  (fixtures, reused)
from tests.opening.test_api import Api


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)
