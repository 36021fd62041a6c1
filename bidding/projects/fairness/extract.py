"""Text extraction from tender documents (招标文件文本提取).

A tender document arrives as a binary stream plus its file name and content type; this
module turns it into :class:`Clause` objects (a sentence or clause of text and where it
is), ready for the fair-competition rules:

* ``.docx`` (python-docx): body paragraphs and table cells in document order, located as
  ``段落 N`` (the N-th non-empty body paragraph) or ``表格 T 行 R 列 C``; text in a table
  nested in a cell is reported at the outer cell;
* ``.pdf`` (pypdf): page by page, located as ``第 P 页 第 L 行`` (the line where the
  clause starts); lines that fill the page width and end without punctuation are taken
  as wrapped and joined to the next line, so a sentence broken by the layout stays whole;
* ``.txt`` / ``.md`` (UTF-8, UTF-16 with a byte-order mark, otherwise GB18030), located
  as ``第 L 行``.

Text is split into clauses on ``。；;！？!?`` and line breaks; numbering such as ``3.2``
stays with its sentence. Refusals: an unknown type raises ``unsupported_document_type``
(422), a damaged or encrypted file ``document_unreadable`` (422), and more than
:data:`MAX_TEXT_CHARS` characters of text ``payload_too_large`` (413) — a document is
never reviewed only in part.
"""

from __future__ import annotations

import codecs
import io
import re
import shutil
import tempfile
import zipfile
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from pathlib import PurePath
from typing import IO, Any

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode, PayloadTooLarge, RuleViolation

__all__ = [
    "MAX_TEXT_CHARS",
    "Clause",
    "DocumentKind",
    "detect_kind",
    "extract_clauses",
    "iter_clauses",
    "split_clauses",
]

#: The most text (in characters) read from one document, about 20 MB of Chinese text.
MAX_TEXT_CHARS = 20_000_000
#: The most uncompressed XML read from a .docx (guards against zip bombs).
MAX_DOCX_XML_BYTES = 400 * 1024 * 1024
#: A clause longer than this (a paragraph without punctuation) is cut into pieces.
MAX_CLAUSE_CHARS = 2000

_DOCX_TYPE = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"


class DocumentKind(StrEnum):
    DOCX = "docx"
    PDF = "pdf"
    TEXT = "text"


_BY_SUFFIX = {
    ".docx": DocumentKind.DOCX,
    ".pdf": DocumentKind.PDF,
    ".txt": DocumentKind.TEXT,
    ".text": DocumentKind.TEXT,
    ".md": DocumentKind.TEXT,
    ".markdown": DocumentKind.TEXT,
}
_BY_CONTENT_TYPE = {
    _DOCX_TYPE: DocumentKind.DOCX,
    "application/pdf": DocumentKind.PDF,
    "text/plain": DocumentKind.TEXT,
    "text/markdown": DocumentKind.TEXT,
    "text/x-markdown": DocumentKind.TEXT,
}
_GENERIC_TYPES = {"", "application/octet-stream", "binary/octet-stream"}


@dataclass(frozen=True, slots=True)
class Clause:
    """One sentence or clause of a document and where it is (``段落 3``, ``第 2 页 第 5 行``)."""

    text: str
    location: str


def _unsupported(filename: str, content_type: str | None) -> RuleViolation:
    return RuleViolation(
        _(
            "不支持该文件类型，请上传 .docx、.pdf、.txt 或 .md 格式的招标文件"
            "（.doc 文件请先另存为 .docx）。"
        ),
        code=ErrorCode.UNSUPPORTED_DOCUMENT_TYPE,
        details={"filename": filename, "content_type": content_type or ""},
    )


def _unreadable(filename: str, reason: str) -> RuleViolation:
    return RuleViolation(
        _("文件已损坏、已加密或无法读取，请检查后重新上传。"),
        code=ErrorCode.DOCUMENT_UNREADABLE,
        details={"filename": filename, "reason": reason},
    )


def _too_large(filename: str, limit: int) -> PayloadTooLarge:
    return PayloadTooLarge(
        _("招标文件文字内容过多，超出审查上限，请拆分后上传。"),
        details={"filename": filename, "max_chars": limit},
    )


def detect_kind(filename: str, content_type: str | None = None) -> DocumentKind:
    """The document kind from the file name's extension, else from the content type.

    Raises ``unsupported_document_type`` when neither names a supported kind, or when they
    contradict each other (a ``.pdf`` sent as ``text/plain``).
    """
    suffix = PurePath(filename or "").suffix.lower()
    mime = (content_type or "").split(";", 1)[0].strip().lower()
    by_suffix = _BY_SUFFIX.get(suffix)
    by_type = _BY_CONTENT_TYPE.get(mime)
    if by_suffix is not None:
        if by_type is not None and by_type is not by_suffix:
            raise _unsupported(filename, content_type)
        if by_type is None and mime not in _GENERIC_TYPES and not mime.startswith("text/"):
            raise _unsupported(filename, content_type)
        return by_suffix
    if suffix == "" and by_type is not None:
        return by_type
    raise _unsupported(filename, content_type)


# ---------------------------------------------------------------------------- splitting

_SENTENCE_RE = re.compile(r"[^。；;！？!?\n]*(?:[。；;！？!?]+[”’」』）)\]】]*|\n|$)")
_STRIP = " \t\r\n\u3000\ufeff\xa0"
_PUNCT_ONLY_RE = re.compile(r"[\W_]*")


def split_clauses(text: str) -> list[str]:
    """Split text into clauses on ``。；;！？!?`` and line breaks.

    The terminator (and a closing quote or bracket after it) stays with its clause;
    ``3.2`` style numbering is not a terminator. Pieces that are only whitespace or
    punctuation are dropped; a piece longer than :data:`MAX_CLAUSE_CHARS` is cut.
    """
    pieces: list[str] = []
    for match in _SENTENCE_RE.finditer(text):
        piece = match.group().strip(_STRIP)
        if not piece or _PUNCT_ONLY_RE.fullmatch(piece):
            continue
        while len(piece) > MAX_CLAUSE_CHARS:
            cut = max(piece.rfind("，", 0, MAX_CLAUSE_CHARS), piece.rfind(",", 0, MAX_CLAUSE_CHARS))
            cut = cut + 1 if cut > MAX_CLAUSE_CHARS // 2 else MAX_CLAUSE_CHARS
            pieces.append(piece[:cut])
            piece = piece[cut:].strip(_STRIP)
        if piece:
            pieces.append(piece)
    return pieces


class _Budget:
    """Counts the characters read so far and refuses more than the limit."""

    def __init__(self, filename: str, limit: int) -> None:
        self.filename = filename
        self.limit = limit
        self.used = 0

    def take(self, text: str) -> str:
        self.used += len(text)
        if self.used > self.limit:
            raise _too_large(self.filename, self.limit)
        return text


def _clauses(text: str, location: str) -> Iterator[Clause]:
    for piece in split_clauses(text):
        yield Clause(piece, location)


# ---------------------------------------------------------------------------- .docx


def _seekable(stream: IO[bytes]) -> IO[bytes]:
    try:
        if stream.seekable():
            return stream
    except (AttributeError, ValueError):
        pass
    spool = tempfile.SpooledTemporaryFile(max_size=32 * 1024 * 1024)  # noqa: SIM115
    shutil.copyfileobj(stream, spool)
    spool.seek(0)
    return spool


def _check_docx_archive(stream: IO[bytes], filename: str) -> None:
    start = stream.tell()
    try:
        with zipfile.ZipFile(stream) as archive:
            names = set(archive.namelist())
            if "word/document.xml" not in names:
                raise _unreadable(filename, "not a Word document")
            xml_bytes = sum(
                info.file_size for info in archive.infolist() if info.filename.endswith(".xml")
            )
    except (zipfile.BadZipFile, zipfile.LargeZipFile, EOFError, OSError) as exc:
        raise _unreadable(filename, f"bad zip archive: {exc}") from exc
    finally:
        stream.seek(start)
    if xml_bytes > MAX_DOCX_XML_BYTES:
        raise _too_large(filename, MAX_DOCX_XML_BYTES)


def _cell_text(cell: Any) -> str:
    """All text of a table cell, nested tables included, one line per paragraph."""
    lines: list[str] = []
    for block in cell.iter_inner_content():
        if hasattr(block, "rows"):
            for row in block.rows:
                seen: set[Any] = set()  # the <w:tc> elements themselves, kept alive
                for inner in row.cells:
                    if inner._tc in seen:
                        continue
                    seen.add(inner._tc)
                    lines.append(_cell_text(inner))
        else:
            lines.append(block.text)
    return "\n".join(line for line in lines if line.strip())


def _iter_docx(stream: IO[bytes], filename: str, budget: _Budget) -> Iterator[Clause]:
    import docx  # python-docx
    from docx.opc.exceptions import PackageNotFoundError

    stream = _seekable(stream)
    _check_docx_archive(stream, filename)
    try:
        document = docx.Document(stream)
        blocks = list(document.iter_inner_content())
    except (PackageNotFoundError, zipfile.BadZipFile, KeyError, ValueError, OSError) as exc:
        raise _unreadable(filename, f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # lxml.etree.XMLSyntaxError and friends
        raise _unreadable(filename, f"{type(exc).__name__}: {exc}") from exc
    paragraph_no = 0
    table_no = 0
    for block in blocks:
        if hasattr(block, "rows"):  # a Table
            table_no += 1
            # Merged cells repeat the same <w:tc>; keep the elements (not their id(), which
            # lxml may reuse once a proxy is freed) to see each cell once.
            seen: set[Any] = set()
            for row_no, row in enumerate(block.rows, start=1):
                for col_no, cell in enumerate(row.cells, start=1):
                    if cell._tc in seen:
                        continue
                    seen.add(cell._tc)
                    text = budget.take(_cell_text(cell))
                    yield from _clauses(text, f"表格 {table_no} 行 {row_no} 列 {col_no}")
        else:
            text = block.text
            if not text.strip():
                continue
            paragraph_no += 1
            yield from _clauses(budget.take(text), f"段落 {paragraph_no}")


# ---------------------------------------------------------------------------- .pdf

_TERMINAL_END = "。；;！？!?：:”’）)】」』"
_NUMBERED_START_RE = re.compile(
    r"^\s*(?:\d+(?:\.\d+)*[.、．\s]|[（(][一二三四五六七八九十\d]+[）)]|[一二三四五六七八九十]+、|第[一二三四五六七八九十百\d]+[章节条款])"
)


def _page_lines(text: str) -> Iterator[tuple[int, str]]:
    """(first line number, text) of each logical line of a page, wrapped lines joined."""
    raw = text.splitlines()
    lengths = [len(line.strip()) for line in raw]
    widest = max(lengths, default=0)
    current: list[str] = []
    first = 0
    for number, line in enumerate(raw, start=1):
        stripped = line.strip(_STRIP)
        if not stripped:
            if current:
                yield first, "".join(current)
                current = []
            continue
        if current and _NUMBERED_START_RE.match(stripped):
            yield first, "".join(current)
            current = []
        if not current:
            first = number
        current.append(stripped)
        wrapped = (
            widest >= 20 and len(stripped) >= 0.85 * widest and stripped[-1] not in _TERMINAL_END
        )
        if not wrapped:
            yield first, "".join(current)
            current = []
    if current:
        yield first, "".join(current)


def _iter_pdf(stream: IO[bytes], filename: str, budget: _Budget) -> Iterator[Clause]:
    from pypdf import PdfReader
    from pypdf.errors import PyPdfError

    stream = _seekable(stream)
    try:
        reader = PdfReader(stream)
        if reader.is_encrypted and not reader.decrypt(""):
            raise _unreadable(filename, "encrypted")
        pages = reader.pages
        count = len(pages)
    except RuleViolation:
        raise
    except (PyPdfError, ValueError, KeyError, TypeError, OSError, AttributeError) as exc:
        raise _unreadable(filename, f"{type(exc).__name__}: {exc}") from exc
    except Exception as exc:  # pypdf raises a wide range of errors on damaged files
        raise _unreadable(filename, f"{type(exc).__name__}: {exc}") from exc
    for index in range(count):
        try:
            text = pages[index].extract_text() or ""
        except Exception as exc:
            raise _unreadable(filename, f"page {index + 1}: {type(exc).__name__}: {exc}") from exc
        budget.take(text)
        for line_no, line in _page_lines(text):
            yield from _clauses(line, f"第 {index + 1} 页 第 {line_no} 行")


# ---------------------------------------------------------------------------- .txt / .md

_MD_PREFIX_RE = re.compile(r"^\s{0,3}(?:#{1,6}\s+|>\s*|[-*+]\s+(?:\[[ xX]\]\s+)?)")
_MD_EMPHASIS_RE = re.compile(r"(\*\*|__|`)")


def _decode(data: bytes, filename: str) -> str:
    if data.startswith(codecs.BOM_UTF8):
        encodings: Iterable[str] = ("utf-8-sig",)
    elif data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        encodings = ("utf-16",)
    else:
        encodings = ("utf-8", "gb18030")
    for encoding in encodings:
        try:
            text = data.decode(encoding)
        except UnicodeDecodeError:
            continue
        if "\x00" in text:
            break
        return text
    raise _unreadable(filename, "not UTF-8 or GB18030 text")


def _iter_text(
    stream: IO[bytes], filename: str, budget: _Budget, markdown: bool
) -> Iterator[Clause]:
    # Four bytes per character covers every encoding accepted here.
    limit = budget.limit * 4
    try:
        data = stream.read(limit + 1)
    except OSError as exc:
        raise _unreadable(filename, str(exc)) from exc
    if len(data) > limit:
        raise _too_large(filename, budget.limit)
    text = budget.take(_decode(data, filename))
    del data
    for line_no, line in enumerate(io.StringIO(text), start=1):
        if markdown:
            line = _MD_EMPHASIS_RE.sub("", _MD_PREFIX_RE.sub("", line))
        yield from _clauses(line, f"第 {line_no} 行")


# ---------------------------------------------------------------------------- entry points


def iter_clauses(
    stream: IO[bytes],
    filename: str,
    content_type: str | None = None,
    *,
    max_chars: int = MAX_TEXT_CHARS,
) -> Iterator[Clause]:
    """Yield the clauses of a document as they are read (pages are streamed).

    The type is checked before anything is read; refusals are raised lazily for the
    content (the first ``next()`` may raise ``document_unreadable``).
    """
    kind = detect_kind(filename, content_type)
    budget = _Budget(filename, max_chars)
    if kind is DocumentKind.DOCX:
        return _iter_docx(stream, filename, budget)
    if kind is DocumentKind.PDF:
        return _iter_pdf(stream, filename, budget)
    markdown = PurePath(filename or "").suffix.lower() in {".md", ".markdown"} or (
        (content_type or "").startswith(("text/markdown", "text/x-markdown"))
    )
    return _iter_text(stream, filename, budget, markdown)


def extract_clauses(
    stream: IO[bytes],
    filename: str,
    content_type: str | None = None,
    *,
    max_chars: int = MAX_TEXT_CHARS,
) -> list[Clause]:
    """All clauses of a document, in document order.

    Raises ``unsupported_document_type`` (422), ``document_unreadable`` (422) or
    ``payload_too_large`` (413).
    """
    return list(iter_clauses(stream, filename, content_type, max_chars=max_chars))
