#!/usr/bin/env python3
"""Load figures: 1,000 captures in one ``preserve capture --from`` run, then an archive of
10,000 captures built and verified.

Usage:
    python benchmarks/bench_load.py [--pages 1000] [--captures 10000] [--parallel 1]
                                    [--chunk 1000] [--budget 600] [--no-deep]
                                    [--workdir DIR] [--keep] [--json OUT]

Part 1 captures ``--pages`` generated article pages (4-250 KiB) from a local server with one
``preserve capture --from`` process (preserve has no ``--concurrency`` option: captures are
sequential) and reports wall time, pages/s, MB/s of HTTP bodies and the peak RSS.

Part 2 builds a second archive of ``--captures`` small pages (3-9 KiB) in chunks of
``--chunk`` URLs, each chunk one ``preserve capture --from`` run (or split over
``--parallel`` runs side by side on the same archive), timing every chunk so that a slow-down
as the archive grows shows. If the build passes ``--budget`` seconds it stops after the
current chunk and says so; the verify figures are then measured on the smaller archive and
*extrapolated* linearly to ``--captures`` in a separate, labelled column. Then ``preserve
verify`` and ``preserve verify --deep`` run over it (wall time, peak RSS). A capture process
that fails stops the build too; the failure is printed and the archive is still verified, as
far as it got.

Every archive is initialised with a signing key first (``preserve init``), so each capture
also appends to the integrity log and signs a checkpoint, as users' captures do. Peak RSS is
the child's own (``wait4``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    LocalServer,
    Measured,
    dir_bytes,
    machine_info,
    page_bytes,
    print_table,
    run_measured,
    write_json,
)


def preserve_cmd(root: Path, key: Path, *args: str) -> list[str]:
    return [PRESERVE, "--root", str(root), "--key", str(key), *args]


def init_archive(root: Path, key: Path) -> None:
    subprocess.run(preserve_cmd(root, key, "init"), check=True, capture_output=True)


def warm(urls: list[str]) -> None:
    """Fetch every URL once so the server's page cache is hot before anything is timed."""
    for url in urls:
        with urllib.request.urlopen(url) as response:
            response.read()


def run_parallel(cmds: list[list[str]]) -> tuple[float, float, list[int], str]:
    """Run commands side by side; (wall seconds, largest peak RSS MiB, exit statuses, the
    last lines of their stderr)."""
    started = time.perf_counter()
    processes = [
        subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE)
        for cmd in cmds
    ]
    peak = 0.0
    codes = []
    errors = []
    for process in processes:
        error = b""
        if process.stderr is not None:  # read before waiting: a full pipe would block it
            error = process.stderr.read()
            process.stderr.close()
        _, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
        if error.strip():
            errors.append(error.decode(errors="replace").strip()[-400:])
        peak = max(peak, usage.ru_maxrss / 1024)
        codes.append(process.returncode)
    return time.perf_counter() - started, peak, codes, " | ".join(errors)


def check(measured: Measured, what: str) -> None:
    if measured.returncode != 0:
        print(f"{what} exited {measured.returncode}: {measured.stderr[-800:]}", file=sys.stderr)


def part_one(server: LocalServer, work: Path, pages: int) -> dict[str, Any]:
    root, key = work / "load-1k", work / "load-1k.key"
    init_archive(root, key)
    urls = server.page_urls(pages)
    warm(urls)
    url_file = work / "urls-1k.txt"
    url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    body_bytes = page_bytes(pages)
    measured = run_measured(preserve_cmd(root, key, "capture", "--http", "--from", str(url_file)))
    check(measured, "preserve capture")
    _, warc_bytes = dir_bytes(root / "archive" / "warc")
    return {
        "pages": pages,
        "body_bytes": body_bytes,
        "warc_bytes": warc_bytes,
        "seconds": measured.seconds,
        "pages_per_s": pages / measured.seconds,
        "mb_per_s": body_bytes / 1e6 / measured.seconds,
        "max_rss_mib": measured.max_rss_mib,
        "exit": measured.returncode,
    }


def part_two(server: LocalServer, work: Path, captures: int, chunk: int, parallel: int,
             budget: float, deep: bool) -> dict[str, Any]:
    root, key = work / "load-10k", work / "load-10k.key"
    init_archive(root, key)
    chunks: list[dict[str, Any]] = []
    failure: str | None = None
    built = 0
    build_seconds = 0.0
    build_peak = 0.0
    while built < captures and build_seconds < budget:
        count = min(chunk, captures - built)
        urls = server.page_urls(count, small=True, start=built)
        warm(urls)
        files = []
        for i in range(parallel):
            part = urls[i::parallel]
            if part:
                path = work / f"urls-{built}-{i}.txt"
                path.write_text("\n".join(part) + "\n", encoding="utf-8")
                files.append(path)
        seconds, peak, codes, errors = run_parallel(
            [preserve_cmd(root, key, "capture", "--http", "--from", str(f)) for f in files])
        if any(codes):
            failure = f"capture processes exited {codes} in the chunk after {built}: {errors}"
            print(f"  {failure}; building stops here", file=sys.stderr, flush=True)
            break
        built += count
        build_seconds += seconds
        build_peak = max(build_peak, peak)
        chunks.append({"after": built, "captures": count, "seconds": seconds,
                       "captures_per_s": count / seconds, "max_rss_mib": peak, "exits": codes})
        print(f"  built {built:>6} captures  chunk {count / seconds:6.1f}/s  "
              f"total {build_seconds:7.1f} s", file=sys.stderr, flush=True)
    _, warc_bytes = dir_bytes(root / "archive" / "warc")
    _, total_bytes = dir_bytes(root)
    result: dict[str, Any] = {
        "target": captures,
        "built": built,
        "parallel": parallel,
        "build_seconds": build_seconds,
        "build_captures_per_s": built / build_seconds if build_seconds else 0.0,
        "build_max_rss_mib": build_peak,
        "stopped_by_budget": built < captures and failure is None,
        "failure": failure,
        "warc_bytes": warc_bytes,
        "archive_bytes": total_bytes,
        "chunks": chunks,
        "verify": {},
    }
    for label, extra in (("verify", ()), ("verify --deep", ("--deep",)))[: 2 if deep else 1]:
        measured = run_measured(preserve_cmd(root, key, "verify", "--json", *extra))
        check(measured, f"preserve {label}")
        result["verify"][label] = {
            "seconds": measured.seconds,
            "max_rss_mib": measured.max_rss_mib,
            "exit": measured.returncode,
            "captures_per_s": built / measured.seconds,
            "extrapolated_seconds": measured.seconds * captures / max(built, 1),
        }
    return result


def report_one(one: dict[str, Any]) -> None:
    print_table(
        f"{one['pages']} captures, one `preserve capture --from` process (sequential)",
        ["pages", "body MB", "WARC MB", "seconds", "pages/s", "MB/s", "peak RSS MiB"],
        [[one["pages"], one["body_bytes"] / 1e6, one["warc_bytes"] / 1e6, one["seconds"],
          one["pages_per_s"], one["mb_per_s"], one["max_rss_mib"]]],
    )
    sys.stdout.flush()


def report_two(two: dict[str, Any]) -> None:
    note = f" (stopped by the time budget; target {two['target']})" if two["stopped_by_budget"] \
        else f" (stopped by a FAILED capture; target {two['target']})" if two["failure"] else ""
    print_table(
        f"Building the archive: {two['built']} small captures{note}, "
        f"{two['parallel']} process(es) per chunk",
        ["captures so far", "chunk captures/s", "chunk seconds", "peak RSS MiB"],
        [[c["after"], c["captures_per_s"], c["seconds"], c["max_rss_mib"]]
         for c in two["chunks"]],
    )
    if two["failure"]:
        print(f"\nFAILURE while building: {two['failure']}")
    print(f"\nbuild: {two['built']} captures in {two['build_seconds']:.1f} s "
          f"({two['build_captures_per_s']:.1f}/s), archive {two['archive_bytes'] / 1e6:.1f} MB")
    columns = ["command", "captures", "seconds", "captures/s", "peak RSS MiB", "exit"]
    if two["built"] < two["target"]:
        columns.append(f"seconds extrapolated to {two['target']} (linear, NOT measured)")
    rows = []
    for label, v in two["verify"].items():
        row: list[object] = [f"preserve {label}", two["built"], v["seconds"],
                             v["captures_per_s"], v["max_rss_mib"], v["exit"]]
        if two["built"] < two["target"]:
            row.append(v["extrapolated_seconds"])
        rows.append(row)
    print_table(f"Verify over {two['built']} captures", columns, rows)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=1000)
    parser.add_argument("--captures", type=int, default=10000)
    parser.add_argument("--chunk", type=int, default=1000)
    parser.add_argument("--parallel", type=int, default=1,
                        help="capture processes per chunk on the same archive")
    parser.add_argument("--budget", type=float, default=600.0,
                        help="stop building after this many seconds (after a whole chunk)")
    parser.add_argument("--no-deep", action="store_true", help="skip verify --deep")
    parser.add_argument("--workdir", type=Path, help="where archives go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the archives")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)

    work = Path(tempfile.mkdtemp(prefix="bench-load-", dir=args.workdir))
    try:
        with LocalServer() as server:
            print(f"part 1: {args.pages} pages", file=sys.stderr, flush=True)
            one = part_one(server, work, args.pages)
            report_one(one)
            print(f"part 2: {args.captures} captures", file=sys.stderr, flush=True)
            two = part_two(server, work, args.captures, args.chunk, args.parallel,
                           args.budget, not args.no_deep)
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            print(f"kept {work}", file=sys.stderr)
    report_two(two)
    write_json(args.json, {"machine": machine_info(), "capture": one, "archive": two})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
