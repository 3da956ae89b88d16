#!/usr/bin/env python3
"""Scale: Dask capture and verify throughput, local root vs S3 root, 1 vs 2 worker processes.

Usage:
    python benchmarks/bench_scale.py [--pages 100] [--rounds 2] [--workers 1,2] [--deep]
                                     [--workdir DIR] [--keep] [--json OUT]

Everything runs on 127.0.0.1 and nothing else is contacted:

* the benchmark HTTP server (``_local_server.py``, its own process) serves ``--pages`` small
  generated article pages (3-9 KiB), each fetched once before timing;
* a moto S3 server (``python -m moto.server``, its own process) holds one Object Lock bucket
  per S3 run (sealed objects get a 1-day COMPLIANCE retention, as in the tests);
* one Dask ``LocalCluster`` per worker count (``processes=True``, 1 thread per worker, no
  dashboard), all started before timing and kept for the whole run.

Each round runs every (workers, root) configuration once, in an order rotated from round to
round (interleaved, so machine load drifts over all of them alike). A run makes a fresh,
keyed archive, then times, in this process (the client and single committer):

* capture: ``capture_many_dask`` of every URL, committed in input order, one checkpoint;
* verify: ``verify_dask`` (``--deep`` for the deep check), ``record=False`` (the check only).

pages/s = pages / capture seconds; verify MB/s = bytes of the WARC files and text objects the
manifests name (10^6 bytes) / verify seconds; captures/s = manifests checked / verify seconds.
The median over rounds is reported, with every round's seconds and the ratios 2 vs 1 worker
and S3 vs local. Needs preserve[scale] and moto[server]. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import boto3
from _local_server import LocalServer, page_bytes, print_table, run_benchmark

from preserve.archive import Archive
from preserve.distributed import capture_many_dask, connect, verify_dask
from preserve.remote.archive import RemoteArchive
from preserve.remote.store import ObjectStore
from preserve.storage import manifest as manifest_mod

LOOPBACK = "127.0.0.1"
S3_ENV = {"AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench",
          "AWS_DEFAULT_REGION": "us-east-1"}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((LOOPBACK, 0))
        return int(s.getsockname()[1])


@contextmanager
def moto_server() -> Iterator[Any]:
    """A moto S3 server on 127.0.0.1; yields a boto3 client. Sets the AWS environment
    (endpoint on loopback) before any Dask worker starts, so workers inherit it."""
    port = _free_port()
    endpoint = f"http://{LOOPBACK}:{port}"
    process = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", LOOPBACK,
                                "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.environ.update(S3_ENV, AWS_ENDPOINT_URL=endpoint)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        os.environ.pop(name, None)
    os.environ["NO_PROXY"] = os.environ["no_proxy"] = LOOPBACK
    client = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                          aws_access_key_id="bench", aws_secret_access_key="bench")
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                client.list_buckets()
                break
            except Exception:
                if process.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError("the moto S3 server did not start") from None
                time.sleep(0.2)
        yield client
    finally:
        process.terminate()
        try:
            process.wait(10)
        except subprocess.TimeoutExpired:
            process.kill()


def new_archive(kind: str, work: Path, name: str, s3: Any) -> Any:
    """A fresh keyed archive: a directory under ``work`` or a new Object Lock bucket."""
    key = work / f"{name}.key"
    if kind == "local":
        archive: Any = Archive(work / name, key=key)
    else:
        bucket = f"bench-{name}".lower().replace("_", "-")
        s3.create_bucket(Bucket=bucket, ObjectLockEnabledForBucket=True)
        url = f"s3://{bucket}/archive"
        archive = RemoteArchive(url, key=key, store=ObjectStore(url, retention_days=1))
    archive.init(key_name=f"bench-{name}")
    return archive


def verified_bytes(archive: Any) -> int:
    """Bytes of the WARC files and text objects the manifests name."""
    total = 0
    if isinstance(archive, RemoteArchive):
        docs = [manifest_mod.parse_manifest(archive.store.get(n, 2**24))
                for n in archive.manifest_names()]
    else:
        docs = [manifest_mod.read_manifest(p)[0]
                for p in sorted(archive.layout.manifests_dir.glob("*.json"))]
    for m in docs:
        total += m.warc.size + sum(t.size for t in (m.text, m.comments) if t is not None)
    return total


def one_run(kind: str, workers: int, client: Any, urls: list[str], work: Path, name: str,
            s3: Any, deep: bool) -> dict[str, Any]:
    archive = new_archive(kind, work, name, s3)
    started = time.perf_counter()
    results = list(capture_many_dask(archive, urls, None, client))
    capture_s = time.perf_counter() - started
    failed = [u for u, o in results if not hasattr(o, "capture_id")]
    started = time.perf_counter()
    report = verify_dask(archive, client, deep=deep, record=False)
    verify_s = time.perf_counter() - started
    checked = report.stats.manifests_checked
    size = verified_bytes(archive)
    return {"root": kind, "workers": workers, "capture_s": capture_s,
            "pages_per_s": len(urls) / capture_s, "failed": len(failed),
            "verify_s": verify_s, "verified_mb": size / 1e6,
            "verify_mb_per_s": size / 1e6 / verify_s, "captures_per_s": checked / verify_s,
            "verify_ok": report.ok, "errors": len(report.errors)}


def bench(pages: int, rounds: int, worker_counts: list[int], deep: bool,
          work: Path) -> dict[str, Any]:
    with LocalServer() as server, moto_server() as s3:
        urls = server.page_urls(pages, small=True)
        assert all(u.startswith(f"http://{LOOPBACK}:") for u in urls)
        for url in urls:  # warm the server's page cache
            with urllib.request.urlopen(url) as response:
                response.read()
        clients = {n: connect(None, n_workers=n, threads_per_worker=1, processes=True,
                              host=LOOPBACK, dashboard_address=f"{LOOPBACK}:0",
                              silence_logs=logging.ERROR)
                   for n in worker_counts}
        try:
            configs = [(n, kind) for n in worker_counts for kind in ("local", "s3")]
            runs: list[dict[str, Any]] = []
            for number in range(rounds):
                shift = number % len(configs)
                for n, kind in configs[shift:] + configs[:shift]:
                    row = one_run(kind, n, clients[n], urls, work, f"r{number}-{kind}-w{n}",
                                  s3, deep)
                    row["round"] = number + 1
                    runs.append(row)
                    print(f"round {number + 1} {kind} {n} worker(s): capture "
                          f"{row['capture_s']:.1f} s, verify {row['verify_s']:.1f} s",
                          file=sys.stderr)
        finally:
            for client in clients.values():
                cluster = client.cluster
                client.close()
                cluster.close()
    return {"pages": pages, "body_bytes": page_bytes(pages, small=True), "rounds": rounds,
            "deep": deep, "runs": runs, "loadavg_1_5_15min": os.getloadavg()}


def _median(runs: list[dict[str, Any]], field: str) -> float:
    return statistics.median(r[field] for r in runs)


def report(data: dict[str, Any]) -> None:
    groups: dict[tuple[str, int], list[dict[str, Any]]] = {}
    for run in data["runs"]:
        groups.setdefault((run["root"], run["workers"]), []).append(run)
    med = {k: {f: _median(v, f) for f in ("capture_s", "pages_per_s", "verify_s",
                                          "verify_mb_per_s", "captures_per_s", "verified_mb")}
           for k, v in groups.items()}
    rows = []
    for (root, n), runs in sorted(groups.items(), key=lambda kv: (kv[0][1], kv[0][0])):
        m = med[(root, n)]
        ok = all(r["verify_ok"] and not r["failed"] for r in runs)
        rows.append([root, n, m["pages_per_s"], m["verify_mb_per_s"], m["captures_per_s"],
                     m["verified_mb"],
                     ", ".join(f"{r['capture_s']:.1f}" for r in runs),
                     ", ".join(f"{r['verify_s']:.1f}" for r in runs),
                     "yes" if ok else "NO"])
    print_table(
        f"{data['pages']} pages ({data['body_bytes'] / 1e6:.2f} MB of HTML) from 127.0.0.1, "
        f"Dask LocalCluster, median of {data['rounds']} interleaved rounds"
        + (", verify --deep" if data["deep"] else ""),
        ["root", "workers", "capture pages/s", "verify MB/s", "verify captures/s",
         "MB verified", "capture s (every round)", "verify s (every round)",
         "all captured, verify ok"], rows)
    ratio_rows = []
    counts = sorted({n for _r, n in groups})
    for root in ("local", "s3"):
        if len(counts) > 1 and (root, counts[0]) in med and (root, counts[-1]) in med:
            a, b = med[(root, counts[0])], med[(root, counts[-1])]
            ratio_rows.append([f"{root}: {counts[-1]} vs {counts[0]} workers",
                               f"{b['pages_per_s'] / a['pages_per_s']:.2f}x",
                               f"{b['verify_mb_per_s'] / a['verify_mb_per_s']:.2f}x"])
    for n in counts:
        if ("local", n) in med and ("s3", n) in med:
            a, b = med[("local", n)], med[("s3", n)]
            ratio_rows.append([f"{n} worker(s): S3 vs local",
                               f"{b['pages_per_s'] / a['pages_per_s']:.2f}x",
                               f"{b['verify_mb_per_s'] / a['verify_mb_per_s']:.2f}x"])
    print_table("Ratios (of median throughput)", ["comparison", "capture", "verify"],
                ratio_rows)
    load = ", ".join(f"{x:.1f}" for x in data["loadavg_1_5_15min"])
    print(f"\nload average at the end (1, 5, 15 min): {load}; {os.cpu_count()} cores")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds")
    parser.add_argument("--workers", default="1,2", help="worker counts, comma-separated")
    parser.add_argument("--deep", action="store_true", help="time verify --deep")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    counts = [int(n) for n in args.workers.split(",") if n.strip()]
    return run_benchmark("scale", args.workdir, args.keep,
                         lambda work: bench(args.pages, args.rounds, counts, args.deep, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
