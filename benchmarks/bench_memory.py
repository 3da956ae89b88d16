#!/usr/bin/env python3
"""Peak memory: ``preserve capture`` of one large response next to ``wget``, and ``preserve
verify`` / ``verify --deep`` over the resulting archive.

Usage:
    python benchmarks/bench_memory.py [--size 200000000[,...]] [--kinds bin,html] [--trace]
                                      [--before PRESERVE] [--workdir DIR] [--keep] [--json OUT]

A local server streams a response of ``--size`` bytes (a comma list for several sizes)
generated on the fly (``bin``: ``application/octet-stream``, random bytes; ``html``:
``text/html``, one long article, which also exercises the bounded extraction path). Each is
captured by ``preserve capture`` (one process, archive initialised with a signing key) and by
``wget --warc-file`` (one process).
Peak RSS is the child process's own maximum resident set (``wait4`` ``ru_maxrss``). The
baseline is ``preserve --version`` (interpreter plus imports) and a capture of one small page.
Then ``preserve verify`` and ``preserve verify --deep`` run over the archive holding both
large captures.

``--trace`` also runs each large capture in a child process under ``tracemalloc``, sampling
the traced Python heap every few milliseconds, and prints the peak with the allocation sites
that held the most memory at that moment (memory held by C libraries such as libxml2 is not
traced; RSS shows it); only the first size is traced. Not part of the test suite.
"""

from __future__ import annotations

import argparse
import json
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
    print_table,
    run_benchmark,
    run_measured,
    traced,
)

MIB = 2**20


def trace_capture(url: str, root: Path, key: Path) -> None:
    """Child-process mode: capture ``url`` under tracemalloc; print peak and top sites."""
    import preserve  # noqa: PLC0415 - only the child needs it

    archive = preserve.Archive(root, key=key)
    options = preserve.CaptureOptions(
        fetch=preserve.FetchOptions(timeout=600, max_body_size=2**31))
    _, trace = traced(lambda: archive.capture(url, options), sites=6, frames=5)
    print(json.dumps(trace))


def preserve_cmd(root: Path, key: Path, *args: str, exe: str = PRESERVE) -> list[str]:
    return [exe, "--root", str(root), "--key", str(key), *args]


def row(what: str, tool: str, measured: Measured) -> dict[str, Any]:
    if measured.returncode not in (0, 1):
        print(f"{tool} {what} exited {measured.returncode}: {measured.stderr[-600:]}",
              file=sys.stderr)
    return {"what": what, "tool": tool, "seconds": measured.seconds,
            "max_rss_mib": measured.max_rss_mib, "exit": measured.returncode}


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    root, key = work / "archive", work / "archive.key"
    before_key = work / "before.key"
    subprocess.run(preserve_cmd(root, key, "init"), check=True, capture_output=True)
    rows: list[dict[str, Any]] = []
    traces: dict[str, Any] = {}
    limits = ["--max-size", str(max(args.size) * 2), "--timeout", "600"]
    with LocalServer() as server:
        rows.append(row("start-up only (--version)", "preserve",
                        run_measured([PRESERVE, "--version"])))
        rows.append(row("one 30 KB page", "preserve", run_measured(
            preserve_cmd(root, key, "capture", "--http", *limits, server.page_urls(1)[0]))))
        for size, kind in [(size, kind) for size in args.size for kind in args.kinds]:
            size_mb = f"{size / 1e6:.0f} MB"
            url = server.stream_url(size, kind)
            label = f"{size_mb} {'text/html' if kind == 'html' else 'octet-stream'}"
            rows.append(row(label, "preserve capture", run_measured(
                preserve_cmd(root, key, "capture", "--http", *limits, url))))
            if args.before:
                # an archive and a key of its own (a key signs one archive: with the first
                # archive's key every capture was refused), captured as above (--http)
                before_root = work / "before"
                if not before_root.exists():
                    subprocess.run(preserve_cmd(before_root, before_key, "init",
                                                exe=args.before),
                                   check=True, capture_output=True)
                rows.append(row(label, "preserve capture (before)", run_measured(
                    preserve_cmd(before_root, before_key, "capture", "--http", *limits, url,
                                 exe=args.before))))
            wget_dir = work / f"wget-{kind}"
            wget_dir.mkdir()
            rows.append(row(label, "wget --warc-file", run_measured(
                ["wget", f"--warc-file={wget_dir / 'capture'}", "--no-verbose",
                 "--directory-prefix", str(wget_dir), url])))
            shutil.rmtree(wget_dir)
            if args.trace and size == args.size[0]:
                trace_root = work / f"trace-{kind}"
                subprocess.run(preserve_cmd(trace_root, work / "trace.key", "init"),
                               check=True, capture_output=True)
                measured = run_measured([sys.executable, __file__, "--trace-capture", url,
                                         str(trace_root), str(work / "trace.key")])
                if measured.returncode == 0:
                    traces[label] = json.loads(measured.stdout)
                else:
                    print(f"trace of {label} failed: {measured.stderr[-600:]}",
                          file=sys.stderr)
                shutil.rmtree(trace_root)
    for what, extra in (("archive with the captures above", ()),
                        ("archive with the captures above", ("--deep",))):
        tool = "preserve verify" + (" --deep" if extra else "")
        rows.append(row(what, tool, run_measured(preserve_cmd(root, key, "verify", *extra))))
        if args.before:
            rows.append(row("archive of the captures (before)", tool + " (before)",
                            run_measured(preserve_cmd(work / "before", before_key, "verify",
                                                      *extra, exe=args.before))))
    return {"sizes": args.size, "rows": rows, "traces": traces}


def report(data: dict[str, Any]) -> None:
    print_table("Peak resident memory (child process's own ru_maxrss)",
                ["what", "tool", "peak RSS MiB", "seconds", "exit"],
                [[r["what"], r["tool"], r["max_rss_mib"], r["seconds"], r["exit"]]
                 for r in data["rows"]])
    for label, trace in data["traces"].items():
        print(f"\ntracemalloc, capture of {label}: peak traced Python heap "
              f"{trace['peak_traced_mib']:.1f} MiB; largest holders at the sampled peak "
              f"({trace['sampled_peak_mib']:.1f} MiB):")
        for item in trace["top"]:
            print(f"  {item['mib']:7.1f} MiB  " + " <- ".join(reversed(item["frames"])))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size", default=[200_000_000], help="bytes; a comma list for several",
                        type=lambda s: [int(float(v)) for v in s.split(",")])
    parser.add_argument("--kinds", default="bin,html",
                        type=lambda s: [k for k in s.split(",") if k in ("bin", "html")])
    parser.add_argument("--trace", action="store_true", help="also profile with tracemalloc")
    parser.add_argument("--before", metavar="PRESERVE",
                        help="another preserve executable (e.g. an older version) to capture "
                             "the same responses into an archive of its own, and verify it")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--trace-capture", nargs=3, metavar=("URL", "ROOT", "KEY"),
                        help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.trace_capture:
        url, root, key = args.trace_capture
        trace_capture(url, Path(root), Path(key))
        return 0
    return run_benchmark("memory", args.workdir, args.keep, lambda work: bench(args, work), report,
                         args.json)


if __name__ == "__main__":
    raise SystemExit(main())
