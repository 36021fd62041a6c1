"""The bid plaintext package (投标文件包): what a bidder seals, and what the opening reads.

The plaintext inside a sealed envelope is a ZIP archive (entries *stored*, no compression:
bid documents are PDFs and images that do not compress, and stored entries stream in
constant memory) holding:

``price_sheet.json``
    the price sheet (开标一览表), read out at the opening (DZ20 30). UTF-8 JSON, strictly
    validated by :func:`parse_price_sheet`::

        {"type": "sunbid.price-sheet", "version": 1,
         "section_id": "<the section's UUID, as in the envelope context and manifest>",
         "bidder_credit_code": "<统一社会信用代码, 18 characters>",
         "bidder_name": "上海浦江建设工程有限公司",
         "total_price": "4650000.00",            # yuan, a string with exactly 2 decimals
         "currency": "CNY",
         "duration_days": 180,                   # 工期 / 交货期 (calendar days)
         "quality": "合格",                       # 质量标准 / 质量承诺 (optional, "" if none)
         "items": [{"name": "质保期", "value": "5年"}],   # other listed items (optional)
         "lines": [                               # per-item price lines (optional)
             {"item": "CT 机", "quantity": "1", "unit": "台",
              "unit_price": "4000000.00", "amount": "4000000.00"}]}

    Exactly these members (``quality``, ``items`` and ``lines`` may be omitted); unknown
    members, duplicate members, floats, prices with other than 2 decimals, zero or negative
    prices are refused. Line amounts are *not* required to add up to the total: an
    arithmetic error is a matter for the evaluation (算术错误修正), not a refusal.

``documents/<name>``
    the bid documents (商务标, 技术标, 资格证明 …), any number, names as the bidder chose.

The opening calls :func:`read_price_sheet` on the decrypted ZIP with the bid's section id
and the bidder's credit code; a missing sheet raises ``price_sheet_missing``, any other
problem ``price_sheet_invalid`` (with ``details.field``), and a file that is not a ZIP
``bid_package_invalid``. All three are the bidder's fault (DZ20 31).
"""

from __future__ import annotations

import io
import re
import shutil
import zipfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import IO, Any

from bidding.core.errors import ErrorCode, RuleViolation
from crypto.canonical import CanonicalizationError, canonical_json, parse_json
from crypto.pki import is_valid_org_code

__all__ = [
    "DOCUMENTS_DIR",
    "PRICE_SHEET_NAME",
    "PackageError",
    "PriceLine",
    "PriceSheet",
    "build_bid_package",
    "parse_price_sheet",
    "read_price_sheet",
]

PRICE_SHEET_NAME = "price_sheet.json"
DOCUMENTS_DIR = "documents/"
PRICE_SHEET_TYPE = "sunbid.price-sheet"
PRICE_SHEET_VERSION = 1
#: Largest price sheet read (bytes): a zip entry claiming more is refused unread.
MAX_PRICE_SHEET_SIZE = 1024 * 1024
MAX_TEXT = 500
MAX_ITEMS = 200
MAX_LINES = 10_000
_MONEY_RE = re.compile(r"^(0|[1-9][0-9]{0,15})\.[0-9]{2}$")
_QUANTITY_RE = re.compile(r"^(0|[1-9][0-9]{0,15})(\.[0-9]{1,6})?$")
_UUIDISH_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,199}$")
_COPY_CHUNK = 1024 * 1024

_REQUIRED = {
    "type",
    "version",
    "section_id",
    "bidder_credit_code",
    "bidder_name",
    "total_price",
    "currency",
    "duration_days",
}
_OPTIONAL = {"quality", "items", "lines"}


class PackageError(RuleViolation):
    """A bid package or price sheet is refused (HTTP 422); ``code`` says which."""

    code = ErrorCode.PRICE_SHEET_INVALID


def _invalid(message: str, field_name: str, **details: Any) -> PackageError:
    return PackageError(
        message, code=ErrorCode.PRICE_SHEET_INVALID, details={"field": field_name, **details}
    )


@dataclass(frozen=True)
class PriceLine:
    """One per-item line of the price sheet (分项报价)."""

    item: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal

    def to_dict(self) -> dict[str, str]:
        return {
            "item": self.item,
            "quantity": str(self.quantity),
            "unit": self.unit,
            "unit_price": f"{self.unit_price:.2f}",
            "amount": f"{self.amount:.2f}",
        }


@dataclass(frozen=True)
class PriceSheet:
    """The validated price sheet (开标一览表)."""

    section_id: str
    bidder_credit_code: str
    bidder_name: str
    total_price: Decimal
    duration_days: int
    currency: str = "CNY"
    quality: str = ""
    items: tuple[tuple[str, str], ...] = ()
    lines: tuple[PriceLine, ...] = field(default=())

    @property
    def lines_total(self) -> Decimal:
        """Sum of the line amounts (for the evaluation's arithmetic check)."""
        return sum((line.amount for line in self.lines), Decimal("0.00"))

    def to_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "type": PRICE_SHEET_TYPE,
            "version": PRICE_SHEET_VERSION,
            "section_id": self.section_id,
            "bidder_credit_code": self.bidder_credit_code,
            "bidder_name": self.bidder_name,
            "total_price": f"{self.total_price:.2f}",
            "currency": self.currency,
            "duration_days": self.duration_days,
            "quality": self.quality,
            "items": [{"name": n, "value": v} for n, v in self.items],
        }
        if self.lines:
            data["lines"] = [line.to_dict() for line in self.lines]
        return data


def _text(value: object, name: str, *, required: bool = True) -> str:
    if not isinstance(value, str) or len(value) > MAX_TEXT or (required and not value.strip()):
        raise _invalid(f"{name} 须为不超过 {MAX_TEXT} 字的文本。", name)
    return value.strip()


def _money(value: object, name: str, *, positive: bool = True) -> Decimal:
    if not isinstance(value, str) or not _MONEY_RE.match(value):
        raise _invalid(f'{name} 须为保留两位小数的金额字符串（元），如 "1234.50"。', name)
    amount = Decimal(value)
    if positive and amount <= 0:
        raise _invalid(f"{name} 须大于零。", name)
    return amount


def _quantity(value: object, name: str) -> Decimal:
    if not isinstance(value, str) or not _QUANTITY_RE.match(value):
        raise _invalid(f"{name} 须为十进制数字字符串。", name)
    try:
        return Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern excludes it
        raise _invalid(f"{name} 须为十进制数字字符串。", name) from None


def parse_price_sheet(
    data: Mapping[str, Any],
    *,
    section_id: str | None = None,
    bidder_credit_code: str | None = None,
) -> PriceSheet:
    """Validate a price sheet object; compare it with the bid's section and bidder if given.

    Raises :class:`PackageError` with code ``price_sheet_invalid`` and ``details.field``.
    """
    if not isinstance(data, Mapping):
        raise _invalid("开标一览表须为 JSON 对象。", "$")
    keys = set(data)
    missing = _REQUIRED - keys
    unknown = keys - _REQUIRED - _OPTIONAL
    if missing or unknown:
        raise _invalid(
            "开标一览表的字段不符合格式要求。",
            sorted(missing or unknown)[0],
            missing=sorted(missing),
            unexpected=sorted(unknown),
        )
    if data["type"] != PRICE_SHEET_TYPE or data["version"] != PRICE_SHEET_VERSION:
        raise _invalid("不是第 1 版开标一览表。", "type")
    sid = data["section_id"]
    if not isinstance(sid, str) or not _UUIDISH_RE.match(sid):
        raise _invalid("section_id 格式不正确。", "section_id")
    code = data["bidder_credit_code"]
    if not isinstance(code, str) or not is_valid_org_code(code):
        raise _invalid("bidder_credit_code 须为有效的统一社会信用代码。", "bidder_credit_code")
    if data["currency"] != "CNY":
        raise _invalid("币种须为人民币（CNY）。", "currency")
    days = data["duration_days"]
    if isinstance(days, bool) or not isinstance(days, int) or not 1 <= days <= 36500:
        raise _invalid("duration_days（工期/交货期）须为 1 至 36500 的整数天数。", "duration_days")
    items_raw = data.get("items", [])
    if not isinstance(items_raw, list) or len(items_raw) > MAX_ITEMS:
        raise _invalid(f"items 须为不超过 {MAX_ITEMS} 项的列表。", "items")
    items: list[tuple[str, str]] = []
    for i, entry in enumerate(items_raw):
        if not isinstance(entry, Mapping) or set(entry) != {"name", "value"}:
            raise _invalid("items 的每一项须为 {name, value}。", f"items[{i}]")
        items.append(
            (
                _text(entry["name"], f"items[{i}].name"),
                _text(entry["value"], f"items[{i}].value", required=False),
            )
        )
    lines_raw = data.get("lines", [])
    if not isinstance(lines_raw, list) or len(lines_raw) > MAX_LINES:
        raise _invalid(f"lines 须为不超过 {MAX_LINES} 项的列表。", "lines")
    lines: list[PriceLine] = []
    line_keys = {"item", "quantity", "unit", "unit_price", "amount"}
    for i, entry in enumerate(lines_raw):
        if not isinstance(entry, Mapping) or set(entry) != line_keys:
            raise _invalid(
                "lines 的每一项须为 {item, quantity, unit, unit_price, amount}。", f"lines[{i}]"
            )
        lines.append(
            PriceLine(
                item=_text(entry["item"], f"lines[{i}].item"),
                quantity=_quantity(entry["quantity"], f"lines[{i}].quantity"),
                unit=_text(entry["unit"], f"lines[{i}].unit", required=False),
                unit_price=_money(entry["unit_price"], f"lines[{i}].unit_price", positive=False),
                amount=_money(entry["amount"], f"lines[{i}].amount", positive=False),
            )
        )
    sheet = PriceSheet(
        section_id=sid,
        bidder_credit_code=code,
        bidder_name=_text(data["bidder_name"], "bidder_name"),
        total_price=_money(data["total_price"], "total_price"),
        duration_days=days,
        quality=_text(data.get("quality", ""), "quality", required=False),
        items=tuple(items),
        lines=tuple(lines),
    )
    if section_id is not None and sheet.section_id != section_id:
        raise _invalid(
            "开标一览表的标段与投标的标段不一致。",
            "section_id",
            expected=section_id,
            actual=sheet.section_id,
        )
    if bidder_credit_code is not None and sheet.bidder_credit_code != bidder_credit_code:
        raise _invalid(
            "开标一览表的投标人与递交投标文件的投标人不一致。",
            "bidder_credit_code",
            expected=bidder_credit_code,
            actual=sheet.bidder_credit_code,
        )
    return sheet


def _document_name(path: Path, seen: set[str]) -> str:
    name = path.name
    if not name or name in {".", ".."} or "/" in name or "\\" in name:
        raise ValueError(f"unusable document name: {path}")
    arcname = DOCUMENTS_DIR + name
    if arcname in seen:
        raise ValueError(f"two documents named {name!r}")
    seen.add(arcname)
    return arcname


def build_bid_package(
    price_sheet: Mapping[str, Any] | PriceSheet,
    files: Sequence[Path],
    out: str | Path | IO[bytes],
) -> PriceSheet:
    """Write the bid ZIP to ``out`` (a path or a writable binary stream), streaming each
    document in 1 MiB chunks (entries stored, ZIP64 when needed).

    The price sheet is validated first (:class:`PackageError`); document names must be
    distinct. Returns the validated sheet.
    """
    sheet = price_sheet if isinstance(price_sheet, PriceSheet) else parse_price_sheet(price_sheet)
    seen: set[str] = {PRICE_SHEET_NAME}
    names = [(Path(f), _document_name(Path(f), seen)) for f in files]
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
        zf.writestr(PRICE_SHEET_NAME, canonical_json(sheet.to_dict()))
        for path, arcname in names:
            info = zipfile.ZipInfo.from_file(path, arcname)
            info.compress_type = zipfile.ZIP_STORED
            with path.open("rb") as src, zf.open(info, "w", force_zip64=True) as dst:
                shutil.copyfileobj(src, dst, _COPY_CHUNK)
    return sheet


def read_price_sheet(
    zip_path: str | Path | IO[bytes],
    *,
    section_id: str | None = None,
    bidder_credit_code: str | None = None,
) -> PriceSheet:
    """Read and validate ``price_sheet.json`` from a decrypted bid ZIP.

    Raises :class:`PackageError`: ``bid_package_invalid`` (not a ZIP),
    ``price_sheet_missing``, ``price_sheet_invalid`` (malformed, too large, not UTF-8 JSON,
    duplicate members, or another section/bidder than given).
    """
    try:
        zf = zipfile.ZipFile(zip_path, "r")
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise PackageError(
            "投标文件包不是有效的 ZIP 文件。", code=ErrorCode.BID_PACKAGE_INVALID
        ) from exc
    with zf:
        entries = [i for i in zf.infolist() if i.filename == PRICE_SHEET_NAME]
        if not entries:
            raise PackageError(
                "投标文件包中缺少开标一览表（price_sheet.json）。",
                code=ErrorCode.PRICE_SHEET_MISSING,
            )
        if len(entries) > 1:
            raise _invalid("投标文件包中有多个开标一览表。", "$")
        info = entries[0]
        if info.file_size > MAX_PRICE_SHEET_SIZE:
            raise _invalid("开标一览表过大。", "$", size=info.file_size)
        try:
            with zf.open(info) as fh:
                raw = fh.read(MAX_PRICE_SHEET_SIZE + 1)
        except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError) as exc:
            raise PackageError(
                "投标文件包已损坏，无法读取开标一览表。", code=ErrorCode.BID_PACKAGE_INVALID
            ) from exc
    if len(raw) > MAX_PRICE_SHEET_SIZE:
        raise _invalid("开标一览表过大。", "$")
    try:
        data = parse_json(raw.decode("utf-8"))
    except (UnicodeDecodeError, CanonicalizationError, ValueError) as exc:
        raise _invalid(f"开标一览表不是合法的 JSON：{exc}", "$") from exc
    if not isinstance(data, Mapping):
        raise _invalid("开标一览表须为 JSON 对象。", "$")
    return parse_price_sheet(data, section_id=section_id, bidder_credit_code=bidder_credit_code)


def package_bytes(price_sheet: Mapping[str, Any], documents: Mapping[str, bytes]) -> bytes:
    """A small package in memory (tests, demos): ``documents`` maps names to contents."""
    sheet = parse_price_sheet(price_sheet)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", compression=zipfile.ZIP_STORED) as zf:
        zf.writestr(PRICE_SHEET_NAME, canonical_json(sheet.to_dict()))
        for name, content in documents.items():
            zf.writestr(DOCUMENTS_DIR + name, content)
    return buffer.getvalue()
