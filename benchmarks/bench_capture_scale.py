#!/usr/bin/env python3
"""Flat cost as the archive grows (issue 12): capture, ``list`` and ``history`` at 100,000
captures.

Usage:
    python benchmarks/bench_capture_scale.py [--sizes 100000] [--pages 100] [--rounds 3]
                                             [--repeat 5] [--workers 2] [--before PRESERVE]
                                             [--workdir DIR] [--keep] [--json OUT]

Method. For each size N in ``--sizes`` an archive of N small captures is built with
preserve's own writers by the builder of ``bench_verify_scale.py`` (``grow``: one generated
3-9 KiB article page per capture, fsync off while building, ``--workers`` processes); its
manifests are then appended to an integrity log in capture order (one manifest leaf each,
as an unsigned capture would leave them) and ``preserve init`` signs that history as adopted,
so the archive is what a user's would be after N captures. The first ``preserve list`` builds
the catalog (timed once, as "catalog build"). With ``--workdir DIR`` and ``--keep`` an
archive already built there for that size (``DIR/archive-N``, marked by ``BUILT``) is reused.

Then, interleaved round by round (``--rounds``), ``preserve capture --http --from urls.txt``
of ``--pages`` pages (``/small/N.html`` from ``_local_server.py``, fetched once before
timing) into a fresh empty archive (``preserve init`` first, not timed) and into the N-capture
archive (new URLs every round); the ratio is the N-archive's time over the empty one's.
Finally ``preserve list``, ``preserve list --json`` and ``preserve history URL`` at N captures
(stdout to /dev/null via a file, the median and fastest of ``--repeat`` runs, page cache
warm; with ``--before PRESERVE`` another preserve timed in the same rounds), next to
``sha256sum`` of the catalog file (reading the index at all) as a baseline.
Every run is a child process (wall time includes interpreter start-up). Not part of the test
suite.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import shutil
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    LocalServer,
    dir_bytes,
    print_table,
    run_benchmark,
    run_measured,
)
from bench_verify_scale import grow, warm


def log_manifests(root: Path) -> int:
    """Append a manifest leaf for every manifest (capture order) to a new unsigned log."""
    os.fsync = lambda fd: None  # the benchmark's own archive: durability not measured
    from preserve.log import init_log, record_entries  # noqa: PLC0415
    from preserve.log.entries import manifest_leaf_for_file  # noqa: PLC0415

    init_log(root, None)
    paths = sorted((root / "manifests").glob("*.json"))
    for start in range(0, len(paths), 5000):
        record_entries(root, [manifest_leaf_for_file(p).to_bytes()
                              for p in paths[start:start + 5000]])
    return len(paths)


def build(root: Path, key: Path, size: int, workers: int) -> dict[str, float]:
    """An archive of ``size`` logged, signed captures at ``root`` (reused if built before)."""
    marker = root / "BUILT"
    if marker.exists():
        return {"build_seconds": float(marker.read_text())}
    started = time.perf_counter()
    grow(root, 0, size, workers, 0)
    log_manifests(root)
    subprocess.run([PRESERVE, "--root", str(root), "--key", str(key), "init"], check=True,
                   capture_output=True)
    seconds = time.perf_counter() - started
    marker.write_text(f"{seconds:.1f}\n")
    return {"build_seconds": seconds}


def build_in_child(root: Path, key: Path, size: int, workers: int) -> dict[str, float]:
    """:func:`build` in a forked child, so that this harness stays small: on Linux a child
    forked from a large process reports the parent's peak RSS as its own (``ru_maxrss``
    survives fork and exec), which would overstate every command timed afterwards."""
    process = multiprocessing.get_context("fork").Process(target=build,
                                                          args=(root, key, size, workers))
    process.start()
    process.join()
    if process.exitcode != 0:
        raise RuntimeError(f"building the {size}-capture archive failed ({process.exitcode})")
    return {"build_seconds": float((root / "BUILT").read_text())}


def capture_seconds(root: Path, key: Path, urls: list[str], work: Path) -> float:
    url_file = work / "urls.txt"
    url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
    measured = run_measured([PRESERVE, "--root", str(root), "--key", str(key), "capture",
                             "--http", "--from", str(url_file)])
    if measured.returncode != 0:
        raise RuntimeError(f"capture failed ({measured.returncode}): {measured.stderr[-2000:]}")
    return measured.seconds


def timed(commands: list[tuple[str, list[str]]], repeat: int) -> list[dict[str, Any]]:
    """Run every command ``repeat`` times, interleaved round by round."""
    times: dict[str, list[float]] = {name: [] for name, _ in commands}
    last: dict[str, Any] = {}
    for _ in range(repeat):
        for name, cmd in commands:
            measured = run_measured(cmd)
            if measured.returncode != 0:
                raise RuntimeError(f"{cmd} failed: {measured.stderr[-2000:]}")
            times[name].append(measured.seconds)
            last[name] = measured
    return [{"command": name, "median": statistics.median(times[name]),
             "fastest": min(times[name]), "runs": times[name],
             "max_rss_mib": last[name].max_rss_mib, "stdout_bytes": len(last[name].stdout)}
            for name, _ in commands]


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    key = work / "bench.key"
    # the known heads of these archives stay with them, not in the user's config
    os.environ["PRESERVE_CONFIG_HOME"] = str(work / "config")
    rows: list[dict[str, Any]] = []
    captures: list[dict[str, Any]] = []
    with LocalServer() as server:
        next_page = 0
        for size in args.sizes:
            root = work / f"archive-{size}"
            built = build_in_child(root, key, size, args.workers)
            started = time.perf_counter()
            first = run_measured([PRESERVE, "--root", str(root), "list"])  # builds the catalog
            catalog_seconds = time.perf_counter() - started
            if first.returncode != 0:
                raise RuntimeError(first.stderr[-2000:])
            for round_ in range(args.rounds):
                # a new name each run: the same name and key would be the same archive
                # identity, and its known head (in PRESERVE_CONFIG_HOME) a rollback
                empty = work / f"empty-{size}-{round_}-{time.time_ns()}"
                shutil.rmtree(empty, ignore_errors=True)
                # a key of its own: a key names the archive it signs (one key, one log), so
                # the big archive's key would make the empty one its rolled-back copy
                empty_key = work / f"{empty.name}.key"
                subprocess.run([PRESERVE, "--root", str(empty), "--key", str(empty_key),
                                "init"], check=True, capture_output=True)
                pair: dict[str, float] = {}
                for where, target in (("empty", empty), ("full", root)) if round_ % 2 == 0 \
                        else (("full", root), ("empty", empty)):
                    urls = server.page_urls(args.pages, small=True, start=next_page)
                    next_page += args.pages
                    for url in urls:  # the server answers from memory when timed
                        with urllib.request.urlopen(url) as response:
                            response.read()
                    pair[where] = capture_seconds(target, key if target == root else empty_key,
                                                  urls, work)
                shutil.rmtree(empty, ignore_errors=True)
                for leftover in work.glob(f"{empty.name}.key*"):
                    leftover.unlink()
                captures.append({"captures": size, "round": round_, **pair,
                                 "ratio": pair["full"] / pair["empty"]})
                print(captures[-1], file=sys.stderr, flush=True)
            warm(root / "archive" / "index")
            warm(root / "manifests" / "log")
            catalog = root / "archive" / "index" / "catalog.sqlite3"
            history_url = "http://news.example/12345/article.html"
            tools = [("", PRESERVE)] + ([(" (before)", args.before)] if args.before else [])
            commands = []
            for suffix, exe in tools:
                commands += [
                    ("preserve list" + suffix, [exe, "--root", str(root), "list"]),
                    ("preserve list --json" + suffix, [exe, "--root", str(root), "list",
                                                       "--json"]),
                    ("preserve history URL" + suffix, [exe, "--root", str(root), "history",
                                                       history_url]),
                ]
            commands.append(("sha256sum catalog", ["sha256sum", str(catalog)]))
            for row in timed(commands, args.repeat):
                rows.append({"captures": size, **row})
                print(rows[-1], file=sys.stderr, flush=True)
            files, total = dir_bytes(root)
            rows.append({"captures": size, "command": "(archive)", "files": files,
                         "bytes": total, "catalog_bytes": catalog.stat().st_size,
                         "first_list_seconds": catalog_seconds, **built})
    return {"rows": rows, "captures": captures, "pages": args.pages, "loadavg": os.getloadavg()}


def report(data: dict[str, Any]) -> None:
    load = ", ".join(f"{v:.2f}" for v in data["loadavg"])
    by_size: dict[int, list[dict[str, Any]]] = {}
    for c in data["captures"]:
        by_size.setdefault(c["captures"], []).append(c)
    print_table(f"Capture of {data['pages']} pages: empty archive vs N captures (load "
                f"average after: {load})",
                ["existing captures", "rounds", "empty s (median)", "N captures s (median)",
                 "ratio (median of rounds)"],
                [[size, len(cs), statistics.median(c["empty"] for c in cs),
                  statistics.median(c["full"] for c in cs),
                  statistics.median(c["ratio"] for c in cs)]
                 for size, cs in by_size.items()])
    print_table("list and history at N captures (child process, stdout to a file)",
                ["captures", "command", "median s", "fastest s", "peak RSS MiB",
                 "stdout bytes"],
                [[r["captures"], r["command"], r["median"], r["fastest"], r["max_rss_mib"],
                  r["stdout_bytes"]] for r in data["rows"] if "median" in r])
    for r in data["rows"]:
        if r["command"] == "(archive)":
            print(f"\n{r['captures']} captures: {r['files']} files, {r['bytes'] / 1e9:.2f} GB, "
                  f"catalog {r['catalog_bytes'] / 1e6:.1f} MB; built in "
                  f"{r['build_seconds']:.0f} s; first list (catalog build) "
                  f"{r['first_list_seconds']:.1f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default=[100_000],
                        type=lambda s: sorted(int(float(v)) for v in s.split(",")))
    parser.add_argument("--pages", type=int, default=100, help="pages captured per run")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--repeat", type=int, default=5, help="runs of list/history")
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                        help="processes building the archive")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable (e.g. an older version) whose list "
                             "and history are timed on the same archive, interleaved")
    parser.add_argument("--workdir", type=Path, help="where the archives go (default: temp); "
                        "with --keep, an archive built there before is reused")
    parser.add_argument("--keep", action="store_true", help="keep the archives")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    args = parser.parse_args(argv)
    if args.workdir is not None and args.keep:  # a fixed place, so a kept archive is reused
        args.workdir.mkdir(parents=True, exist_ok=True)
        work = args.workdir
        data = bench(args, work)
        report(data)
        from _local_server import machine_info, write_json  # noqa: PLC0415

        write_json(args.json, {"machine": machine_info(), **data})
        return 0
    return run_benchmark("capture-scale", args.workdir, args.keep,
                         lambda work: bench(args, work), report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
