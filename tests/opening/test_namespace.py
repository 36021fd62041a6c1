"""The opening hall's Socket.IO namespace with a real python-socketio client over a real
socket, against the app served by werkzeug in a thread (threading mode)."""

from __future__ import annotations

import re
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
import requests
import socketio
from flask import Flask
from werkzeug.serving import make_server

from bidding.accounts.models import User
from bidding.accounts.passwords import hash_password
from bidding.core import db
from bidding.core.clock import Clock
from bidding.opening import services
from tests.opening.factories import commit, opening_with_bids, share_json
from tests.projects.factories import World

PASSWORD = "Opening-Hall-2026!"
UA = "sunbid-hall-test/1"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def server(app: Flask) -> Iterator[str]:
    port = _free_port()
    srv = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.shutdown()
        thread.join(5)


@pytest.fixture
def hall(world: World, frozen_clock: Clock) -> Any:
    section, _, _ = opening_with_bids(world, frozen_clock)
    s = db.get_session()
    for actor in (world.staff, world.bidder_reps[0], world.bidder_reps[3]):
        s.get(User, actor.id).password_hash = hash_password(PASSWORD)
    sid = section.id
    commit()
    return sid


def _cookie(base: str, username: str) -> str:
    http = requests.Session()
    http.headers["User-Agent"] = UA
    html = http.get(base + "/login").text
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)  # type: ignore[union-attr]
    r = http.post(
        base + "/login",
        data={"username": username, "password": PASSWORD, "csrf_token": token},
        allow_redirects=False,
    )
    assert r.status_code in (302, 303), r.text[:300]
    return "; ".join(f"{c.name}={c.value}" for c in http.cookies)


class Seat:
    def __init__(self, base: str, section_id: Any, username: str | None) -> None:
        self.refusal: Any = None
        self.events: list[tuple[str, Any]] = []
        self.client = socketio.Client(reconnection=False)
        self.client.on(
            "*", lambda event, data: self.events.append((event, data)), namespace="/opening"
        )
        headers = {"User-Agent": UA}
        if username is not None:
            headers["Cookie"] = _cookie(base, username)
        self.client.connect(
            base,
            namespaces=["/opening"],
            auth={"section_id": str(section_id)},
            headers=headers,
            transports=["websocket"],
            wait_timeout=10,
        )

    def wait_for(self, name: str, timeout: float = 10) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for event, data in self.events:
                if event == name:
                    return data
            time.sleep(0.02)
        raise AssertionError(f"no {name} event; got {[e for e, _ in self.events]}")

    def close(self) -> None:
        # abort: websocket-client otherwise waits 3 s for the dev server's close frame
        self.client.eio.disconnect(abort=True)

    def call(self, event: str, data: Any) -> Any:
        return self.client.call(event, data, namespace="/opening", timeout=10)


def test_hall_events_over_a_real_socket(world: World, hall: Any, server: str) -> None:
    staff = Seat(server, hall, world.staff.username)
    bidder = Seat(server, hall, world.bidder_reps[0].username)
    try:
        state = bidder.wait_for("hall_state")
        assert state["capacity"] == "bidder" and state["state"] == "waiting_shares"
        reply = bidder.call("sign_in", {})
        assert reply["ok"] is True and reply["capacity"] == "bidder"
        assert staff.wait_for("bidder_signed_in")["capacity"] == "bidder"
        reply = bidder.call("raise_objection", {"text": "短"})
        assert reply == {"ok": False, "code": "reason_required", "message": reply["message"]}
        reply = bidder.call("raise_objection", {"text": "请核实第三家投标人的递交时间。"})
        assert reply["ok"] is True
        objection = staff.wait_for("objection_raised")
        reply = bidder.call(
            "answer_objection", {"objection_id": objection["id"], "answer": "投标人不能答复。"}
        )
        assert reply["ok"] is False and reply["code"] == "forbidden"
        reply = staff.call(
            "answer_objection",
            {"objection_id": objection["id"], "answer": "递交时间在截止时间之前。"},
        )
        assert reply["ok"] is True
        assert bidder.wait_for("objection_answered")["answer"] == "递交时间在截止时间之前。"
        # a share released over HTTP/services reaches the hall after the commit
        from bidding.projects.models import Section

        section = db.get_session().get(Section, hall)
        services.release_share(world.staff, section, share_json(world, section, world.staff.id))
        commit()
        assert bidder.wait_for("share_released")["released"] == 1
    finally:
        staff.close()
        bidder.close()


def test_connect_refused_without_rights(world: World, hall: Any, server: str) -> None:
    with pytest.raises(socketio.exceptions.ConnectionError):
        Seat(server, hall, None)  # anonymous
    with pytest.raises(socketio.exceptions.ConnectionError):
        Seat(server, hall, world.bidder_reps[3].username)  # no bid in this section
