"""The bid plaintext package and its price sheet (开标一览表)."""

from __future__ import annotations

import io
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bidding.bids.package import (
    PackageError,
    build_bid_package,
    package_bytes,
    parse_price_sheet,
    read_price_sheet,
)


def _code() -> str:
    from bidding.accounts.creditcode import make_credit_code

    return make_credit_code("540200", "MA6T0E03")


def sheet(**overrides: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "type": "sunbid.price-sheet",
        "version": 1,
        "section_id": "5b1f6f2e-0000-4000-8000-000000000001",
        "bidder_credit_code": _code(),
        "bidder_name": "上海浦江建设工程有限公司",
        "total_price": "4650000.00",
        "currency": "CNY",
        "duration_days": 180,
        "quality": "合格",
        "items": [{"name": "质保期", "value": "5年"}],
        "lines": [
            {
                "item": "CT 机",
                "quantity": "1",
                "unit": "台",
                "unit_price": "4000000.00",
                "amount": "4000000.00",
            },
        ],
    }
    data.update(overrides)
    return data


def test_build_and_read_streaming_package(tmp_path: Path) -> None:
    docs = [tmp_path / "商务标.pdf", tmp_path / "技术标.pdf"]
    for i, p in enumerate(docs):
        p.write_bytes(bytes([i]) * (3 * 1024 * 1024 + 7))
    out = tmp_path / "bid.zip"
    build_bid_package(sheet(), docs, out)
    with zipfile.ZipFile(out) as zf:
        assert zf.namelist() == ["price_sheet.json", "documents/商务标.pdf", "documents/技术标.pdf"]
        assert all(i.compress_type == zipfile.ZIP_STORED for i in zf.infolist())
        assert zf.read("documents/技术标.pdf") == docs[1].read_bytes()
    ps = read_price_sheet(
        out, section_id="5b1f6f2e-0000-4000-8000-000000000001", bidder_credit_code=_code()
    )
    assert ps.total_price == Decimal("4650000.00") and ps.duration_days == 180
    assert ps.items == (("质保期", "5年"),) and ps.lines_total == Decimal("4000000.00")


def test_duplicate_document_names_refused(tmp_path: Path) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    for d in ("a", "b"):
        (tmp_path / d / "x.pdf").write_bytes(b"x")
    with pytest.raises(ValueError, match="two documents"):
        build_bid_package(sheet(), [tmp_path / "a/x.pdf", tmp_path / "b/x.pdf"], io.BytesIO())


def test_missing_price_sheet() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("documents/a.pdf", b"x")
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(buffer.getvalue()))
    assert info.value.code == "price_sheet_missing"


def test_not_a_zip() -> None:
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(b"not a zip at all"))
    assert info.value.code == "bid_package_invalid"


@pytest.mark.parametrize(
    ("override", "field"),
    [
        ({"total_price": "4650000.5"}, "total_price"),
        ({"total_price": 4650000.00}, "total_price"),
        ({"total_price": "0.00"}, "total_price"),
        ({"total_price": "-1.00"}, "total_price"),
        ({"currency": "USD"}, "currency"),
        ({"duration_days": 0}, "duration_days"),
        ({"duration_days": True}, "duration_days"),
        ({"bidder_credit_code": "123"}, "bidder_credit_code"),
        ({"unknown": 1}, "unknown"),
        ({"items": [{"name": "x"}]}, "items[0]"),
        ({"lines": [{"item": "x"}]}, "lines[0]"),
        ({"type": "other"}, "type"),
    ],
)
def test_invalid_price_sheets(override: dict[str, Any], field: str) -> None:
    with pytest.raises(PackageError) as info:
        parse_price_sheet(sheet(**override))
    assert info.value.code == "price_sheet_invalid"
    assert info.value.details["field"] == field


def test_price_sheet_must_match_the_bid() -> None:
    data = package_bytes(sheet(), {"a.pdf": b"x"})
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(data), section_id="another")
    assert info.value.details["field"] == "section_id"
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(data), bidder_credit_code="91110000600037341L")
    assert info.value.details["field"] == "bidder_credit_code"


def test_duplicate_json_members_refused() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("price_sheet.json", '{"type": "a", "type": "b"}')
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(buffer.getvalue()))
    assert info.value.code == "price_sheet_invalid"


def test_oversized_price_sheet_refused_unread() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("price_sheet.json", b" " * (1024 * 1024 + 1))
    with pytest.raises(PackageError) as info:
        read_price_sheet(io.BytesIO(buffer.getvalue()))
    assert info.value.code == "price_sheet_invalid"


def test_demo_certificate_for_a_long_chinese_organisation_name(app: object) -> None:
    from types import SimpleNamespace

    from bidding.accounts.creditcode import make_credit_code
    from bidding.bids.trust import demo_issue_bidder_certificate

    org = SimpleNamespace(
        name="西藏自治区日喀则市某某建筑工程集团有限责任公司第一分公司" * 2,
        credit_code=make_credit_code("540200", "00000042"),
    )
    issued = demo_issue_bidder_certificate(org)
    cn = issued.certificate.subject.rfc4514_string()
    assert "投标" in cn or "…" in cn
