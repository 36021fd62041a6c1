"""Fair-competition findings in English: every rule file has complete English texts, and
the API and the section page show them under ``?lang=en`` while the stored finding keeps
the Chinese it was made with."""

from __future__ import annotations

import re
import string
from collections.abc import Iterator
from types import SimpleNamespace

import pytest
from flask import Flask
from flask.testing import FlaskClient

from bidding.accounts.passwords import use_default_hashing, use_fast_hashing
from bidding.core import db
from bidding.projects import services
from bidding.projects.fairness import Clause, load_rules, review_document
from bidding.projects.fairness.engine import TEXT_FIELDS, Rule
from bidding.projects.fairness.i18n import finding_text
from bidding.projects.models import ReviewFinding
from tests.projects.factories import CLEAN_TEXT, World, draft_section, submit_keys, upload_text
from tests.projects.test_api_pages import _login
from tests.projects.test_api_projects import Api

RULES = load_rules()
HAN = re.compile(r"[\u4e00-\u9fff]")
#: A Chinese title kept in parentheses, （…） or (…).
PARENTHESISED = re.compile(r"\([^()]*\)|（[^（）]*）")
BAD = "投标人须在本市注册的企业方可参加投标。\n投标保证金为估算价的3%。\n"


def _fields(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


@pytest.mark.parametrize("rule", RULES, ids=[r.id for r in RULES])
def test_every_rule_has_complete_english(rule: Rule) -> None:
    for name in TEXT_FIELDS:
        chinese, english = rule.text(name), rule.text(name, "en")
        assert english and english != chinese, (rule.id, name)
        assert not HAN.search(PARENTHESISED.sub("", english)), (rule.id, name, english)
        assert rule.text(name, "en_US") == english
        assert rule.text(name, "zh_CN") == chinese
    # Every law the Chinese cites is named in English with its Chinese title in parentheses.
    cited = rule.legal_basis.count("《")
    titled = [p for p in PARENTHESISED.findall(rule.legal_basis_en) if HAN.search(p)]
    assert cited and len(titled) == cited, (rule.id, titled)
    assert "Article" in rule.legal_basis_en
    for check in rule.numeric:
        assert check.message_en != check.message and not HAN.search(check.message_en)
        assert _fields(check.message_en) == _fields(check.message) == {"value", "limit"}


def test_rules_list_in_english() -> None:
    listed = RULES[0].to_dict("en")
    assert listed["title"] == RULES[0].title_en
    assert RULES[0].to_dict()["title"] == RULES[0].title


def test_review_findings_carry_both_languages() -> None:
    findings = review_document(
        [Clause(t, f"段落 {n}") for n, t in enumerate(BAD.splitlines(), 1)], procurement=False
    )
    by_rule = {f.rule_id: f for f in findings}
    local, deposit = by_rule["R02"], by_rule["R12"]
    assert local.to_dict()["title"] == local.title and HAN.search(local.title)
    english = local.to_dict("en")
    assert english["title"].startswith("Geographic restrictions")
    assert "Rules for Fair Competition Review in Tendering and Bidding" in english["legal_basis"]
    assert english["text"] == local.text  # the clause is the document's own words
    assert deposit.to_dict()["details"] == ["投标保证金比例为 3%，超过 2% 的上限"]
    assert deposit.to_dict("en")["details"] == ["Bid security of 3% exceeds the 2% cap"]


def test_a_stored_finding_is_translated_only_while_its_rule_says_the_same() -> None:
    rule = RULES[1]
    stored = SimpleNamespace(
        rule_id=rule.id,
        title=rule.title[:200],
        legal_basis=rule.legal_basis[:500],
        suggestion=rule.suggestion,
    )
    for name in TEXT_FIELDS:
        assert finding_text(stored, name, "en") == rule.text(name, "en")
        assert finding_text(stored, name, "zh_CN") == getattr(stored, name)
        assert finding_text(stored, name) == getattr(stored, name)  # no request: Chinese
    stale = SimpleNamespace(**{**vars(stored), "title": "旧版本的规则标题"})
    assert finding_text(stale, "title", "en") == "旧版本的规则标题"
    gone = SimpleNamespace(**{**vars(stored), "rule_id": "R99"})
    assert finding_text(gone, "suggestion", "en") == rule.suggestion
    with pytest.raises(ValueError):
        finding_text(stored, "clause", "en")


# --------------------------------------------------------------------------- API and page


@pytest.fixture
def reviewed(app: Flask, world: World) -> ReviewFinding:
    section = draft_section(world)
    submit_keys(world, section)
    upload_text(world, section, CLEAN_TEXT + BAD)
    services.submit_for_review(world.agent, section)
    db.get_session().commit()
    finding: ReviewFinding = next(f for f in section.open_findings if f.rule_id == "R02")
    return finding


def test_api_shows_english_findings_under_lang_en(
    app: Flask, client: FlaskClient, world: World, reviewed: ReviewFinding
) -> None:
    api = Api(client, world)
    rule = next(r for r in RULES if r.id == "R02")
    section = reviewed.section
    path = f"/api/v1/projects/{section.project_id}/sections/{section.id}/findings"
    finding_id = str(reviewed.id)

    def item(r: object) -> dict[str, object]:
        items = r.json["items"]  # type: ignore[attr-defined]
        return next(i for i in items if i["id"] == finding_id)

    chinese = item(api.call("GET", path, world.staff))
    assert chinese["title"] == rule.title and chinese["suggestion"] == rule.suggestion
    english = item(api.call("GET", path + "?lang=en", world.staff))
    assert english["title"] == rule.title_en
    assert english["legal_basis"] == rule.legal_basis_en
    assert english["suggestion"] == rule.suggestion_en
    assert english["clause"] == chinese["clause"] and "本市注册" in str(english["clause"])
    by_header = item(api.call("GET", path, world.staff, headers={"Accept-Language": "en"}))
    assert by_header["title"] == rule.title_en
    # The record itself is unchanged: Chinese, as reviewed.
    db.session.remove()
    stored = db.get_session().get(ReviewFinding, reviewed.id)
    assert stored is not None and stored.title == rule.title
    assert stored.suggestion == rule.suggestion


@pytest.fixture
def pages(app: Flask, client: FlaskClient) -> Iterator[FlaskClient]:
    app.config["WTF_CSRF_ENABLED"] = False
    use_fast_hashing()
    yield client
    use_default_hashing()


def test_section_page_shows_english_findings_under_lang_en(
    pages: FlaskClient, world: World, reviewed: ReviewFinding
) -> None:
    rule = next(r for r in RULES if r.id == "R02")
    section = reviewed.section
    base = f"/projects/{section.project_id}/sections/{section.id}"
    _login(pages, world, world.staff)
    r = pages.get(base)
    assert r.status_code == 200 and rule.title in r.text and rule.title_en not in r.text
    r = pages.get(base + "?lang=en")
    assert r.status_code == 200
    assert rule.title_en.replace("'", "&#39;") in r.text
    assert "Rules for Fair Competition Review in Tendering and Bidding" in r.text
    assert rule.suggestion_en.split(";")[0].replace("'", "&#39;") in r.text
    assert rule.title not in r.text and "本市注册" in r.text  # the clause stays as written
