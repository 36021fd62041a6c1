"""The deadline-rush benchmark (``tests/bench/bench_deadline_rush.py``) runs end to end at a
tiny size — PostgreSQL, the moto S3 server, gunicorn, bidder client processes — and its
own checks find no lost or duplicated bid. Correctness only: no timing is asserted."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = [pytest.mark.integration, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "tests" / "bench" / "bench_deadline_rush.py"


@pytest.mark.parametrize("mode", ["client", "single", "multipart"])
def test_deadline_rush_tiny(postgres_admin_url: str, s3_server: str, mode: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SUNBID_", "BENCH_"))}
    env.update(
        SUNBID_TEST_PG_URL=postgres_admin_url,
        BENCH_BIDDERS="4",
        BENCH_MB="1",
        BENCH_CONCURRENCY="4",
        BENCH_PROCS="2",
        BENCH_WORKERS="1",
        BENCH_UPLOAD=mode,
    )
    run = subprocess.run(
        [sys.executable, str(BENCH)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    out = run.stdout + run.stderr
    assert run.returncode == 0, out[-4000:]
    assert "lost / duplicated (checked)                  0 / 0" in out, out[-4000:]
    assert "zero lost, zero duplicated: 4 current bids" in out, out[-4000:]
