"""The fair-competition review engine (公平竞争审查).

Rules are data: one TOML file per rule in ``rules/`` (``R01_brand.toml`` …), plus
``_vocabulary.toml`` whose ``[macros]`` can be used in any pattern as ``{NAME}``
(e.g. ``{LOCAL}`` for 本地/本市/本省…, ``{NEG}`` for 不得/不应/无需…). A rule file holds::

    id = "R02"                      # R + two digits, also the start of the file name
    title = "…"                     # what the clause does wrong, in Chinese
    legal_basis = "…"               # the articles it breaks
    suggestion = "…"                # what the drafter should write instead
    title_en = "…"                  # the same three in English (shown under ?lang=en);
    legal_basis_en = "…"            # laws named in English, the Chinese title kept in
    suggestion_en = "…"             # parentheses
    applies_to = "both"             # tendering | procurement | both
    severity = "high"               # high | medium | low
    negation_window = 20            # a {NEG} word this many characters before a match
                                    # (same comma-delimited segment) cancels it; 0 = off
    patterns = ['…']                # regular expressions over the clause text
    exceptions = ['…']              # a match is dropped when one of these matches the
                                    # comma-delimited segment around it
    clause_exceptions = ['…']       # … or the whole clause
    document_exceptions = ['…']     # the rule is off when one matches any clause

    [[numeric]]                     # optional numeric limits
    quantity = "percent"            # percent | amount (yuan) | days
    context = '…'                   # where the number is announced (投标保证金 …)
    window = 40                     # characters read after the context ("after")
    direction = "after"             # or "around" (before and after)
    stop = '…'                      # the window ends where this matches
    requires = '…'                  # the clause must also match this
    unless = '…'                    # the check is off for a clause matching this
    skip_if_preceded_by = '…'       # ignore a number just after this (估算价 80万元)
    max = 2                         # a number above max (or below min) is a finding
    min = 20
    count_in = "calendar"           # days: compare calendar or working days
    works_only = false              # only for construction works (施工)
    applies_to = "both"             # narrower than the rule's, if needed
    message = "投标保证金为 {value}%，超过 {limit}% 的上限"
    message_en = "Bid security of {value}% exceeds the {limit}% cap"   # required with message

Every text is kept in both languages: Chinese is what the platform stores and shows by
default; :meth:`Rule.text`, :meth:`Finding.to_dict` and
:func:`~bidding.projects.fairness.i18n.finding_text` pick English for an English locale.

:func:`load_rules` validates every file when it loads them (a broken file raises
:class:`RuleFileError` naming it) and caches the compiled rules; :func:`review_document`
runs them over the clauses of a document and returns :class:`Finding` objects in a
stable order (clause order, then rule id).

Limits: the checks are textual. They find the wording that typically carries a
restriction; they cannot judge whether a qualification level is proportionate to a
project (R05 flags only the usual signs: 特级 qualifications, prizes and honours,
credit ratings, management-system certificates as conditions), nor read a timeline that
is split over several clauses (R14 reads periods stated in one clause; the structured
timeline is checked by the tender services).
"""

from __future__ import annotations

import re
import tomllib
from bisect import bisect_right
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import IO, Any, Literal

from bidding.projects.fairness.extract import MAX_TEXT_CHARS, Clause, extract_clauses
from bidding.projects.fairness.quantities import find_amounts, find_days, find_percentages

__all__ = [
    "RULES_DIR",
    "Finding",
    "NumericCheck",
    "Rule",
    "RuleFileError",
    "Scope",
    "Severity",
    "is_english",
    "load_rules",
    "review_document",
    "review_file",
]

RULES_DIR = Path(__file__).with_name("rules")
VOCABULARY_FILE = "_vocabulary.toml"
_SEPARATOR = "\n。\n"
#: Longest clause text returned in a finding; longer clauses are cut around the match.
MAX_FINDING_TEXT = 300


class Scope(StrEnum):
    """Which procedures a rule applies to."""

    TENDERING = "tendering"  # 招标投标 (ZTBF)
    PROCUREMENT = "procurement"  # 政府采购 (ZFCG)
    BOTH = "both"

    def covers(self, procurement: bool) -> bool:
        if self is Scope.BOTH:
            return True
        return (self is Scope.PROCUREMENT) == procurement


class Severity(StrEnum):
    HIGH = "high"
    MEDIUM = "medium"
    LOW = "low"


class RuleFileError(ValueError):
    """A rule file is missing a field, has a wrong value or an invalid pattern."""


#: The texts a rule has in both languages (``<field>`` in Chinese, ``<field>_en``).
TEXT_FIELDS = ("title", "legal_basis", "suggestion")


def is_english(locale: object) -> bool:
    """Whether ``locale`` (a Babel ``Locale``, ``"en"``, ``"en_US"`` …) asks for English."""
    return locale is not None and str(locale).split("_")[0].lower() == "en"


Quantity = Literal["percent", "amount", "days"]


@dataclass(frozen=True, slots=True)
class NumericCheck:
    quantity: Quantity
    context: re.Pattern[str]
    window: int
    direction: Literal["after", "around"]
    stop: re.Pattern[str] | None
    requires: re.Pattern[str] | None
    unless: re.Pattern[str] | None
    skip_if_preceded_by: re.Pattern[str] | None
    minimum: Decimal | None
    maximum: Decimal | None
    count_in: Literal["calendar", "working"]
    works_only: bool
    applies_to: Scope
    message: str
    message_en: str = "{value}"

    def applies(self, *, procurement: bool, works: bool) -> bool:
        return self.applies_to.covers(procurement) and (works or not self.works_only)

    def violations(self, text: str) -> list[tuple[int, int, str, str]]:
        """(start, end, message, English message) for every out-of-limit number this check
        reads in text."""
        if self.requires is not None and not self.requires.search(text):
            return []
        if self.unless is not None and self.unless.search(text):
            return []
        found: list[tuple[int, int, str, str]] = []
        seen: set[int] = set()
        for anchor in self.context.finditer(text):
            end = min(len(text), anchor.end() + self.window)
            if self.stop is not None:
                stop = self.stop.search(text, anchor.end(), end)
                if stop is not None:
                    end = stop.start()
            start = anchor.end()
            if self.direction == "around":
                start = max(0, anchor.start() - self.window)
                if self.stop is not None:
                    for stop in self.stop.finditer(text, start, anchor.start()):
                        start = stop.end()
            for value, v_start, v_end in self._values(text, start, end):
                if v_start in seen:
                    continue
                if self.skip_if_preceded_by is not None and self.skip_if_preceded_by.search(
                    text, max(0, v_start - 12), v_start
                ):
                    continue
                limit = self._breached(value)
                if limit is None:
                    continue
                seen.add(v_start)
                shown = {"value": _fmt(value), "limit": _fmt(limit)}
                found.append(
                    (v_start, v_end, self.message.format(**shown), self.message_en.format(**shown))
                )
        return found

    def _values(self, text: str, start: int, end: int) -> list[tuple[Decimal, int, int]]:
        if self.quantity == "percent":
            return [(q.value, q.start, q.end) for q in find_percentages(text, start, end)]
        if self.quantity == "amount":
            return [(q.value, q.start, q.end) for q in find_amounts(text, start, end)]
        return [
            (d.working if self.count_in == "working" else d.calendar, d.start, d.end)
            for d in find_days(text, start, end)
        ]

    def _breached(self, value: Decimal) -> Decimal | None:
        if self.maximum is not None and value > self.maximum:
            return self.maximum
        if self.minimum is not None and value < self.minimum:
            return self.minimum
        return None


def _fmt(value: Decimal) -> str:
    if value == value.to_integral_value():
        return f"{value.to_integral_value():,}" if value >= 10_000 else str(int(value))
    return f"{value.normalize():f}"


@dataclass(frozen=True, slots=True)
class Rule:
    """One compiled review rule (审查规则)."""

    id: str
    title: str
    legal_basis: str
    suggestion: str
    applies_to: Scope
    severity: Severity
    patterns: tuple[re.Pattern[str], ...]
    exceptions: tuple[re.Pattern[str], ...] = ()
    clause_exceptions: tuple[re.Pattern[str], ...] = ()
    document_exceptions: tuple[re.Pattern[str], ...] = ()
    negation: re.Pattern[str] | None = None
    negation_window: int = 0
    numeric: tuple[NumericCheck, ...] = ()
    source: str = ""
    title_en: str = ""
    legal_basis_en: str = ""
    suggestion_en: str = ""

    def text(self, name: str, locale: object = None) -> str:
        """``title``, ``legal_basis`` or ``suggestion`` in ``locale`` (Chinese unless English)."""
        if name not in TEXT_FIELDS:
            raise ValueError(f"no rule text {name!r}")
        if is_english(locale):
            english: str = getattr(self, f"{name}_en")
            if english:
                return english
        chinese: str = getattr(self, name)
        return chinese

    def to_dict(self, locale: object = None) -> dict[str, Any]:
        """The rule as the platform lists it (没有正则表达式), texts in ``locale``."""
        return {
            "id": self.id,
            "title": self.text("title", locale),
            "legal_basis": self.text("legal_basis", locale),
            "suggestion": self.text("suggestion", locale),
            "applies_to": str(self.applies_to),
            "severity": str(self.severity),
        }

    def _negated(self, text: str, start: int) -> bool:
        if self.negation is None or self.negation_window <= 0:
            return False
        lo = max(0, start - self.negation_window)
        comma = max(text.rfind("，", lo, start), text.rfind(",", lo, start))
        if comma >= 0:
            lo = comma + 1
        # A negation may begin just before the match and run into it ("不应" + "应在本地").
        return any(m.start() < start for m in self.negation.finditer(text, lo, start + 3))

    def _excepted(self, text: str, start: int, end: int) -> bool:
        if not self.exceptions:
            return False
        lo = max(text.rfind("，", 0, start), text.rfind(",", 0, start)) + 1
        hi_candidates = [i for i in (text.find("，", end), text.find(",", end)) if i >= 0]
        hi = min(hi_candidates) if hi_candidates else len(text)
        segment = text[lo:hi]
        return any(p.search(segment) for p in self.exceptions)

    def accepts(self, text: str, start: int, end: int) -> bool:
        """Whether a pattern match at text[start:end] stands (not negated or excepted)."""
        return not (self._negated(text, start) or self._excepted(text, start, end))

    def match(
        self, text: str, *, procurement: bool, works: bool
    ) -> tuple[list[tuple[int, int]], list[str]]:
        """The spans this rule flags in one clause, and messages from its numeric checks."""
        if any(p.search(text) for p in self.clause_exceptions):
            return [], []
        spans: list[tuple[int, int]] = []
        details: list[str] = []
        for pattern in self.patterns:
            for m in pattern.finditer(text):
                if m.end() > m.start() and self.accepts(text, m.start(), m.end()):
                    spans.append((m.start(), m.end()))
        for check in self.numeric:
            if not check.applies(procurement=procurement, works=works):
                continue
            for start, end, message, _english in check.violations(text):
                spans.append((start, end))
                details.append(message)
        return _merge(spans), details


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            if end > merged[-1][1]:
                merged[-1] = (merged[-1][0], end)
        else:
            merged.append((start, end))
    return merged


@dataclass(frozen=True, slots=True)
class Finding:
    """A clause that a rule flags (审查发现).

    ``text`` is the clause (cut to about :data:`MAX_FINDING_TEXT` characters around the
    match, with ``…`` where cut); ``spans`` are [start, end) offsets into ``text`` of the
    wording that triggered the rule, for highlighting. The rule's texts and the numeric
    ``details`` come in Chinese and English (``…_en``); the clause is the document's own.
    """

    rule_id: str
    title: str
    text: str
    spans: tuple[tuple[int, int], ...]
    location: str
    legal_basis: str
    suggestion: str
    severity: Severity
    clause_index: int
    details: tuple[str, ...] = ()
    title_en: str = ""
    legal_basis_en: str = ""
    suggestion_en: str = ""
    details_en: tuple[str, ...] = ()

    @property
    def matched(self) -> tuple[str, ...]:
        """The highlighted wording."""
        return tuple(self.text[a:b] for a, b in self.spans)

    def to_dict(self, locale: object = None) -> dict[str, Any]:
        """The finding as data, its rule texts and details in ``locale`` (default Chinese)."""
        english = is_english(locale)
        return {
            "rule_id": self.rule_id,
            "title": self.title_en if english and self.title_en else self.title,
            "text": self.text,
            "spans": [list(span) for span in self.spans],
            "location": self.location,
            "legal_basis": (
                self.legal_basis_en if english and self.legal_basis_en else self.legal_basis
            ),
            "suggestion": self.suggestion_en if english and self.suggestion_en else self.suggestion,
            "severity": str(self.severity),
            "clause_index": self.clause_index,
            "details": list(self.details_en if english and self.details_en else self.details),
        }


def _trim(text: str, spans: list[tuple[int, int]]) -> tuple[str, tuple[tuple[int, int], ...]]:
    if len(text) <= MAX_FINDING_TEXT:
        return text, tuple(spans)
    first = spans[0][0]
    start = max(0, first - MAX_FINDING_TEXT // 3)
    end = min(len(text), start + MAX_FINDING_TEXT)
    start = max(0, min(start, end - MAX_FINDING_TEXT))
    prefix = "…" if start > 0 else ""
    suffix = "…" if end < len(text) else ""
    shift = len(prefix) - start
    kept = tuple((a + shift, min(b, end) + shift) for a, b in spans if a >= start and a < end)
    return prefix + text[start:end] + suffix, kept


# ---------------------------------------------------------------------------- loading

_MACRO_RE = re.compile(r"\{([A-Z][A-Z0-9_]*)\}")
_ID_RE = re.compile(r"R\d{2}")
_RULE_KEYS = {
    "id", "title", "legal_basis", "suggestion", "applies_to", "severity", "patterns",
    "exceptions", "clause_exceptions", "document_exceptions", "negation_window", "numeric",
    "title_en", "legal_basis_en", "suggestion_en",
}  # fmt: skip
_REQUIRED_KEYS = {
    "id", "title", "legal_basis", "suggestion", "applies_to", "severity",
    "title_en", "legal_basis_en", "suggestion_en",
}  # fmt: skip
_NUMERIC_KEYS = {
    "quantity", "context", "window", "direction", "stop", "requires", "unless",
    "skip_if_preceded_by",
    "max", "min", "count_in", "works_only", "applies_to", "message", "message_en",
}  # fmt: skip
#: Chinese characters in a text that should be English (a Chinese title in parentheses,
#: （…） or (…), is allowed: legal basis names keep theirs).
_HAN_RE = re.compile(r"[\u4e00-\u9fff]")
_PARENTHESISED_RE = re.compile(r"\([^()]*\)|（[^（）]*）")


class _Loader:
    def __init__(self, path: Path, macros: dict[str, str]) -> None:
        self.path = path
        self.macros = macros

    def fail(self, message: str) -> RuleFileError:
        return RuleFileError(f"rule file {self.path.name}: {message}")

    def expand(self, pattern: str, where: str) -> str:
        def replace(m: re.Match[str]) -> str:
            name = m.group(1)
            if name not in self.macros:
                raise self.fail(f"{where}: unknown macro {{{name}}}")
            return self.macros[name]

        for _ in range(5):  # macros may use macros, a few levels deep
            expanded = _MACRO_RE.sub(replace, pattern)
            if expanded == pattern:
                return expanded
            pattern = expanded
        raise self.fail(f"{where}: macros nested too deeply")

    def compile(self, pattern: object, where: str) -> re.Pattern[str]:
        if not isinstance(pattern, str) or not pattern:
            raise self.fail(f"{where}: a pattern must be a non-empty string")
        try:
            return re.compile(self.expand(pattern, where))
        except re.error as exc:
            raise self.fail(f"{where}: invalid regular expression: {exc}") from exc

    def compile_list(self, data: dict[str, Any], key: str) -> tuple[re.Pattern[str], ...]:
        values = data.get(key, [])
        if not isinstance(values, list):
            raise self.fail(f"{key} must be a list of strings")
        return tuple(self.compile(p, f"{key}[{i}]") for i, p in enumerate(values))

    def text(self, data: dict[str, Any], key: str) -> str:
        value = data.get(key)
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{key} must be a non-empty string")
        return value.strip()

    def english(self, data: dict[str, Any], key: str, where: str | None = None) -> str:
        """A non-empty English text: no Chinese outside parentheses (a cited title)."""
        value = data.get(key)
        where = where or key
        if not isinstance(value, str) or not value.strip():
            raise self.fail(f"{where} must be a non-empty string")
        if _HAN_RE.search(_PARENTHESISED_RE.sub("", value)):
            raise self.fail(f"{where} must be English (Chinese only inside parentheses)")
        return value.strip()

    def enum(
        self, data: dict[str, Any], key: str, enum: type[StrEnum], default: str | None = None
    ) -> Any:
        value = data.get(key, default)
        try:
            return enum(str(value))
        except ValueError:
            allowed = ", ".join(e.value for e in enum)
            raise self.fail(f"{key} must be one of {allowed}, not {value!r}") from None

    def number(self, data: dict[str, Any], key: str, where: str) -> Decimal | None:
        value = data.get(key)
        if value is None:
            return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(f"{where}.{key} must be a number")
        return Decimal(str(value))

    def numeric(self, data: object, index: int, rule_scope: Scope) -> NumericCheck:
        where = f"numeric[{index}]"
        if not isinstance(data, dict):
            raise self.fail(f"{where} must be a table")
        unknown = set(data) - _NUMERIC_KEYS
        if unknown:
            raise self.fail(f"{where}: unknown keys {sorted(unknown)}")
        quantity = data.get("quantity")
        if quantity not in ("percent", "amount", "days"):
            raise self.fail(f"{where}.quantity must be percent, amount or days")
        direction = data.get("direction", "after")
        if direction not in ("after", "around"):
            raise self.fail(f"{where}.direction must be after or around")
        count_in = data.get("count_in", "calendar")
        if count_in not in ("calendar", "working"):
            raise self.fail(f"{where}.count_in must be calendar or working")
        window = data.get("window", 40)
        if isinstance(window, bool) or not isinstance(window, int) or not 1 <= window <= 500:
            raise self.fail(f"{where}.window must be an integer from 1 to 500")
        minimum = self.number(data, "min", where)
        maximum = self.number(data, "max", where)
        if minimum is None and maximum is None:
            raise self.fail(f"{where} needs min or max")
        works_only = data.get("works_only", False)
        if not isinstance(works_only, bool):
            raise self.fail(f"{where}.works_only must be true or false")
        message = self.text(data, "message") if "message" in data else "{value}"
        if "message" in data or "message_en" in data:
            message_en = self.english(data, "message_en", where=f"{where}.message_en")
        else:
            message_en = "{value}"
        for key, text in (("message", message), ("message_en", message_en)):
            try:
                text.format(value="1", limit="1")
            except (KeyError, IndexError, ValueError) as exc:
                raise self.fail(f"{where}.{key}: bad placeholder {exc}") from exc

        def optional(key: str) -> re.Pattern[str] | None:
            return self.compile(data[key], f"{where}.{key}") if key in data else None

        return NumericCheck(
            quantity=quantity,
            context=self.compile(data.get("context"), f"{where}.context"),
            window=window,
            direction=direction,
            stop=optional("stop"),
            requires=optional("requires"),
            unless=optional("unless"),
            skip_if_preceded_by=optional("skip_if_preceded_by"),
            minimum=minimum,
            maximum=maximum,
            count_in=count_in,
            works_only=works_only,
            applies_to=self.enum(data, "applies_to", Scope, default=str(rule_scope)),
            message=message,
            message_en=message_en,
        )

    def rule(self) -> Rule:
        try:
            with self.path.open("rb") as fh:
                data = tomllib.load(fh)
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise self.fail(f"cannot be read: {exc}") from exc
        unknown = set(data) - _RULE_KEYS
        if unknown:
            raise self.fail(f"unknown keys {sorted(unknown)}")
        missing = _REQUIRED_KEYS - set(data)
        if missing:
            raise self.fail(f"missing keys {sorted(missing)}")
        rule_id = self.text(data, "id")
        if not _ID_RE.fullmatch(rule_id) or not self.path.name.startswith(rule_id + "_"):
            raise self.fail(f"id {rule_id!r} must be R + two digits and start the file name")
        scope = self.enum(data, "applies_to", Scope)
        patterns = self.compile_list(data, "patterns")
        numeric_data = data.get("numeric", [])
        if not isinstance(numeric_data, list):
            raise self.fail("numeric must be an array of tables ([[numeric]])")
        numeric = tuple(self.numeric(item, i, scope) for i, item in enumerate(numeric_data))
        if not patterns and not numeric:
            raise self.fail("a rule needs patterns or numeric checks")
        window = data.get("negation_window", 20)
        if isinstance(window, bool) or not isinstance(window, int) or not 0 <= window <= 200:
            raise self.fail("negation_window must be an integer from 0 to 200")
        negation = self.compile("{NEG}", "negation") if window and "NEG" in self.macros else None
        return Rule(
            id=rule_id,
            title=self.text(data, "title"),
            legal_basis=self.text(data, "legal_basis"),
            suggestion=self.text(data, "suggestion"),
            applies_to=scope,
            severity=self.enum(data, "severity", Severity),
            patterns=patterns,
            exceptions=self.compile_list(data, "exceptions"),
            clause_exceptions=self.compile_list(data, "clause_exceptions"),
            document_exceptions=self.compile_list(data, "document_exceptions"),
            negation=negation,
            negation_window=window,
            numeric=numeric,
            source=self.path.name,
            title_en=self.english(data, "title_en"),
            legal_basis_en=self.english(data, "legal_basis_en"),
            suggestion_en=self.english(data, "suggestion_en"),
        )


def _load_macros(directory: Path) -> dict[str, str]:
    path = directory / VOCABULARY_FILE
    if not path.exists():
        return {}
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise RuleFileError(f"rule file {path.name}: cannot be read: {exc}") from exc
    macros = data.get("macros", {})
    if not isinstance(macros, dict) or not all(
        isinstance(k, str) and _MACRO_RE.fullmatch("{" + k + "}") and isinstance(v, str) and v
        for k, v in macros.items()
    ):
        raise RuleFileError(
            f"rule file {path.name}: [macros] must map UPPER_CASE names to non-empty strings"
        )
    loader = _Loader(path, macros)
    for name, value in macros.items():  # every macro must expand and compile on its own
        loader.compile(value, f"macros.{name}")
    return dict(macros)


def _load(directory: Path) -> tuple[Rule, ...]:
    macros = _load_macros(directory)
    rules: list[Rule] = []
    seen: dict[str, str] = {}
    for path in sorted(directory.glob("*.toml")):
        if path.name.startswith("_"):
            continue
        rule = _Loader(path, macros).rule()
        if rule.id in seen:
            raise RuleFileError(
                f"rule file {path.name}: id {rule.id} is already used by {seen[rule.id]}"
            )
        seen[rule.id] = path.name
        rules.append(rule)
    if not rules:
        raise RuleFileError(f"no rule files in {directory}")
    return tuple(sorted(rules, key=lambda r: r.id))


@lru_cache(maxsize=8)
def _cached(directory: str) -> tuple[Rule, ...]:
    return _load(Path(directory))


def load_rules(directory: Path | str | None = None) -> tuple[Rule, ...]:
    """The review rules, sorted by id, loaded once per directory and cached.

    Raises :class:`RuleFileError` naming the file when a rule file is invalid.
    """
    path = Path(directory) if directory is not None else RULES_DIR
    return _cached(str(path.resolve()))


# ---------------------------------------------------------------------------- review


def review_document(
    clauses: Iterable[Clause],
    *,
    procurement: bool,
    works: bool = False,
    rules: Sequence[Rule] | None = None,
) -> list[Finding]:
    """Review the clauses of a tender document; one finding per (clause, rule).

    ``procurement`` selects government-procurement rules (政府采购) over tendering rules
    (招标投标); ``works`` turns on checks for construction works (施工, e.g. the ¥800,000
    deposit cap). Findings come in clause order, then rule id.
    """
    items = clauses if isinstance(clauses, list) else list(clauses)
    texts = [clause.text for clause in items]
    # Every pattern runs once over the whole document rather than once per clause (the
    # call overhead dominated); clauses are joined with "。", which no pattern crosses,
    # and a match that would span two clauses is dropped all the same.
    joined = _SEPARATOR.join(texts)
    starts: list[int] = []
    offset = 0
    for text in texts:
        starts.append(offset)
        offset += len(text) + len(_SEPARATOR)

    def locate(position: int) -> int:
        return bisect_right(starts, position) - 1

    hits: list[tuple[int, str, list[tuple[int, int]], list[tuple[str, str]]]] = []
    by_id: dict[str, Rule] = {}
    for rule in rules if rules is not None else load_rules():
        if not rule.applies_to.covers(procurement):
            continue
        if any(p.search(joined) for p in rule.document_exceptions):
            continue
        by_id[rule.id] = rule
        spans: dict[int, list[tuple[int, int]]] = {}
        details: dict[int, list[tuple[str, str]]] = {}
        for pattern in rule.patterns:
            for m in pattern.finditer(joined):
                index = locate(m.start())
                base = starts[index]
                start, end = m.start() - base, m.end() - base
                if start == end or end > len(texts[index]):
                    continue
                if rule.accepts(texts[index], start, end):
                    spans.setdefault(index, []).append((start, end))
        for check in rule.numeric:
            if not check.applies(procurement=procurement, works=works):
                continue
            candidates = sorted({locate(m.start()) for m in check.context.finditer(joined)})
            for index in candidates:
                for start, end, message, english in check.violations(texts[index]):
                    spans.setdefault(index, []).append((start, end))
                    details.setdefault(index, []).append((message, english))
        for index, found in spans.items():
            if any(p.search(texts[index]) for p in rule.clause_exceptions):
                continue
            hits.append((index, rule.id, _merge(found), details.get(index, [])))
    hits.sort(key=lambda hit: (hit[0], hit[1]))
    findings: list[Finding] = []
    for index, rule_id, found, messages in hits:
        rule = by_id[rule_id]
        shown, shown_spans = _trim(texts[index], found)
        findings.append(
            Finding(
                rule_id=rule.id,
                title=rule.title,
                text=shown,
                spans=shown_spans,
                location=items[index].location,
                legal_basis=rule.legal_basis,
                suggestion=rule.suggestion,
                severity=rule.severity,
                clause_index=index,
                details=tuple(zh for zh, _en in messages),
                title_en=rule.title_en,
                legal_basis_en=rule.legal_basis_en,
                suggestion_en=rule.suggestion_en,
                details_en=tuple(en for _zh, en in messages),
            )
        )
    return findings


def review_file(
    stream: IO[bytes],
    filename: str,
    content_type: str | None = None,
    *,
    procurement: bool,
    works: bool = False,
    rules: Sequence[Rule] | None = None,
    max_chars: int = MAX_TEXT_CHARS,
) -> list[Finding]:
    """Extract a tender document's text and review it (see :func:`review_document`).

    Raises ``unsupported_document_type``, ``document_unreadable`` or ``payload_too_large``.
    """
    clauses = extract_clauses(stream, filename, content_type, max_chars=max_chars)
    return review_document(clauses, procurement=procurement, works=works, rules=rules)
