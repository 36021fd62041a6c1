"""Project and section codes (统一交易标识码、标段编号).

A project receives its lifelong transaction code once, when it enters the platform::

    540200-2026-GZ-000123-K
    |      |    ||  |      +-- check character, ISO 7064 MOD 37,36 over "5402002026GZ000123"
    |      |    ||  +--------- serial within region, year, subject and kind (from the caller's
    |      |    ||             database sequence), 000001-999999
    |      |    |+------------ kind: Z 招标投标 (tendering, ZTBF), C 政府采购 (procurement, ZFCG)
    |      |    +------------- subject: G 工程 (works), H 货物 (goods), F 服务 (services)
    |      +------------------ year of entry
    +------------------------- region: 6-digit administrative division code (Shigatse 540200)

Letters are the pinyin initials (工 G, 货 H, 服 F; 招 Z, 采 C). A section code is the project
code plus a 3-digit serial: ``540200-2026-GZ-000123-K-001``.

The check character uses the ISO/IEC 7064 hybrid system MOD 37,36 on the 36 characters
0-9A-Z (hyphens are presentation only and not part of the computation). It detects every
single-character substitution and almost every transposition of adjacent characters (72 of
the 45,360 state/pair combinations escape; fewer than 1 % of the swaps in real codes).

Parsing is forgiving about case and surrounding or inner whitespace; anything else that is
wrong raises ``invalid_project_code`` with ``details["reason"]`` one of ``format``,
``region``, ``year``, ``serial`` or ``check``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flask_babel import gettext as _

from bidding.core.errors import ErrorCode
from bidding.projects.rules.base import ProcurementKind, SubjectType, require_int, violation

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {ch: i for i, ch in enumerate(ALPHABET)}
_M = 36

SUBJECT_LETTERS = {SubjectType.WORKS: "G", SubjectType.GOODS: "H", SubjectType.SERVICES: "F"}
KIND_LETTERS = {ProcurementKind.TENDERING: "Z", ProcurementKind.PROCUREMENT: "C"}
_SUBJECT_BY_LETTER = {v: k for k, v in SUBJECT_LETTERS.items()}
_KIND_BY_LETTER = {v: k for k, v in KIND_LETTERS.items()}

MIN_YEAR, MAX_YEAR = 2000, 2099
MAX_PROJECT_SERIAL = 999_999
MAX_SECTION_SERIAL = 999

_PROJECT = r"(?P<region>\d{6})-(?P<year>\d{4})-(?P<subject>[GHF])(?P<kind>[ZC])-(?P<serial>\d{6})-(?P<check>[0-9A-Z])"  # noqa: E501
_PROJECT_RE = re.compile(rf"^{_PROJECT}$")
_SECTION_RE = re.compile(rf"^{_PROJECT}-(?P<section>\d{{3}})$")


def mod37_36_check(payload: str) -> str:
    """The ISO 7064 MOD 37,36 check character of ``payload`` (characters 0-9A-Z)."""
    p = _M
    for ch in payload:
        try:
            value = _VALUE[ch]
        except KeyError:
            raise ValueError(f"character {ch!r} is not in 0-9A-Z") from None
        s = (p + value) % _M or _M
        p = (2 * s) % (_M + 1)
    return ALPHABET[(_M + 1 - p) % _M]


def mod37_36_valid(payload_with_check: str) -> bool:
    """True when the last character is the right check character for the rest."""
    if len(payload_with_check) < 2:
        return False
    try:
        return mod37_36_check(payload_with_check[:-1]) == payload_with_check[-1]
    except ValueError:
        return False


@dataclass(frozen=True)
class ProjectCode:
    region: str
    year: int
    subject: SubjectType
    kind: ProcurementKind
    serial: int

    @property
    def payload(self) -> str:
        letters = SUBJECT_LETTERS[self.subject] + KIND_LETTERS[self.kind]
        return f"{self.region}{self.year:04d}{letters}{self.serial:06d}"

    @property
    def check(self) -> str:
        return mod37_36_check(self.payload)

    def __str__(self) -> str:
        letters = SUBJECT_LETTERS[self.subject] + KIND_LETTERS[self.kind]
        return f"{self.region}-{self.year:04d}-{letters}-{self.serial:06d}-{self.check}"

    def section(self, serial: int) -> SectionCode:
        return SectionCode(self, _section_serial(serial))


@dataclass(frozen=True)
class SectionCode:
    project: ProjectCode
    serial: int

    def __str__(self) -> str:
        return f"{self.project}-{self.serial:03d}"


def _invalid(code: str, reason: str) -> Exception:
    messages = {
        "format": _(
            "项目编号“%(code)s”格式不正确，应形如540200-2026-GZ-000123-K"
            "（标段编号在其后加“-001”）。",
            code=code,
        ),
        "region": _("项目编号“%(code)s”中的行政区划代码不正确。", code=code),
        "year": _("项目编号“%(code)s”中的年份不正确。", code=code),
        "serial": _("项目编号“%(code)s”中的流水号不能为0。", code=code),
        "check": _("项目编号“%(code)s”校验位不符，请核对是否录入有误。", code=code),
    }
    return violation(ErrorCode.INVALID_PROJECT_CODE, messages[reason], value=code, reason=reason)


def normalise_code(code: str) -> str:
    """Remove whitespace and upper-case."""
    return "".join(code.split()).upper()


def _region_ok(region: str) -> bool:
    return len(region) == 6 and region.isdigit() and 11 <= int(region[:2]) <= 82


def _section_serial(serial: int) -> int:
    serial = require_int(serial, "serial")
    if not 1 <= serial <= MAX_SECTION_SERIAL:
        raise ValueError(f"section serial must be 1-{MAX_SECTION_SERIAL}")
    return serial


def _from_match(m: re.Match[str], original: str) -> ProjectCode:
    if not _region_ok(m["region"]):
        raise _invalid(original, "region")
    year = int(m["year"])
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise _invalid(original, "year")
    serial = int(m["serial"])
    if serial == 0:
        raise _invalid(original, "serial")
    project = ProjectCode(
        region=m["region"],
        year=year,
        subject=_SUBJECT_BY_LETTER[m["subject"]],
        kind=_KIND_BY_LETTER[m["kind"]],
        serial=serial,
    )
    if project.check != m["check"]:
        raise _invalid(original, "check")
    return project


def parse_project_code(code: str) -> ProjectCode:
    """Parse and verify a project code; raises ``invalid_project_code``."""
    text = normalise_code(code)
    m = _PROJECT_RE.match(text)
    if m is None:
        raise _invalid(code, "format")
    return _from_match(m, code)


def parse_section_code(code: str) -> SectionCode:
    """Parse and verify a section code (project code + `-NNN`): `invalid_project_code`."""
    text = normalise_code(code)
    m = _SECTION_RE.match(text)
    if m is None or int(m["section"]) == 0:
        raise _invalid(code, "format")
    return SectionCode(_from_match(m, code), int(m["section"]))


def validate_project_code(code: str) -> str:
    """The normalised project code, or ``invalid_project_code``."""
    return str(parse_project_code(code))


def validate_section_code(code: str) -> str:
    """The normalised section code, or ``invalid_project_code``."""
    return str(parse_section_code(code))


def make_project_code(
    region: str, year: int, subject: SubjectType, kind: ProcurementKind, serial: int
) -> str:
    """Build a project code; ``serial`` comes from the caller's sequence (1-999999).

    Bad arguments are programming errors (``ValueError``), except an unknown region, which
    raises ``invalid_project_code`` like a typed-in code would.
    """
    year = require_int(year, "year")
    serial = require_int(serial, "serial")
    if not MIN_YEAR <= year <= MAX_YEAR:
        raise ValueError(f"year must be {MIN_YEAR}-{MAX_YEAR}")
    if not 1 <= serial <= MAX_PROJECT_SERIAL:
        raise ValueError(f"serial must be 1-{MAX_PROJECT_SERIAL}")
    if not _region_ok(region):
        raise _invalid(region, "region")
    return str(ProjectCode(region, year, SubjectType(subject), ProcurementKind(kind), serial))


def make_section_code(project_code: str, serial: int) -> str:
    """Build a section code from a (verified) project code and a serial (1-999)."""
    return str(parse_project_code(project_code).section(serial))
