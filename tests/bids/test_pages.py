"""The bidder's page 我的投标: list, receipt download, withdraw (CSRF form)."""

from __future__ import annotations

import re

from flask.testing import FlaskClient

from bidding.accounts.passwords import hash_password
from bidding.core import db
from crypto.receipt import Receipt
from tests.accounts.conftest import login
from tests.bids.helpers import BidWorld, submit

PASSWORD = "Bidder-pages-2026!"


def test_my_bids_page_receipt_and_withdraw(client: FlaskClient, bw: BidWorld) -> None:
    first = submit(bw, 0).bid
    second = submit(bw, 0, price="4400000.00").bid
    user = bw.world.users[bw.rep(0).id]
    user.password_hash = hash_password(PASSWORD)
    username = user.username
    db.get_session().commit()
    assert login(client, username, PASSWORD).status_code == 302

    html = client.get("/bids/mine").get_data(as_text=True)
    assert "我的投标" in html and bw.section.name in html
    assert second.ciphertext_sha256 in html
    assert "已被修改替换" in html  # the first bid, in the history
    assert 'name="viewport"' in html  # phone friendly layout from base.html

    r = client.get(f"/bids/{second.id}/receipt.json")
    assert r.status_code == 200 and Receipt.from_json(r.data).bid_id == str(second.id)

    token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert token
    r = client.post(f"/bids/{second.id}/withdraw", data={"csrf_token": token.group(1)})
    assert r.status_code == 302
    html = client.get("/bids/mine").get_data(as_text=True)
    assert "投标文件已撤回" in html and "无有效投标" in html
    assert str(first.id) in html  # history keeps every receipt


def test_other_bidders_receipt_is_not_found(client: FlaskClient, bw: BidWorld) -> None:
    bid = submit(bw, 0).bid
    user = bw.world.users[bw.rep(1).id]
    user.password_hash = hash_password(PASSWORD)
    username = user.username
    db.get_session().commit()
    login(client, username, PASSWORD)
    assert client.get(f"/bids/{bid.id}/receipt.json").status_code == 404
    assert client.get("/bids/mine").status_code == 200
