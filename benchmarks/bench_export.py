#!/usr/bin/env python3
"""Export speed and peak memory: ``preserve export --wacz`` / ``--bagit`` of large captures and
of many small ones, next to ``cp`` and ``zip -0`` of the same files, and ``preserve report``.

Usage:
    python benchmarks/bench_export.py [--size 1000000000[,...]] [--pages 200]
                                      [--workdir DIR] [--keep] [--json OUT]

An archive (initialised with a signing key) gets one capture of a ``--size``-byte random
body per size (incompressible, so the WARC file is as large as the body) and ``--pages``
article pages. Each large capture is exported alone (``--wacz``, ``--wacz --sign``,
``--bagit``), then all pages together; the baseline is exporting one small page. Peak RSS is
the child process's own ``ru_maxrss`` (``wait4``); MB/s is WARC bytes per wall second, page
cache warm (each WARC is read once before timing). ``cp`` and ``zip -0`` (when installed) copy
the same WARC file for comparison: an export reads every byte once and hashes it with SHA-256
(WACZ) or SHA-256 and SHA-512 (BagIt) while writing it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    LocalServer,
    Measured,
    dir_bytes,
    print_table,
    run_benchmark,
    run_measured,
)


def preserve_cmd(root: Path, key: Path, *args: str) -> list[str]:
    return [PRESERVE, "--root", str(root), "--key", str(key), *args]


def row(what: str, tool: str, measured: Measured, size: int) -> dict[str, Any]:
    if measured.returncode != 0:
        print(f"{tool} {what} exited {measured.returncode}: {measured.stderr[-600:]}",
              file=sys.stderr)
    return {"what": what, "tool": tool, "seconds": measured.seconds,
            "mb_per_s": size / 1e6 / measured.seconds if measured.seconds else 0.0,
            "max_rss_mib": measured.max_rss_mib, "exit": measured.returncode}


def capture_id(root: Path, key: Path, url: str, limits: list[str]) -> str:
    done = subprocess.run(preserve_cmd(root, key, "capture", *limits, url), check=True,
                          capture_output=True, text=True)
    return done.stdout.split()[0]


def warm(path: Path) -> None:
    with path.open("rb") as handle:
        while handle.read(1 << 20):
            pass


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root, key, out = work / "archive", work / "archive.key", work / "out"
    out.mkdir()
    env_config = work / "config"
    subprocess.run(preserve_cmd(root, key, "init"), check=True, capture_output=True)
    limits = ["--max-size", str(max(args.size) * 2), "--timeout", "1200"]
    rows: list[dict[str, Any]] = []
    env = {**os.environ, "PRESERVE_CONFIG_HOME": str(env_config)}
    with LocalServer() as server:
        small = capture_id(root, key, server.page_urls(1)[0], limits)
        large = [(size, capture_id(root, key, server.stream_url(size, "bin"), limits))
                 for size in args.size]
        pages = subprocess.run(preserve_cmd(root, key, "capture", *limits,
                                            *server.page_urls(args.pages, start=1)),
                               check=True, capture_output=True, text=True).stdout.split("\n")
    page_ids = [line.split()[0] for line in pages if line.strip()]
    _, archive_bytes = dir_bytes(root / "archive" / "warc")
    small_bytes = next((root / "archive" / "warc").rglob(f"{small}.warc.gz")).stat().st_size
    n = 0

    def export(what: str, size: int, *args_: str) -> None:
        nonlocal n
        n += 1
        kind = "--wacz" if "--wacz" in args_ else "--bagit"
        target = out / f"{n}.{'wacz' if kind == '--wacz' else 'bag'}"
        rest = [a for a in args_ if a not in ("--wacz", "--bagit")]
        measured = run_measured(preserve_cmd(root, key, "export", *rest, kind, str(target)),
                                env=env)
        label = " ".join(a for a in args_ if a.startswith("--"))
        rows.append(row(what, f"preserve export {label}", measured, size))
        if target.is_dir():
            shutil.rmtree(target)
        else:
            target.unlink(missing_ok=True)

    for kind in ("--wacz", "--bagit"):
        export("one 30 KB page", small_bytes, small, kind)
    for size, cid in large:
        warc = next((root / "archive" / "warc").rglob(f"{cid}.warc.gz"))
        warm(warc)
        label = f"{size / 1e6:,.0f} MB capture"
        export(label, warc.stat().st_size, cid, "--wacz")
        export(label, warc.stat().st_size, cid, "--wacz", "--sign")
        export(label, warc.stat().st_size, cid, "--bagit")
        rows.append(row(label, "cp", run_measured(["cp", str(warc), str(out / "copy")]),
                        warc.stat().st_size))
        (out / "copy").unlink(missing_ok=True)
        if shutil.which("zip"):
            rows.append(row(label, "zip -0", run_measured(
                ["zip", "-0", "-q", str(out / "copy.zip"), str(warc)]), warc.stat().st_size))
            (out / "copy.zip").unlink(missing_ok=True)
        rows.append(row(label, "preserve report (re-hashes the WARC)", run_measured(
            preserve_cmd(root, key, "report", cid, "-o", str(out / "r.html")),
            env=env), warc.stat().st_size))
        (out / "r.html").unlink(missing_ok=True)
    if page_ids:
        pages_bytes = archive_bytes - small_bytes - sum(
            next((root / "archive" / "warc").rglob(f"{cid}.warc.gz")).stat().st_size
            for _, cid in large)
        for kind in ("--wacz", "--bagit"):
            export(f"{len(page_ids)} article pages", pages_bytes, *page_ids, kind)
    return {"sizes": args.size, "pages": len(page_ids), "rows": rows}


def report(data: dict[str, Any]) -> None:
    print_table("Export: wall time, throughput (WARC MB/s) and peak RSS of the child process",
                ["what", "tool", "seconds", "MB/s", "peak RSS MiB", "exit"],
                [[r["what"], r["tool"], r["seconds"], r["mb_per_s"], r["max_rss_mib"],
                  r["exit"]] for r in data["rows"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default=[1_000_000_000],
                        type=lambda s: [int(float(v)) for v in s.split(",")],
                        help="bytes of each large capture; a comma list for several")
    parser.add_argument("--pages", type=int, default=200, help="article pages to export too")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return run_benchmark("export", args.workdir, args.keep, lambda work: bench(args, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
