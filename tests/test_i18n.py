"""English is available for every user-facing string (Flask-Babel; msgids are the Chinese).

Extracts every msgid from ``bidding/`` with Babel's own API and the mapping in
``babel.cfg`` (what ``pybabel extract`` does), then checks the English catalog
``bidding/translations/en/LC_MESSAGES/messages.po``: every msgid has a non-fuzzy English
msgstr, and each translation keeps exactly the msgid's ``%(name)s`` placeholders.

To fix a failure::

    .venv/bin/pybabel extract -F babel.cfg -k _l -k lazy_gettext \\
        -o bidding/translations/messages.pot .
    .venv/bin/pybabel update --no-fuzzy-matching -i bidding/translations/messages.pot \\
        -d bidding/translations -l en

and write the English for the empty msgstrs (then ``make translations``).
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

from babel.messages.catalog import Catalog, Message
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po

ROOT = Path(__file__).resolve().parent.parent
PACKAGE = "bidding"
CATALOG = ROOT / PACKAGE / "translations" / "en" / "LC_MESSAGES" / "messages.po"
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None, "lazy_gettext": None}
#: Named placeholders ``%(name)s``; ``%%`` is a literal percent sign.
PLACEHOLDER = re.compile(r"%%|%\((\w+)\)[-#0 +]*\d*(?:\.\d+)?[diouxXeEfFgGcrsa]")


def _method_map() -> tuple[list[tuple[str, str]], dict[str, dict[str, str]]]:
    """babel.cfg's mapping for files under ``bidding/``, relative to that folder."""
    with open(ROOT / "babel.cfg", encoding="utf-8") as fh:
        method_map, options_map = parse_mapping_cfg(fh)
    prefix = f"{PACKAGE}/"
    methods = [(p[len(prefix) :], m) for p, m in method_map if p.startswith(prefix)]
    options = {p[len(prefix) :]: o for p, o in options_map.items() if p.startswith(prefix)}
    assert methods, "babel.cfg maps no files under bidding/"
    return methods, options


@cache
def extracted() -> dict[str | tuple[str, ...], list[str]]:
    """Every msgid in ``bidding/`` → where it occurs (``path:line``)."""
    methods, options = _method_map()
    found: dict[str | tuple[str, ...], list[str]] = {}
    for filename, lineno, message, _comments, _context in extract_from_dir(
        str(ROOT / PACKAGE), methods, options, keywords=KEYWORDS
    ):
        msgid = message if isinstance(message, str) else tuple(m for m in message if m)
        if msgid:
            found.setdefault(msgid, []).append(f"{PACKAGE}/{filename}:{lineno}")
    return found


@cache
def catalog() -> Catalog:
    with open(CATALOG, "rb") as fh:
        return read_po(fh, locale="en")


def _strings(value: str | tuple[str, ...] | list[str] | None) -> list[str]:
    if value is None:
        return []
    return [value] if isinstance(value, str) else [v for v in value if v is not None]


def _placeholders(text: str) -> set[str]:
    return {m.group(1) for m in PLACEHOLDER.finditer(text) if m.group(1)}


def _messages() -> Iterator[Message]:
    for message in catalog():
        if message.id:
            yield message


def test_extraction_finds_the_domains() -> None:
    where = {loc.split("/")[1] for locs in extracted().values() for loc in locs}
    assert {"accounts", "core", "projects", "opening", "bids", "templates"} <= where


def test_every_msgid_has_english() -> None:
    entries = {m.id: m for m in _messages()}
    missing = []
    for msgid, places in sorted(extracted().items(), key=lambda item: item[1][0]):
        key = msgid[0] if isinstance(msgid, tuple) and msgid[0] not in entries else msgid
        entry = entries.get(key)
        strings = _strings(entry.string) if entry is not None else []
        if entry is None or entry.fuzzy or not strings or not all(s.strip() for s in strings):
            missing.append(f"{places[0]}: {msgid!r}")
    assert not missing, (
        f"{len(missing)} msgid(s) without English in {CATALOG} "
        "(see this module's docstring):\n" + "\n".join(missing)
    )


def test_translations_keep_the_placeholders() -> None:
    wrong = []
    for message in _messages():
        ids = _strings(message.id)
        expected = set().union(*(_placeholders(i) for i in ids))
        for text in _strings(message.string):
            if not text:
                continue
            got = _placeholders(text)
            if got != expected:
                dropped, added = sorted(expected - got), sorted(got - expected)
                wrong.append(f"{ids[0]!r}: dropped {dropped}, added {added} in {text!r}")
    assert not wrong, "translations whose placeholders differ from the msgid:\n" + "\n".join(wrong)


def test_catalog_passes_babels_format_checks() -> None:
    problems = [
        f"{message.id!r}: {'; '.join(str(e) for e in errors)}"
        for message, errors in catalog().check()
    ]
    assert not problems, "\n".join(problems)
