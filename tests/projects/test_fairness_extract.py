"""Text extraction of tender documents (招标文件文本提取): .docx, .pdf, .txt, .md."""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import docx
import pytest

from bidding.core.errors import DomainError
from bidding.projects.fairness import extract_clauses, review_file, split_clauses
from bidding.projects.fairness.extract import MAX_CLAUSE_CHARS, DocumentKind, detect_kind
from tests.projects.fixtures.minipdf import make_pdf

FIXTURES = Path(__file__).with_name("fixtures")


def _docx_bytes() -> bytes:
    document = docx.Document()
    document.add_heading("第一章 招标公告", level=1)
    document.add_paragraph("1.1 本项目采用公开招标方式。投标人须是在本市注册的企业；")
    document.add_paragraph("")  # empty paragraphs are not counted
    table = document.add_table(rows=3, cols=3)
    table.cell(0, 0).text = "序号"
    table.cell(0, 1).text = "设备名称"
    table.cell(0, 2).text = "技术要求"
    table.cell(1, 0).text = "1"
    table.cell(1, 1).text = "低压配电柜"
    table.cell(1, 2).text = "断路器品牌：西门子。"
    merged = table.cell(2, 0).merge(table.cell(2, 2))
    merged.text = "备注：所有设备品牌不限。"
    document.add_paragraph("3.2 投标保证金为估算价的1%。")
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


class _NoSeek(io.RawIOBase):
    """A read-only stream that cannot seek, like a request body."""

    def __init__(self, data: bytes) -> None:
        self._inner = io.BytesIO(data)

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return False

    def readinto(self, buffer: bytearray) -> int:  # type: ignore[override]
        data = self._inner.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)


# --------------------------------------------------------------------------- splitting


def test_split_on_chinese_terminators_and_keep_numbering() -> None:
    text = "3.2 投标人须具备独立法人资格。投标保证金为1.5万元；评标办法见第三章！\n4.1 其他"
    assert split_clauses(text) == [
        "3.2 投标人须具备独立法人资格。",
        "投标保证金为1.5万元；",
        "评标办法见第三章！",
        "4.1 其他",
    ]


def test_split_keeps_closing_quote_and_drops_punctuation_only_pieces() -> None:
    assert split_clauses("详见“评标办法。”后续。\n\n——\n；") == ["详见“评标办法。”", "后续。"]


def test_split_cuts_very_long_pieces() -> None:
    text = ("投标人应当按照招标文件的要求编制投标文件，" * 200).rstrip("，")
    pieces = split_clauses(text)
    assert len(pieces) > 1
    assert all(len(piece) <= MAX_CLAUSE_CHARS for piece in pieces)
    assert "".join(pieces) == text


# --------------------------------------------------------------------------- .docx


def test_docx_paragraphs_and_table_cells_in_document_order() -> None:
    clauses = extract_clauses(io.BytesIO(_docx_bytes()), "招标文件.docx")
    assert [(c.location, c.text) for c in clauses] == [
        ("段落 1", "第一章 招标公告"),
        ("段落 2", "1.1 本项目采用公开招标方式。"),
        ("段落 2", "投标人须是在本市注册的企业；"),
        ("表格 1 行 1 列 1", "序号"),
        ("表格 1 行 1 列 2", "设备名称"),
        ("表格 1 行 1 列 3", "技术要求"),
        ("表格 1 行 2 列 1", "1"),
        ("表格 1 行 2 列 2", "低压配电柜"),
        ("表格 1 行 2 列 3", "断路器品牌：西门子。"),
        ("表格 1 行 3 列 1", "备注：所有设备品牌不限。"),  # a merged cell appears once
        ("段落 3", "3.2 投标保证金为估算价的1%。"),
    ]


def test_docx_review_flags_local_registration_and_brand_with_location() -> None:
    findings = review_file(io.BytesIO(_docx_bytes()), "招标文件.docx", procurement=False)
    assert [(f.rule_id, f.location, f.matched) for f in findings] == [
        ("R02", "段落 2", ("本市注册的企业",)),
        ("R01", "表格 1 行 2 列 3", ("品牌：西门子",)),
    ]


def test_docx_from_a_stream_that_cannot_seek() -> None:
    clauses = extract_clauses(_NoSeek(_docx_bytes()), "a.docx")  # type: ignore[arg-type]
    assert clauses[0].text == "第一章 招标公告"


def test_docx_nested_table_text_is_read_at_the_outer_cell() -> None:
    document = docx.Document()
    outer = document.add_table(rows=1, cols=1)
    cell = outer.cell(0, 0)
    cell.text = "资格要求"
    inner = cell.add_table(rows=1, cols=1)
    inner.cell(0, 0).text = "投标人注册资本不低于5000万元。"
    buffer = io.BytesIO()
    document.save(buffer)
    clauses = extract_clauses(io.BytesIO(buffer.getvalue()), "a.docx")
    assert [(c.location, c.text) for c in clauses] == [
        ("表格 1 行 1 列 1", "资格要求"),
        ("表格 1 行 1 列 1", "投标人注册资本不低于5000万元。"),
    ]


@pytest.mark.parametrize(
    "data",
    [
        b"this is not a zip file at all",
        b"PK\x03\x04" + b"\x00" * 40,  # a truncated zip header
    ],
)
def test_corrupt_docx_is_unreadable(data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(data), "招标文件.docx")
    assert caught.value.code == "document_unreadable"
    assert caught.value.http_status == 422


def test_zip_without_a_word_document_is_unreadable() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("hello.txt", "你好")
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(buffer.getvalue()), "a.docx")
    assert caught.value.code == "document_unreadable"


def test_docx_with_broken_xml_is_unreadable() -> None:
    source = zipfile.ZipFile(io.BytesIO(_docx_bytes()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for item in source.infolist():
            data = source.read(item.filename)
            if item.filename == "word/document.xml":
                data = data[: len(data) // 2]
            archive.writestr(item, data)
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(buffer.getvalue()), "a.docx")
    assert caught.value.code == "document_unreadable"


# --------------------------------------------------------------------------- .pdf


def test_pdf_pages_and_lines() -> None:
    data = make_pdf(
        [
            ["第一章 招标公告", "1.1 投标人须是在本市注册的企业。"],
            ["2.1 主要设备品牌：西门子。", "2.2 投标保证金为估算价的3%。"],
        ]
    )
    clauses = extract_clauses(io.BytesIO(data), "tender.pdf", "application/pdf")
    assert [(c.location, c.text) for c in clauses] == [
        ("第 1 页 第 1 行", "第一章 招标公告"),
        ("第 1 页 第 2 行", "1.1 投标人须是在本市注册的企业。"),
        ("第 2 页 第 1 行", "2.1 主要设备品牌：西门子。"),
        ("第 2 页 第 2 行", "2.2 投标保证金为估算价的3%。"),
    ]
    findings = review_file(io.BytesIO(data), "tender.pdf", procurement=False)
    assert [(f.rule_id, f.location) for f in findings] == [
        ("R02", "第 1 页 第 2 行"),
        ("R01", "第 2 页 第 1 行"),
        ("R12", "第 2 页 第 2 行"),
    ]


def test_pdf_lines_wrapped_by_the_layout_are_joined() -> None:
    data = make_pdf(
        [
            [
                "3.1 投标人应具备承担本项目的能力，具有良好的商业信誉，并且投标人须是在本",
                "市注册的企业。",
                "3.2 其他要求详见招标文件第二章。",
            ]
        ]
    )
    clauses = extract_clauses(io.BytesIO(data), "tender.pdf")
    assert clauses[0].location == "第 1 页 第 1 行"
    assert clauses[0].text.endswith("投标人须是在本市注册的企业。")
    assert clauses[1].text == "3.2 其他要求详见招标文件第二章。"
    assert clauses[1].location == "第 1 页 第 3 行"
    findings = review_file(io.BytesIO(data), "tender.pdf", procurement=False)
    assert [(f.rule_id, f.matched) for f in findings] == [("R02", ("本市注册的企业",))]


@pytest.mark.parametrize(
    "data",
    [b"%PDF-1.7\n garbage garbage", b"not a pdf", make_pdf([["一"]])[:200]],
)
def test_corrupt_pdf_is_unreadable(data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(data), "tender.pdf")
    assert caught.value.code == "document_unreadable"


# --------------------------------------------------------------------------- .txt / .md

TEXT = "第一章 招标公告\n1.1 投标人须是在本市注册的企业。\n\n1.2 投标保证金为估算价的1%。\n"


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "gb18030", "utf-16"])
def test_text_encodings(encoding: str) -> None:
    clauses = extract_clauses(io.BytesIO(TEXT.encode(encoding)), "tender.txt", "text/plain")
    assert [(c.location, c.text) for c in clauses] == [
        ("第 1 行", "第一章 招标公告"),
        ("第 2 行", "1.1 投标人须是在本市注册的企业。"),
        ("第 4 行", "1.2 投标保证金为估算价的1%。"),
    ]


def test_gb18030_text_is_reviewed() -> None:
    findings = review_file(
        io.BytesIO(TEXT.encode("gb18030")), "tender.txt", procurement=False, works=True
    )
    assert [(f.rule_id, f.location, f.matched) for f in findings] == [
        ("R02", "第 2 行", ("本市注册的企业",))
    ]


def test_markdown_markup_is_removed() -> None:
    text = "## 3.1 资格要求\n- **投标人**须是在本市注册的企业。\n> 注：`品牌`不限。\n"
    clauses = extract_clauses(io.BytesIO(text.encode()), "tender.md")
    assert [c.text for c in clauses] == [
        "3.1 资格要求",
        "投标人须是在本市注册的企业。",
        "注：品牌不限。",
    ]


@pytest.mark.parametrize("data", [b"\x81\xff\xff\x80 \xfe", b"abc\x00\x00\x00def"])
def test_binary_text_is_unreadable(data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(data), "a.txt")
    assert caught.value.code == "document_unreadable"


# --------------------------------------------------------------------------- refusals


@pytest.mark.parametrize(
    ("filename", "content_type"),
    [
        ("招标文件.doc", "application/msword"),
        ("招标文件.xlsx", None),
        ("招标文件", "application/zip"),
        ("招标文件", None),
        ("tender.pdf", "text/plain"),  # the name and the type disagree
        ("tender.txt", "image/png"),
    ],
)
def test_unsupported_types_are_refused(filename: str, content_type: str | None) -> None:
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(b"whatever"), filename, content_type)
    assert caught.value.code == "unsupported_document_type"
    assert caught.value.http_status == 422
    assert caught.value.details["filename"] == filename


@pytest.mark.parametrize(
    ("filename", "content_type", "kind"),
    [
        ("A.DOCX", None, DocumentKind.DOCX),
        ("a.pdf", "application/octet-stream", DocumentKind.PDF),
        ("a.md", "text/plain; charset=utf-8", DocumentKind.TEXT),
        ("upload", "application/pdf", DocumentKind.PDF),
        (
            "upload",
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            DocumentKind.DOCX,
        ),
    ],
)
def test_detect_kind(filename: str, content_type: str | None, kind: DocumentKind) -> None:
    assert detect_kind(filename, content_type) is kind


@pytest.mark.parametrize(
    ("filename", "data"),
    [
        ("a.txt", ("投标人须知。" * 100).encode()),
        ("a.docx", _docx_bytes()),
        ("a.pdf", make_pdf([["投标人须知。" * 10] * 5])),
    ],
)
def test_too_much_text_is_refused(filename: str, data: bytes) -> None:
    with pytest.raises(DomainError) as caught:
        extract_clauses(io.BytesIO(data), filename, max_chars=50)
    assert caught.value.code == "payload_too_large"
    assert caught.value.http_status == 413


def test_fixture_files_are_readable() -> None:
    for name in ("clean_tender.md", "restrictive_tender.txt"):
        with (FIXTURES / name).open("rb") as fh:
            assert len(extract_clauses(fh, name)) > 20
