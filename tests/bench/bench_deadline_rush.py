"""Deadline rush benchmark (not a pytest test): N bidders each commit an M MB sealed bid
concurrently through gunicorn and the S3 server just before the deadline, against raw
presigned PUTs of the same bytes to the same S3 server in the same run.

Run (defaults: 200 bidders × 20 MiB, 32 concurrent clients)::

    .venv/bin/python tests/bench/bench_deadline_rush.py
    BENCH_BIDDERS=6 BENCH_MB=1 BENCH_CONCURRENCY=3 \
        .venv/bin/python tests/bench/bench_deadline_rush.py

What runs (nothing mocked):

* PostgreSQL: a fresh database on the server of ``SUNBID_TEST_PG_URL`` (default
  ``postgres@127.0.0.1:5432``), migrated with ``upgrade_database``, dropped at the end;
* the moto S3 server as a subprocess (``tests.fixtures.s3``);
* gunicorn (``-c deploy/gunicorn.conf.py``, gthread) with ``SUNBID_*`` pointing at both;
* the bidders: ``BENCH_CONCURRENCY`` client threads spread over ``BENCH_PROCS`` processes
  (one Python process saturates its own core), each bidder running the real bidder
  client (``bidding.bids.client.submit_bid`` over ``urllib3``): the client streams
  envelopes up to 64 MiB through the API and commits them in the same request
  (``PUT …/bids/submit/{key}`` with an ``Idempotency-Key``), sends one presigned PUT
  straight to S3 up to 512 MiB and presigned multipart above that, each followed by the
  commit (``POST …/bids``) — so 20 MiB bids go by the one-request submit, unless
  ``BENCH_UPLOAD=single`` or ``multipart``. A streamed envelope is checked (structure,
  hash) on its way to S3 (one streamed PUT, its last byte sent only once the checks
  passed) and the commit compares the manifest with those findings; a single-PUT or
  multipart upload is streamed back from S3 at the commit.

Set-up (not timed): a center, tenderer, agency, one published section whose deadline is
``BENCH_DEADLINE_MIN`` minutes ahead (real clock), N bidder organisations with their
representatives, API tokens, demo-CA certificates and registrations (报名); N distinct
envelopes sealed from one plaintext package (each its own data key, sealed to the
section's opening key and the bidder's certificate) with signed manifests, on disk
(``BENCH_DIR``, default the system temp dir). The client's state file is pre-seeded with
the envelope's size and SHA-256 (known from sealing), so the timed flow does not re-hash.

Warm-up (not timed): ``BENCH_WARMUP`` passes (default 2, 0 to skip) of the baseline's
PUTs, each deleted after. A fresh S3 server process needs two passes before its cost per
PUT settles (moto's CPU for the same 200 PUTs, one run: 50.6, 35.5, then 29.0 in
baseline 1, 28.8 in the rush, 28.9 in baseline 2); without them baseline 1 measures the
server's warm-up rather than the PUT and the ratio reads 0.05–0.1 too high.

Timed, with the same client concurrency:

1. **baseline** — presigned PUT of every envelope straight to S3 (same bytes, same
   ``urllib3`` transport, same file-body streaming); run before *and* after the rush. The
   verdict uses their mean: moto's CPU per PUT varies ±20 % between identical passes
   (70–111 ms per 21 MB PUT in one isolated series), and it has more often been slower
   after the rush than before; the ratio to the faster of the two is shown too (stricter,
   but biased: the faster of two noisy passes);
2. **rush** — the bidder client's whole flow for every bidder. Reported: accepted bids/s,
   MB/s (envelope bytes ÷ wall time), p50/p99 latency of the commit call and of the whole
   flow, client retries (a network error makes the client re-run ``submit``, which resumes
   and retries the commit with the same key, as a bidder would).

Then the check — zero lost or duplicated bids: every bidder has exactly one bid, current,
committed, with the envelope's size and SHA-256; exactly one upload row per bidder, in
state ``committed``; the S3 keys under ``bids/`` are exactly the bids' keys (no orphans),
no multipart upload is left open, each object has the right size and (streamed back and
hashed, ``BENCH_VERIFY_HASH=0`` to skip) SHA-256; every receipt verifies with the platform
key and names that bid and hash; one ``bid.committed`` audit event per bidder. Exit code
1 if any check fails.

Where the commit time goes: gunicorn loads a config that wraps a few bids services in each
worker with timers (``_inspect`` = the stream-back pass of multipart uploads,
``_complete_multipart``, ``_verify_signature``, the section-lock wait,
``upload_bid_stream`` and ``commit_bid``); the table shows their totals and percentiles.
The wrappers only time; behaviour is the platform's own.

Environment knobs: ``BENCH_BIDDERS`` (200), ``BENCH_MB`` (20, MiB of plaintext; MB/s are
10⁶ bytes of envelope per second), ``BENCH_CONCURRENCY`` (32), ``BENCH_PROCS`` (4 client
processes), ``BENCH_WORKERS`` (2 gunicorn workers) and ``BENCH_THREADS`` (threads per
worker, default = concurrency), ``BENCH_UPLOAD`` (``client``: the client's own choice by
its 64 MiB threshold; ``stream``; ``single``: one presigned PUT per bid; ``multipart``),
``BENCH_DEADLINE_MIN`` (20),
``BENCH_VERIFY_HASH`` (1), ``BENCH_WARMUP`` (2), ``BENCH_DIR``,
``BENCH_KEEP`` (1: keep the temp dir and logs),
``BENCH_WHATIF=no_reread`` (an experiment, NOT the platform: the commit reads only the
header of streamed uploads, see :func:`_install_no_reread`; on moto a header read still
costs most of a full GET, since moto materialises the object before answering; moot
since streamed uploads are checked on the way in and never read back).

gunicorn: ``deploy/gunicorn.conf.py`` runs ONE gthread worker because Flask-SocketIO in
threading mode needs sticky sessions; bids are plain HTTP, so a bids node can run several
workers. The default here is 2 workers (one per core) × ``concurrency`` threads: a
streamed upload is Python code reading the socket and writing to S3 under the GIL, so a
second process lets the second core take part. The machine is shared by the clients,
gunicorn, moto and PostgreSQL: compare ratios, not absolute MB/s.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import math
import multiprocessing as mp
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bidding.bids.client import DEFAULT_SINGLE_PUT_MAX_MB, DEFAULT_STREAM_MAX_MB  # noqa: E402

BIDDERS = int(os.environ.get("BENCH_BIDDERS", "200"))
MB = float(os.environ.get("BENCH_MB", "20"))
CONCURRENCY = int(os.environ.get("BENCH_CONCURRENCY", "32"))
PROCS = max(1, min(int(os.environ.get("BENCH_PROCS", "4")), CONCURRENCY))
WORKERS = int(os.environ.get("BENCH_WORKERS", "2"))
THREADS = int(os.environ.get("BENCH_THREADS", str(max(CONCURRENCY, 4))))
UPLOAD = os.environ.get("BENCH_UPLOAD", "client")
DEADLINE_MIN = float(os.environ.get("BENCH_DEADLINE_MIN", "20"))
VERIFY_HASH = os.environ.get("BENCH_VERIFY_HASH", "1") != "0"
KEEP = os.environ.get("BENCH_KEEP", "0") == "1"
WARMUP = int(os.environ.get("BENCH_WARMUP", "2"))  # untimed passes before baseline 1
WHATIF = os.environ.get("BENCH_WHATIF", "")
RETRIES = 3
PG_ADMIN = os.environ.get("SUNBID_TEST_PG_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
SECRET = "bench-secret-key-0123456789abcdef"
CLIENT_STREAM_MAX = DEFAULT_STREAM_MAX_MB << 20  # the client's default (--stream-max-mb)
CLIENT_SINGLE_MAX = DEFAULT_SINGLE_PUT_MAX_MB << 20  # (--single-put-max-mb)
HELD = "  section lock held (lock → transaction end)"


# =========================================================================== server-side timers


def install_phase_timers(out_dir: str) -> None:
    """In a gunicorn worker: wrap a few bids services with timers writing one JSON line per
    call to ``out_dir/<pid>.jsonl``. Called from the ``post_worker_init`` hook."""
    from bidding.bids import services

    path = Path(out_dir) / f"{os.getpid()}.jsonl"
    lock = threading.Lock()
    fh = path.open("a", buffering=1)

    local = threading.local()

    def record(label: str, seconds: float, ok: bool = True, cpu: float | None = None) -> None:
        line = json.dumps({"phase": label, "s": seconds, "ok": ok, "cpu": cpu})
        with lock:
            fh.write(line + "\n")

    def wrap(name: str, label: str) -> None:
        inner = getattr(services, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t, c = time.perf_counter(), time.thread_time()
            ok = False
            try:
                result = inner(*args, **kwargs)
                ok = True
                return result
            finally:
                record(label, time.perf_counter() - t, ok, time.thread_time() - c)
                if name == "_lock_section" and ok:
                    local.locked_at = time.perf_counter()

        setattr(services, name, timed)

    import gc

    started: dict[int, tuple[float, float]] = {}

    def on_gc(phase: str, info: dict[str, int]) -> None:
        # the cyclic garbage collector's passes, by generation (in the request threads)
        tid = threading.get_ident()
        if phase == "start":
            started[tid] = (time.perf_counter(), time.thread_time())
        elif (t := started.pop(tid, None)) is not None:
            label = f"  gc pass, generation {info['generation']}"
            record(label, time.perf_counter() - t[0], True, time.thread_time() - t[1])

    gc.callbacks.append(on_gc)

    from sqlalchemy import event
    from sqlalchemy.orm import Session

    @event.listens_for(Session, "after_transaction_end")
    def _held(session: Any, transaction: Any) -> None:
        # the section row lock is held from _lock_section until the request's transaction
        # ends: that span is the serial part of every commit
        if transaction.parent is None and getattr(local, "locked_at", None) is not None:
            record(HELD, time.perf_counter() - local.locked_at)
            local.locked_at = None

    if os.environ.get("BENCH_WHATIF") == "no_reread":
        _install_no_reread(services)
    wrap("upload_bid_stream", "upload_bid_stream (API stream → S3)")
    wrap("start_upload", "start_upload (presigned ticket)")
    wrap("commit_bid", "commit_bid (whole service)")
    wrap("_complete_multipart", "  _complete_multipart")
    wrap("_inspect", "  _inspect (GET back + size + hash + parse)")
    wrap("_verify_signature", "  _verify_signature (chain + signature)")
    wrap("_lock_section", "  _lock_section (wait for the section lock)")
    wrap("sequence_now", "  sequence_now (audit append + signed head)")
    wrap("_proof", "  _proof (inclusion proof)")


def _install_no_reread(services: Any) -> None:
    """WHAT-IF, not the platform: for uploads streamed through the API (whose SHA-256 the
    platform computed and checked on the way in), the commit reads only the envelope
    header (context, recipients, key commitment) instead of streaming the object back.
    Skipped there: the segment-framing check (a real change would parse the framing on
    the way in, beside the hash). Multipart uploads keep the full re-read."""
    from crypto.envelope import EnvelopeInfo, read_header

    original = services._inspect

    def header_only(storage: Any, upload: Any, section: Any) -> Any:
        if str(upload.method) != "stream":
            return original(storage, upload, section)
        with storage.open(upload.storage_key) as reader:
            header = read_header(reader)
        want = (str(section.id), section.opening_key_fingerprint)
        if (
            header.context.get("section_id"),
            header.context.get("opening_key_fingerprint"),
        ) != want:
            raise RuntimeError("what-if: envelope sealed for another section or key")
        return EnvelopeInfo(
            header=header,
            ciphertext_sha256=bytes.fromhex(upload.expected_sha256),
            ciphertext_size=upload.expected_size,
            plaintext_size=0,
            segment_count=0,
        )

    services._inspect = header_only


GUNICORN_HOOKS = """
import sys
exec(open({conf!r}).read())
sys.path.insert(0, {bench_dir!r})

def post_worker_init(worker):
    from bench_deadline_rush import install_phase_timers, time_requests
    install_phase_timers({phases!r})
    worker.wsgi = time_requests(worker.wsgi, {phases!r})
"""


def time_requests(app: Any, out_dir: str) -> Any:
    """In a gunicorn worker: a WSGI wrapper recording each request's wall and thread CPU
    time (the app call and its response body) by method and route kind."""
    path = Path(out_dir) / f"{os.getpid()}-requests.jsonl"
    lock = threading.Lock()
    fh = path.open("a", buffering=1)

    def timed(environ: dict[str, Any], start_response: Any) -> Any:
        t, c = time.perf_counter(), time.thread_time()
        body = list(app(environ, start_response))
        route = environ.get("PATH_INFO", "")
        parts = [
            "<id>" if re.fullmatch(r"[0-9a-fA-F-]{16,}|\d+", p) else p
            for p in route.strip("/").split("/")
        ]
        kind = "/".join(parts[-2:]) if "api" in parts else "(pages)"
        label = f"request {environ.get('REQUEST_METHOD')} …/{kind}"
        line = json.dumps(
            {"phase": label, "s": time.perf_counter() - t, "ok": True,
             "cpu": time.thread_time() - c}
        )  # fmt: skip
        with lock:
            fh.write(line + "\n")
        return body

    return timed


# =========================================================================== client processes


def _client_process(
    kind: str,
    jobs: list[dict[str, Any]],
    threads: int,
    ready: Any,
    go: Any,
    results: Any,
    cpu: Any,
) -> None:
    """One client process: ``threads`` threads run ``jobs`` once ``go`` is set; puts the
    CPU time it spent from ``go`` to its last result on ``cpu``."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from bidding.bids.client import Api, ClientError, submit_bid, urllib3_transport

    def baseline(job: dict[str, Any]) -> dict[str, Any]:
        transport = urllib3_transport()
        path = Path(job["envelope"])
        t0 = time.time()
        p0 = time.perf_counter()
        with path.open("rb") as fh:
            r = transport(
                "PUT",
                job["url"],
                body=fh,
                headers={
                    "Content-Type": "application/octet-stream",
                    "Content-Length": str(job["size"]),
                },
            )
        return {
            "i": job["i"],
            "ok": r.status == 200,
            "status": r.status,
            "start": t0,
            "end": time.time(),
            "flow": time.perf_counter() - p0,
        }

    def rush(job: dict[str, Any]) -> dict[str, Any]:
        out: dict[str, Any] = {"i": job["i"], "commit_calls": [], "retries": 0, "errors": []}
        base_transport = urllib3_transport()

        def transport(
            method: str, url: str, *, body: Any = None, headers: dict[str, str] | None = None
        ) -> Any:
            t = time.perf_counter()
            try:
                return base_transport(method, url, body=body, headers=headers)
            finally:
                dt = time.perf_counter() - t
                # the commit: POST …/bids, or the one-request submit (upload + commit)
                if (method == "POST" and url.endswith("/bids")) or (
                    method == "PUT" and "/bids/submit/" in url
                ):
                    out["commit_calls"].append(dt)

        api = Api(job["api"], job["token"], transport)
        out["start"] = time.time()
        p0 = time.perf_counter()
        for attempt in range(RETRIES + 1):
            try:
                result = submit_bid(
                    api,
                    Path(job["envelope"]),
                    stream_max=job["stream_max"],
                    single_max=job["single_max"],
                )
            except ClientError as err:
                out["errors"].append(f"{err.code}: {err.message}")
                if err.exit_code != 5 or attempt == RETRIES:
                    out["ok"] = False
                    break
                out["retries"] += 1
                time.sleep(0.5)
                continue
            out["ok"] = True
            out["bid_id"] = result["bid"]["id"]
            out["replayed"] = bool(result.get("replayed"))
            out["receipt"] = result["receipt"]
            out["log_index"] = result["bid"]["log_index"]
            break
        out["flow"] = time.perf_counter() - p0
        out["end"] = time.time()
        out["commit"] = out["commit_calls"][-1] if out["commit_calls"] else None
        return out

    run = baseline if kind == "baseline" else rush

    def safe(job: dict[str, Any]) -> dict[str, Any]:
        try:
            return run(job)
        except Exception as exc:  # report, never hang the parent
            return {"i": job["i"], "ok": False, "errors": [repr(exc)], "start": 0, "end": 0}

    ready.put(os.getpid())
    go.wait()
    cpu0 = time.process_time()
    with ThreadPoolExecutor(threads) as pool:
        for item in pool.map(safe, jobs):
            results.put(item)
    cpu.put(time.process_time() - cpu0)


def run_clients(
    kind: str,
    jobs: list[dict[str, Any]],
    servers: dict[str, int] | None = None,
    label: str | None = None,
) -> tuple[float, list[dict[str, Any]]]:
    """Run ``jobs`` over PROCS processes × (CONCURRENCY / PROCS) threads; returns the wall
    time from the start signal to the last result, and the results."""
    ctx = mp.get_context("spawn")
    ready, results, cpu = ctx.Queue(), ctx.Queue(), ctx.Queue()
    go = ctx.Event()
    shares = [jobs[p::PROCS] for p in range(PROCS)]
    per_proc = [CONCURRENCY // PROCS + (1 if p < CONCURRENCY % PROCS else 0) for p in range(PROCS)]
    procs = [
        ctx.Process(target=_client_process, args=(kind, share, n, ready, go, results, cpu))
        for share, n in zip(shares, per_proc, strict=True)
        if share
    ]
    for p in procs:
        p.start()
    for _ in procs:
        ready.get(timeout=120)
    before = _cpu_by_role(servers or {})
    t0 = time.perf_counter()
    go.set()
    out = [results.get(timeout=3600) for _ in jobs]
    wall = time.perf_counter() - t0
    after = _cpu_by_role(servers or {})
    spent = {role: after[role] - before.get(role, 0.0) for role in after}
    spent["clients"] = sum(cpu.get(timeout=60) for _ in procs)
    CPU_SPENT[label or kind] = spent
    for p in procs:
        p.join(30)
    return wall, out


CPU_SPENT: dict[str, dict[str, float]] = {}  # phase → role → CPU seconds in its timed window
_TICK = os.sysconf("SC_CLK_TCK")


def _proc_cpu(pid: int) -> tuple[float, int, str]:
    """(utime + stime in seconds, parent pid, command name) of a live process."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    name = raw[raw.index("(") + 1 : raw.rindex(")")]
    fields = raw[raw.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _TICK, int(fields[1]), name


def _cpu_by_role(servers: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by each server process tree (role → root pid: the root and
    its children) and by the PostgreSQL server processes (connections that ended in
    between are missed; gunicorn's pooled connections stay open)."""
    table: dict[int, tuple[float, int, str]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                table[int(entry.name)] = _proc_cpu(int(entry.name))
            except (OSError, ValueError):
                continue
    spent = {role: 0.0 for role in servers}
    spent["PostgreSQL"] = 0.0
    for pid, (seconds, ppid, name) in table.items():
        for role, root in servers.items():
            if pid == root or ppid == root:
                spent[role] += seconds
        if name == "postgres":
            spent["PostgreSQL"] += seconds
    return spent


# =========================================================================== helpers


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(values: Sequence[float], q: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))
    return ordered[k]


def _wait_http(url: str, proc: subprocess.Popen[Any], log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited ({proc.returncode}):\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as r:
                if r.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"gunicorn did not answer {url}:\n{log.read_text()[-3000:]}")


def _stop(proc: subprocess.Popen[Any]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


# =========================================================================== set-up


def setup_world(tmp: Path) -> dict[str, Any]:
    """Section, bidders, tokens, certificates and registrations (in the app context)."""
    from datetime import UTC, datetime, timedelta

    from bidding.accounts import services as account_services
    from bidding.bids.trust import demo_issue_bidder_certificate
    from bidding.core import db
    from bidding.core.audit.services import sequence_now
    from bidding.core.clock import clock
    from bidding.projects import services as project_services
    from tests.projects.factories import make_world, published_section, timeline

    real_now = datetime.now(UTC).replace(microsecond=0)
    deadline = real_now + timedelta(minutes=DEADLINE_MIN)
    # timeline(start) puts the deadline at start + 1 h + 25 days: publish "25 days ago"
    clock.freeze(deadline - timedelta(days=25, hours=1))
    try:
        with db.session_scope():
            w = make_world(bidders=BIDDERS)
            section = published_section(w, timeline=timeline(clock.now()))
            assert section.bid_deadline == deadline, (section.bid_deadline, deadline)
            for rep in w.bidder_reps:
                project_services.register_bidder(rep, section)
            ids = {
                "project_id": str(section.project_id),
                "section_id": str(section.id),
                "opening_public_key": section.opening_public_key,
                "fingerprint": section.opening_key_fingerprint,
                "deadline": deadline,
            }
    finally:
        clock.unfreeze()
    bidders = []
    with db.session_scope() as s:
        for org, rep in zip(w.bidders, w.bidder_reps, strict=True):
            user = s.merge(w.users[rep.id])
            token = account_services.issue_token(None, user, name="bench", ttl=6 * 3600)
            org = s.merge(org)
            bidders.append(
                {
                    "org_id": str(org.id),
                    "credit_code": org.credit_code,
                    "name": org.name,
                    "token": token.secret,
                    "cert": demo_issue_bidder_certificate(org),
                }
            )
        sequence_now(s)  # the set-up's audit events, so the first commit does not pay
    return {**ids, "bidders": bidders}


def seal_all(world: dict[str, Any], tmp: Path) -> list[dict[str, Any]]:
    """N distinct envelopes of one plaintext package, signed manifests, client sidecars."""
    from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PublicKey

    from bidding.bids.package import package_bytes
    from crypto.canonical import format_utc
    from crypto.envelope import seal
    from crypto.pki import certificate_to_pem
    from crypto.signing import BidManifest, sign_manifest

    first = world["bidders"][0]
    sheet = {
        "type": "sunbid.price-sheet",
        "version": 1,
        "section_id": world["section_id"],
        "bidder_credit_code": first["credit_code"],
        "bidder_name": first["name"],
        "total_price": "4650000.00",
        "currency": "CNY",
        "duration_days": 180,
        "quality": "合格",
        "items": [{"name": "质保期", "value": "5年"}],
    }
    plain = package_bytes(sheet, {"技术标.pdf": os.urandom(int(MB * 1024 * 1024))})
    opening = X25519PublicKey.from_public_bytes(bytes.fromhex(world["opening_public_key"]))
    context = {
        "section_id": world["section_id"],
        "opening_key_fingerprint": world["fingerprint"],
    }
    folder = tmp / "bids"
    folder.mkdir()
    jobs = []
    for i, b in enumerate(world["bidders"]):
        path = folder / f"bid-{i:04d}.env"
        cert = b["cert"]
        with path.open("wb") as dst:
            result = seal(io.BytesIO(plain), dst, [opening, cert.certificate], context=context)
        manifest = BidManifest(
            section_id=world["section_id"],
            bidder_id=b["credit_code"],
            ciphertext_sha256=result.ciphertext_sha256.hex(),
            ciphertext_size=result.ciphertext_size,
            data_key_commitment=result.key_commitment.hex(),
            segment_size=result.segment_size,
            opening_key_fingerprint=world["fingerprint"],
            sealed_at=format_utc(time_now()),
        )
        signature = sign_manifest(cert.private_key, manifest)
        sidecar = {
            "project_id": world["project_id"],
            "section_id": world["section_id"],
            "manifest": manifest.to_document(),
            "signature": base64.b64encode(signature).decode("ascii"),
            "certificate_chain": [certificate_to_pem(cert.certificate).decode("ascii")],
        }
        path.with_name(path.name + ".bid.json").write_text(json.dumps(sidecar), "utf-8")
        jobs.append(
            {
                "i": i,
                "envelope": str(path),
                "size": result.ciphertext_size,
                "sha256": result.ciphertext_sha256.hex(),
                "token": b["token"],
                "org_id": b["org_id"],
            }
        )
        reset_state(jobs[-1])
    return jobs


def time_now() -> Any:
    from datetime import UTC, datetime

    return datetime.now(UTC).replace(microsecond=0)


def reset_state(job: dict[str, Any]) -> None:
    """The client's state file, seeded with what sealing already computed."""
    path = Path(job["envelope"])
    state = path.with_name(path.name + ".state.json")
    state.write_text(json.dumps({"sha256": job["sha256"], "size": job["size"]}), "utf-8")


# =========================================================================== checks


def verify(
    world: dict[str, Any], jobs: list[dict[str, Any]], results: list[dict[str, Any]]
) -> tuple[list[str], int, int]:
    """Zero lost or duplicated bids; returns the failures (empty = all good) and the
    numbers of bidders without a bid (lost) and of surplus bids (duplicated)."""
    from sqlalchemy import func, select

    from bidding.bids.models import Bid, BidState, BidUpload, UploadState
    from bidding.core import db
    from bidding.core.audit.models import AuditEvent
    from bidding.core.signing_key import platform_key
    from bidding.core.storage import get_storage
    from crypto.receipt import Receipt, verify_receipt

    problems: list[str] = []
    lost = duplicated = 0
    by_i = {r["i"]: r for r in results}
    section_id = uuid.UUID(world["section_id"])
    storage = get_storage()
    key = platform_key().public_key
    with db.session_scope() as s:
        bids = s.scalars(select(Bid).where(Bid.section_id == section_id)).all()
        uploads = s.scalars(select(BidUpload).where(BidUpload.section_id == section_id)).all()
        committed_events = s.scalar(
            select(func.count(AuditEvent.id)).where(AuditEvent.action == "bid.committed")
        )
        per_org: dict[str, list[Any]] = {}
        for b in bids:
            per_org.setdefault(str(b.bidder_id), []).append(b)
        up_org: dict[str, list[Any]] = {}
        for u in uploads:
            up_org.setdefault(str(u.bidder_id), []).append(u)
        expected_keys = set()
        for job in jobs:
            r = by_i.get(job["i"], {})
            mine = per_org.get(job["org_id"], [])
            if not r.get("ok"):
                problems.append(f"bidder {job['i']}: client failed: {r.get('errors')}")
            lost += not mine
            duplicated += max(0, len(mine) - 1)
            if len(mine) != 1:
                problems.append(f"bidder {job['i']}: {len(mine)} bids in PostgreSQL")
                continue
            b = mine[0]
            expected_keys.add(b.storage_key)
            if not (b.is_current and b.state is BidState.COMMITTED):
                problems.append(
                    f"bidder {job['i']}: bid {b.id} is {b.state}, current={b.is_current}"
                )
            if (b.ciphertext_sha256, b.ciphertext_size) != (job["sha256"], job["size"]):
                problems.append(f"bidder {job['i']}: stored hash/size differ from the envelope")
            ups = up_org.get(job["org_id"], [])
            if len(ups) != 1 or ups[0].state is not UploadState.COMMITTED:
                problems.append(
                    f"bidder {job['i']}: uploads {[str(u.state) for u in ups]} (want 1 committed)"
                )
            if r.get("ok"):
                if r.get("bid_id") != str(b.id):
                    problems.append(
                        f"bidder {job['i']}: client got bid {r.get('bid_id')}, PG has {b.id}"
                    )
                try:
                    receipt = Receipt.from_dict(r["receipt"])
                    verify_receipt(receipt, key)
                    if (receipt.bid_id, receipt.ciphertext_sha256) != (str(b.id), job["sha256"]):
                        problems.append(f"bidder {job['i']}: receipt names another bid or hash")
                except Exception as exc:
                    problems.append(f"bidder {job['i']}: receipt does not verify: {exc!r}")
        stray = set(per_org) - {j["org_id"] for j in jobs}
        if stray:
            problems.append(f"bids from unknown bidders: {sorted(stray)}")
        if committed_events != len(jobs):
            problems.append(
                f"{committed_events} bid.committed audit events for {len(jobs)} bidders"
            )
    keys = set(storage.list_keys("bids/"))
    if keys != expected_keys:
        problems.append(
            f"S3 under bids/: {len(keys - expected_keys)} orphan object(s), "
            f"{len(expected_keys - keys)} missing"
        )
    listed = storage.list_uploads()  # type: ignore[attr-defined]  # S3Storage only
    open_uploads = [k for k, _ in listed if k.startswith("bids/")]
    if open_uploads:
        problems.append(f"{len(open_uploads)} multipart upload(s) left open under bids/")
    want = {}
    with db.session_scope() as s:
        for b in s.scalars(select(Bid).where(Bid.section_id == section_id)):
            want[b.storage_key] = (b.ciphertext_size, b.ciphertext_sha256)

    def check(item: tuple[str, tuple[int, str]]) -> str | None:
        k, (size, sha) = item
        if k not in keys:
            return None
        st = storage.stat(k)
        if st.size != size:
            return f"{k}: size {st.size} != {size}"
        if VERIFY_HASH:
            h = hashlib.sha256()
            with storage.open(k) as fh:
                while chunk := fh.read(1 << 20):
                    h.update(chunk)
            if h.hexdigest() != sha:
                return f"{k}: SHA-256 of the stored object differs"
        return None

    with ThreadPoolExecutor(8) as pool:
        problems += [p for p in pool.map(check, want.items()) if p]
    return problems, lost, duplicated


def read_phases(folder: Path) -> tuple[dict[str, list[float]], dict[str, float]]:
    """Per phase: the wall times of its calls, and the CPU time its threads spent in them."""
    phases: dict[str, list[float]] = {}
    cpu: dict[str, float] = {}
    for f in folder.glob("*.jsonl"):
        for line in f.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue
            phases.setdefault(row["phase"], []).append(row["s"])
            if row.get("cpu") is not None:
                cpu[row["phase"]] = cpu.get(row["phase"], 0.0) + row["cpu"]
    return phases, cpu


# =========================================================================== main


def main() -> int:
    import sqlalchemy as sa

    from bidding.app import create_app
    from bidding.cli import upgrade_database
    from bidding.core import db
    from tests.conftest import make_settings
    from tests.fixtures.s3 import S3_ACCESS_KEY, S3_SECRET_KEY, _start
    from tests.fixtures.s3 import _stop as _stop_moto

    tmp = Path(tempfile.mkdtemp(prefix="bench-rush-", dir=os.environ.get("BENCH_DIR")))
    procs: list[subprocess.Popen[Any]] = []
    db_name = f"sunbid_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    db_url = PG_ADMIN.rsplit("/", 1)[0] + "/" + db_name
    moto = None
    created = False
    try:
        moto, endpoint = _start((tmp / "moto.log").open("wb"))
        storage_url = (
            f"s3://{S3_ACCESS_KEY}:{S3_SECRET_KEY}@{endpoint}/bench-{uuid.uuid4().hex[:12]}"
        )
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{db_name}"'))
        created = True
        upgrade_database(db_url)
        instance = tmp / "instance"
        settings = make_settings(instance, database_url=db_url, storage_url=storage_url)
        app = create_app(settings)
        with app.app_context():
            return run(app, tmp, instance, db_url, storage_url, procs, moto.pid)
    finally:
        for p in procs:
            _stop(p)
        if moto is not None:
            _stop_moto(moto)
        db.dispose_engine()
        if created:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
        if KEEP:
            print(f"kept {tmp}")
        else:
            shutil.rmtree(tmp, ignore_errors=True)


def run(
    app: Any,
    tmp: Path,
    instance: Path,
    db_url: str,
    storage_url: str,
    procs: list[Any],
    moto_pid: int,
) -> int:
    from bidding.core.storage import get_storage

    t = time.perf_counter()
    world = setup_world(tmp)
    t_world = time.perf_counter() - t
    t = time.perf_counter()
    jobs = seal_all(world, tmp)
    t_seal = time.perf_counter() - t
    total = sum(j["size"] for j in jobs)
    print(
        f"set-up: {BIDDERS} bidders registered in {t_world:.1f} s; {BIDDERS} envelopes × "
        f"{jobs[0]['size'] / 1e6:.1f} MB sealed in {t_seal:.1f} s",
        flush=True,
    )

    # ---- gunicorn
    port = _free_port()
    phases_dir = tmp / "phases"
    phases_dir.mkdir()
    conf = tmp / "gunicorn_bench.conf.py"
    conf.write_text(
        GUNICORN_HOOKS.format(
            conf=str(ROOT / "deploy" / "gunicorn.conf.py"),
            bench_dir=str(Path(__file__).resolve().parent),
            phases=str(phases_dir),
        )
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("SUNBID_")}
    env.update(
        SUNBID_INSTANCE_DIR=str(instance),
        SUNBID_SECRET_KEY=SECRET,
        SUNBID_DATABASE_URL=db_url,
        SUNBID_STORAGE_URL=storage_url,
        SUNBID_EMBEDDED_CLOCK="false",
        SUNBID_LOG_LEVEL="warning",
        PYTHONPATH=str(ROOT),
    )
    log = tmp / "gunicorn.log"
    cmd = [
        sys.executable, "-m", "gunicorn", "-c", str(conf),
        "--bind", f"127.0.0.1:{port}", "--workers", str(WORKERS), "--threads", str(THREADS),
        "--access-logfile", str(tmp / "access.log"), "--no-control-socket",
    ]  # fmt: skip
    procs.append(
        subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log.open("wb"), stderr=subprocess.STDOUT)
    )
    api = f"http://127.0.0.1:{port}"
    _wait_http(api + "/healthz", procs[-1], log)
    section_url = f"{api}/api/v1/projects/{world['project_id']}/sections/{world['section_id']}"

    def warm(_: int) -> bytes:
        with urllib.request.urlopen(section_url, timeout=30) as r:
            return bytes(r.read())

    with ThreadPoolExecutor(4 * WORKERS) as pool:  # warm every worker's first requests
        list(pool.map(warm, range(8 * WORKERS)))

    storage = get_storage()
    servers = {"gunicorn": procs[-1].pid, "S3 server (moto)": moto_pid}

    def baseline_pass(tag: str) -> tuple[float, int]:
        bjobs = [
            {**j, "url": storage.presigned_put_url(f"baseline/{tag}/{j['i']:04d}", 3600)}
            for j in jobs
        ]
        wall, res = run_clients("baseline", bjobs, servers, f"baseline {tag}")
        bad = [r for r in res if not r.get("ok")]
        if bad:
            raise RuntimeError(f"baseline PUTs failed: {bad[:3]}")
        for j in bjobs:
            storage.delete(f"baseline/{tag}/{j['i']:04d}")
        return wall, len(res)

    warm_walls: list[float] = []
    for n in range(WARMUP):  # CPU columns "baseline w1", "baseline w2", …
        print(f"warm-up {n + 1} (not timed): presigned PUT × {BIDDERS} …", flush=True)
        warm_walls.append(baseline_pass(f"w{n + 1}")[0])
        print(f"  {warm_walls[-1]:.1f} s, {total / 1e6 / warm_walls[-1]:.1f} MB/s", flush=True)
    print(f"baseline 1: presigned PUT × {BIDDERS}, concurrency {CONCURRENCY} …", flush=True)
    b1, _ = baseline_pass("a")
    print(f"  {b1:.1f} s, {total / 1e6 / b1:.1f} MB/s", flush=True)

    stream_max, single_max = {
        "client": (CLIENT_STREAM_MAX, CLIENT_SINGLE_MAX),
        "stream": (1 << 62, 0),
        "single": (0, 1 << 62),
        "multipart": (0, 0),
    }[UPLOAD]
    rjobs = [{**j, "api": api, "stream_max": stream_max, "single_max": single_max} for j in jobs]
    left = world["deadline"] - time_now()
    print(
        f"rush: {BIDDERS} bidders, client upload mode {UPLOAD!r}, "
        f"{left.total_seconds() / 60:.1f} min before the deadline …",
        flush=True,
    )
    for j in jobs:
        reset_state(j)
    for f in phases_dir.glob("*.jsonl"):
        f.write_text("")  # warm-up requests recorded nothing of interest
    rush_wall, rush = run_clients("rush", rjobs, servers)
    print(f"  {rush_wall:.1f} s, {total / 1e6 / rush_wall:.1f} MB/s", flush=True)
    phases, phase_cpu = read_phases(phases_dir)

    print("baseline 2 …", flush=True)
    b2, _ = baseline_pass("b")
    print(f"  {b2:.1f} s, {total / 1e6 / b2:.1f} MB/s", flush=True)

    print("checking: PostgreSQL rows, S3 objects (re-hashed), receipts …", flush=True)
    t = time.perf_counter()
    problems, lost, duplicated = verify(world, jobs, rush)
    t_check = time.perf_counter() - t
    if procs[0].poll() is not None:
        problems.append(f"gunicorn died: {log.read_text()[-2000:]}")
    late = [r for r in rush if r.get("end", 0) > world["deadline"].timestamp()]
    if late:
        problems.append(
            f"{len(late)} bidders finished after the deadline: raise BENCH_DEADLINE_MIN"
        )

    # ---- report
    accepted = [r for r in rush if r.get("ok")]
    replayed = sum(1 for r in accepted if r.get("replayed"))
    retries = sum(r.get("retries", 0) for r in rush)
    commits = [r["commit"] for r in accepted if r.get("commit") is not None]
    flows = [r["flow"] for r in accepted]
    mb = total / 1e6
    base_mbs = [mb / b1, mb / b2]
    base_mean = statistics.mean(base_mbs)
    rush_mbs = mb / rush_wall
    # judged against the mean of the baselines before and after the rush: moto's CPU per
    # PUT varies ±20 % between identical passes (70–111 ms per 21 MB PUT measured in
    # isolation), so the mean of the two bracketing passes estimates its speed during the
    # rush; the faster of two noisy passes (also shown) is biased towards the fast end
    ratio = rush_mbs / base_mean
    ratio_fast = rush_mbs / max(base_mbs)
    verdict = "OK" if ratio >= 0.7 else "MISSED"
    w = 44
    print()
    print(f"Deadline rush: {BIDDERS} bidders × {jobs[0]['size'] / 1e6:.2f} MB envelopes "
          f"({mb:.0f} MB), concurrency {CONCURRENCY} ({PROCS} client processes), "
          f"gunicorn {WORKERS} worker(s) × {THREADS} threads, upload mode {UPLOAD!r}")  # fmt: skip
    if WHATIF:
        print(f"WHAT-IF {WHATIF!r}: commit does not stream streamed uploads back "
              "(NOT the platform's behaviour; see _install_no_reread)")  # fmt: skip
    print("-" * 72)
    rows = [
        *[(f"warm-up {n + 1} presigned PUT, not timed (MB/s)", f"{mb / w:.1f}")
          for n, w in enumerate(warm_walls)],
        ("baseline presigned PUT, before (MB/s)", f"{base_mbs[0]:.1f}"),
        ("baseline presigned PUT, after (MB/s)", f"{base_mbs[1]:.1f}"),
        ("baseline mean (MB/s)", f"{base_mean:.1f}"),
        ("rush (MB/s)", f"{rush_mbs:.1f}"),
        ("ratio rush / baseline mean (target ≥ 0.70)", f"{ratio:.2f}  {verdict}"),
        ("ratio rush / faster baseline (stricter)", f"{ratio_fast:.2f}"),
        ("rush wall time (s)", f"{rush_wall:.1f}"),
        ("accepted bids/s", f"{len(accepted) / rush_wall:.2f}"),
        ("commit call latency p50 / p99 (s)", f"{_pct(commits, 50):.2f} / {_pct(commits, 99):.2f}"),
        ("whole flow latency p50 / p99 (s)", f"{_pct(flows, 50):.2f} / {_pct(flows, 99):.2f}"),
        ("accepted / bidders", f"{len(accepted)} / {BIDDERS}"),
        ("lost / duplicated (checked)", f"{lost} / {duplicated}"),
        ("client retries (network errors) / replayed", f"{retries} / {replayed}"),
        ("checks failed", str(len(problems))),
        ("check time (s)", f"{t_check:.1f}"),
        ("load average (1 min)", f"{os.getloadavg()[0]:.2f}"),
    ]  # fmt: skip
    for label, value in rows:
        print(f"{label:<{w}} {value}")
    if phases:
        print("-" * 72)
        head = f"{'calls':>7} {'total':>8} {'p50':>7} {'p99':>7} {'cpu':>7}"
        print(f"{'server side (per call, s)':<{w}} {head}")
        top = ("request", "upload", "start", "commit")
        for label in sorted(phases, key=lambda k: (not k.startswith(top), k)):
            v = phases[label]
            p50, p99 = _pct(v, 50), _pct(v, 99)
            cpu = f"{phase_cpu[label]:>7.1f}" if label in phase_cpu else f"{'':>7}"
            print(f"{label:<{w}} {len(v):>7} {sum(v):>8.1f} {p50:>7.2f} {p99:>7.2f} {cpu}")
    if CPU_SPENT:
        print("-" * 72)
        roles = list(next(iter(CPU_SPENT.values())))
        print(f"{'CPU seconds in the timed window':<{w}} " + " ".join(
            f"{p:>12}" for p in CPU_SPENT))  # fmt: skip
        for role in [*roles, "total"]:
            cells = [
                sum(spent.values()) if role == "total" else spent.get(role, 0.0)
                for spent in CPU_SPENT.values()
            ]
            print(f"{'  ' + role:<{w}} " + " ".join(f"{c:>12.1f}" for c in cells))
    print("-" * 72)
    if problems:
        print("CHECKS FAILED:")
        for p in problems[:50]:
            print("  " + p)
        return 1
    print(f"zero lost, zero duplicated: {BIDDERS} current bids, objects and receipts verified")
    return 0


if __name__ == "__main__":
    sys.exit(main())
