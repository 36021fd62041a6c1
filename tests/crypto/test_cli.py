"""``sunbid-crypto`` end to end (click's CliRunner, in process), exit codes included.

Acceptance scenario: a 4 MiB bid sealed to an opening key (3-of-5 ceremony) and to the
bidder's certificate; opened with the bidder's key, from 3 of 5 custodian shares, refused
with 2 shares (exit 3), and refused when one byte in the middle is flipped (exit 2, the
failing segment named, no output left behind).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from crypto import pki
from crypto.canonical import format_utc
from crypto.cli import cli
from crypto.envelope import read_header
from crypto.receipt import issue_receipt
from crypto.signing import BidManifest, SignedDocument

SIZE = 4 * 1024 * 1024 + 4321


def run(args: Sequence[str], expect: int = 0) -> Result:
    result = CliRunner().invoke(cli, [str(a) for a in args], catch_exceptions=False)
    assert result.exit_code == expect, (result.exit_code, result.output, result.stderr)
    return result


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, test_pki: Any) -> dict[str, Any]:
    """Five custodians, a 3-of-5 ceremony, a bidder certificate, a sealed 4 MiB bid."""
    d = tmp_path_factory.mktemp("cli")
    for i in range(1, 6):
        run(["keygen", "-o", d / f"custodian{i}"])
    custodians = [x for i in range(1, 6) for x in ("--custodian", d / f"custodian{i}.pub")]
    split = run(
        [
            "split",
            "-k",
            3,
            "-n",
            5,
            *custodians,
            "--ceremony-id",
            "SEC-2025-07",
            "--out-dir",
            d / "ceremony",
        ]
    )
    fingerprint = json.loads(split.stdout)["fingerprint"]
    bidder = test_pki.issue("bidder", "p256")
    (d / "bidder.pem").write_bytes(pki.certificate_to_pem(bidder.certificate))
    (d / "bidder.key").write_bytes(pki.private_key_to_pem(bidder.key))
    bid = os.urandom(SIZE)
    (d / "bid.bin").write_bytes(bid)
    sealed = run(
        [
            "seal",
            d / "bid.bin",
            "-o",
            d / "bid.env",
            "--to",
            d / "ceremony" / "opening.pub",
            "--to",
            d / "bidder.pem",
            "--context",
            "section_id=SEC-2025-07",
            "--context",
            f"opening_key_fingerprint={fingerprint}",
            "--result",
            d / "seal.json",
        ]
    )
    data = bytearray((d / "bid.env").read_bytes())
    data[len(data) // 2] ^= 0x01  # one byte in the middle: inside segment 2 of 5
    (d / "flipped.env").write_bytes(bytes(data))
    return {
        "dir": d,
        "bid": bid,
        "bidder": bidder,
        "fingerprint": fingerprint,
        "seal": json.loads(sealed.stdout),
    }


def test_seal_prints_manifest_fields(world: dict[str, Any]) -> None:
    d, info = world["dir"], world["seal"]
    assert info["ciphertext_size"] == (d / "bid.env").stat().st_size
    assert info["segment_size"] == 1024 * 1024
    assert info["header"]["context"]["opening_key_fingerprint"] == world["fingerprint"]
    assert len(info["header"]["recipients"]) == 2
    assert json.loads((d / "seal.json").read_text()) == info


def test_open_with_bidder_key(world: dict[str, Any]) -> None:
    d = world["dir"]
    result = run(
        [
            "open",
            d / "bid.env",
            "-o",
            d / "by-bidder.bin",
            "--key",
            d / "bidder.key",
            "--expect",
            "section_id=SEC-2025-07",
            "--expect-sha256",
            world["seal"]["ciphertext_sha256"],
        ]
    )
    assert (d / "by-bidder.bin").read_bytes() == world["bid"]
    assert json.loads(result.stdout)["stanza"] == 1


def test_open_from_three_of_five_custodian_shares(world: dict[str, Any]) -> None:
    d = world["dir"]
    keys = [x for i in (2, 4, 5) for x in ("--custodian-key", d / f"custodian{i}.key")]
    result = run(
        [
            "combine",
            "--ceremony",
            d / "ceremony" / "ceremony.json",
            *keys,
            "--open",
            d / "bid.env",
            "-o",
            d / "by-quorum.bin",
            "--expect-commitment",
            world["seal"]["key_commitment"],
        ]
    )
    assert (d / "by-quorum.bin").read_bytes() == world["bid"]
    assert "opening key restored (3 of 5)" in result.stderr


def test_two_shares_are_not_enough(world: dict[str, Any]) -> None:
    d = world["dir"]
    keys = [x for i in (1, 3) for x in ("--custodian-key", d / f"custodian{i}.key")]
    result = run(
        [
            "combine",
            "--ceremony",
            d / "ceremony" / "ceremony.json",
            *keys,
            "--open",
            d / "bid.env",
            "-o",
            d / "two.bin",
        ],
        expect=3,
    )
    assert "error[not_enough_shares]: need 3 valid shares, got 2" in result.stderr
    assert not (d / "two.bin").exists()


def test_decrypted_share_files_and_restored_key(world: dict[str, Any]) -> None:
    d = world["dir"]
    ceremony = d / "ceremony" / "ceremony.json"
    for i in (1, 2, 3):
        run(
            [
                "decrypt-share",
                "--ceremony",
                ceremony,
                "--key",
                d / f"custodian{i}.key",
                "-o",
                d / f"share{i}.json",
            ]
        )
    assert oct((d / "share1.json").stat().st_mode & 0o777) == "0o600"
    shares = [x for i in (1, 2, 3) for x in ("--share", d / f"share{i}.json")]
    run(["combine", "--ceremony", ceremony, *shares, "--out-key", d / "opening.key"])
    run(["open", d / "bid.env", "-o", d / "by-opening-key.bin", "--key", d / "opening.key"])
    assert (d / "by-opening-key.bin").read_bytes() == world["bid"]


def test_flipped_byte_in_the_middle_names_the_segment(world: dict[str, Any]) -> None:
    d = world["dir"]
    result = run(
        ["open", d / "flipped.env", "-o", d / "flipped.bin", "--key", d / "bidder.key"], expect=2
    )
    assert "error[envelope_segment_auth]: segment 2 failed authentication" in result.stderr
    assert not (d / "flipped.bin").exists()
    assert not list(d.glob(".flipped.bin.*"))  # the temporary file is gone too


def test_unwrap_then_open_with_data_key(world: dict[str, Any]) -> None:
    d = world["dir"]
    run(["unwrap", d / "bid.env", "--key", d / "bidder.key", "-o", d / "dk.hex"])
    assert len((d / "dk.hex").read_text().strip()) == 64
    run(["open", d / "bid.env", "-o", d / "by-dk.bin", "--data-key", d / "dk.hex"])
    assert (d / "by-dk.bin").read_bytes() == world["bid"]
    printed = run(["unwrap", d / "bid.env", "--key", d / "bidder.key"]).stdout
    assert printed == (d / "dk.hex").read_text()


def test_key_that_is_not_a_recipient_exits_4(world: dict[str, Any]) -> None:
    d = world["dir"]
    result = run(
        ["open", d / "bid.env", "-o", d / "x.bin", "--key", d / "custodian1.key"], expect=4
    )
    assert "error[envelope_no_matching_recipient]" in result.stderr


def test_usage_errors_exit_1(world: dict[str, Any]) -> None:
    d = world["dir"]
    run(["open", d / "bid.env", "-o", d / "x.bin"], expect=1)  # neither --key nor --data-key
    run(["open", d / "missing.env", "-o", d / "x.bin", "--key", d / "bidder.key"], expect=1)
    run(["seal", d / "bid.bin", "-o", d / "x.env", "--to", d / "bid.bin"], expect=1)
    run(
        [
            "seal",
            d / "bid.bin",
            "-o",
            d / "x.env",
            "--to",
            d / "bidder.pem",
            "--context",
            "no-equals-sign",
        ],
        expect=1,
    )
    run(["no-such-command"], expect=1)
    help_text = run(["--help"]).stdout
    assert "3  not enough valid shares" in help_text


def test_verify_with_signed_manifest(world: dict[str, Any], test_pki: Any, now: Any) -> None:
    d, info, bidder = world["dir"], world["seal"], world["bidder"]
    manifest = BidManifest(
        section_id="SEC-2025-07",
        bidder_id=pki.certificate_org_code(bidder.certificate) or "",
        ciphertext_sha256=info["ciphertext_sha256"],
        ciphertext_size=info["ciphertext_size"],
        data_key_commitment=info["key_commitment"],
        segment_size=info["segment_size"],
        opening_key_fingerprint=world["fingerprint"],
        sealed_at=format_utc(now),
    )
    signed = SignedDocument.create(
        bidder.key,
        manifest.to_document(),
        certificate=bidder.certificate,
        intermediates=bidder.intermediates,
    )
    (d / "manifest.json").write_bytes(signed.to_json())
    (d / "root.pem").write_bytes(pki.certificate_to_pem(test_pki.root))
    at = format_utc(now + timedelta(hours=1))
    ok = run(
        [
            "verify",
            d / "bid.env",
            "--manifest",
            d / "manifest.json",
            "--trust-root",
            d / "root.pem",
            "--at",
            at,
        ]
    )
    report = json.loads(ok.stdout)
    assert report["ok"] and report["manifest"]["chain_checked"]
    # The same manifest does not describe a tampered envelope.
    bad = run(
        [
            "verify",
            d / "flipped.env",
            "--manifest",
            d / "manifest.json",
            "--trust-root",
            d / "root.pem",
            "--at",
            at,
        ],
        expect=2,
    )
    assert "error[envelope_hash_mismatch]" in bad.stderr
    # A truncated envelope is refused structurally even without a manifest.
    (d / "short.env").write_bytes((d / "bid.env").read_bytes()[:-100])
    short = run(["verify", d / "short.env"], expect=2)
    assert "error[envelope_truncated]" in short.stderr


def test_verify_receipt(world: dict[str, Any], platform_identity: Any, now: Any) -> None:
    d, info = world["dir"], world["seal"]
    rec = issue_receipt(
        platform_identity.key,
        {
            "bid_id": "bid-1",
            "section_id": "SEC-2025-07",
            "bidder_id": pki.certificate_org_code(world["bidder"].certificate),
            "ciphertext_sha256": info["ciphertext_sha256"],
            "server_time": format_utc(now),
            "log_index": 3,
        },
    )
    (d / "receipt.json").write_bytes(rec.to_json())
    (d / "platform.pem").write_bytes(pki.certificate_to_pem(platform_identity.certificate))
    run(
        [
            "verify-receipt",
            d / "receipt.json",
            "--platform-cert",
            d / "platform.pem",
            "--envelope",
            d / "bid.env",
        ]
    )
    other = run(
        ["verify-receipt", d / "receipt.json", "--platform-cert", d / "bidder.pem"], expect=2
    )
    assert "error[" in other.stderr
    run(
        [
            "verify-receipt",
            d / "receipt.json",
            "--platform-cert",
            d / "platform.pem",
            "--envelope",
            d / "flipped.env",
        ],
        expect=2,
    )


def test_keygen_with_passphrase(tmp_path: Path) -> None:
    (tmp_path / "pw").write_text("correct horse\n")
    run(["keygen", "-o", tmp_path / "k", "--passphrase-file", tmp_path / "pw"])
    assert b"ENCRYPTED" in (tmp_path / "k.key").read_bytes()
    assert oct((tmp_path / "k.key").stat().st_mode & 0o777) == "0o600"
    (tmp_path / "bid").write_bytes(b"small bid")
    run(
        [
            "seal",
            tmp_path / "bid",
            "-o",
            tmp_path / "bid.env",
            "--to",
            tmp_path / "k.pub",
            "--segment-size",
            64,
        ]
    )
    assert read_header((tmp_path / "bid.env").open("rb")).segment_size == 64
    (tmp_path / "bad").write_text("wrong\n")
    run(
        [
            "open",
            tmp_path / "bid.env",
            "-o",
            tmp_path / "out",
            "--key",
            tmp_path / "k.key",
            "--passphrase-file",
            tmp_path / "bad",
        ],
        expect=1,
    )
    run(
        [
            "open",
            tmp_path / "bid.env",
            "-o",
            tmp_path / "out",
            "--key",
            tmp_path / "k.key",
            "--passphrase-file",
            tmp_path / "pw",
        ]
    )
    assert (tmp_path / "out").read_bytes() == b"small bid"


def test_console_entry_point_runs_as_module(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "crypto.cli", "open", tmp_path / "none", "-o", tmp_path / "x"],
        capture_output=True,
        text=True,
        cwd=Path(__file__).resolve().parents[2],
        check=False,
    )
    assert proc.returncode == 1
    assert "does not exist" in proc.stderr
