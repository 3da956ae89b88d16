"""Benchmark of the integrity log: append, prove, verify at 10^3, 10^4 and 10^5 leaves.

Run: ``PYTHONPATH=src python benchmarks/bench_log.py [--sizes 1000,10000,100000] [--dir DIR]``.
Entries are ~300-byte manifest leaves. "append (durable)" is one :meth:`append` per leaf, each
with its fsyncs and head replacement (what a capture pays); "append (batched)" is
:meth:`append_many` in batches of 1000 (bulk import). Proof figures are means over random
indices; "check" re-reads every entry and rebuilds the tree; "verify_log" is the whole log
audit of an archive with small manifests on disk (hashing each manifest file included).
"""

from __future__ import annotations

import argparse
import random
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from preserve.log.archive_log import init_log, log_dir, write_checkpoint
from preserve.log.audit import verify_log
from preserve.log.entries import ManifestLeaf, manifest_leaf_for_file
from preserve.log.keys import generate_key, load_signer
from preserve.log.merkle import leaf_hash, verify_consistency, verify_inclusion
from preserve.log.storage import TransparencyLog

BATCH = 1000
DURABLE_SAMPLE = 200
PROOF_SAMPLE = 1000


def entry(i: int) -> bytes:
    capture_id = f"20261121T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-{'a' * 10}"
    return ManifestLeaf(
        capture_id=capture_id,
        path=f"manifests/{capture_id}.json",
        blake3=f"{i:064x}",
        sha256=f"{i * 7:064x}",
        size=4000 + i % 1000,
        captured="2026-11-21T10:00:00.000000Z",
        committed="2026-11-21T10:00:05.000000Z",
    ).to_bytes()


def bench(size: int, base: Path) -> dict[str, float]:
    directory = base / f"log-{size}"
    shutil.rmtree(directory, ignore_errors=True)
    rng = random.Random(size)
    figures: dict[str, float] = {}
    with TransparencyLog.open(directory, create=True) as log:
        bulk = size - DURABLE_SAMPLE
        t0 = time.perf_counter()
        for start in range(0, bulk, BATCH):
            log.append_many(entry(i) for i in range(start, min(start + BATCH, bulk)))
        figures["append_batched_us"] = (time.perf_counter() - t0) / bulk * 1e6
        samples = []
        for i in range(bulk, size):
            t = time.perf_counter()
            log.append(entry(i))
            samples.append(time.perf_counter() - t)
        figures["append_durable_ms"] = statistics.median(samples) * 1e3
        figures["append_durable_p95_ms"] = sorted(samples)[int(len(samples) * 0.95)] * 1e3
        root = log.root_hash()
        indices = [rng.randrange(size) for _ in range(PROOF_SAMPLE)]
        t = time.perf_counter()
        proofs = [log.inclusion_proof(i) for i in indices]
        figures["inclusion_proof_us"] = (time.perf_counter() - t) / PROOF_SAMPLE * 1e6
        leaves = [leaf_hash(log.leaf(i)) for i in indices]
        t = time.perf_counter()
        for i, p, h in zip(indices, proofs, leaves, strict=True):
            assert verify_inclusion(h, i, size, p, root)
        figures["inclusion_verify_us"] = (time.perf_counter() - t) / PROOF_SAMPLE * 1e6
        olds = [rng.randrange(1, size + 1) for _ in range(PROOF_SAMPLE)]
        t = time.perf_counter()
        cproofs = [log.consistency_proof(m) for m in olds]
        figures["consistency_proof_us"] = (time.perf_counter() - t) / PROOF_SAMPLE * 1e6
        old_roots = [log.root_hash(m) for m in olds]
        t = time.perf_counter()
        for m, p, r in zip(olds, cproofs, old_roots, strict=True):
            assert verify_consistency(m, size, r, root, p)
        figures["consistency_verify_us"] = (time.perf_counter() - t) / PROOF_SAMPLE * 1e6
        t = time.perf_counter()
        assert log.check() == []
        figures["full_check_s"] = time.perf_counter() - t
    t = time.perf_counter()
    TransparencyLog.open(directory, readonly=True).close()
    figures["open_ms"] = (time.perf_counter() - t) * 1e3
    figures["disk_mb"] = sum(p.stat().st_size for p in directory.rglob("*") if p.is_file()) / 1e6
    return figures


def bench_verify(size: int, base: Path) -> float:
    """Seconds for verify_log over an archive of ``size`` small manifests and one checkpoint."""
    root = base / f"archive-{size}"
    key_path, verifier = generate_key("bench.example/log", base / f"bench-{size}.key")
    init_log(root, verifier)
    manifests = root / "manifests"
    leaves = []
    for i in range(size):
        capture_id = f"20261121T{i // 3600 % 24:02d}{i // 60 % 60:02d}{i % 60:02d}Z-" + (
            "".join("abcdefghijklmnopqrstuvwxyz234567"[(i >> (5 * k)) & 31] for k in range(10))
        )
        path = manifests / f"{capture_id}.json"
        path.write_text(
            f'{{\n  "capture_id": "{capture_id}",\n  "pad": "{"x" * 3000}",\n'
            f'  "started": "2026-11-21T10:00:00.000000Z"\n}}\n'
        )
        leaves.append(manifest_leaf_for_file(path, "2026-11-21T10:00:05.000000Z").to_bytes())
    with TransparencyLog.open(log_dir(root)) as log:
        log.append_many(leaves)
    write_checkpoint(root, load_signer(key_path))
    t = time.perf_counter()
    findings = verify_log(root)
    elapsed = time.perf_counter() - t
    assert findings == [], findings[:3]
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1000,10000,100000")
    parser.add_argument("--verify-sizes", default="1000,10000")
    parser.add_argument("--dir", type=Path, default=None, help="where to build the logs")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]
    verify_sizes = [int(s) for s in args.verify_sizes.split(",") if s]
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        results = {n: bench(n, Path(tmp)) for n in sizes}
        verify_times = {n: bench_verify(n, Path(tmp)) for n in verify_sizes}
    keys = list(next(iter(results.values())))
    print(f"{'metric':<24}" + "".join(f"{n:>14,}" for n in sizes))
    for key in keys:
        print(f"{key:<24}" + "".join(f"{results[n][key]:>14.3f}" for n in sizes))
    for n, seconds in verify_times.items():
        print(f"verify_log with {n:,} manifests (3 KB each), 1 checkpoint: {seconds:.3f} s")


if __name__ == "__main__":
    main()
