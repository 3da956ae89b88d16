#!/usr/bin/env python3
"""Capture throughput: ``preserve capture`` (CLI and library loop) next to ``wget --warc-file``.

Usage:
    python benchmarks/bench_capture.py [--pages 200] [--repeat 1] [--workdir DIR] [--keep]
                                       [--json OUT]

A local server (``_local_server.py``, its own process, 127.0.0.1) serves ``--pages``
generated article pages of 4-250 KiB; every page is fetched once before timing so the server
answers from memory. The same URL list is then captured by:

* ``wget --warc-file=… --no-verbose -i urls.txt`` (one process, keep-alive connections);
* ``preserve capture --from urls.txt`` (one process; wall time includes interpreter start-up);
* the library in one process: ``Archive.capture(url)`` in a loop, timed inside the process
  (no start-up), with a signed checkpoint after every capture (the default);
* the same loop with ``checkpoint=False`` and one ``Archive.checkpoint()`` at the end (the
  batch mode the API offers).

Each preserve archive is initialised with a signing key first (``preserve init``), as a user's
would be. pages/s = pages / wall seconds; MB/s = HTTP body bytes / wall seconds (10^6 bytes).
With ``--repeat N`` the fastest of N runs is kept. Afterwards every WARC file each tool wrote
is checked with ``warcio check``. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    WARCIO,
    LocalServer,
    Measured,
    dir_bytes,
    page_bytes,
    print_table,
    run_benchmark,
    run_measured,
)


def library_loop(url_file: Path, root: Path, key: Path, batch: bool) -> None:
    """Child-process mode: capture every URL with the library; print the loop's seconds."""
    import preserve  # noqa: PLC0415 - only the child needs it

    archive = preserve.Archive(root, key=key)
    options = preserve.CaptureOptions()
    urls = url_file.read_text(encoding="utf-8").split()
    started = time.perf_counter()
    for url in urls:
        archive.capture(url, options, checkpoint=not batch)
    if batch:
        archive.checkpoint()
    print(json.dumps({"seconds": time.perf_counter() - started}))


def warcio_check(files: list[Path]) -> str:
    if not files:
        return "no WARC files"
    result = subprocess.run([WARCIO, "check", *map(str, files)], check=False,
                            capture_output=True, text=True)
    if result.returncode == 0:
        return f"pass ({len(files)} files)"
    return f"FAIL ({len(files)} files): {(result.stdout + result.stderr).strip()[-300:]}"


def run_tool(name: str, work: Path, url_file: Path, run: int) -> tuple[Measured, float, Path]:
    """One run of one tool; returns (measurement, seconds to count, output directory)."""
    out = work / f"{name}-{run}"
    key = work / f"{name}-{run}.key"
    if name == "wget":
        out.mkdir()
        cmd = ["wget", f"--warc-file={out / 'capture'}", "--no-verbose",
               "--directory-prefix", str(out / "files"), "--input-file", str(url_file)]
        measured = run_measured(cmd)
        return measured, measured.seconds, out
    subprocess.run([PRESERVE, "--root", str(out), "--key", str(key), "init"], check=True,
                   capture_output=True)
    if name == "preserve CLI":
        measured = run_measured([PRESERVE, "--root", str(out), "--key", str(key), "capture",
                                 "--http", "--from", str(url_file)])
        return measured, measured.seconds, out
    batch = name.endswith("(batch checkpoint)")
    cmd = [sys.executable, __file__, "--library-loop", str(url_file), str(out), str(key)]
    measured = run_measured(cmd + (["--batch"] if batch else []))
    seconds = json.loads(measured.stdout)["seconds"] if measured.returncode == 0 else 0.0
    return measured, seconds, out


TOOLS = ("wget", "preserve CLI", "preserve library", "preserve library (batch checkpoint)")


def bench(pages: int, repeat: int, work: Path) -> dict[str, Any]:
    with LocalServer() as server:
        urls = server.page_urls(pages)
        for url in urls:  # warm the server's page cache
            with urllib.request.urlopen(url) as response:
                response.read()
        url_file = work / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
        body = page_bytes(pages)
        results: dict[str, Any] = {}
        for tool in TOOLS:
            best: dict[str, Any] | None = None
            for run in range(repeat):
                measured, seconds, out = run_tool(tool, work, url_file, run)
                if measured.returncode != 0:
                    print(f"{tool} exited {measured.returncode}: {measured.stderr[-600:]}",
                          file=sys.stderr)
                if tool == "wget":
                    warcs = sorted(out.glob("*.warc.gz"))
                else:
                    warcs = sorted((out / "archive" / "warc").rglob("*.warc.gz"))
                _, warc_bytes = dir_bytes(out, (".warc.gz",))
                row = {
                    "seconds": seconds,
                    "process_seconds": measured.seconds,
                    "pages_per_s": pages / seconds if seconds else 0.0,
                    "mb_per_s": body / 1e6 / seconds if seconds else 0.0,
                    "warc_bytes": warc_bytes,
                    "warc_files": len(warcs),
                    "max_rss_mib": measured.max_rss_mib,
                    "exit": measured.returncode,
                    "warcio_check": warcio_check(warcs),
                }
                if best is None or row["seconds"] < best["seconds"]:
                    best = row
                shutil.rmtree(out, ignore_errors=True)
            results[tool] = best
        startup = run_measured([PRESERVE, "--version"])
    return {"pages": pages, "body_bytes": body, "repeat": repeat, "tools": results,
            "preserve_startup_seconds": startup.seconds}


def report(data: dict[str, Any]) -> None:
    rows = []
    for tool, r in data["tools"].items():
        rows.append([tool, r["seconds"], r["pages_per_s"], r["mb_per_s"],
                     r["warc_bytes"] / 1e6, r["warc_files"], r["max_rss_mib"],
                     r["warcio_check"]])
    print_table(
        f"{data['pages']} pages ({data['body_bytes'] / 1e6:.1f} MB of HTML) from 127.0.0.1, "
        f"best of {data['repeat']}",
        ["tool", "seconds", "pages/s", "MB/s", "WARC MB", "WARC files", "peak RSS MiB",
         "warcio check"],
        rows,
    )
    print(f"\n`preserve --version` (interpreter + imports): "
          f"{data['preserve_startup_seconds']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=1, help="runs per tool; fastest kept")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--library-loop", nargs=3, metavar=("URLS", "ROOT", "KEY"),
                        help=argparse.SUPPRESS)
    parser.add_argument("--batch", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.library_loop:
        url_file, root, key = map(Path, args.library_loop)
        library_loop(url_file, root, key, args.batch)
        return 0

    return run_benchmark("capture", args.workdir, args.keep,
                         lambda work: bench(args.pages, args.repeat, work), report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
