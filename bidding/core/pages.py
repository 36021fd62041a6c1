"""The base pages (基础页面): the index (login page or per-role home), the language switch,
and the registries every domain uses to add its links to the navbar and the home cards.

A domain adds its entries in its ``init_app``::

    from bidding.core.pages import add_home_card, add_nav_item
    add_nav_item("projects", lazy_gettext("项目"), "projects.index",
                 roles={Role.AGENCY_STAFF, Role.TENDERER_REP, Role.CENTER_STAFF})
    add_home_card("projects", Role.AGENCY_STAFF, lazy_gettext("项目与标段"),
                  lazy_gettext("登记项目、编制标段、发布招标公告。"), "projects.index")

Registering a card under an existing key replaces it (the defaults below are placeholders
marked "coming soon" until a domain supplies the endpoint).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from flask import Blueprint, Flask, make_response, redirect, render_template, request, url_for
from flask_babel import format_datetime, get_locale
from flask_babel import lazy_gettext as _l
from werkzeug.routing import BuildError
from werkzeug.wrappers import Response

from bidding.core.auth import current_actor, safe_next
from bidding.core.clock import now
from bidding.core.roles import Role

bp = Blueprint("pages", __name__)

LANGUAGE_COOKIE = "lang"
LANGUAGES = {"zh_CN": "中文", "en": "English"}

ROLE_LABELS: dict[Role, Any] = {
    Role.CENTER_ADMIN: _l("交易中心管理员"),
    Role.CENTER_STAFF: _l("交易中心工作人员"),
    Role.SUPERVISOR: _l("监督人员"),
    Role.AGENCY_STAFF: _l("招标代理"),
    Role.TENDERER_REP: _l("招标人"),
    Role.BIDDER_REP: _l("投标人"),
    Role.EXPERT: _l("评标专家"),
    Role.GUARANTOR: _l("担保机构"),
}

#: Home sections in display order: one heading per group, shown if the user holds a role.
HOME_GROUPS: list[tuple[str, Any, frozenset[Role]]] = [
    ("center", _l("交易中心"), frozenset({Role.CENTER_ADMIN, Role.CENTER_STAFF})),
    ("tendering", _l("招标人 / 代理"), frozenset({Role.TENDERER_REP, Role.AGENCY_STAFF})),
    ("bidding", _l("投标人"), frozenset({Role.BIDDER_REP})),
    ("expert", _l("评标专家"), frozenset({Role.EXPERT})),
    ("guarantor", _l("担保机构"), frozenset({Role.GUARANTOR})),
    ("supervision", _l("监督"), frozenset({Role.SUPERVISOR})),
]


@dataclass
class NavItem:
    key: str
    label: Any
    endpoint: str
    roles: frozenset[Role] | None  # None: every signed-in user
    order: int = 100


@dataclass
class HomeCard:
    key: str
    roles: frozenset[Role]
    title: Any
    text: Any
    endpoint: str | None  # None: coming soon
    order: int = 100


_NAV: dict[str, NavItem] = {}
_CARDS: dict[str, HomeCard] = {}


def add_nav_item(
    key: str, label: Any, endpoint: str, *, roles: Iterable[Role] | None = None, order: int = 100
) -> None:
    """Add (or replace) a navbar link shown to holders of ``roles``."""
    _NAV[key] = NavItem(key, label, endpoint, frozenset(roles) if roles else None, order)


def add_home_card(
    key: str,
    roles: Role | Iterable[Role],
    title: Any,
    text: Any,
    endpoint: str | None,
    *,
    order: int = 100,
) -> None:
    """Add (or replace) a card on the home page of holders of ``roles``."""
    wanted = frozenset({roles}) if isinstance(roles, Role) else frozenset(roles)
    _CARDS[key] = HomeCard(key, wanted, title, text, endpoint, order)


def _url(endpoint: str | None) -> str | None:
    if endpoint is None:
        return None
    try:
        return url_for(endpoint)
    except BuildError:
        return None  # the domain is not wired (yet): show the card as coming soon


def nav_items() -> list[dict[str, Any]]:
    actor = current_actor()
    if actor is None:
        return []
    held = actor.roles
    items = []
    for item in sorted(_NAV.values(), key=lambda n: (n.order, n.key)):
        if item.roles is not None and not (item.roles & held):
            continue
        url = _url(item.endpoint)
        if url is not None:
            items.append({"key": item.key, "label": item.label, "url": url})
    return items


def home_sections(held: frozenset[Role]) -> list[dict[str, Any]]:
    sections = []
    for key, title, group_roles in HOME_GROUPS:
        mine = held & group_roles
        if not mine:
            continue
        cards = [
            {"key": c.key, "title": c.title, "text": c.text, "url": _url(c.endpoint)}
            for c in sorted(_CARDS.values(), key=lambda c: (c.order, c.key))
            if c.roles & mine
        ]
        sections.append({"key": key, "title": title, "cards": cards})
    return sections


def _defaults() -> None:
    C, S, SUP = Role.CENTER_ADMIN, Role.CENTER_STAFF, Role.SUPERVISOR
    add_nav_item("home", _l("首页"), "pages.index", order=0)
    add_nav_item("admin_users", _l("用户管理"), "accounts.admin_users", roles={C}, order=90)
    add_nav_item("tokens", _l("接口令牌"), "accounts.tokens", order=95)
    cards: list[tuple[str, set[Role], Any, Any, str | None]] = [
        (
            "admin_users",
            {C},
            _l("用户与角色"),
            _l("创建账户、授予或撤销角色、停用账户。"),
            "accounts.admin_users",
        ),
        (
            "projects_entry",
            {C, S},
            _l("项目进场登记"),
            _l("登记进场项目，分配统一交易标识码。"),
            None,
        ),
        ("openings", {C, S}, _l("开标管理"), _l("组织不见面开标，见证解密与唱标。"), None),
        ("expert_draws", {C, S}, _l("专家抽取"), _l("按专业与主副场配额随机抽取评标专家。"), None),
        (
            "statistics",
            {C, S, SUP},
            _l("交易统计"),
            _l("进场项目、成交金额、远程异地评标等统计。"),
            None,
        ),
        (
            "projects",
            {Role.TENDERER_REP, Role.AGENCY_STAFF},
            _l("项目与标段"),
            _l("编制标段、上传招标文件、发布公告。"),
            None,
        ),
        (
            "clarifications",
            {Role.TENDERER_REP, Role.AGENCY_STAFF},
            _l("澄清与答疑"),
            _l("发布澄清或修改，答复投标人提问。"),
            None,
        ),
        ("tenders_open", {Role.BIDDER_REP}, _l("正在招标"), _l("浏览可参与的标段并报名。"), None),
        (
            "my_bids",
            {Role.BIDDER_REP},
            _l("我的投标"),
            _l("加密上传投标文件，查看回执与开标结果。"),
            None,
        ),
        ("invitations", {Role.EXPERT}, _l("抽取邀请"), _l("确认或谢绝评标邀请。"), None),
        (
            "rooms",
            {Role.EXPERT},
            _l("评标室"),
            _l("进入远程异地评标室，评审打分、签署报告。"),
            None,
        ),
        ("letters", {Role.GUARANTOR}, _l("电子保函"), _l("查看保函申请，签发、释放与理赔。"), None),
        ("supervision", {SUP}, _l("监督"), _l("只读观察开标与评标，受理异议。"), None),
        ("audit", {SUP, C}, _l("见证日志"), _l("核验每一次操作的可验证记录。"), None),
    ]
    for order, (key, roles, title, text, endpoint) in enumerate(cards):
        add_home_card(key, roles, title, text, endpoint, order=order * 10)


_defaults()


@bp.get("/")
def index() -> Any:
    actor = current_actor()
    if actor is None:
        return render_template("accounts/login.html", error=None, next_url="/", username="")
    labels = [ROLE_LABELS[r] for r in sorted(actor.roles, key=list(Role).index)]
    return render_template(
        "home.html", sections=home_sections(actor.roles), role_labels=labels, actor=actor
    )


@bp.get("/lang/<code>")
def set_language(code: str) -> Response:
    """Switch the interface language (中文 / English) and go back where the user was."""
    target = safe_next(request.args.get("next"))
    response = make_response(redirect(target))
    if code in LANGUAGES:
        response.set_cookie(
            LANGUAGE_COOKIE, code, max_age=365 * 24 * 3600, samesite="Lax", httponly=True
        )
    return response


def _local_time(value: Any, fmt: str = "yyyy-MM-dd HH:mm") -> str:
    if value is None:
        return ""
    return str(format_datetime(value, fmt))  # converts UTC to Asia/Shanghai


def _template_globals() -> dict[str, Any]:
    locale = str(get_locale() or "zh_CN")
    return {
        "nav_items": nav_items,
        "languages": LANGUAGES,
        "current_locale": locale,
        "html_lang": "zh-CN" if locale.startswith("zh") else "en",
        "role_label": lambda r: ROLE_LABELS.get(Role(r), r),
        "now": now,
    }


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)
    app.context_processor(_template_globals)
    app.jinja_env.filters["local_time"] = _local_time
