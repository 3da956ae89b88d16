"""Time and peak memory of extracting pages built to be slow (markup whose cost grew with the
square of its size), each in a fresh interpreter, with another preserve tree alongside.

Usage:
    python benchmarks/bench_hostile_markup.py [--before-src DIR] [--timeout 120]
        [--only NAME,...] [--json OUT]

``--before-src DIR``: the ``src`` directory of another preserve checkout (for example
``git worktree add /tmp/old <commit>``), run with the same interpreter (``PYTHONPATH``),
interleaved shape by shape. A run past ``--timeout`` seconds is stopped and reported so.
No network; the pages are generated here.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _local_server import machine_info, print_table, run_measured, write_json


def _formatting(count: int) -> str:
    return "".join(f"<b class=c{i}>x<p>" for i in range(count))


#: name -> (what it is, the page). Each shape is one the extractor once took quadratic time
#: or memory on (docs/extraction.md, "Limits").
SHAPES: dict[str, tuple[str, Callable[[], str]]] = {
    "options": ("`<select>` and 160,000 `<option selected>x`",
                lambda: "<select>" + "<option selected>x" * 160_000),
    "ruby parts": ("`<rt><rb><rb>x` x 33,000 (no `<ruby>`: they nest)",
                   lambda: "</frameset>" + "<rt><rb><rb>x" * 33_000),
    "stray end tags": ("`<header>x</code>` x 100,000",
                       lambda: "<header>x</code>" * 100_000),
    "formatting nesting": ("`<b>x</strong></mo>x<font>x` x 50,000",
                           lambda: "<b>x</strong></mo>x<font>x" * 50_000),
    "reopened 1500": ("`<b class=cN>x<p>` x 1,500 (3,000 tags, 30 KB)",
                       lambda: _formatting(1_500)),
    "reopened 4000": ("`<b class=cN>x<p>` x 4,000 (8,000 tags, 85 KB)",
                       lambda: _formatting(4_000)),
    "modal dialogs": ("100,000 `<div role=dialog aria-modal=true>x</div>`",
                      lambda: '<div role="dialog" aria-modal="true">x</div>' * 100_000),
    "deep buttons": ("500 nested `<div>`, then 90,000 `<button>`",
                     lambda: "<div>" * 500 + "<button>b</button>" * 90_000),
    "comment items": ("an article and 40,000 reader comments",
                      lambda: "<article><p>" + "Text of the post. " * 30 + "</p></article>"
                      + '<div class="comments">'
                      + '<div class="comment"><p>Thanks for this.</p></div>' * 40_000),
    "comment threads": ("60 threads of 500 nested replies",
                        lambda: ('<div class="comment"><p>word</p>' * 500 + "</div>" * 500)
                        * 60),
    "byline boxes": ("3,990 boxes named like a byline, each in the last",
                     lambda: '<span class="author">Longer sentence of text here. ' * 3_990),
    "titles in links": ("3,990 `<h1>` in links in headings", lambda: "<a href=/x><h1>" * 3_990),
    "reply bodies": ("an article, then 60 threads of 250 nested replies with bodies",
                     lambda: '<meta property="og:type" content="article"><article><p>'
                     + "Text. " * 300 + "</p></article>"
                     + ('<div class="comment"><div class="text"><p>word</p>' * 250
                        + "</div>" * 500) * 60),
}

_RUN = "import sys; from preserve.extract import extract; extract(open(sys.argv[1], 'rb').read())"


def _measure(page: Path, src: str | None, timeout: float) -> dict[str, Any]:
    env = dict(os.environ)
    if src is not None:
        env["PYTHONPATH"] = src
    done = run_measured(["timeout", str(timeout), sys.executable, "-c", _RUN, str(page)],
                        env=env)
    if done.returncode == 124:
        return {"seconds": None, "peak_mib": done.max_rss_mib, "timed_out": timeout}
    if done.returncode != 0:
        raise SystemExit(f"extraction failed ({done.returncode}): {done.stderr[-500:]}")
    return {"seconds": done.seconds, "peak_mib": done.max_rss_mib}


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    names = args.only.split(",") if args.only else list(SHAPES)
    results: dict[str, Any] = {}
    for name in names:
        label, make = SHAPES[name]
        page = work / "page.html"
        page.write_text(make(), encoding="utf-8")
        row: dict[str, Any] = {"shape": label, "bytes": page.stat().st_size,
                               "now": _measure(page, None, args.timeout)}
        if args.before_src:
            row["before"] = _measure(page, args.before_src, args.timeout)
        results[name] = row
        print(f"{name}: {row}", file=sys.stderr, flush=True)
    return {"shapes": results, "timeout": args.timeout}


def _cell(figures: dict[str, Any]) -> str:
    if figures["seconds"] is None:
        return f"> {figures['timed_out']:.0f} s (stopped)"
    return f"{figures['seconds']:.2f} s, {figures['peak_mib']:.0f} MiB"


def report(data: dict[str, Any]) -> None:
    before = any("before" in row for row in data["shapes"].values())
    columns = ["shape", "KB", "this tree"] + (["before"] if before else [])
    rows = [[row["shape"], row["bytes"] / 1000, _cell(row["now"])]
            + ([_cell(row["before"])] if before else [])
            for row in data["shapes"].values()]
    print_table("Extracting hostile markup (wall time, peak RSS of a fresh interpreter)",
                columns, rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before-src", metavar="DIR")
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--only", help="comma-separated shape names: " + ", ".join(SHAPES))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-hostile-") as work:
        data = bench(args, Path(work))
    report(data)
    write_json(args.json, {"machine": machine_info(), **data})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
