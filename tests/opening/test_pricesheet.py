"""The price sheet read while the bid is decrypted (head/tail capture, no temporary file),
its fallback to a full copy, and the per-process opening-key cache."""

from __future__ import annotations

import contextlib
import functools
import io
import zipfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bidding.bids import package
from bidding.core.clock import Clock
from bidding.core.errors import DomainError
from bidding.opening import services, vault
from bidding.opening.models import OpeningSession, ResultStatus
from bidding.opening.pricesheet import PackageCapture, PlaintextGap, plaintext_size_of
from crypto.canonical import canonical_json
from crypto.envelope import ciphertext_size_for
from crypto.threshold import combine_shares
from tests.opening.factories import (
    close,
    commit,
    opening_with_bids,
    price_of,
    price_sheet,
    share_json,
    store_bid,
)
from tests.projects.factories import World, published_section

SECTION = "5b0c2f52-6f1e-4a51-9d43-0c8a7c6d2e11"
CREDIT = "91110000600037341L"


def _sheet() -> dict[str, Any]:
    return {
        "type": "sunbid.price-sheet",
        "version": 1,
        "section_id": SECTION,
        "bidder_credit_code": CREDIT,
        "bidder_name": "上海浦江建设工程有限公司",
        "total_price": "4650000.00",
        "currency": "CNY",
        "duration_days": 180,
    }


def _capture(data: bytes, chunk: int, **kwargs: Any) -> PackageCapture:
    capture = PackageCapture(**kwargs)
    for i in range(0, len(data), chunk):
        capture.write(memoryview(data)[i : i + chunk])
    return capture


def _read(source: Any) -> Any:
    return package.read_price_sheet(source, section_id=SECTION, bidder_credit_code=CREDIT)


@pytest.mark.parametrize("segment", [1, 7, 1024, 65536])
@pytest.mark.parametrize("size", [0, 1, 1023, 1024, 1025, 5 * 1024 + 3])
def test_plaintext_size_inverts_the_ciphertext_size(segment: int, size: int) -> None:
    assert plaintext_size_of(ciphertext_size_for(size, 200, segment), 200, segment) == size


def test_plaintext_size_of_an_impossible_length_is_none() -> None:
    assert plaintext_size_of(200 + 10, 200, 1024) is None  # shorter than one record
    assert plaintext_size_of(100, 200, 1024) is None


@pytest.mark.parametrize("expected", [True, False])
@pytest.mark.parametrize("chunk", [1, 333, 4096, 1 << 20])
def test_capture_reads_the_sheet_without_the_middle(chunk: int, expected: bool) -> None:
    data = package.package_bytes(_sheet(), {"技术标.pdf": b"x" * 300_000, "b.pdf": b"y" * 9})
    capture = _capture(
        data, chunk, head=4096, tail=4096, expected_size=len(data) if expected else None
    )
    assert capture.size == len(data)
    sheet = _read(capture.reader())
    assert not capture.missed
    assert sheet == _read(io.BytesIO(data))
    assert sheet.total_price == Decimal("4650000.00")


def test_a_wrong_size_expectation_costs_coverage_not_correctness() -> None:
    data = package.package_bytes(_sheet(), {"a.pdf": b"x" * 100_000})
    for wrong in (len(data) - 5000, len(data) + 5000, 10 * len(data)):
        capture = _capture(data, 1000, head=4096, tail=4096, expected_size=wrong)
        reader = capture.reader()
        try:
            sheet = _read(reader)
        except PlaintextGap:
            assert capture.missed
        else:
            assert sheet == _read(io.BytesIO(data)) and not capture.missed
        # whatever is served is the real bytes at the real offsets
        reader.seek(-100, io.SEEK_END)
        with contextlib.suppress(PlaintextGap):
            assert reader.read() == data[-100:]


def test_a_read_in_the_gap_is_reported_not_guessed() -> None:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:  # price sheet between large documents
        zf.writestr("documents/a.pdf", b"x" * 100_000)
        zf.writestr(package.PRICE_SHEET_NAME, canonical_json(_sheet()))
        zf.writestr("documents/b.pdf", b"y" * 100_000)
    capture = _capture(buffer.getvalue(), 4096, head=4096, tail=1024)
    with pytest.raises(PlaintextGap):
        _read(capture.reader())
    assert capture.missed


def test_small_packages_are_kept_whole() -> None:
    data = package.package_bytes(_sheet(), {"a.pdf": b"x" * 1000})
    capture = _capture(data, 100)
    reader = capture.reader()
    assert reader.read() == data and not capture.missed


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"this is not a zip file at all", "bid_package_invalid"),
        (b"", "bid_package_invalid"),
        (None, "price_sheet_missing"),
    ],
)
def test_refusals_are_those_of_the_file_reader(data: bytes | None, code: str) -> None:
    if data is None:
        buffer = io.BytesIO()
        with zipfile.ZipFile(buffer, "w") as zf:
            zf.writestr("documents/a.pdf", b"%PDF")
        data = buffer.getvalue()
    with pytest.raises(DomainError) as from_file:
        _read(io.BytesIO(data))
    capture = _capture(data, 7, head=64, tail=64)
    with pytest.raises(DomainError) as from_capture:
        _read(capture.reader())
    assert str(from_file.value.code) == str(from_capture.value.code) == code
    assert not capture.missed


# --------------------------------------------------------------------------- services


def _quorum(world: World, section: Any) -> None:
    for user in (world.staff, world.supervisor):
        services.release_share(user, section, share_json(world, section, user.id))
        commit()


def test_a_package_with_the_sheet_in_the_middle_is_read_from_a_full_copy(
    world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    section = published_section(world)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        zf.writestr("documents/a.pdf", b"x" * 50_000)
        zf.writestr(
            package.PRICE_SHEET_NAME,
            canonical_json(price_sheet(section, world.bidders[0], "4123456.00")),
        )
        zf.writestr("documents/b.pdf", b"y" * 50_000)
    store_bid(world, section, 0, buffer.getvalue())
    store_bid(world, section, 1)
    store_bid(world, section, 2)
    close(section, frozen_clock)
    session = services.start_opening(None, section)
    assert session is not None
    monkeypatch.setattr(
        services, "PackageCapture", functools.partial(PackageCapture, head=4096, tail=4096)
    )
    tmp_root = tmp_path / "opening-tmp"
    tmp_root.mkdir()
    monkeypatch.setattr(services, "_tmp_root", lambda: tmp_root)
    full_copies: list[object] = []
    from_file = services._sheet_from_file

    def counting(bid: Any, *args: Any) -> Any:
        full_copies.append(bid.id)
        return from_file(bid, *args)

    monkeypatch.setattr(services, "_sheet_from_file", counting)
    _quorum(world, section)
    assert len(full_copies) == 1  # only the unusual package needed it
    results = services._session().get(OpeningSession, session.id).results  # type: ignore[union-attr]
    assert [r.status for r in results] == [ResultStatus.OPENED] * 3
    assert price_of(results[0]) == Decimal("4123456.00")
    assert list(tmp_root.iterdir()) == []  # the full copy is gone


def test_the_opening_key_is_rebuilt_once_per_process_and_dropped_at_completion(
    world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch
) -> None:
    rebuilt: list[int] = []

    def counting(*args: Any) -> Any:
        rebuilt.append(1)
        return combine_shares(*args)

    monkeypatch.setattr(services, "combine_shares", counting)
    section, _, session = opening_with_bids(world, frozen_clock, n=4)
    session_id = session.id
    _quorum(world, section)
    assert len(rebuilt) == 1
    assert not [k for k in vault._opening_keys if k[0] == session_id]
    results = services._session().get(OpeningSession, session_id).results  # type: ignore[union-attr]
    assert [r.status for r in results] == [ResultStatus.OPENED] * 4


def test_the_key_cache_can_be_switched_off(
    world: World, frozen_clock: Clock, monkeypatch: pytest.MonkeyPatch, app: Any
) -> None:
    rebuilt: list[int] = []

    def counting(*args: Any) -> Any:
        rebuilt.append(1)
        return combine_shares(*args)

    monkeypatch.setattr(services, "combine_shares", counting)
    monkeypatch.setattr(vault, "key_cache_seconds", lambda settings=None: 0.0)
    section, _, _session = opening_with_bids(world, frozen_clock, n=3)
    _quorum(world, section)
    assert len(rebuilt) == 3
    assert not vault._opening_keys


def test_cached_opening_keys_expire() -> None:
    import uuid

    calls: list[int] = []

    def rebuild() -> Any:
        calls.append(1)
        from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey

        return X25519PrivateKey.generate()

    sid = uuid.uuid4()
    first = vault.opening_key(sid, 2, rebuild, ttl=60)
    assert vault.opening_key(sid, 2, rebuild, ttl=60) is first
    assert vault.opening_key(sid, 3, rebuild, ttl=60) is not first  # another share set
    vault.opening_key(sid, 4, rebuild, ttl=-1)  # expires at once
    vault.opening_key(sid, 4, rebuild, ttl=-1)
    assert len(calls) == 4
    for _ in range(10):  # bounded
        vault.opening_key(uuid.uuid4(), 2, rebuild, ttl=60)
    assert len(vault._opening_keys) <= vault._OPENING_KEYS_MAX
    vault.forget_opening_key()
    assert not vault._opening_keys


def test_the_head_keeps_just_the_first_entry_when_its_header_says_how_long() -> None:
    data = package.package_bytes(_sheet(), {"技术标.pdf": b"x" * 300_000})
    capture = _capture(
        data, 65536, head=200_000, tail=4096, expected_size=len(data),
        first_entry=package.PRICE_SHEET_NAME,
    )  # fmt: skip
    assert len(capture._head) < 8192  # the sheet's entry and a little, not 200 000 bytes
    assert _read(capture.reader()) == _read(io.BytesIO(data)) and not capture.missed
    # another first entry, or a first write too short to tell: the full head is kept
    other = _capture(data, 65536, head=200_000, tail=4096, first_entry="documents/a.pdf")
    assert len(other._head) == 200_000
    short = _capture(data, 7, head=200_000, tail=4096, first_entry=package.PRICE_SHEET_NAME)
    assert len(short._head) == 200_000
    assert _read(other.reader()) == _read(short.reader()) == _read(io.BytesIO(data))
