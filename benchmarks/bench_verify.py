#!/usr/bin/env python3
"""Verify throughput: ``preserve verify`` (default and ``--deep``) next to ``sha256sum``,
``b3sum`` and ``warcio check`` over the same files.

Usage:
    python benchmarks/bench_verify.py [--pages 200] [--large 3] [--large-size 100000000]
                                      [--large-html 1] [--repeat 3] [--before PRESERVE]
                                      [--build-with PRESERVE] [--workdir DIR] [--keep]
                                      [--json OUT]

An archive is built with ``preserve capture`` from a local server: ``--pages`` generated
article pages, ``--large`` binary responses (``application/octet-stream``, random bytes) and
``--large-html`` long HTML pages, each ``--large-size`` bytes, so the archive holds several
hundred MB. Then, with the page cache warm (every file read once before timing, so the
figures are hashing and parsing speed, not the disk's), each command runs ``--repeat`` times,
the commands interleaved round by round, and the fastest run is kept:

* ``preserve verify``: re-hashes every WARC file and text object (BLAKE3 and SHA-256 in one
  pass) and checks every manifest;
* ``preserve verify --deep``: also re-reads every WARC record (gunzip, block and payload
  digests) and re-extracts the text of every HTML capture;
* ``sha256sum`` and ``b3sum`` (all cores, and ``--num-threads 1``) over the same WARC files
  and text objects: the digests alone, nothing checked against a manifest;
* ``warcio check`` over the WARC files: what a user would run to check WARC record digests.

MB/s = bytes of the files the command reads (10^6 bytes) / wall seconds; the wall time of a
preserve command includes interpreter start-up. b3sum is skipped when not installed
(Debian: ``apt-get install b3sum``). Not part of the test suite.
"""

from __future__ import annotations

import argparse
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
    WARCIO,
    LocalServer,
    print_table,
    run_benchmark,
    run_measured,
)


def build(root: Path, key: Path, pages: int, large: int, large_html: int, size: int,
          work: Path, preserve: str = PRESERVE) -> dict[str, Any]:
    subprocess.run([preserve, "--root", str(root), "--key", str(key), "init"], check=True,
                   capture_output=True)
    with LocalServer() as server:
        urls = server.page_urls(pages)
        urls += [server.stream_url(size + i, "bin") for i in range(large)]
        urls += [server.stream_url(size + i, "html") for i in range(large_html)]
        url_file = work / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
        mode = ["--http"] if preserve == PRESERVE else []  # an older preserve has no --http
        measured = run_measured([preserve, "--root", str(root), "--key", str(key), "capture",
                                 *mode, "--max-size",
                                 str(max(size + large + large_html, 1) * 2),
                                 "--timeout", "600", "--from", str(url_file)])
    if measured.returncode != 0:
        raise SystemExit(f"building the archive failed: {measured.stderr[-800:]}")
    return {"captures": len(urls), "seconds": measured.seconds,
            "max_rss_mib": measured.max_rss_mib}


def archive_files(root: Path) -> tuple[list[Path], list[Path]]:
    warcs = sorted((root / "archive" / "warc").rglob("*.warc.gz"))
    texts = sorted(p for p in (root / "archive" / "text").rglob("*") if p.is_file())
    return warcs, texts


def warm_cache(files: list[Path]) -> None:
    for path in files:
        with path.open("rb") as f:
            while f.read(1 << 20):
                pass


def commands(root: Path, key: Path, warcs: list[Path], texts: list[Path],
             before: str | None = None) -> list[tuple[str, list[str], list[Path]]]:
    everything = warcs + texts
    names = [str(p) for p in everything]
    base = [PRESERVE, "--root", str(root), "--key", str(key), "verify", "--json"]
    found: list[tuple[str, list[str], list[Path]]] = [
        ("preserve verify", base, everything),
        ("preserve verify --deep", [*base, "--deep"], everything),
    ]
    if before:
        old = [before, *base[1:]]
        found += [("preserve verify (before)", old, everything),
                  ("preserve verify --deep (before)", [*old, "--deep"], everything)]
    found.append(("sha256sum", ["sha256sum", *names], everything))
    if shutil.which("b3sum"):
        found.append(("b3sum (all cores)", ["b3sum", *names], everything))
        found.append(("b3sum --num-threads 1", ["b3sum", "--num-threads", "1", *names],
                      everything))
    else:
        print("note: b3sum not installed, skipped", file=sys.stderr)
    found.append(("warcio check (WARC files)", [WARCIO, "check", *map(str, warcs)], warcs))
    return found


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root, key = work / "archive", work / "archive.key"
    built = build(root, key, args.pages, args.large, args.large_html, args.large_size, work,
                  args.build_with or PRESERVE)
    warcs, texts = archive_files(root)
    warm_cache(warcs + texts)
    results: dict[str, Any] = {}
    listed = commands(root, key, warcs, texts, args.before)
    for _ in range(args.repeat):  # interleaved: load from elsewhere hits every command alike
        for name, cmd, files in listed:
            total = sum(p.stat().st_size for p in files)
            measured = run_measured(cmd)
            row: dict[str, Any] = {
                "seconds": measured.seconds,
                "bytes": total,
                "files": len(files),
                "mb_per_s": total / 1e6 / measured.seconds,
                "max_rss_mib": measured.max_rss_mib,
                "exit": measured.returncode,
            }
            if name.startswith("preserve") and measured.returncode in (0, 1):
                envelope = json.loads(measured.stdout)  # {"ok": ..., "result": report}
                row["findings"] = len(envelope.get("result", {}).get("findings", []))
                row["ok"] = envelope.get("ok")
            if measured.returncode != 0:
                print(f"{name} exited {measured.returncode}: "
                      f"{(measured.stdout + measured.stderr)[-600:]}", file=sys.stderr)
            best = results.get(name)
            if best is None or row["seconds"] < best["seconds"]:
                results[name] = row
    return {
        "build": built,
        "warc_files": len(warcs),
        "warc_bytes": sum(p.stat().st_size for p in warcs),
        "text_objects": len(texts),
        "text_bytes": sum(p.stat().st_size for p in texts),
        "repeat": args.repeat,
        "commands": results,
        "preserve_startup_seconds": run_measured([PRESERVE, "--version"]).seconds,
        "loadavg": os.getloadavg(),
    }


def report(data: dict[str, Any]) -> None:
    b = data["build"]
    print(f"archive: {b['captures']} captures, {data['warc_files']} WARC files "
          f"({data['warc_bytes'] / 1e6:.1f} MB), {data['text_objects']} text objects "
          f"({data['text_bytes'] / 1e6:.2f} MB); built in {b['seconds']:.1f} s "
          f"(peak RSS {b['max_rss_mib']:.0f} MiB)")
    sha = data["commands"]["sha256sum"]["mb_per_s"]
    rows = [[name, r["bytes"] / 1e6, r["seconds"], r["mb_per_s"], f"{r['mb_per_s'] / sha:.2f}",
             r["max_rss_mib"], r["exit"]] for name, r in data["commands"].items()]
    load = ", ".join(f"{v:.2f}" for v in data.get("loadavg", ()))
    print_table(f"Same files, page cache warm, best of {data['repeat']} interleaved runs "
                f"(load average after: {load})",
                ["command", "MB read", "seconds", "MB/s", "ratio to sha256sum",
                 "peak RSS MiB", "exit"], rows)
    print(f"\n`preserve --version` (interpreter + imports): "
          f"{data['preserve_startup_seconds']:.2f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=200)
    parser.add_argument("--large", type=int, default=3, help="large binary responses")
    parser.add_argument("--large-html", type=int, default=1, help="large HTML responses")
    parser.add_argument("--large-size", type=int, default=100_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs per command; fastest kept")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable (e.g. an older version) to verify "
                             "the same archive, interleaved with this one")
    parser.add_argument("--build-with", metavar="PRESERVE",
                        help="the preserve executable that builds the archive (default: this)")
    parser.add_argument("--workdir", type=Path, help="where the archive goes (default: temp)")
    parser.add_argument("--keep", action="store_true", help="keep the archive")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    return run_benchmark("verify", args.workdir, args.keep, lambda work: bench(args, work), report,
                         args.json)


if __name__ == "__main__":
    raise SystemExit(main())
