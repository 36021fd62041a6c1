"""The verifiable expert draw (专家抽取): commitment, seed, ranking, quotas, replacement."""

from __future__ import annotations

import hashlib
import hmac
import json
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crypto import draw as d
from crypto.draw import DrawRecord, DrawResult, QuotaResult

# The worked example of crypto/PROTOCOLS.md (known-answer test).
SECRET = bytes(range(32))
ENTROPY = bytes.fromhex("5d9a5a5ed04ba3c3a5f86a11a3ec6b8b2b3f2a6e8e4b9f3c1d0e7a2b4c6d8e0f")
POOLS = {
    "A01-main": ["E01", "E02", "E03", "E04", "E05", "E06"],
    "B02-remote": ["E04", "E05", "E07", "E08", "E09"],
}
QUOTAS = {"A01-main": 2, "B02-remote": 2}
RESERVES = {"A01-main": 1, "B02-remote": 1}


def _hkdf_by_hand(ikm: bytes, salt: bytes, info: bytes) -> bytes:
    prk = hmac.new(salt, ikm, hashlib.sha256).digest()
    return hmac.new(prk, info + b"\x01", hashlib.sha256).digest()


def test_worked_example() -> None:
    assert (
        d.commit_secret(SECRET)
        == hashlib.sha256(b"sunbid/draw/commitment/v1\x00" + SECRET).hexdigest()
    )
    assert (
        d.commit_secret(SECRET)
        == "bc9888d3512cdff7e4298086bd4e783ca7d8c26f56f0b1b44313280ba9e35c44"
    )
    seed = d.derive_seed(SECRET, ENTROPY)
    assert seed == _hkdf_by_hand(SECRET, ENTROPY, b"sunbid/draw/seed/v1")
    assert seed.hex() == "f056686b1c187f169087f344ee9f69244730bba010fdc23ae3090a18541f48e9"
    assert d.parameters_digest(POOLS, QUOTAS, RESERVES) == (
        "d521d95f7e02e79d34b3d045b3252de46a439475fc9164047307cc2b412f9c79"
    )
    ranked = d.rank(seed, POOLS["B02-remote"])
    assert [i for i, _ in ranked] == ["E05", "E09", "E08", "E07", "E04"]
    assert ranked[0][1] == hmac.new(seed, b"E05", hashlib.sha256).hexdigest()
    assert ranked[0][1].startswith("1f4eabc1")
    result = d.draw(seed, POOLS, QUOTAS, RESERVES)
    assert result.to_dict() == {
        "A01-main": {"selected": ["E05", "E01"], "reserves": ["E03"], "declined": []},
        # E05 ranks first here too, but A01-main (sorted first) already took it.
        "B02-remote": {"selected": ["E09", "E08"], "reserves": ["E07"], "declined": []},
    }
    r2, rep = d.replace_declined(seed, POOLS, result, "E09")
    assert rep == "E07"  # the reserve, in E09's seat
    assert r2.quotas["B02-remote"] == QuotaResult(("E07", "E08"), (), ("E09",))
    r3, rep = d.replace_declined(seed, POOLS, r2, "E08")
    assert rep == "E04"  # no reserve left: next unused in the pool's ranking
    assert r3.quotas["B02-remote"] == QuotaResult(("E07", "E04"), (), ("E09", "E08"))
    with pytest.raises(d.NotEnoughCandidatesError):
        d.replace_declined(seed, POOLS, r3, "E04")  # E05 is taken by A01-main


def test_commitment() -> None:
    c = d.commit_secret(SECRET)
    d.verify_commitment(SECRET, c)
    with pytest.raises(d.CommitmentMismatchError) as err:
        d.verify_commitment(SECRET[:-1] + b"\x00", c)
    assert err.value.code == "commitment_mismatch"
    assert isinstance(err.value, d.DrawMismatchError)
    with pytest.raises(d.DrawError):
        d.commit_secret(b"short")
    with pytest.raises(d.DrawError):
        d.derive_seed(SECRET, b"")
    assert len(d.new_draw_secret()) == 32


def test_rank_is_order_independent_and_validates() -> None:
    seed = d.derive_seed(SECRET, ENTROPY)
    ids = [f"专家-{i}" for i in range(50)]
    assert d.rank(seed, ids) == d.rank(seed, list(reversed(ids)))
    assert d.rank(d.derive_seed(SECRET, b"other"), ids) != d.rank(seed, ids)
    with pytest.raises(d.DrawError):
        d.rank(seed, ["a", "a"])
    with pytest.raises(d.DrawError):
        d.rank(seed, [""])
    with pytest.raises(d.DrawError):
        d.rank(b"short", ["a"])


def test_parameter_refusals() -> None:
    seed = d.derive_seed(SECRET, ENTROPY)
    with pytest.raises(d.NotEnoughCandidatesError) as err:
        d.draw(seed, {"A": ["x", "y"]}, {"A": 3})
    assert err.value.details == {"quota": "A", "needed": 3, "available": 2}
    # Overlap counts: B can only use y once A has taken x... or the other way round.
    with pytest.raises(d.NotEnoughCandidatesError):
        d.draw(seed, {"A": ["x", "y"], "B": ["x", "y"]}, {"A": 1, "B": 2})
    bad = [
        ({"A": ["x"]}, {"B": 1}, None),
        ({"A": ["x"], "B": ["y"]}, {"A": 1}, None),
        ({"A": ["x"]}, {"A": -1}, None),
        ({"A": ["x"]}, {"A": True}, None),
        ({"A": ["x"]}, {"A": 1}, {"C": 1}),
        ({"A": ["x", "x"]}, {"A": 1}, None),
    ]
    for pools, quotas, reserves in bad:
        with pytest.raises(d.DrawError):
            d.draw(seed, pools, quotas, reserves)  # type: ignore[arg-type]
    # Reserves may come out short.
    r = d.draw(seed, {"A": ["x", "y"]}, {"A": 1}, {"A": 5})
    assert len(r.quotas["A"].reserves) == 1


pool_ids = st.lists(st.sampled_from([f"E{i:02d}" for i in range(30)]), unique=True, max_size=20)


@settings(max_examples=60, deadline=None)
@given(
    st.binary(min_size=32, max_size=32),
    st.dictionaries(st.sampled_from(["A", "B", "C", "中"]), pool_ids, min_size=1),
    st.data(),
)
def test_draw_properties(seed: bytes, pools: dict[str, list[str]], data: st.DataObject) -> None:
    quotas = {k: data.draw(st.integers(0, 3)) for k in pools}
    reserves = {k: data.draw(st.integers(0, 3)) for k in pools}
    try:
        result = d.draw(seed, pools, quotas, reserves)
    except d.NotEnoughCandidatesError:
        return
    everyone = [e for q in result.quotas.values() for e in (*q.selected, *q.reserves)]
    assert len(everyone) == len(set(everyone)), "nobody is picked twice"
    for key, q in result.quotas.items():
        assert len(q.selected) == quotas[key]
        assert set(q.selected) | set(q.reserves) <= set(pools[key])
        ranking = [i for i, _ in d.rank(seed, pools[key])]
        positions = [ranking.index(e) for e in (*q.selected, *q.reserves)]
        assert positions == sorted(positions), "taken in rank order"
    shuffled = {k: list(reversed(v)) for k, v in reversed(list(pools.items()))}
    assert d.draw(seed, shuffled, quotas, reserves) == result


@settings(max_examples=40, deadline=None)
@given(st.binary(min_size=32, max_size=32), st.integers(1, 4))
def test_replacements_keep_seats_filled(seed: bytes, declines: int) -> None:
    # B has 10 experts: A may take 3 of them, B uses 3 and at most 4 replacements.
    pools = {"A": [f"E{i}" for i in range(10)], "B": [f"E{i}" for i in range(5, 15)]}
    result = d.draw(seed, pools, {"A": 2, "B": 2}, {"A": 1, "B": 1})
    for _ in range(declines):
        victim = result.quotas["B"].selected[0]
        result, replacement = d.replace_declined(seed, pools, result, victim)
        assert replacement is not None and replacement in pools["B"]
        everyone = [
            e for q in result.quotas.values() for e in (*q.selected, *q.reserves, *q.declined)
        ]
        assert len(everyone) == len(set(everyone))
        assert len(result.quotas["B"].selected) == 2


def test_reserve_declining_and_unknown_expert() -> None:
    seed = d.derive_seed(SECRET, ENTROPY)
    result = d.draw(seed, POOLS, QUOTAS, RESERVES)
    r2, rep = d.replace_declined(seed, POOLS, result, "E03")  # a reserve of A01-main
    assert rep is None and r2.quotas["A01-main"] == QuotaResult(("E05", "E01"), (), ("E03",))
    with pytest.raises(d.DrawError):
        d.replace_declined(seed, POOLS, result, "E02")


def _record(**kw: object) -> DrawRecord:
    return DrawRecord.create(
        draw_id="DRAW-2025-0001",
        secret=SECRET,
        public_entropy=ENTROPY,
        pools=POOLS,
        quotas=QUOTAS,
        reserves=RESERVES,
        entropy_source="sth tree_size=1024",
        **kw,  # type: ignore[arg-type]
    )


def test_record_roundtrip_and_verify() -> None:
    record = _record(declined=["E09", "E08"])
    assert record.final is not None and record.final.selected() == ["E05", "E01", "E07", "E04"]
    data = json.loads(json.dumps(record.to_dict()))
    loaded = DrawRecord.from_dict(data)
    assert loaded == record
    d.verify_draw(loaded)
    d.verify_draw(_record())


def test_verify_names_first_difference() -> None:
    record = _record(declined=["E09"])
    data = record.to_dict()
    data["result"]["B02-remote"]["selected"] = ["E09", "E07"]
    with pytest.raises(d.DrawMismatchError) as err:
        d.verify_draw(DrawRecord.from_dict(data))
    assert err.value.code == "draw_mismatch"
    assert err.value.details == {
        "where": "result['B02-remote'].selected[1]",
        "expected": "E08",
        "recorded": "E07",
    }

    data = record.to_dict()
    data["final"]["B02-remote"]["reserves"] = ["E04"]
    with pytest.raises(d.DrawMismatchError) as err:
        d.verify_draw(DrawRecord.from_dict(data))
    assert err.value.details["where"] == "final['B02-remote'].reserves[0]"

    with pytest.raises(d.CommitmentMismatchError):
        d.verify_draw(replace(record, secret=bytes(32)))
    with pytest.raises(d.DrawMismatchError) as err:
        d.verify_draw(replace(record, pools={**record.pools, "A01-main": ("E01", "E02")}))
    assert err.value.details["where"] == "parameters_digest"
    # A different entropy gives a different draw (digest still matches).
    with pytest.raises(d.DrawMismatchError) as err:
        d.verify_draw(replace(record, public_entropy=b"another tree head"))
    assert err.value.details["where"].startswith("result")
    with pytest.raises(d.DrawMismatchError) as err:
        d.verify_draw(replace(record, declined=("E02",)))
    assert err.value.details["where"] == "declined"
    with pytest.raises(d.DrawMismatchError):
        d.verify_draw(replace(record, result=DrawResult({})))


def test_record_format_refusals() -> None:
    good = _record().to_dict()
    for bad in [
        {**good, "version": 2},
        {**good, "secret": "zz"},
        {k: v for k, v in good.items() if k != "pools"},
    ]:
        with pytest.raises(d.DrawError):
            DrawRecord.from_dict(bad)
