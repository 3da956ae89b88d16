#!/usr/bin/env python3
"""Verify at scale: ``preserve verify`` over archives of 10,000 and 100,000 captures, wall
time and peak RSS, to show that the audit's memory does not follow the archive's size.

Usage:
    python benchmarks/bench_verify_scale.py [--sizes 10000,100000] [--deep-up-to 10000]
                                            [--workers 2] [--before PRESERVE] [--workdir DIR]
                                            [--keep] [--json OUT]

The archives are synthetic but real: each capture is one small generated article page
(3-9 KiB, unique text), written with preserve's own writers (``preserve.warc.write_capture``
for the WARC file, the extractor for the text up to ``--deep-up-to`` captures and a cheap
unique variant of it beyond, ``TextStore.put`` and ``write_manifest``),
in ``--workers`` processes, with ``os.fsync`` turned into a no-op while building (durability
is not what is measured, and 100,000 network captures would take hours). The archive grows
in place from one size to the next. Each archive is verified with ``preserve verify --json
--no-record`` (a child process: wall time, its own peak RSS via ``wait4``) after the page
cache was warmed, and with ``--deep`` up to ``--deep-up-to`` captures. No integrity log is
initialised (its audit is measured by ``bench_log.py``), so every run reports one E301
(no integrity log) and nothing else. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import PRESERVE, dir_bytes, print_table, render_page, run_benchmark, run_measured

BASE = datetime(2025, 1, 1, tzinfo=UTC)


TEMPLATES = 500


def build_chunk(root_text: str, start: int, stop: int, extract_below: int) -> int:
    """Write captures ``start .. stop-1`` into the archive at ``root_text`` (a worker).

    Captures below ``extract_below`` get their text from the extractor (so ``--deep``
    re-extraction agrees); later ones reuse the extraction of their page template with a
    line naming the capture appended (unique text, cheap; only the default verify runs
    over them)."""
    os.fsync = lambda fd: None  # the benchmark's own archive: durability not measured

    from preserve.capture.exchange import Exchange, FetchResult  # noqa: PLC0415
    from preserve.extract import (  # noqa: PLC0415
        EXTRACTOR_NAME,
        EXTRACTOR_SETTINGS,
        EXTRACTOR_VERSION,
        extract,
    )
    from preserve.hashing import hash_bytes  # noqa: PLC0415
    from preserve.storage.layout import ArchiveLayout, new_capture_id  # noqa: PLC0415
    from preserve.storage.manifest import manifest_from_dict, write_manifest  # noqa: PLC0415
    from preserve.storage.text_store import TextStore  # noqa: PLC0415
    from preserve.warc import write_capture  # noqa: PLC0415

    root = Path(root_text)
    layout = ArchiveLayout(root)
    store = TextStore(layout)
    templates: dict[int, Any] = {}
    spool = root / "archive" / "tmp" / f"build-{start}"
    spool.mkdir(parents=True, exist_ok=True)
    for i in range(start, stop):
        moment = BASE + timedelta(seconds=97 * i)  # spread over months and years
        stamp = moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        cid = new_capture_id(moment)
        url = f"http://news.example/{i}/article.html"
        page = render_page(i % TEMPLATES, small=True)
        body = page.replace(b"<h1>", f"<h1>No. {i}: ".encode(), 1)
        body_path = spool / "body"
        body_path.write_bytes(body)
        sha = hash_bytes(body).sha256
        head = (f"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        exchange = Exchange(
            url=url, method="GET",
            request_bytes=f"GET /{i}/article.html HTTP/1.1\r\nHost: news.example\r\n\r\n".encode(),
            response_head=head, status=200, reason="OK", http_version="HTTP/1.1",
            headers=(("Content-Type", "text/html; charset=utf-8"),
                     ("Content-Length", str(len(body)))),
            body_path=body_path, body_size=len(body), body_sha256=sha,
            transfer_encoding=None, wire_sha256=sha, wire_size=len(head) + len(body),
            started=stamp, ended=stamp, remote_ip="192.0.2.1", remote_port=80)
        result = FetchResult(requested_url=url, exchanges=(exchange,), started=stamp,
                             ended=stamp, redirects_followed=0, notes=())
        if i < extract_below:
            extraction = extract(body, url, charset="utf-8")
            text = extraction.text.encode("utf-8")
        else:
            if i % TEMPLATES not in templates:
                templates[i % TEMPLATES] = extract(page, url, charset="utf-8")
            extraction = templates[i % TEMPLATES]
            text = extraction.text.encode("utf-8") + f"\n\nCapture {i}.".encode()
        warc_rel = layout.warc_rel_for(cid, moment)
        warc_path = root / warc_rel
        warc_path.parent.mkdir(parents=True, exist_ok=True)
        written = write_capture(warc_path, result, warcinfo={"host": "bench"},
                                metadata_json=b"{}", conversion_text=text)
        text_ref = store.put(text)
        comments = extraction.comments_text.encode("utf-8")
        comments_ref = store.put(comments) if comments else None
        hop = {"url": url, "method": "GET", "status": 200, "location": None,
               "remote_ip": "192.0.2.1", "remote_port": 80, "started": stamp, "ended": stamp,
               "transfer_encoding": None, "wire_sha256": sha, "wire_size": exchange.wire_size,
               "body_sha256": sha, "body_size": len(body), "tls": None}
        document = {
            "schema": "preserve/manifest/1", "capture_id": cid, "status": "ok",
            "requested_url": url, "final_url": url, "started": stamp, "ended": stamp,
            "http": {"status": 200, "reason": "OK",
                     "content_type": "text/html; charset=utf-8"},
            "redirects": [hop],
            "connection": {"remote_ip": "192.0.2.1", "remote_port": 80, "local_ip": None,
                           "tls": None},
            "warc": {"path": warc_rel, "size": written.digests.size,
                     "blake3": written.digests.blake3, "sha256": written.digests.sha256,
                     "records": [{"id": r.record_id, "type": r.type,
                                  "target_uri": r.target_uri, "offset": r.offset,
                                  "length": r.length, "block_digest": r.block_digest,
                                  "payload_digest": r.payload_digest,
                                  "refers_to": r.refers_to, "content_type": r.content_type}
                                 for r in written.records]},
            "text": {"blake3": text_ref.blake3, "size": text_ref.size,
                     "path": text_ref.path_rel},
            "comments": None if comments_ref is None else
            {"blake3": comments_ref.blake3, "size": comments_ref.size,
             "path": comments_ref.path_rel},
            "extraction": {"title": extraction.title, "byline": extraction.byline,
                           "published": extraction.published,
                           "language": extraction.language, "reason": extraction.reason},
            "extractor": {"name": EXTRACTOR_NAME, "version": EXTRACTOR_VERSION,
                          "settings": dict(EXTRACTOR_SETTINGS)},
            "software": {"preserve": "bench"}, "host": "bench", "operator": "bench",
            "previous": [],
        }
        write_manifest(layout, manifest_from_dict(document))
    body_path.unlink(missing_ok=True)
    spool.rmdir()
    return stop - start


def grow(root: Path, start: int, stop: int, workers: int, extract_below: int) -> None:
    step = 500
    with ProcessPoolExecutor(max_workers=workers) as pool:
        jobs = [pool.submit(build_chunk, str(root), a, min(a + step, stop), extract_below)
                for a in range(start, stop, step)]
        for job in jobs:
            job.result()


def warm(root: Path) -> None:
    for directory, _, names in os.walk(root):
        for name in names:
            with open(os.path.join(directory, name), "rb") as f:
                while f.read(1 << 20):
                    pass


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root = work / "archive"
    rows: list[dict[str, Any]] = []
    built = 0
    for size in args.sizes:
        started = time.perf_counter()
        grow(root, built, size, args.workers, args.deep_up_to)
        build_seconds = time.perf_counter() - started
        built = size
        warm(root)
        files, total = dir_bytes(root)
        tools = [("preserve", PRESERVE)] + ([("preserve (before)", args.before)]
                                            if args.before else [])
        for (tool, exe), deep in [(t, d) for d in (False, True) for t in tools]:
            if deep and size > args.deep_up_to:
                continue
            cmd = [exe, "--root", str(root), "verify", "--json", "--no-record"]
            measured = run_measured(cmd + (["--deep"] if deep else []))
            envelope = json.loads(measured.stdout) if measured.stdout.strip() else {}
            report = envelope.get("result", {})  # {"ok": ..., "result": the report}
            rows.append({
                "captures": size, "tool": tool, "deep": deep, "files": files, "bytes": total,
                "build_seconds": build_seconds, "seconds": measured.seconds,
                "max_rss_mib": measured.max_rss_mib, "exit": measured.returncode,
                "manifests_checked": report.get("stats", {}).get("manifests_checked"),
                "findings": report.get("counts"),
            })
            print(rows[-1], file=sys.stderr, flush=True)
    return {"rows": rows, "workers": args.workers, "loadavg": os.getloadavg()}


def report(data: dict[str, Any]) -> None:
    load = ", ".join(f"{v:.2f}" for v in data["loadavg"])
    print_table(f"Verify at scale (load average after: {load})",
                ["captures", "command", "files", "MB", "seconds", "captures/s",
                 "peak RSS MiB", "exit", "findings"],
                [[r["captures"], r.get("tool", "preserve") + " verify"
                  + (" --deep" if r["deep"] else ""),
                  r["files"], r["bytes"] / 1e6, r["seconds"], r["captures"] / r["seconds"],
                  r["max_rss_mib"], r["exit"], r["findings"] or "none"]
                 for r in data["rows"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=[10_000, 100_000],
                        type=lambda s: sorted(int(float(v)) for v in s.split(",")))
    parser.add_argument("--deep-up-to", type=int, default=10_000)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes building the archive")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable (e.g. an older version) to verify "
                             "the same archives")
    parser.add_argument("--workdir", type=Path, help="where the archive goes (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the archive")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return run_benchmark("verify-scale", args.workdir, args.keep,
                         lambda work: bench(args, work), report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
