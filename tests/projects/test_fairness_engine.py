"""The fair-competition review engine: findings, scopes, rule files, order and speed."""

from __future__ import annotations

import io
import re
import time
from decimal import Decimal
from pathlib import Path

import pytest

from bidding.projects.fairness import (
    Clause,
    RuleFileError,
    Scope,
    Severity,
    extract_clauses,
    load_rules,
    review_document,
    review_file,
)
from bidding.projects.fairness.engine import MAX_FINDING_TEXT, RULES_DIR
from bidding.projects.fairness.quantities import (
    find_amounts,
    find_days,
    find_percentages,
    parse_chinese_number,
)

FIXTURES = Path(__file__).with_name("fixtures")


def _clauses(*texts: str) -> list[Clause]:
    return [Clause(text, f"段落 {n}") for n, text in enumerate(texts, start=1)]


# --------------------------------------------------------------------------- findings


def test_local_registration_and_brand_are_flagged_with_rule_and_clause() -> None:
    findings = review_document(
        _clauses(
            "第一章 招标公告", "1.1 投标人须是在本市注册的企业。", "2.1 电梯采用三菱或同等品牌。"
        ),
        procurement=False,
        works=True,
    )
    assert [(f.rule_id, f.location, f.text, f.matched) for f in findings] == [
        ("R02", "段落 2", "1.1 投标人须是在本市注册的企业。", ("本市注册的企业",)),
        ("R01", "段落 3", "2.1 电梯采用三菱或同等品牌。", ("采用三菱或同等品牌",)),
    ]
    first = findings[0]
    assert first.title.startswith("设置本地注册")
    assert "《招标投标领域公平竞争审查规则》第六条" in first.legal_basis
    assert "删除对投标人注册地" in first.suggestion
    assert first.severity is Severity.HIGH
    assert first.clause_index == 1
    assert first.to_dict() == {
        "rule_id": "R02",
        "title": first.title,
        "text": "1.1 投标人须是在本市注册的企业。",
        "spans": [[10, 17]],
        "location": "段落 2",
        "legal_basis": first.legal_basis,
        "suggestion": first.suggestion,
        "severity": "high",
        "clause_index": 1,
        "details": [],
    }


def test_numeric_findings_explain_the_limit() -> None:
    findings = review_document(
        _clauses("投标保证金为估算价的3%，即人民币120万元。", "履约保证金为合同金额的百分之十五。"),
        procurement=False,
        works=True,
    )
    assert [(f.rule_id, f.matched, f.details) for f in findings] == [
        (
            "R12",
            ("3%", "120万元"),
            (
                "投标保证金比例为 3%，超过 2% 的上限",
                "施工项目投标保证金为 1,200,000 元，超过 800,000 元的上限",
            ),
        ),
        ("R12", ("百分之十五",), ("履约保证金比例为 15%，超过 10% 的上限",)),
    ]


def test_one_finding_per_clause_and_rule_with_merged_spans() -> None:
    findings = review_document(
        _clauses("本项目仅限国有企业参加，民营企业不得参与，外资企业不得参与。"), procurement=False
    )
    assert len(findings) == 1
    assert findings[0].matched == ("仅限国有企业", "民营企业不得参与", "外资企业不得参与")


def test_a_clause_flagged_by_two_rules_gives_two_findings_in_rule_order() -> None:
    findings = review_document(_clauses("投标人须与本地企业组成联合体投标。"), procurement=False)
    assert [f.rule_id for f in findings] == ["R02", "R13"]


def test_long_clause_is_trimmed_around_the_match() -> None:
    text = (
        "投标人应当具备承担招标项目的能力" * 30
        + "，投标人须是在本市注册的企业"
        + "，并遵守有关规定" * 30
    )
    (finding,) = review_document(_clauses(text), procurement=False)
    assert len(finding.text) <= MAX_FINDING_TEXT + 2
    assert finding.text.startswith("…") and finding.text.endswith("…")
    assert finding.matched == ("本市注册的企业",)


def test_matches_never_span_two_clauses() -> None:
    assert review_document(_clauses("主要设备品牌：", "西门子"), procurement=False) == []
    assert review_document(_clauses("投标人须在", "本市注册"), procurement=False) == []
    assert review_document(_clauses("投标保证金为", "5%"), procurement=False) == []


def test_procurement_only_rule_is_not_applied_to_tendering() -> None:
    clauses = _clauses("投标人须提供制造商针对本项目的授权书。")
    assert [f.rule_id for f in review_document(clauses, procurement=True)] == ["R06"]
    assert review_document(clauses, procurement=False) == []


def test_imported_goods_anywhere_in_the_document_lift_the_authorisation_rule() -> None:
    allowed = _clauses("本项目允许采购进口产品。", "投标人须提供制造商授权书。")
    refused = _clauses("本项目不允许采购进口产品。", "投标人须提供制造商授权书。")
    assert review_document(allowed, procurement=True) == []
    assert [f.rule_id for f in review_document(refused, procurement=True)] == ["R06"]


def test_works_only_deposit_cap() -> None:
    clauses = _clauses("投标保证金：人民币捌拾伍万元整。")
    (finding,) = review_document(clauses, procurement=False, works=True)
    assert finding.details == ("施工项目投标保证金为 850,000 元，超过 800,000 元的上限",)
    assert review_document(clauses, procurement=False, works=False) == []


def test_procurement_document_availability_counts_working_days() -> None:
    clauses = _clauses("采购文件提供期限为5日。")
    assert [f.rule_id for f in review_document(clauses, procurement=True)] == ["R14"]
    assert review_document(clauses, procurement=False) == []


def test_order_is_deterministic() -> None:
    with (FIXTURES / "restrictive_tender.txt").open("rb") as fh:
        clauses = extract_clauses(fh, "restrictive_tender.txt")
    first = review_document(clauses, procurement=False, works=True)
    again = review_document(list(reversed(clauses[::-1])), procurement=False, works=True)
    assert first == again
    assert [(f.clause_index, f.rule_id) for f in first] == sorted(
        (f.clause_index, f.rule_id) for f in first
    )


# --------------------------------------------------------------------------- sample documents


@pytest.mark.parametrize("procurement", [False, True])
def test_compliant_sample_document_has_no_findings(procurement: bool) -> None:
    with (FIXTURES / "clean_tender.md").open("rb") as fh:
        findings = review_file(fh, "clean_tender.md", procurement=procurement, works=True)
    assert [(f.rule_id, f.location, f.matched) for f in findings] == []


def test_restrictive_sample_document_is_flagged_line_by_line() -> None:
    with (FIXTURES / "restrictive_tender.txt").open("rb") as fh:
        findings = review_file(fh, "restrictive_tender.txt", procurement=False, works=True)
    assert [(f.location, f.rule_id) for f in findings] == [
        ("第 3 行", "R02"),
        ("第 4 行", "R04"),
        ("第 5 行", "R03"),
        ("第 6 行", "R07"),
        ("第 7 行", "R09"),
        ("第 9 行", "R11"),
        ("第 10 行", "R08"),
        ("第 12 行", "R14"),
        ("第 14 行", "R12"),
        ("第 15 行", "R12"),
        ("第 17 行", "R13"),
        ("第 18 行", "R02"),
        ("第 18 行", "R13"),
        ("第 19 行", "R10"),
        ("第 20 行", "R14"),
        ("第 22 行", "R01"),
        ("第 22 行", "R01"),
        ("第 23 行", "R05"),
        ("第 24 行", "R02"),
        ("第 25 行", "R12"),
    ]


def test_two_hundred_pages_are_reviewed_quickly() -> None:
    with (FIXTURES / "clean_tender.md").open("rb") as fh:
        clean = extract_clauses(fh, "clean_tender.md")
    with (FIXTURES / "restrictive_tender.txt").open("rb") as fh:
        restrictive = extract_clauses(fh, "restrictive_tender.txt")
    clauses = clean * 90 + restrictive  # ≈ 280,000 characters, 200 dense pages
    load_rules()
    started = time.perf_counter()
    findings = review_document(clauses, procurement=False, works=True)
    elapsed = time.perf_counter() - started
    assert len(findings) == 20
    assert elapsed < 3.0, elapsed  # ≈ 0.3 s on the reference machine


# --------------------------------------------------------------------------- rule files


def test_rules_are_loaded_once_and_listed() -> None:
    rules = load_rules()
    assert load_rules() is rules
    assert [r.id for r in rules] == [f"R{n:02d}" for n in range(1, 15)]
    assert all(r.source.startswith(r.id + "_") for r in rules)
    listed = rules[0].to_dict()
    assert set(listed) == {"id", "title", "legal_basis", "suggestion", "applies_to", "severity"}
    assert {r.applies_to for r in rules} == {Scope.BOTH, Scope.PROCUREMENT}


VALID = """
id = "R01"
title = "标题"
legal_basis = "依据"
suggestion = "建议"
title_en = "Title"
legal_basis_en = "Basis (依据)"
suggestion_en = "Suggestion"
applies_to = "both"
severity = "high"
patterns = ['{LOCAL}注册']
"""


def _rules_dir(tmp_path: Path, files: dict[str, str]) -> Path:
    (tmp_path / "_vocabulary.toml").write_text(
        "[macros]\nLOCAL = '(?:本市|本地)'\nNEG = '(?:不得)'\n", encoding="utf-8"
    )
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")
    return tmp_path


def test_a_valid_rule_directory_loads(tmp_path: Path) -> None:
    (rule,) = load_rules(_rules_dir(tmp_path, {"R01_x.toml": VALID}))
    assert rule.patterns[0].pattern == "(?:本市|本地)注册"
    assert [
        f.rule_id
        for f in review_document(_clauses("须在本市注册"), procurement=False, rules=[rule])
    ] == ["R01"]
    assert review_document(_clauses("不得在本市注册"), procurement=False, rules=[rule]) == []


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("R01_x.toml", "id = ", "cannot be read"),
        ("R01_x.toml", VALID.replace('severity = "high"', ""), "missing keys ['severity']"),
        ("R01_x.toml", VALID + "colour = 'red'\n", "unknown keys ['colour']"),
        ("R01_x.toml", VALID.replace("{LOCAL}注册", "(unclosed"), "invalid regular expression"),
        ("R01_x.toml", VALID.replace("{LOCAL}", "{PLACE}"), "unknown macro {PLACE}"),
        ("R02_x.toml", VALID, "must be R + two digits and start the file name"),
        ("R01_x.toml", VALID.replace('"both"', '"everything"'), "applies_to must be one of"),
        ("R01_x.toml", VALID.replace('"high"', '"urgent"'), "severity must be one of"),
        (
            "R01_x.toml",
            VALID.replace("patterns = ['{LOCAL}注册']", "patterns = []"),
            "needs patterns",
        ),
        (
            "R01_x.toml",
            VALID + "[[numeric]]\nquantity = 'percent'\ncontext = 'x'\n",
            "needs min or max",
        ),
        (
            "R01_x.toml",
            VALID + "[[numeric]]\nquantity = 'kg'\ncontext = 'x'\nmax = 1\n",
            "quantity must be",
        ),
        ("R01_x.toml", VALID + "negation_window = -1\n", "negation_window"),
    ],
)
def test_a_broken_rule_file_is_named(tmp_path: Path, name: str, text: str, message: str) -> None:
    directory = _rules_dir(tmp_path, {name: text})
    with pytest.raises(RuleFileError) as caught:
        load_rules(directory)
    assert f"rule file {name}" in str(caught.value)
    assert message in str(caught.value)


def test_duplicate_rule_ids_are_refused(tmp_path: Path) -> None:
    directory = _rules_dir(tmp_path, {"R01_a.toml": VALID, "R01_b.toml": VALID})
    with pytest.raises(
        RuleFileError, match=re.escape("R01_b.toml: id R01 is already used by R01_a.toml")
    ):
        load_rules(directory)


def test_a_broken_vocabulary_is_named(tmp_path: Path) -> None:
    (tmp_path / "_vocabulary.toml").write_text("[macros]\nlower = 'x'\n", encoding="utf-8")
    (tmp_path / "R01_x.toml").write_text(VALID, encoding="utf-8")
    with pytest.raises(RuleFileError, match=re.escape("_vocabulary.toml")):
        load_rules(tmp_path)


def test_an_empty_rule_directory_is_refused(tmp_path: Path) -> None:
    with pytest.raises(RuleFileError, match="no rule files"):
        load_rules(tmp_path)


def test_shipped_rules_directory_is_the_default() -> None:
    assert load_rules(RULES_DIR) is load_rules()


# --------------------------------------------------------------------------- quantities


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("二", "2"),
        ("十五", "15"),
        ("二十", "20"),
        ("一百零八", "108"),
        ("三千零五十", "3050"),
        ("捌拾万", "800000"),
        ("壹佰贰拾万", "1200000"),
        ("一亿二千万", "120000000"),
        ("二点五", "2.5"),
        ("800,000.00", "800000.00"),
    ],
)
def test_parse_chinese_number(text: str, value: str) -> None:
    assert parse_chinese_number(text) == Decimal(value)


def test_parse_chinese_number_refuses_words() -> None:
    with pytest.raises(ValueError):
        parse_chinese_number("若干")


def test_find_quantities() -> None:
    assert [q.value for q in find_percentages("3%，百分之二点五，千分之五，2.5％")] == [
        Decimal("3"),
        Decimal("2.5"),
        Decimal("0.5"),
        Decimal("2.5"),
    ]
    amounts = find_amounts("人民币捌拾万元整（￥800,000.00），或80万元、1.5亿元、3000元")
    assert [q.value for q in amounts] == [
        Decimal(800000),
        Decimal(800000),
        Decimal(800000),
        Decimal(150000000),
        Decimal(3000),
    ]
    days = find_days("自2024年5月10日至2024年5月14日，共5日，5月15日截止，十五个工作日，20天")
    assert [(d.calendar, d.working) for d in days] == [
        (Decimal(5), Decimal(3)),  # Friday to Tuesday: 5 days, 3 working days
        (Decimal(5), Decimal(3)),
        (Decimal(21), Decimal(15)),
        (Decimal(20), Decimal(14)),
    ]


def test_review_file_refuses_unsupported_types() -> None:
    from bidding.core.errors import DomainError

    with pytest.raises(DomainError) as caught:
        review_file(io.BytesIO(b"x"), "a.doc", procurement=False)
    assert caught.value.code == "unsupported_document_type"
