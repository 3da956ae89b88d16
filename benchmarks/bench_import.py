#!/usr/bin/env python3
"""``preserve import`` of a WARC file of many small pages: wall time and peak RSS by pages.

Usage:
    python benchmarks/bench_import.py [--pages 200,2000,20000] [--trace] [--before PRESERVE]
                                      [--workdir DIR] [--keep] [--json OUT]

For each count N a WARC file (gzip per record, as wget and most crawlers write it) is built
with warcio: a warcinfo record, then for each page a request and a ``text/html`` response
record (the 3-9 KiB article pages of ``_local_server.render_page(n, small=True)``), and one
stylesheet response every 10 pages (kept in the file, no page of its own). It is imported
by ``preserve import`` into a fresh archive initialised with a signing key (one process; peak
RSS is the child's own ``wait4`` ``ru_maxrss`` through the launcher of :func:`run_measured`).
With ``--before`` another preserve executable imports the same file into an archive of its
own, interleaved with this one.

``--trace`` also imports the first count in a child process under ``tracemalloc`` (12 frames),
sampling the traced Python heap every few milliseconds, and prints the peak with the
allocation sites (grouped by traceback) that held the most at that moment. Not part of the
test suite.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    Measured,
    print_table,
    render_page,
    run_benchmark,
    run_measured,
    traced,
)
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

MIB = 2**20
HTML = [("Content-Type", "text/html; charset=utf-8")]
CSS = [("Content-Type", "text/css")]


def build_warc(path: Path, pages: int) -> int:
    """A gzip-per-record WARC of ``pages`` HTML pages (request + response each) and a
    stylesheet every 10 pages; returns its size in bytes."""
    with path.open("wb") as out:
        writer = WARCWriter(out, gzip=True)
        writer.write_record(writer.create_warcinfo_record(
            path.name, {"software": "bench_import.py (warcio)", "format": "WARC File Format 1.1"}))
        for n in range(pages):
            _write_exchange(writer, f"http://bench.example/page/{n}.html",
                            render_page(n, small=True), HTML)
            if n % 10 == 9:
                _write_exchange(writer, f"http://bench.example/static/{n}.css",
                                b"body { color: #333 }\n", CSS)
    return path.stat().st_size


def _write_exchange(writer: WARCWriter, url: str, body: bytes,
                    headers: list[tuple[str, str]]) -> None:
    response = writer.create_warc_record(
        url, "response", payload=io.BytesIO(body),
        http_headers=StatusAndHeaders("200 OK", headers, protocol="HTTP/1.1"))
    path = url.split("/", 3)[3]
    request = writer.create_warc_record(
        url, "request", payload=io.BytesIO(b""),
        http_headers=StatusAndHeaders(f"GET /{path} HTTP/1.1", [("Host", "bench.example")],
                                      is_http_request=True))
    writer.write_request_response_pair(request, response)


def trace_import(source: Path, root: Path, key: Path) -> None:
    """Child-process mode: import ``source`` under tracemalloc; print peak and top sites."""
    import preserve  # noqa: PLC0415 - only the child needs it
    from preserve.importing import import_file  # noqa: PLC0415

    archive = preserve.Archive(root, key=key)
    result, trace = traced(lambda: import_file(archive, source), sites=10, frames=6)
    print(json.dumps({"pages": len(result.captures), **trace}))


def row(pages: int, tool: str, measured: Measured, warc_bytes: int) -> dict[str, Any]:
    if measured.returncode != 0:
        print(f"{tool} import of {pages} pages exited {measured.returncode}: "
              f"{measured.stderr[-600:]}", file=sys.stderr)
    return {"pages": pages, "tool": tool, "warc_mb": warc_bytes / 1e6,
            "seconds": measured.seconds, "pages_per_second": pages / measured.seconds,
            "max_rss_mib": measured.max_rss_mib, "exit": measured.returncode}


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    rows: list[dict[str, Any]] = []
    traces: dict[str, Any] = {}
    tools = [("preserve import", PRESERVE)]
    if args.before:
        tools.append(("preserve import (before)", args.before))
    # known heads and keys in the work directory, not the user's configuration
    env = dict(os.environ, PRESERVE_CONFIG_HOME=str(work / "config"))
    for pages in args.pages:
        source = work / f"pages-{pages}.warc.gz"
        size = build_warc(source, pages)
        for index, (tool, exe) in enumerate(tools):
            root, key = work / f"archive-{pages}-{index}", work / f"{pages}-{index}.key"
            subprocess.run([exe, "--root", str(root), "--key", str(key), "init"], check=True,
                           capture_output=True, env=env)
            measured = run_measured([exe, "--root", str(root), "--key", str(key), "import",
                                     str(source)], env=env)
            rows.append(row(pages, tool, measured, size))
            shutil.rmtree(root)
        if args.trace and pages == args.pages[0]:
            traces[f"{pages} pages"] = _trace(work, source, env)
        source.unlink()
    return {"pages": args.pages, "rows": rows, "traces": traces}


def _trace(work: Path, source: Path, env: dict[str, str]) -> Any:
    root = work / "trace"
    subprocess.run([PRESERVE, "--root", str(root), "--key", str(work / "trace.key"), "init"],
                   check=True, capture_output=True, env=env)
    measured = run_measured([sys.executable, __file__, "--trace-import", str(source), str(root),
                             str(work / "trace.key")], env=env)
    shutil.rmtree(root)
    if measured.returncode != 0:
        print(f"trace failed: {measured.stderr[-600:]}", file=sys.stderr)
        return None
    return json.loads(measured.stdout)


def report(data: dict[str, Any]) -> None:
    print_table("preserve import: one WARC file of N small pages (child's own ru_maxrss)",
                ["pages", "tool", "WARC MB", "seconds", "pages/s", "peak RSS MiB", "exit"],
                [[r["pages"], r["tool"], r["warc_mb"], r["seconds"], r["pages_per_second"],
                  r["max_rss_mib"], r["exit"]] for r in data["rows"]])
    for label, trace in data["traces"].items():
        if trace is None:
            continue
        print(f"\ntracemalloc, import of {label}: peak traced Python heap "
              f"{trace['peak_traced_mib']:.1f} MiB; largest holders at the sampled peak "
              f"({trace['sampled_peak_mib']:.1f} MiB):")
        for item in trace["top"]:
            print(f"  {item['mib']:7.1f} MiB {item['count']:>8} blocks  "
                  + " <- ".join(reversed(item["frames"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", default=[200, 2000, 20000],
                        type=lambda s: [int(v) for v in s.split(",")],
                        help="page counts, a comma list")
    parser.add_argument("--trace", action="store_true",
                        help="also profile the first count with tracemalloc")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable to import the same files, "
                             "interleaved with this one")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--trace-import", nargs=3, metavar=("WARC", "ROOT", "KEY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trace_import:
        source, root, key = args.trace_import
        trace_import(Path(source), Path(root), Path(key))
        return 0
    return run_benchmark("import", args.workdir, args.keep, lambda work: bench(args, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
