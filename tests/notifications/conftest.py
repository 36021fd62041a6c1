"""Fixtures of the notifications tests: a world (projects factories), the opening's bid
counter over the bids table, and an HTTP helper with bearer tokens."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts import services as accounts
from bidding.accounts.models import User
from bidding.core import db
from bidding.core.clock import Clock
from bidding.core.roles import Actor
from bidding.projects import services as project_services
from tests.opening.factories import commit, count_current_bids
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


class Api:
    """Calls the API as a given actor (a bearer token issued once per actor)."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self._tokens: dict[object, str] = {}

    def call(self, method: str, path: str, actor: Actor | None = None, **kw: Any) -> Any:
        headers = dict(kw.pop("headers", {}))
        if actor is not None:
            if actor.id not in self._tokens:
                user = db.get_session().get(User, actor.id)
                issued = accounts.issue_token(None, user, ttl=86400)
                commit()
                self._tokens[actor.id] = issued.secret
            headers["Authorization"] = f"Bearer {self._tokens[actor.id]}"
        response = self.client.open(path, method=method, headers=headers, **kw)
        db.session.remove()
        return response


@pytest.fixture
def api(client: FlaskClient) -> Api:
    return Api(client)
