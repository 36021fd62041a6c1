# ruff: noqa: E501  (the tender documents below are written one clause per line)
"""The whole demo (演示数据): the accounts demo plus a tender a visitor can walk through.

``sunbid demo`` (and so ``make run``) calls :func:`seed`. On top of
:func:`bidding.accounts.demo.seed_demo` (the Shigatse center, partners, organisations, one
user per role) it seeds, through the projects domain services only:

* a works project, 日喀则市人民医院门诊楼建设工程, registered by the demo agency for the
  demo tenderer;
* section 1 (施工标段), **published**: clean tender documents (no fair-competition
  findings), a lawful timeline with the bid deadline about 25 days ahead (09:30 Shanghai
  on a weekday), the opening-key ceremony done 2-of-3 with the keys of the demo center
  staff, supervisor and agency users, and the demo bidder registered (报名);
* section 2 (室外配套工程), **under review** with one fair-competition finding (a
  local-registration requirement), so center staff see the review table and can override
  it or the agency can withdraw and fix it.

Files a person needs to try the rest (written under ``<instance>/demo/``):

* ``custodians/<username>.key`` — each custodian's X25519 private key (PEM, mode 0600),
  for releasing a share at the opening;
* ``bidder/bidder.key`` + ``bidder/bidder.pem`` — the demo bidder's signing key (0600) and
  certificate from the demo CA (:func:`bidding.bids.trust.demo_issue_bidder_certificate`),
  for ``sunbid bid seal``.

Idempotent: every step first looks for what it would create (by name, state, or file) and
runs only if it is missing, so running the demo twice changes nothing, and a run that
stopped half-way is completed by the next one.
"""

from __future__ import annotations

import io
import json
import os
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from bidding.accounts.demo import HOME_CENTER, DemoLogin, seed_demo
from bidding.accounts.models import Organisation, TradingCenter, User
from bidding.accounts.services import actor_for_user
from bidding.config import Settings
from bidding.core.clock import SHANGHAI, now
from bidding.core.roles import Actor, Role
from bidding.projects import services
from bidding.projects.models import (
    DocumentKind,
    Project,
    ProjectKind,
    Section,
    SectionState,
    Subject,
)
from bidding.projects.services import CustodianSpec
from crypto.pki import (
    load_x25519_private_key_pem,
    private_key_to_pem,
    public_key_to_pem,
)

__all__ = ["DemoResult", "seed"]

PROJECT_NAME = "日喀则市人民医院门诊楼建设工程"
PUBLISHED_SECTION = "门诊楼土建及安装工程施工"
REVIEW_SECTION = "门诊楼室外配套工程施工"

#: (username, role) of the opening-key custodians; any 2 of the 3 open the bids.
CUSTODIANS = (
    ("center.staff", Role.CENTER_STAFF),
    ("supervisor", Role.SUPERVISOR),
    ("agency", Role.AGENCY_STAFF),
)
CUSTODIAN_THRESHOLD = 2
MANAGER = "agency"
BIDDER = "bidder"
#: Days from today (Shanghai) to the bid deadline, moved past a weekend.
DEADLINE_DAYS = 25
DEADLINE_TIME = time(9, 30)


@dataclass
class DemoResult:
    """What the demo seeded (and where its private files are)."""

    logins: list[DemoLogin]
    project_id: uuid.UUID
    published_section_id: uuid.UUID
    review_section_id: uuid.UUID
    bid_deadline: datetime
    custodian_keys: dict[str, Path] = field(default_factory=dict)
    bidder_key: Path | None = None
    bidder_certificate: Path | None = None
    bidder_price_sheet: Path | None = None
    bidder_documents: Path | None = None
    warnings: list[str] = field(default_factory=list)


# --------------------------------------------------------------------------- files


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` readable by the owner only (0600), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(tmp, 0o600)
    tmp.replace(path)


def _custodian_key(folder: Path, username: str) -> tuple[Path, X25519PrivateKey]:
    """The custodian's demo key (``<folder>/<username>.key``), made on first use."""
    path = folder / f"{username}.key"
    if path.exists():
        os.chmod(path, 0o600)
        return path, load_x25519_private_key_pem(path.read_bytes())
    key = X25519PrivateKey.generate()
    _write_private(path, private_key_to_pem(key))
    return path, key


def _common_name(text: str, limit: int = 64) -> str:
    """``text`` cut to what an X.509 commonName holds (64 UTF-8 bytes: ~21 hanzi)."""
    while len(text.encode("utf-8")) > limit:
        text = text[:-1]
    return text


def _bidder_files(folder: Path, org: Organisation, settings: Settings) -> tuple[Path, Path]:
    """The demo bidder's signing key and certificate, (re)issued by the demo CA when absent
    or when the present certificate no longer chains to this instance's demo CA."""
    from bidding.bids.trust import demo_ca, demo_issue_bidder_certificate

    key_path, cert_path = folder / f"{BIDDER}.key", folder / f"{BIDDER}.pem"
    ca_cert, _ca_key = demo_ca(settings)
    if key_path.exists() and cert_path.exists():
        try:
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            cert.verify_directly_issued_by(ca_cert)
            if cert.not_valid_after_utc > now() + timedelta(days=30):
                os.chmod(key_path, 0o600)
                return key_path, cert_path
        except (ValueError, TypeError, InvalidSignature):
            pass
    issued = demo_issue_bidder_certificate(
        org, settings=settings, common_name=_common_name(f"{org.name} 投标专用证书")
    )
    _write_private(key_path, issued.key_pem)
    cert_path.write_bytes(issued.certificate_pem)
    return key_path, cert_path


def _bid_files(folder: Path, section: Section, org: Organisation) -> tuple[Path, Path]:
    """A sample price sheet (开标一览表) for the published section and a bid document
    folder, for trying ``sunbid bid seal`` (written once; left alone afterwards)."""
    sheet, documents = folder / "price_sheet.json", folder / "bid"
    if not sheet.exists():
        data = {
            "type": "sunbid.price-sheet",
            "version": 1,
            "section_id": str(section.id),
            "bidder_credit_code": org.credit_code,
            "bidder_name": org.name,
            "total_price": "31860000.00",
            "currency": "CNY",
            "duration_days": 520,
            "quality": "合格",
        }
        sheet.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", "utf-8")
    if not documents.exists():
        documents.mkdir(parents=True)
        (documents / "技术标.md").write_text(
            "# 施工组织设计\n\n一、工程概况\n二、施工部署与进度计划（520 日历天）\n", "utf-8"
        )
    return sheet, documents


# --------------------------------------------------------------------------- documents


def _cn_date(day: date) -> str:
    return f"{day.year}年{day.month}月{day.day}日"


def _cn_time(value: datetime) -> str:
    local = value.astimezone(SHANGHAI)
    return f"{_cn_date(local.date())}{local.hour}时{local.minute:02d}分"


def clean_tender_text(timeline: dict[str, datetime]) -> str:
    """Section 1's tender documents: lawful and free of restrictive clauses."""
    sale_start = timeline["sale_start"].astimezone(SHANGHAI).date()
    sale_end = timeline["sale_end"].astimezone(SHANGHAI).date()
    deadline = _cn_time(timeline["bid_deadline"])
    objection = _cn_time(timeline["objection_cutoff"])
    return f"""# 第一章 招标公告

## 1. 招标条件
本招标项目日喀则市人民医院门诊楼建设工程已由日喀则市发展和改革委员会批准建设，项目业主为日喀则市城市建设投资有限公司，建设资金来自财政资金，项目已具备招标条件，现对该项目的施工进行公开招标。

## 2. 项目概况与招标范围
2.1 建设地点：日喀则市桑珠孜区。
2.2 建设规模：门诊楼建筑面积 18,600 平方米，地上五层、地下一层，框架结构。
2.3 计划工期：540 日历天。
2.4 招标范围：施工图纸范围内的土建、给排水、暖通、电气及智能化安装工程。
2.5 质量要求：符合国家现行施工质量验收规范合格标准。

## 3. 投标人资格要求
3.1 本次招标要求投标人具备建筑工程施工总承包二级及以上资质，具有有效的安全生产许可证，并在人员、设备、资金等方面具有相应的施工能力。
3.2 投标人拟派项目经理须具备建筑工程专业一级注册建造师执业资格，具备有效的安全生产考核合格证书，且未担任其他在施建设工程项目的项目经理。
3.3 本次招标不接受联合体投标。
3.4 投标人不得存在下列情形之一：被责令停产停业、暂扣或者吊销执照；被暂停或者取消投标资格；近三年内有骗取中标或严重违约的。
3.5 投标人未被列入失信被执行人名单、重大税收违法失信主体名单。
3.6 各类经营主体不论所有制形式、注册地、规模大小，均可平等参与投标。

## 4. 招标文件的获取
4.1 凡有意参加投标者，请于 {_cn_date(sale_start)} 至 {_cn_date(sale_end)}，登录全国公共资源交易平台（西藏自治区·日喀则市）免费下载电子招标文件。
4.2 招标文件免费提供，不收取任何费用。
4.3 投标人使用的CA数字证书由平台兼容的各CA机构颁发，全国互认，投标人可自主选择办理。

## 5. 投标文件的递交
5.1 投标文件递交的截止时间为 {deadline}，投标人应在截止时间前通过交易平台递交加密的电子投标文件。
5.2 逾期送达的投标文件，电子交易平台将予以拒收。
5.3 开标采用网上不见面开标方式，投标人无需到达开标现场，在线参加开标和解密即可。

# 第二章 投标人须知

## 1. 总则
1.1 投标人应当具备承担招标项目的能力，具有良好的商业信誉和健全的财务会计制度。
1.2 与招标人存在利害关系可能影响招标公正性的法人、其他组织或者个人，不得参加投标。
1.3 单位负责人为同一人或者存在控股、管理关系的不同单位，不得参加同一标段投标。

## 2. 招标文件的澄清和修改
2.1 招标人对已发出的招标文件进行必要的澄清或者修改的，应当在投标截止时间至少15日前，以书面形式通知所有获取招标文件的潜在投标人。
2.2 澄清或者修改发出的时间距投标截止时间不足15日的，招标人应当顺延提交投标文件的截止时间。
2.3 潜在投标人对招标文件有异议的，应当在 {objection} 前提出；招标人应当自收到异议之日起3日内作出答复。

## 3. 投标报价
3.1 本项目设最高投标限价，最高投标限价为人民币 3,280.56 万元，投标报价超过最高投标限价的，其投标将被否决。
3.2 投标人应按工程量清单的要求填报价格，投标报价不得低于其个别成本。

## 4. 投标有效期与投标保证金
4.1 投标有效期为投标截止之日起90日。
4.2 投标保证金的金额：人民币 50 万元（不超过项目估算价的2%）。
4.3 投标保证金可以银行转账、银行保函、保证保险或者担保机构保函等形式提交，由投标人自主选择。
4.4 招标人最迟应当在书面合同签订后5日内向中标人和未中标的投标人退还投标保证金及银行同期存款利息。

## 5. 开标与评标
5.1 招标人在投标截止时间的同一时间通过交易平台公开开标，投标文件由开标密钥保管人在线解密。
5.2 评标由依法组建的评标委员会负责，评标委员会由招标人代表1人和从评标专家库中随机抽取的专家4人组成。
5.3 评标委员会按照招标文件规定的评标标准和方法进行评审，不得使用招标文件没有规定的评标标准和方法。
"""


#: Section 2's tender documents: clause 2.1 restricts bidders to locally registered firms.
RESTRICTIVE_TENDER_TEXT = """第一章 招标公告
一、项目概况
本标段为日喀则市人民医院门诊楼室外配套工程施工，包括室外道路、停车场、围墙及室外给排水管网。
二、投标人资格要求
2.1 投标人须为在本市注册的企业，具备市政公用工程施工总承包三级及以上资质。
2.2 投标人应具有良好的商业信誉和健全的财务会计制度。
三、招标文件的获取
3.1 凡有意参加投标者，请登录交易平台免费下载电子招标文件。
"""


# --------------------------------------------------------------------------- timeline


def demo_timeline(at: datetime) -> dict[str, datetime]:
    """A lawful tendering timeline (ZTBF 24, SSTL 16, SSTL 22) issued at ``at``: documents
    on sale for 8 days, objections up to 10 days before the deadline, and the deadline at
    09:30 Shanghai about 25 days ahead, on a weekday."""
    today = at.astimezone(SHANGHAI).date()
    day = today + timedelta(days=DEADLINE_DAYS)
    while day.weekday() >= 5:
        day += timedelta(days=1)
    deadline = datetime.combine(day, DEADLINE_TIME, tzinfo=SHANGHAI)
    sale_end = datetime.combine(today + timedelta(days=7), time(17, 0), tzinfo=SHANGHAI)
    cutoff = datetime.combine(day - timedelta(days=10), time(17, 0), tzinfo=SHANGHAI)
    return {
        "documents_issued_at": at,
        "sale_start": at,
        "sale_end": sale_end.astimezone(at.tzinfo),
        "objection_cutoff": cutoff.astimezone(at.tzinfo),
        "bid_deadline": deadline.astimezone(at.tzinfo),
    }


# --------------------------------------------------------------------------- seeding


def _user(session: Session, username: str) -> User:
    user = session.scalar(select(User).where(User.username == username))
    if user is None:  # seed_demo made them all
        raise RuntimeError(f"demo user {username!r} is missing")
    return user


def _project(
    session: Session, center: TradingCenter, manager: Actor, tenderer_id: uuid.UUID
) -> Project:
    project = session.scalar(
        select(Project).where(Project.name == PROJECT_NAME, Project.center_id == center.id)
    )
    if project is not None:
        return project
    agency = session.get(Organisation, manager.organisation_id)
    assert agency is not None
    return services.register_project(
        manager,
        name=PROJECT_NAME,
        kind=ProjectKind.TENDERING,
        subject=Subject.WORKS,
        tenderer_id=tenderer_id,
        agency_id=agency.id,
        center_id=center.id,
        region_code=HOME_CENTER[1],
        amount=Decimal("42000000.00"),
        funding_source="财政资金（上海市对口援藏资金）",
    )


def _section(
    session: Session,
    project: Project,
    manager: Actor,
    specs: list[CustodianSpec],
    timeline: dict[str, datetime],
    *,
    name: str,
    estimated: str,
    maximum: str,
    deposit: str,
) -> Section:
    section = session.scalar(
        select(Section).where(Section.project_id == project.id, Section.name == name)
    )
    if section is not None:
        return section
    return services.create_section(
        manager,
        project,
        name=name,
        estimated_price=Decimal(estimated),
        maximum_price=Decimal(maximum),
        bid_deposit=Decimal(deposit),
        bid_validity_days=90,
        committee_size=5,
        committee_experts=4,
        custodians=specs,
        custodian_threshold=CUSTODIAN_THRESHOLD,
        timeline=timeline,
    )


def _submit_keys(
    section: Section, actors: dict[str, Actor], keys: dict[str, X25519PrivateKey]
) -> list[str]:
    """Each custodian hands in the public half of its demo key (while still possible).

    Returns warnings for custodians whose stored key is not the one on disk (the key files
    were replaced after the section's ceremony)."""
    warnings = []
    by_user = {c.user_id: c for c in section.custodians}
    editable = section.state in (SectionState.DRAFT, SectionState.UNDER_REVIEW)
    for username, _role in CUSTODIANS:
        actor = actors[username]
        custodian = by_user.get(actor.id)
        if custodian is None:
            continue
        pem = public_key_to_pem(keys[username].public_key()).decode("ascii")
        if custodian.public_key_pem and custodian.public_key_pem.strip() == pem.strip():
            continue
        if custodian.public_key_pem is None and editable and section.opening_ceremony is None:
            services.set_custodian_key(actor, section, pem)
        else:
            warnings.append(
                f"{section.code}: the key file of {username} does not match the key it "
                "submitted; it cannot release its share for this section"
            )
    return warnings


def _upload(manager: Actor, section: Section, text: str, filename: str, content_type: str) -> None:
    if any(d.kind is DocumentKind.TENDER_DOCUMENTS for d in section.documents):
        return
    data = text.encode("utf-8")
    services.upload_document(
        manager,
        section,
        io.BytesIO(data),
        filename=filename,
        content_type=content_type,
        length=len(data),
    )


def seed(session: Session, settings: Settings) -> DemoResult:
    """Seed the whole demo (idempotent); return the logins, ids and private file paths."""
    logins = seed_demo(session)
    home = session.scalar(select(TradingCenter).where(TradingCenter.region_code == HOME_CENTER[1]))
    assert home is not None
    users = {name: _user(session, name) for name in {*(u for u, _ in CUSTODIANS), BIDDER}}
    users["tenderer"] = _user(session, "tenderer")
    actors = {name: actor_for_user(user) for name, user in users.items()}
    manager = actors[MANAGER]
    tenderer_id = users["tenderer"].organisation_id
    assert tenderer_id is not None

    folder = settings.instance_dir / "demo"
    keys: dict[str, X25519PrivateKey] = {}
    key_paths: dict[str, Path] = {}
    for username, _role in CUSTODIANS:
        key_paths[username], keys[username] = _custodian_key(folder / "custodians", username)

    project = _project(session, home, manager, tenderer_id)
    specs = [CustodianSpec(actors[u].id, role) for u, role in CUSTODIANS]
    timeline = demo_timeline(now())
    warnings: list[str] = []

    # Section 1: published, the demo bidder registered.
    first = _section(
        session,
        project,
        manager,
        specs,
        timeline,
        name=PUBLISHED_SECTION,
        estimated="33800000.00",
        maximum="32805600.00",
        deposit="500000.00",
    )
    warnings += _submit_keys(first, actors, keys)
    if first.state is SectionState.DRAFT:
        stored = {name: getattr(first, name) for name in timeline}
        _upload(manager, first, clean_tender_text(stored), "招标文件.md", "text/markdown")
        services.submit_for_review(manager, first)
    if first.state is SectionState.UNDER_REVIEW and not first.open_findings:
        services.prepare_publication(manager, first)
        services.publish_section(manager, first)
    bidder_org = session.get(Organisation, actors[BIDDER].organisation_id)
    assert bidder_org is not None
    if (
        first.state is SectionState.PUBLISHED
        and first.bid_deadline is not None
        and now() < first.bid_deadline
        and services.registration_of(first, bidder_org.id) is None
    ):
        services.register_bidder(actors[BIDDER], first)
        # Once, with the registration: the demo bidder finds it in its 消息中心.
        services.issue_clarification(
            manager, first, text="第三章技术参数第5项“≥64排”更正为“≥128排”，其余不变。"
        )

    # Section 2: under fair-competition review with one finding.
    second = _section(
        session,
        project,
        manager,
        specs,
        timeline,
        name=REVIEW_SECTION,
        estimated="2600000.00",
        maximum="2550000.00",
        deposit="50000.00",
    )
    warnings += _submit_keys(second, actors, keys)
    if second.state is SectionState.DRAFT and second.review_round == 0:
        _upload(manager, second, RESTRICTIVE_TENDER_TEXT, "招标文件.txt", "text/plain")
        services.submit_for_review(manager, second)

    bidder_key, bidder_cert = _bidder_files(folder / "bidder", bidder_org, settings)
    sheet, documents = _bid_files(folder / "bidder", first, bidder_org)
    session.flush()
    assert first.bid_deadline is not None
    return DemoResult(
        logins=logins,
        project_id=project.id,
        published_section_id=first.id,
        review_section_id=second.id,
        bid_deadline=first.bid_deadline,
        custodian_keys=key_paths,
        bidder_key=bidder_key,
        bidder_certificate=bidder_cert,
        bidder_price_sheet=sheet,
        bidder_documents=documents,
        warnings=warnings,
    )


def describe(result: DemoResult) -> list[str]:
    """The lines ``sunbid demo`` prints after seeding."""
    base = f"/projects/{result.project_id}/sections"
    deadline = result.bid_deadline.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
    lines: list[Any] = [
        "Demo tender (演示项目): " + PROJECT_NAME,
        f"  published section (已发布): {base}/{result.published_section_id}"
        f"  bid deadline {deadline} (Asia/Shanghai)",
        f"  section under review (审查中): {base}/{result.review_section_id}",
        "  announcements (招标公告): /announcements   API: /api/v1/announcements",
        "Opening-key custodians' private keys (开标密钥保管人私钥, mode 0600):",
    ]
    lines += [f"  {name:<14} {path}" for name, path in result.custodian_keys.items()]
    if result.bidder_key is not None:
        lines += [
            "Demo bidder's signing key and certificate (投标人数字证书):",
            f"  key  {result.bidder_key}",
            f"  cert {result.bidder_certificate}",
        ]
    if result.bidder_price_sheet is not None:
        lines += [
            "Seal a bid with them (加密投标文件), then submit it with `sunbid bid submit`:",
            "  sunbid bid --api http://127.0.0.1:5000 seal"
            f" {result.bidder_documents} --price-sheet {result.bidder_price_sheet}"
            f" --project {result.project_id} --section {result.published_section_id}"
            f" --cert {result.bidder_certificate} --key {result.bidder_key} -o bid.env",
        ]
    lines += [f"warning: {w}" for w in result.warnings]
    return [str(line) for line in lines]
