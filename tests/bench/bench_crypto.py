"""Sealed-bid envelope throughput and memory benchmark (not a pytest test).

Run:  .venv/bin/python tests/bench/bench_crypto.py [--size-mib 256] [--big-mib 1024]

1. Throughput. Seals and opens a ``--size-mib`` file with :mod:`crypto.envelope` and
   compares with the least work the format needs, measured on the same bytes in the same
   run: read into a preallocated buffer, AES-256-GCM ``encrypt_into`` / ``decrypt_into``
   over 1 MiB segments, one SHA-256 pass over the ciphertext, write — sequential, one
   thread, no format. Also shown: the same baseline without file I/O (in-memory
   compute floor). Ratio = envelope MB/s ÷ baseline MB/s (target ≥ 0.85). Each figure
   is the best of ``--repeat`` runs, envelope and baseline runs interleaved. The baseline
   is single-threaded; "envelope" overlaps SHA-256 with AES-GCM and I/O in a helper
   thread, "envelope (1 thread)" does not (it shows the format's own overhead). On a
   shared machine other processes' load skews single runs: the load average is printed.
2. Memory. Seals and opens a ``--big-mib`` file in a child process and reports the peak
   RSS growth over the child's RSS after imports and setup (target < 64 MiB), plus the
   child's total peak RSS from ``getrusage(RUSAGE_CHILDREN)``.

Files live in a temporary directory (removed at the end; ``--dir`` to choose, e.g.
``/dev/shm``). Dirty pages are flushed (``os.sync``) before every timed run, so each run
writes into the page cache without competing with an earlier run's writeback: this
measures CPU cost, not the disk.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import x25519
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

ROOT = Path(__file__).resolve().parents[2]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from crypto.envelope import open_envelope, seal  # noqa: E402

MiB = 1024 * 1024
SEG = MiB


def make_file(path: Path, size: int) -> None:
    block = os.urandom(4 * MiB)
    with path.open("wb") as f:
        left = size
        while left:
            n = min(left, len(block))
            f.write(block[:n])
            left -= n


def baseline_pair(plain: Path, work: Path) -> tuple[Callable[[], None], Callable[[], None]]:
    key = os.urandom(32)
    aead = AESGCM(key)
    ct = work / "baseline.ct"
    pt = work / "baseline.pt"

    def do_seal() -> None:
        inbuf = bytearray(SEG)
        inview = memoryview(inbuf)
        outview = memoryview(bytearray(SEG + 16))
        h = hashlib.sha256()
        i = 0
        with plain.open("rb", buffering=0) as f, ct.open("wb", buffering=0) as g:
            while True:
                n = f.readinto(inview)
                if not n:
                    break
                aead.encrypt_into(i.to_bytes(12, "big"), inview[:n], b"", outview[: n + 16])
                h.update(outview[: n + 16])
                g.write(outview[: n + 16])
                i += 1
        h.digest()

    def do_open() -> None:
        inview = memoryview(bytearray(SEG + 16))
        outview = memoryview(bytearray(SEG))
        h = hashlib.sha256()
        i = 0
        with ct.open("rb", buffering=0) as f, pt.open("wb", buffering=0) as g:
            while True:
                n = f.readinto(inview)
                if not n:
                    break
                h.update(inview[:n])
                aead.decrypt_into(i.to_bytes(12, "big"), inview[:n], b"", outview[: n - 16])
                g.write(outview[: n - 16])
                i += 1
        h.digest()

    return do_seal, do_open


def compute_floor(size: int) -> tuple[float, float]:
    """AES-GCM + SHA-256 over ``size`` bytes already in memory (no I/O): seconds."""
    aead = AESGCM(os.urandom(32))
    data = memoryview(bytearray(os.urandom(SEG)))
    out = memoryview(bytearray(SEG + 16))
    back = memoryview(bytearray(SEG))
    segs = size // SEG
    h = hashlib.sha256()
    t = time.perf_counter()
    for i in range(segs):
        aead.encrypt_into(i.to_bytes(12, "big"), data, b"", out)
        h.update(out)
    t_seal = time.perf_counter() - t
    h = hashlib.sha256()
    t = time.perf_counter()
    for _ in range(segs):
        h.update(out)
        aead.decrypt_into((segs - 1).to_bytes(12, "big"), out, b"", back)
    t_open = time.perf_counter() - t
    return t_seal, t_open


def timed(fn: Callable[[], object]) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def throughput(size_mib: int, repeat: int, work: Path) -> dict[str, float]:
    size = size_mib * MiB
    plain = work / "bid.bin"
    make_file(plain, size)
    env = work / "bid.env"
    back = work / "bid.out"
    sk = x25519.X25519PrivateKey.generate()
    pk = sk.public_key()
    b_seal, b_open = baseline_pair(plain, work)

    def env_seal(threads: bool | None = None) -> None:
        with plain.open("rb") as f, env.open("wb") as g:
            seal(f, g, [pk], context={"section": "bench"}, threads=threads)

    def env_open(threads: bool | None = None) -> None:
        with env.open("rb") as f, back.open("wb") as g:
            open_envelope(f, g, private_key=sk, threads=threads)

    best: dict[str, float] = {}

    def note(name: str, seconds: float) -> None:
        best[name] = min(best.get(name, float("inf")), seconds)

    def run(name: str, output: Path, fn: Callable[[], object]) -> None:
        # Unlink the output first so no run pays for truncating the previous one's pages,
        # and flush dirty pages so no run competes with the writeback of an earlier one.
        output.unlink(missing_ok=True)
        os.sync()
        note(name, timed(fn))

    for _ in range(repeat):
        run("baseline seal", work / "baseline.ct", b_seal)
        run("envelope seal", env, env_seal)
        run("envelope seal (1 thread)", env, lambda: env_seal(False))
        run("baseline open", work / "baseline.pt", b_open)
        run("envelope open", back, env_open)
        run("envelope open (1 thread)", back, lambda: env_open(False))
        fs, fo = compute_floor(size)
        note("floor seal (no I/O)", fs)
        note("floor open (no I/O)", fo)
    with plain.open("rb") as a, back.open("rb") as b:
        want = hashlib.file_digest(a, "sha256").digest()
        same = hashlib.file_digest(b, "sha256").digest() == want
    if not same:
        raise SystemExit("round trip mismatch!")
    for p in (plain, env, back, work / "baseline.ct", work / "baseline.pt"):
        p.unlink(missing_ok=True)
    return {k: size / v / 1e6 for k, v in best.items()}


CHILD = r"""
import json, os, resource, sys, time
sys.path.insert(0, sys.argv[1])
from pathlib import Path
from cryptography.hazmat.primitives.asymmetric import x25519
from crypto.envelope import open_envelope, seal
work = Path(sys.argv[2])
sk = x25519.X25519PrivateKey.generate()
def rss_kib():
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0
start = rss_kib()
t = time.perf_counter()
with (work / "big.bin").open("rb") as f, (work / "big.env").open("wb") as g:
    seal(f, g, [sk.public_key()])
t_seal = time.perf_counter() - t
peak_seal = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t = time.perf_counter()
with (work / "big.env").open("rb") as f, (work / "big.out").open("wb") as g:
    open_envelope(f, g, private_key=sk)
t_open = time.perf_counter() - t
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"start_kib": start, "peak_seal_kib": peak_seal, "peak_kib": peak,
                  "t_seal": t_seal, "t_open": t_open}))
"""


def memory(big_mib: int, work: Path) -> dict[str, float]:
    big = work / "big.bin"
    make_file(big, big_mib * MiB)
    os.sync()
    proc = subprocess.run(
        [sys.executable, "-c", CHILD, str(ROOT), str(work)],
        check=True,
        capture_output=True,
        text=True,
    )
    info = json.loads(proc.stdout)
    children = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    for name in ("big.bin", "big.env", "big.out"):
        (work / name).unlink(missing_ok=True)
    return {
        "start MiB": info["start_kib"] / 1024,
        "peak growth seal MiB": (info["peak_seal_kib"] - info["start_kib"]) / 1024,
        "peak growth seal+open MiB": (info["peak_kib"] - info["start_kib"]) / 1024,
        "child peak RSS (RUSAGE_CHILDREN) MiB": children / 1024,
        "seal MB/s": big_mib * MiB / info["t_seal"] / 1e6,
        "open MB/s": big_mib * MiB / info["t_open"] / 1e6,
    }


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size-mib", type=int, default=256)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--dir", default=None, help="work directory (default: a temp dir)")
    args = parser.parse_args()
    print(f"python {sys.version.split()[0]}, {os.cpu_count()} CPUs, load {_load()}")
    with tempfile.TemporaryDirectory(dir=args.dir, prefix="sunbid-bench-") as tmp:
        work = Path(tmp)
        rates = throughput(args.size_mib, args.repeat, work)
        mem = memory(args.big_mib, work)
    print()
    print(
        f"Throughput, {args.size_mib} MiB, 1 MiB segments, best of {args.repeat} (MB/s = 1e6 B/s)"
    )
    print(f"{'measurement':<32}{'MB/s':>10}{'vs baseline':>14}")
    for op in ("seal", "open"):
        base = rates[f"baseline {op}"]
        for name in (
            f"baseline {op}",
            f"envelope {op}",
            f"envelope {op} (1 thread)",
            f"floor {op} (no I/O)",
        ):
            print(f"{name:<32}{rates[name]:>10.0f}{rates[name] / base:>14.2f}")
    print(f"load average after the throughput runs: {_load()} (other processes skew figures)")
    print()
    print(f"Memory, {args.big_mib} MiB envelope in a child process")
    for key, value in mem.items():
        print(f"{key:<40}{value:>10.1f}")
    ok_seal = rates["envelope seal"] / rates["baseline seal"] >= 0.85
    ok_open = rates["envelope open"] / rates["baseline open"] >= 0.85
    ok_mem = mem["peak growth seal+open MiB"] < 64
    print()
    print(
        f"targets: seal ratio ≥ 0.85 {'OK' if ok_seal else 'MISSED'}, "
        f"open ratio ≥ 0.85 {'OK' if ok_open else 'MISSED'}, "
        f"RSS growth < 64 MiB {'OK' if ok_mem else 'MISSED'}"
    )


if __name__ == "__main__":
    main()
