#!/usr/bin/env python3
"""Capture throughput: ``preserve capture --from`` (sequential and ``--concurrency 4``) next to
``wget --warc-file`` and a plain warcio ``capture_http`` loop, interleaved round by round.

Usage:
    python benchmarks/bench_capture.py [--rounds 5] [--pages 300] [--size 30000]
                                       [--concurrency 4] [--before PRESERVE] [--no-references]
                                       [--workdir DIR] [--keep] [--json OUT]

Method. A local server (``_local_server.py``, its own process) listens on 127.0.0.1 to
127.0.0.4 (one port; Linux routes all of 127/8 to ``lo``) and serves ``--pages`` generated
article pages of about ``--size`` bytes (``/near/30000/N.html``). Every page is fetched
once before timing so the server answers from memory, and each tool runs once over the first
20 pages, untimed (page cache, ``.pyc``). Then, ``--rounds`` times, each of these runs once,
in a fresh output directory, the order rotated by one each round:

* ``wget``: ``wget --warc-file=… --no-verbose -O /dev/null -i urls.txt`` (one process,
  kept-alive connections, one WARC file);
* ``warcio loop``: a child Python process that, inside ``warcio.capture_http(path)``, fetches
  every URL once with ``http.client`` over one kept-alive connection (warcio patches
  ``http.client``; ``requests`` is not a dependency here), so one WARC file of request and
  response records: the floor for a Python WARC writer;
* ``preserve``: ``preserve --root R --key K capture --http --from urls.txt`` (the archive made
  by ``preserve init`` with a signing key first, as a user's is; whole command, start-up
  included; ``PRESERVE_CONFIG_HOME`` a fresh directory for each run, so the operator's known
  heads are those of this archive alone, not of every archive earlier runs made);
* ``preserve --concurrency 4``: the same with ``--concurrency 4`` over ``urls4.txt``, the same
  pages spread round-robin over the four loopback hosts;
* with ``--before PRESERVE`` (another build's ``preserve`` command, e.g. a wrapper that runs
  ``main`` from its own source tree), ``preserve (before)`` and ``preserve --concurrency 4
  (before)``: the same two commands with that build, in the same rounds (an A/B);
  ``--no-references`` leaves wget and the warcio loop out (a quicker A/B).

Per tool: median and fastest pages/s over the rounds (pages / wall seconds of the whole
command), CPU ms per page (user + system of the command and every process it waited for, from
``wait4``), cores used (CPU / wall), the server's CPU ms per page (from ``/proc``; it shares
the machine), MB/s of HTTP bodies (10^6 bytes, median round), peak RSS, and the median pages/s
as a ratio to wget's and to the warcio loop's. The WARC files every tool wrote in the last
round are then checked with ``warcio check``. Run nothing else heavy at the same time. Not part
of the test suite.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _local_server import (
    PRESERVE,
    WARCIO,
    LocalServer,
    Measured,
    page_bytes,
    print_table,
    run_benchmark,
    run_measured,
)

HOSTS = ("127.0.0.1", "127.0.0.2", "127.0.0.3", "127.0.0.4")
WARM_PAGES = 20


def warcio_loop(url_file: Path, warc_path: Path) -> None:
    """Child-process mode: fetch every URL once inside ``capture_http``, one kept-alive
    ``http.client`` connection per host."""
    import http.client  # noqa: PLC0415 - only the child needs these
    from urllib.parse import urlsplit  # noqa: PLC0415

    from warcio.capture_http import capture_http  # noqa: PLC0415

    urls = url_file.read_text(encoding="utf-8").split()
    with capture_http(str(warc_path)):
        connections: dict[str, http.client.HTTPConnection] = {}
        for url in urls:
            parts = urlsplit(url)
            if parts.netloc not in connections:  # the class warcio patched in, looked up now
                connections[parts.netloc] = http.client.HTTPConnection(parts.netloc, timeout=60)
            connection = connections[parts.netloc]
            connection.request("GET", parts.path or "/")
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise SystemExit(f"{url}: HTTP {response.status}")
        for connection in connections.values():
            connection.close()


@dataclass(frozen=True)
class Tool:
    """One command to time: how to run it into ``out`` and where its WARC files are."""

    name: str
    run: Callable[[Path], Measured]
    warcs: Callable[[Path], list[Path]]


def tools(work: Path, url_file: Path, url_file4: Path, concurrency: int,
          before: str | None = None, references: bool = True) -> list[Tool]:
    def wget(out: Path) -> Measured:
        out.mkdir()
        return run_measured(["wget", f"--warc-file={out / 'capture'}", "--no-verbose",
                             "-O", os.devnull, "--input-file", str(url_file)])

    def warcio(out: Path) -> Measured:
        out.mkdir()
        return run_measured([sys.executable, __file__, "--warcio-loop", str(url_file),
                             str(out / "capture.warc.gz")])

    def preserve(extra: list[str], urls: Path,
                 command: str = PRESERVE) -> Callable[[Path], Measured]:
        def run(out: Path) -> Measured:
            key = out.with_suffix(".key")
            # the operator's own files (known heads) in a directory of this run's: a commit
            # reads every known head of the operator, and each round's archive would add one
            env = dict(os.environ, PRESERVE_CONFIG_HOME=str(out.with_suffix(".config")))
            subprocess.run([command, "--root", str(out), "--key", str(key), "init"],
                           check=True, capture_output=True, env=env)
            return run_measured([command, "--root", str(out), "--key", str(key), "capture",
                                 "--http", "--from", str(urls), *extra], env=env)
        return run

    def own_warcs(out: Path) -> list[Path]:
        return sorted(out.glob("*.warc.gz"))

    def preserve_warcs(out: Path) -> list[Path]:
        return sorted((out / "archive" / "warc").rglob("*.warc.gz"))

    concurrent = ["--concurrency", str(concurrency)]
    found = [
        Tool("preserve", preserve([], url_file), preserve_warcs),
        Tool(f"preserve --concurrency {concurrency}", preserve(concurrent, url_file4),
             preserve_warcs),
    ]
    if before is not None:
        found += [
            Tool("preserve (before)", preserve([], url_file, before), preserve_warcs),
            Tool(f"preserve --concurrency {concurrency} (before)",
                 preserve(concurrent, url_file4, before), preserve_warcs),
        ]
    if references:
        found.insert(0, Tool("warcio loop", warcio, own_warcs))
        if shutil.which("wget"):
            found.insert(0, Tool("wget", wget, own_warcs))
    return found


def warcio_check(files: list[Path]) -> str:
    if not files:
        return "no WARC files"
    result = subprocess.run([WARCIO, "check", *map(str, files)], check=False,
                            capture_output=True, text=True)
    if result.returncode == 0:
        return f"pass ({len(files)} files)"
    return f"FAIL ({len(files)} files): {(result.stdout + result.stderr).strip()[-300:]}"


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    pages, size = args.pages, args.size
    with LocalServer(HOSTS) as server:
        url_file, url_file4 = work / "urls.txt", work / "urls4.txt"
        urls, urls4 = server.near_urls(pages, size), server.near_urls(pages, size, spread=True)
        url_file.write_text("\n".join(urls) + "\n", encoding="utf-8")
        url_file4.write_text("\n".join(urls4) + "\n", encoding="utf-8")
        for url in urls4:  # the server renders (and caches) every page once
            with urllib.request.urlopen(url) as response:
                response.read()
        warm = work / "warm"
        warm.mkdir()
        (warm / "urls.txt").write_text("\n".join(urls[:WARM_PAGES]) + "\n", encoding="utf-8")
        (warm / "urls4.txt").write_text("\n".join(urls4[:WARM_PAGES]) + "\n", encoding="utf-8")
        chosen = {"concurrency": args.concurrency, "before": args.before,
                  "references": not args.no_references}
        for tool in tools(warm, warm / "urls.txt", warm / "urls4.txt", **chosen):
            tool.run(warm / _dir_name(tool.name))
        shutil.rmtree(warm)

        order = tools(work, url_file, url_file4, **chosen)
        runs: dict[str, list[dict[str, Any]]] = {tool.name: [] for tool in order}
        last: dict[str, Path] = {}
        for round_no in range(args.rounds):
            shift = round_no % len(order)
            for tool in order[shift:] + order[:shift]:
                out = work / f"{_dir_name(tool.name)}-{round_no}"
                server_cpu = server.cpu_seconds()
                measured = tool.run(out)
                server_cpu = server.cpu_seconds() - server_cpu
                if measured.returncode != 0:
                    print(f"{tool.name} exited {measured.returncode}: {measured.stderr[-600:]}",
                          file=sys.stderr)
                runs[tool.name].append({
                    "seconds": measured.seconds,
                    "cpu_seconds": measured.cpu_seconds,
                    "server_cpu_seconds": server_cpu,
                    "max_rss_mib": measured.max_rss_mib,
                    "exit": measured.returncode,
                })
                if tool.name in last:
                    shutil.rmtree(last[tool.name], ignore_errors=True)
                last[tool.name] = out
        checks = {}
        for tool in order:
            warcs = tool.warcs(last[tool.name])
            checks[tool.name] = {"warcio_check": warcio_check(warcs), "warc_files": len(warcs),
                                 "warc_bytes": sum(path.stat().st_size for path in warcs)}
    body = page_bytes(pages, near=size)
    results = {name: summarise(rounds, pages, body) | checks[name]
               for name, rounds in runs.items()}
    for reference in ("wget", "warcio loop"):
        if reference in results:
            base = results[reference]["pages_per_s_median"]
            for row in results.values():
                row[f"ratio_to_{reference.replace(' ', '_')}"] = row["pages_per_s_median"] / base
    return {"pages": pages, "page_size": size, "body_bytes": body, "rounds": args.rounds,
            "concurrency": args.concurrency, "hosts": list(HOSTS), "before": args.before,
            "loadavg_after": os.getloadavg(), "tools": results}


def _dir_name(name: str) -> str:
    return name.replace(" ", "_").replace("(", "").replace(")", "")


def summarise(rounds: list[dict[str, Any]], pages: int, body: int) -> dict[str, Any]:
    seconds = [r["seconds"] for r in rounds]
    median = statistics.median(seconds)
    cpu = statistics.median(r["cpu_seconds"] for r in rounds)
    return {
        "rounds": rounds,
        "seconds_median": median,
        "pages_per_s_median": pages / median,
        "pages_per_s_fastest": pages / min(seconds),
        "cpu_ms_per_page": cpu / pages * 1000,
        "cores_used": statistics.median(r["cpu_seconds"] / r["seconds"] for r in rounds),
        "server_cpu_ms_per_page":
            statistics.median(r["server_cpu_seconds"] for r in rounds) / pages * 1000,
        "mb_per_s": body / 1e6 / median,
        "max_rss_mib": max(r["max_rss_mib"] for r in rounds),
        "failed_rounds": sum(r["exit"] != 0 for r in rounds),
    }


def report(data: dict[str, Any]) -> None:
    rows = []
    for name, r in data["tools"].items():
        rows.append([
            name, r["pages_per_s_median"], r["pages_per_s_fastest"], r["cpu_ms_per_page"],
            r["cores_used"], r["server_cpu_ms_per_page"], r["mb_per_s"],
            f"{r.get('ratio_to_wget', 0):.2f}", f"{r.get('ratio_to_warcio_loop', 0):.2f}",
            r["max_rss_mib"], r["warc_bytes"] / 1e6, r["warc_files"], r["warcio_check"],
        ])
    load = ", ".join(f"{v:.2f}" for v in data["loadavg_after"])
    print_table(
        f"{data['pages']} pages of ~{data['page_size'] / 1000:.0f} KB "
        f"({data['body_bytes'] / 1e6:.1f} MB of HTML) from loopback, median of "
        f"{data['rounds']} interleaved rounds (load average after: {load})",
        ["tool", "pages/s median", "pages/s fastest", "CPU ms/page", "cores used",
         "server CPU ms/page", "MB/s", "x wget", "x warcio loop", "peak RSS MiB",
         "WARC MB (last round)", "WARC files", "warcio check (last round)"],
        rows,
    )
    tools_ = data["tools"]
    for name in [n for n in tools_ if not n.endswith(" (before)")]:
        old = tools_.get(f"{name} (before)")
        if old is not None:
            new = tools_[name]
            print(f"\n{name}: {old['pages_per_s_median']:.1f} -> "
                  f"{new['pages_per_s_median']:.1f} pages/s median "
                  f"({new['pages_per_s_median'] / old['pages_per_s_median']:.2f}x), CPU "
                  f"{old['cpu_ms_per_page']:.2f} -> {new['cpu_ms_per_page']:.2f} ms a page "
                  f"({new['cpu_ms_per_page'] - old['cpu_ms_per_page']:+.2f})")
    failed = {name: r["failed_rounds"] for name, r in data["tools"].items() if r["failed_rounds"]}
    if failed:
        print(f"\nrounds where the command failed: {failed}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--pages", type=int, default=300)
    parser.add_argument("--size", type=int, default=30000, help="bytes a page (about)")
    parser.add_argument("--concurrency", type=int, default=4, help="of the concurrent run")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another build's preserve command, timed in the same rounds")
    parser.add_argument("--no-references", action="store_true",
                        help="leave wget and the warcio loop out")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--warcio-loop", nargs=2, metavar=("URLS", "WARC"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.warcio_loop:
        warcio_loop(Path(args.warcio_loop[0]), Path(args.warcio_loop[1]))
        return 0
    return run_benchmark("capture", args.workdir, args.keep, lambda work: bench(args, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
