"""Canonical JSON (规范化 JSON) for everything Sunbid signs or hashes.

:func:`canonical_json` follows RFC 8785, the JSON Canonicalization Scheme (JCS):

* object members sorted by their names compared as arrays of UTF-16 code units;
* no insignificant whitespace;
* strings written as UTF-8 with only ``"``, ``\\`` and the C0 control characters escaped
  (``\\b \\t \\n \\f \\r`` by their short forms, the rest as ``\\u00xx`` in lower-case hex);
* numbers written the way ECMAScript's ``Number.prototype.toString`` writes them.

Sunbid narrows the number rule on purpose. Money and other decimals travel as *strings*
(``"1234.50"``), so the only numbers a signed document may contain are integers in the
IEEE-754 "safe" range ``-(2**53 - 1) .. 2**53 - 1``. In that range ECMAScript's
serialisation is simply the decimal integer, so there is nothing subtle left to get wrong
across languages. Integral floats (``3.0``) are accepted and written as integers (``3``),
``-0.0`` is written ``0``; non-integral floats, NaN, infinities, integers outside the safe
range, ``Decimal``, bytes and other non-JSON types are refused with
:class:`CanonicalizationError` (code ``not_canonical``).

:func:`parse_json` is the strict reader to pair with it: duplicate member names, NaN and
non-integral numbers are refused, so a document read back can be re-canonicalised to the
exact bytes that were signed.

The module also holds the one UTC timestamp format used in signed documents
(:func:`format_utc`, :func:`parse_utc`): ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from crypto.errors import CryptoError

__all__ = [
    "MAX_SAFE_INTEGER",
    "CanonicalizationError",
    "canonical_json",
    "format_utc",
    "parse_json",
    "parse_utc",
]

MAX_SAFE_INTEGER = 2**53 - 1
"""Largest integer magnitude allowed (ECMAScript ``Number.MAX_SAFE_INTEGER``)."""


class CanonicalizationError(CryptoError):
    """A value cannot be written (or read) as canonical JSON."""

    code = "not_canonical"


#: The JSON string encoder of the standard library (its C version where built), without
#: ``ensure_ascii``: it escapes exactly what RFC 8785 (ECMAScript's ``JSON.stringify``)
#: escapes — ``"``, ``\\``, ``\b \t \n \f \r`` by their short forms and the other
#: controls below U+0020 as ``\u00xx`` in lower-case hex — and writes every other
#: character as itself. The tests hold it to a character-by-character reference.
_json_string = json.encoder.encode_basestring
#: UTF-16 surrogates: in a ``str`` they can only be lone (unpaired), which is not Unicode.
_SURROGATE = re.compile("[\ud800-\udfff]")


def _encode_string(value: str, path: str) -> str:
    if not value.isascii() and _SURROGATE.search(value):
        raise CanonicalizationError(
            "string contains a lone surrogate, which is not valid Unicode", path=path
        )
    return _json_string(value)


def _encode_number(value: int | float, path: str) -> str:
    if isinstance(value, float):
        if not math.isfinite(value):
            raise CanonicalizationError("NaN and infinities are not JSON numbers", path=path)
        if not value.is_integer():
            raise CanonicalizationError(
                "non-integral numbers are refused; send decimals (e.g. money) as strings",
                path=path,
            )
        value = int(value)
    if abs(value) > MAX_SAFE_INTEGER:
        raise CanonicalizationError(
            "integer outside the safe range ±(2**53-1); send it as a string", path=path
        )
    return str(value)


def _utf16_key(name: str) -> bytes:
    # Big-endian UTF-16 compares bytewise exactly as the sequence of UTF-16 code units.
    return name.encode("utf-16-be", "surrogatepass")


def _encode(value: object, path: str, out: list[str]) -> None:
    if value is None:
        out.append("null")
    elif value is True:
        out.append("true")
    elif value is False:
        out.append("false")
    elif isinstance(value, str):
        out.append(_encode_string(value, path))
    elif isinstance(value, int | float):
        out.append(_encode_number(value, path))
    elif isinstance(value, Mapping):
        for key in value:
            if not isinstance(key, str):
                raise CanonicalizationError(
                    "object member names must be strings", path=path, key=repr(key)
                )
        out.append("{")
        first = True
        # UTF-16 code-unit order; for keys without astral characters (above U+FFFF) it
        # is code-point order, the order of ``str`` itself
        astral = any(not key.isascii() and max(key) > "\uffff" for key in value)
        for key in sorted(value, key=_utf16_key) if astral else sorted(value):
            if not first:
                out.append(",")
            first = False
            out.append(_encode_string(key, path))
            out.append(":")
            _encode(value[key], f"{path}.{key}", out)
        out.append("}")
    elif isinstance(value, Sequence) and not isinstance(value, bytes | bytearray | memoryview):
        out.append("[")
        for i, item in enumerate(value):
            if i:
                out.append(",")
            _encode(item, f"{path}[{i}]", out)
        out.append("]")
    else:
        raise CanonicalizationError(
            f"{type(value).__name__} is not a JSON type", path=path, type=type(value).__name__
        )


def canonical_json(obj: object) -> bytes:
    """Return the RFC 8785 canonical UTF-8 encoding of ``obj``.

    ``obj`` is built from ``None``, ``bool``, ``str``, safe-range ``int`` (and integral
    ``float``), ``Mapping`` with ``str`` keys, and ``list``/``tuple``. Anything else raises
    :class:`CanonicalizationError` whose ``details["path"]`` names the offending value
    (``$.items[2].price``).
    """
    out: list[str] = []
    try:
        _encode(obj, "$", out)
    except RecursionError as exc:
        raise CanonicalizationError("document nested too deeply") from exc
    return "".join(out).encode("utf-8")


def _reject_constant(name: str) -> Any:
    raise CanonicalizationError(f"{name} is not a JSON number")


def _parse_float(text: str) -> Any:
    value = float(text)
    if not math.isfinite(value) or not value.is_integer():
        raise CanonicalizationError(
            "non-integral numbers are refused; decimals travel as strings", number=text
        )
    result = int(value)
    if abs(result) > MAX_SAFE_INTEGER:
        raise CanonicalizationError("number outside the safe integer range", number=text)
    return result


def _parse_int(text: str) -> Any:
    result = int(text)
    if abs(result) > MAX_SAFE_INTEGER:
        raise CanonicalizationError("number outside the safe integer range", number=text)
    return result


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise CanonicalizationError("duplicate object member name", key=key)
        result[key] = value
    return result


def parse_json(data: bytes | str) -> Any:
    """Parse JSON strictly: UTF-8, no duplicate names, no NaN, only safe-range integers.

    Raises :class:`CanonicalizationError` (code ``not_canonical``) on any refusal or on
    malformed JSON. It does *not* require the input to be canonical byte-for-byte; callers
    that need that compare ``canonical_json(parse_json(data)) == data``.
    """
    try:
        text = data.decode("utf-8") if isinstance(data, bytes | bytearray) else data
        return json.loads(
            text,
            object_pairs_hook=_no_duplicates,
            parse_float=_parse_float,
            parse_int=_parse_int,
            parse_constant=_reject_constant,
        )
    except CanonicalizationError:
        raise
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise CanonicalizationError(f"malformed JSON: {exc}") from exc


_UTC_RE = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


def format_utc(moment: datetime) -> str:
    """Format an aware datetime as ISO 8601 UTC with ``Z``, e.g. ``2025-03-01T08:00:00Z``.

    Microseconds are written (6 digits) only when non-zero. Naive datetimes are refused.
    """
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise CanonicalizationError("naive datetime: a time zone is required")
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SS[.ffffff]Z`` into an aware UTC datetime.

    Offsets other than ``Z`` and any other layout are refused, so a timestamp in a signed
    document has exactly one spelling per instant (up to trailing fractional zeros).
    """
    if not isinstance(text, str) or not _UTC_RE.match(text):
        raise CanonicalizationError(
            "timestamp must look like 2025-03-01T08:00:00Z (UTC, with Z)", value=repr(text)
        )
    try:
        return datetime.fromisoformat(text[:-1]).replace(tzinfo=UTC)
    except ValueError as exc:
        raise CanonicalizationError(f"invalid timestamp: {exc}", value=text) from exc
