"""Browser smoke test: headless Chromium signs in through the login page and sees the
per-role home, on a desktop and at phone width, with the Chinese actually drawn."""

from __future__ import annotations

import os
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.services import unavailable

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]

# Draws each character on a canvas and returns how many distinct bitmaps came out: with
# no CJK font every character is the same "tofu" box.
DISTINCT_GLYPHS_JS = """
(chars) => {
  const seen = new Set();
  for (const ch of chars) {
    const c = document.createElement('canvas');
    c.width = 48; c.height = 48;
    const ctx = c.getContext('2d');
    ctx.fillStyle = '#fff'; ctx.fillRect(0, 0, 48, 48);
    ctx.fillStyle = '#000'; ctx.font = '40px sans-serif'; ctx.textBaseline = 'top';
    ctx.fillText(ch, 2, 2);
    seen.add(c.toDataURL());
  }
  return seen.size;
}
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def live_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    from werkzeug.serving import make_server

    from bidding.accounts.demo import seed_demo
    from bidding.accounts.passwords import use_default_hashing
    from bidding.core import db
    from tests.conftest import build_app, make_settings

    instance = tmp_path_factory.mktemp("browser") / "instance"
    app = build_app(make_settings(instance, password_hashing="fast"))
    with app.app_context(), db.session_scope() as s:
        seed_demo(s)
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


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    if not os.path.exists(CHROMIUM):
        unavailable("Chromium", f"{CHROMIUM} is missing (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


def test_sign_in_and_see_the_home_page(live_server: str, browser: object) -> None:
    page = browser.new_page(  # type: ignore[attr-defined]
        viewport={"width": 1280, "height": 800}, locale="zh-CN"
    )
    try:
        page.goto(live_server + "/")
        assert page.locator("html").get_attribute("lang") == "zh-CN"
        assert "用户登录" in page.inner_text("main")
        page.fill("#username", "bidder")
        page.fill("#password", "wrong-password-1")
        page.click("button[type=submit]")
        assert "用户名或口令不正确" in page.inner_text("#login-error")
        page.fill("#password", "Sunbid-demo-2026")
        page.click("button[type=submit]")
        page.wait_for_selector("[data-section=bidding]")
        assert "您好，陈投标" in page.inner_text("main")
        assert page.locator("[data-card=my_bids]").count() == 1
    finally:
        page.close()


def test_phone_width_layout_and_chinese_glyphs(
    live_server: str, browser: object, tmp_path: Path
) -> None:
    context = browser.new_context(  # type: ignore[attr-defined]
        viewport={"width": 390, "height": 844},
        device_scale_factor=2,
        is_mobile=True,
        locale="zh-CN",
    )
    page = context.new_page()
    try:
        page.goto(live_server + "/login")
        page.screenshot(path=str(tmp_path / "login-390.png"), full_page=True)
        page.fill("#username", "center.admin")
        page.fill("#password", "Sunbid-demo-2026")
        page.click("button[type=submit]")
        page.wait_for_selector("[data-section=center]")
        shot = tmp_path / "home-390.png"
        page.screenshot(path=str(shot), full_page=True)
        assert shot.stat().st_size > 10_000
        # nothing wider than the phone: no sideways scrolling
        overflow = page.evaluate(
            "() => document.documentElement.scrollWidth - document.documentElement.clientWidth"
        )
        assert overflow <= 0, f"page is {overflow}px wider than the viewport"
        # the collapsed menu opens (when the vendored Bootstrap JS is installed)
        if page.evaluate("() => typeof window.bootstrap !== 'undefined'"):
            assert not page.is_visible("text=退出登录")
            page.click(".navbar-toggler")
            # wait for the collapse animation to finish before opening the dropdown
            page.wait_for_selector("#sb-nav.collapse.show", state="visible")
            page.wait_for_function(
                "() => !document.querySelector('#sb-nav').classList.contains('collapsing')"
            )
            for _ in range(3):  # a click during a late reflow can be swallowed: retry
                page.click("#sb-nav .dropdown-toggle")
                try:
                    page.wait_for_selector("text=退出登录", state="visible", timeout=5000)
                    break
                except Exception:
                    continue
            assert page.is_visible("text=退出登录")
        # the Chinese is drawn with a real font, not as identical boxes
        assert page.evaluate(DISTINCT_GLYPHS_JS, "阳光交易平台") == 6
        print(f"screenshots in {tmp_path}")
    finally:
        context.close()
