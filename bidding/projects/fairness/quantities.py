"""Numbers in Chinese tender text (数字、金额、比例、期限).

Pure helpers used by the fair-competition checker's numeric checks: percentages
(``3%``, ``百分之二点五``, ``千分之五``), amounts in yuan (``80万元``, ``800,000.00元``,
``捌拾万元整``, ``￥80万``) and periods in days (``15日``, ``十五个工作日``, and date
ranges such as ``2024年5月10日至2024年5月14日``). Every finder returns the value and the
span it was read from so the caller can highlight it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, InvalidOperation

__all__ = [
    "Days",
    "Quantity",
    "find_amounts",
    "find_days",
    "find_percentages",
    "parse_chinese_number",
]

_DIGITS = {
    "零": 0, "〇": 0, "一": 1, "壹": 1, "二": 2, "贰": 2, "两": 2, "三": 3, "叁": 3,
    "四": 4, "肆": 4, "五": 5, "伍": 5, "六": 6, "陆": 6, "七": 7, "柒": 7,
    "八": 8, "捌": 8, "九": 9, "玖": 9,
}  # fmt: skip
_SMALL_UNITS = {"十": 10, "拾": 10, "百": 100, "佰": 100, "千": 1000, "仟": 1000}
_BIG_UNITS = {"万": 10_000, "亿": 100_000_000}
CN_CHARS = "".join(_DIGITS) + "".join(_SMALL_UNITS) + "".join(_BIG_UNITS)
_CN = f"[{CN_CHARS}]"
_ARABIC = r"\d{1,3}(?:[,，]\d{3})+(?:\.\d+)?|\d+(?:\.\d+)?"


@dataclass(frozen=True, slots=True)
class Quantity:
    """A number read from text, with the [start, end) span it came from."""

    value: Decimal
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class Days:
    """A period read from text, as estimated calendar days and working days."""

    calendar: Decimal
    working: Decimal
    start: int
    end: int


def _integer_part(text: str) -> int:
    """Parse a Chinese integer such as ``三千零五十``, ``十五`` or ``捌拾万``."""
    total = 0  # completed 亿/万 groups
    section = 0  # the current group below 万
    digit: int | None = None
    for char in text:
        if char in _DIGITS:
            digit = _DIGITS[char]
        elif char in _SMALL_UNITS:
            section += (1 if digit is None else digit) * _SMALL_UNITS[char]
            digit = None
        elif char in _BIG_UNITS:
            unit = _BIG_UNITS[char]
            group = section + (digit or 0)
            if group == 0:
                group = 1
            if unit > 10_000 or total == 0:
                total = (total + group) * unit
            else:
                total += group * unit
            section = 0
            digit = None
        else:
            raise ValueError(f"not a Chinese numeral: {char!r}")
    return total + section + (digit or 0)


def parse_chinese_number(text: str) -> Decimal:
    """Parse a number written in Chinese or Arabic numerals (``二点五`` → 2.5).

    Raises ``ValueError`` when the text is not a number.
    """
    text = text.strip().replace(",", "").replace("，", "")
    if not text:
        raise ValueError("empty number")
    try:
        return Decimal(text)
    except InvalidOperation:
        pass
    whole, _, fraction = text.partition("点")
    value = Decimal(_integer_part(whole)) if whole else Decimal(0)
    if fraction:
        digits = []
        for char in fraction:
            if char not in _DIGITS:
                raise ValueError(f"not a decimal digit: {char!r}")
            digits.append(str(_DIGITS[char]))
        value += Decimal("0." + "".join(digits))
    return value


def _number(text: str) -> Decimal | None:
    try:
        return parse_chinese_number(text)
    except (ValueError, InvalidOperation):
        return None


_PERCENT_RE = re.compile(
    rf"(?P<arabic>{_ARABIC})\s*[%％]"
    rf"|百分之\s*(?P<pct>{_ARABIC}|{_CN}+(?:点{_CN}+)?)"
    rf"|千分之\s*(?P<permille>{_ARABIC}|{_CN}+(?:点{_CN}+)?)"
)


def find_percentages(text: str, pos: int = 0, endpos: int | None = None) -> list[Quantity]:
    """Every percentage in ``text[pos:endpos]`` (``3%``, ``百分之三``, ``千分之五`` = 0.5)."""
    found: list[Quantity] = []
    end = len(text) if endpos is None else endpos
    for match in _PERCENT_RE.finditer(text, pos, end):
        raw = match.group("arabic") or match.group("pct") or match.group("permille")
        value = _number(raw)
        if value is None:
            continue
        if match.group("permille"):
            value = value / 10
        found.append(Quantity(value, match.start(), match.end()))
    return found


_AMOUNT_RE = re.compile(
    rf"(?:[¥￥]\s*(?P<yen>{_ARABIC})\s*(?P<yen_mult>万|亿)?)"
    rf"|(?P<num>{_ARABIC})\s*(?P<mult>千|万|亿)?\s*(?:元|圆)"
    rf"|(?<![{CN_CHARS}])(?P<cn>{_CN}+(?:点{_CN}+)?)\s*(?:元|圆)"
)
_MULTIPLIERS = {"千": Decimal(1000), "万": Decimal(10_000), "亿": Decimal(100_000_000)}


def find_amounts(text: str, pos: int = 0, endpos: int | None = None) -> list[Quantity]:
    """Every amount of money in yuan in ``text[pos:endpos]``."""
    found: list[Quantity] = []
    end = len(text) if endpos is None else endpos
    for match in _AMOUNT_RE.finditer(text, pos, end):
        if match.group("yen") is not None:
            value = _number(match.group("yen"))
            mult = match.group("yen_mult")
        elif match.group("num") is not None:
            value = _number(match.group("num"))
            mult = match.group("mult")
        else:
            value = _number(match.group("cn"))
            mult = None
        if value is None:
            continue
        if mult:
            value *= _MULTIPLIERS[mult]
        found.append(Quantity(value, match.start(), match.end()))
    return found


_DAYS_RE = re.compile(
    rf"(?<![月\d.{CN_CHARS}])(?P<num>\d+|{_CN}+)\s*个?\s*"
    r"(?P<unit>工作日|日历天|日历日|自然日|天|日)"
)
_DATE = r"(?:(?P<{p}y>\d{{4}})\s*年\s*)?(?P<{p}m>\d{{1,2}})\s*月\s*(?P<{p}d>\d{{1,2}})\s*[日号]"
_ISO_DATE = r"(?P<{p}iy>\d{{4}})[-/.](?P<{p}im>\d{{1,2}})[-/.](?P<{p}id>\d{{1,2}})"
_RANGE_RE = re.compile(
    "(?:" + _DATE.format(p="a") + "|" + _ISO_DATE.format(p="a") + ")"
    r"[^至到~～—\-。；;]{0,16}?\s*(?:至|到|~|～|—|-)\s*"
    "(?:" + _DATE.format(p="b") + "|" + _ISO_DATE.format(p="b") + ")"
)


def _range_dates(match: re.Match[str]) -> tuple[date, date] | None:
    def part(prefix: str, default_year: int | None) -> date | None:
        if match.group(prefix + "iy"):
            y, m, d = (int(match.group(prefix + k)) for k in ("iy", "im", "id"))
        else:
            raw_year = match.group(prefix + "y")
            year = int(raw_year) if raw_year else default_year
            if year is None:
                return None
            y, m, d = year, int(match.group(prefix + "m")), int(match.group(prefix + "d"))
        try:
            return date(y, m, d)
        except ValueError:
            return None

    start = part("a", None)
    if start is None:
        return None
    end = part("b", start.year)
    if end is None or end < start:
        return None
    return start, end


def _weekdays(start: date, end: date) -> int:
    """Monday-to-Friday days in [start, end] (no holiday calendar here)."""
    total = (end - start).days + 1
    full_weeks, rest = divmod(total, 7)
    count = full_weeks * 5
    for offset in range(rest):
        if (start + timedelta(days=full_weeks * 7 + offset)).weekday() < 5:
            count += 1
    return count


def find_days(text: str, pos: int = 0, endpos: int | None = None) -> list[Days]:
    """Every period in days in ``text[pos:endpos]``.

    ``15日``/``15天``/``15个日历天`` count as 15 calendar days (≈ 10 working days);
    ``15个工作日`` as 15 working days (≈ 21 calendar days). A date range counts both
    ends (``5月10日至5月14日`` = 5 calendar days) and its Monday-to-Friday days. A day of
    the month (``5月15日``) is not a period.
    """
    end = len(text) if endpos is None else endpos
    found: list[Days] = []
    taken: list[tuple[int, int]] = []
    for match in _RANGE_RE.finditer(text, pos, end):
        dates = _range_dates(match)
        if dates is None:
            continue
        first, last = dates
        calendar = Decimal((last - first).days + 1)
        found.append(Days(calendar, Decimal(_weekdays(first, last)), match.start(), match.end()))
        taken.append((match.start(), match.end()))
    for match in _DAYS_RE.finditer(text, pos, end):
        if any(a <= match.start() < b for a, b in taken):
            continue
        value = _number(match.group("num"))
        if value is None:
            continue
        if match.group("unit") == "工作日":
            working, calendar = value, (value * 7 / 5).to_integral_value()
        else:
            calendar, working = value, (value * 5 / 7).to_integral_value(rounding="ROUND_FLOOR")
        found.append(Days(calendar, working, match.start(), match.end()))
    found.sort(key=lambda d: d.start)
    return found
