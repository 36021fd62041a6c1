"""Browser check of 消息中心 at phone width: the demo bidder signs in, sees the unread
badge, reads its clarification notice without sideways scrolling, and marks it read."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.browser.test_login_browser import _free_port, browser  # noqa: F401

pytestmark = pytest.mark.browser


@pytest.fixture(scope="module")
def demo_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from werkzeug.serving import make_server

    from bidding.accounts.passwords import use_default_hashing
    from bidding.app import settings_of
    from bidding.core import db
    from bidding.demo import seed
    from tests.conftest import build_app, make_settings

    instance = tmp_path_factory.mktemp("inbox") / "instance"
    app = build_app(make_settings(instance, password_hashing="fast"))
    with app.app_context(), db.session_scope() as s:
        seed(s, settings_of(app))
    port = _free_port()
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.shutdown()
        thread.join(timeout=10)
        db.dispose_engine()
        use_default_hashing()


def test_inbox_at_phone_width(demo_server: str, browser: object, tmp_path: Path) -> None:  # noqa: F811
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 360, "height": 740}, is_mobile=True, locale="zh-CN"
    )
    page = context.new_page()
    try:
        page.goto(demo_server + "/login")
        page.fill("#username", "bidder")
        page.fill("#password", "Sunbid-demo-2026")
        page.click("button[type=submit]")
        page.wait_for_selector("[data-section=bidding]")
        nav = page.locator("#sb-nav a[href='/notifications']")
        assert nav.locator(".sb-unread").inner_text() == "1"

        page.goto(demo_server + "/notifications")
        item = page.locator("[data-kind=clarification_issued]")
        assert item.count() == 1
        assert "澄清/修改通知" in item.inner_text() and "未读" in item.inner_text()
        page.screenshot(path=str(tmp_path / "inbox-360.png"), full_page=True)
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"page is {overflow}px wider than the viewport"
        box = item.bounding_box()
        assert box is not None and box["x"] >= 0 and box["x"] + box["width"] <= 360

        page.click("text=全部标为已读")
        page.wait_for_selector("[data-kind=clarification_issued]:not(.sb-notification-unread)")
        assert page.locator("#sb-nav .sb-unread").count() == 0
    finally:
        context.close()
