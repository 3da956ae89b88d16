#!/usr/bin/env python3
"""Browser capture: captures per minute next to Playwright alone, and peak memory with a
large media requisite.

Usage:
    python benchmarks/bench_browser.py [--pages 8] [--repeat 2] [--media 300000000]
                                       [--workdir DIR] [--keep] [--json OUT]

The test suite's story site (tests/browser_site.py: a page with a redirected stylesheet, a
web font, background and lazy images, a fetch()-inserted article, a cross-origin iframe, a
3 MiB media file read by the page; the never-answering image left out) is served over HTTPS
from 127.0.0.1 under two host names (127.0.0.1 and localhost), so a batch can run two
captures at once (one per host).

Throughput, each mode a child process over the same ``--pages`` URLs, modes interleaved,
``--repeat`` rounds (the best round is reported, with the ratio to Playwright alone):

* ``preserve capture --browser --from urls.txt --concurrency 1`` and ``--concurrency 2``
  (archive initialised, so every capture also signs a checkpoint);
* Playwright alone (this script, ``--child-playwright``): for each URL, launch the same
  Chromium with the same switches (no proxy), load the page, wait for the network to go
  quiet, scroll through it the same way, wait again, take the same full-page screenshot;
  sequential, and two threads at once. It records nothing, prints no PDF and keeps no DOM.

Memory: one ``preserve`` capture (library, in a child process that reports its own peak RSS,
``getrusage(RUSAGE_SELF)``) of the story page, then of the same page whose media file is
``--media`` bytes: the body streams through the proxy to the spool and the WARC file, never
into memory. The whole process tree's peak (``wait4``; includes Chromium) is shown too.
Not part of the test suite.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from _local_server import PRESERVE, Measured, print_table, run_benchmark, run_measured

SETTLE = 10.0
QUIET = 0.5


# --- Playwright alone (child mode) -------------------------------------------------------------


def _playwright_one(playwright: Any, url: str, out: Path) -> None:
    from preserve.capture.browser import (  # noqa: PLC0415 - child mode only
        _HEIGHT_JS,
        _SCROLL_JS,
        QUIET_FLAGS,
        find_chromium,
    )

    flags = [f for f in QUIET_FLAGS if not f.startswith("--proxy")]
    browser = playwright.chromium.launch(executable_path=str(find_chromium()), args=flags,
                                         ignore_default_args=["--disable-popup-blocking"])
    try:
        context = browser.new_context(viewport={"width": 1280, "height": 800},
                                      ignore_https_errors=True, service_workers="block")
        page = context.new_page()
        page.goto(url, wait_until="domcontentloaded")
        with contextlib.suppress(Exception):
            page.wait_for_load_state("load", timeout=SETTLE * 1000)
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=SETTLE * 1000)
        for _ in range(40):
            bottom, height = page.evaluate(_SCROLL_JS)
            page.wait_for_timeout(150)
            if bottom >= height:
                break
        page.evaluate("() => window.scrollTo(0, 0)")
        with contextlib.suppress(Exception):
            page.wait_for_load_state("networkidle", timeout=SETTLE * 1000)
        page.evaluate(_HEIGHT_JS)
        out.write_bytes(page.screenshot(full_page=True, type="png", animations="disabled",
                                        caret="hide"))
    finally:
        browser.close()


def child_playwright(url_file: Path, concurrency: int, out_dir: Path) -> None:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - child mode only

    urls = [u for u in url_file.read_text().split() if u]
    lanes = [urls[i::concurrency] for i in range(concurrency)]

    def lane(number: int, mine: list[str]) -> None:
        with sync_playwright() as playwright:
            for index, url in enumerate(mine):
                _playwright_one(playwright, url, out_dir / f"shot-{number}-{index}.png")

    threads = [threading.Thread(target=lane, args=(n, mine)) for n, mine in enumerate(lanes)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()


def child_capture(url: str, root: Path, ca_bundle: Path, max_size: int) -> None:
    """Capture ``url`` with the library; print the capture and this process's own peak RSS."""
    import preserve  # noqa: PLC0415 - child mode only

    archive = preserve.Archive(root)
    options = preserve.CaptureOptions(
        fetch=preserve.FetchOptions(timeout=600, max_body_size=max_size, ca_bundle=ca_bundle),
        browser=preserve.BrowserOptions(settle=SETTLE))
    started = time.perf_counter()
    result = archive.capture(url, options)
    seconds = time.perf_counter() - started
    manifest = archive.manifest(result.capture_id)
    media = [r for r in (manifest.browser.resources if manifest.browser else ())
             if r.url.endswith("/media/clip.mp4")]
    print(json.dumps({
        "self_max_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "seconds": seconds, "resources": result.resources,
        "media_bytes": media[0].body_size if media else None,
        "warc_bytes": (root / result.warc_path).stat().st_size,
    }))


# --- the benchmark -----------------------------------------------------------------------------


def _site(bundle: Path, media: int) -> Any:
    """The story site over HTTPS (``media`` bytes of media); the CA's PEM goes to ``bundle``."""
    import trustme  # noqa: PLC0415 - a test dependency

    from browser_site import story_routes  # noqa: PLC0415 - after sys.path is set
    from servers import TestServer  # noqa: PLC0415

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1", "localhost")
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(context)
    context.set_alpn_protocols(["http/1.1"])
    ca.cert_pem.write_to_path(str(bundle))
    server = TestServer(ssl_context=context).start()
    server.routes.update(story_routes(server.url("", host="localhost").rstrip("/"),
                                      media_size=media, slow_seconds=None))
    return server


def _rate(pages: int, measured: Measured) -> dict[str, Any]:
    if measured.returncode != 0:
        print(f"exit {measured.returncode}: {measured.stderr[-800:]}", file=sys.stderr)
    return {"seconds": measured.seconds, "per_minute": pages * 60 / measured.seconds,
            "max_rss_mib": measured.max_rss_mib, "exit": measured.returncode}


def bench(args: argparse.Namespace, work: Path) -> dict[str, Any]:
    bundle = work / "ca.pem"
    server = _site(bundle, 3 * 2**20)
    try:
        hosts = ["127.0.0.1", "localhost"]
        urls = [server.url("/story", host=hosts[i % 2]).replace("/story", f"/story?n={i}")
                for i in range(args.pages)]
        url_file = work / "urls.txt"
        url_file.write_text("\n".join(urls) + "\n")
        rounds: dict[str, list[dict[str, Any]]] = {}
        for number in range(args.repeat):
            for mode, concurrency in (("preserve", 1), ("playwright", 1), ("preserve", 2),
                                      ("playwright", 2)):
                label = f"{mode}, concurrency {concurrency}"
                out = work / f"{mode}-{concurrency}-{number}"
                out.mkdir()
                if mode == "preserve":
                    key = work / f"key-{concurrency}-{number}"
                    subprocess.run([PRESERVE, "--root", str(out), "--key", str(key), "init"],
                                   check=True, capture_output=True)
                    cmd = [PRESERVE, "--root", str(out), "--key", str(key), "capture",
                           "--browser", "--ca-bundle", str(bundle), "--from", str(url_file),
                           "--concurrency", str(concurrency), "--settle", str(SETTLE),
                           "--timeout", "60"]
                else:
                    cmd = [sys.executable, __file__, "--child-playwright", str(url_file),
                           str(concurrency), str(out)]
                rounds.setdefault(label, []).append(_rate(args.pages, run_measured(cmd)))
                print(f"round {number + 1} {label}: {rounds[label][-1]['seconds']:.1f} s",
                      file=sys.stderr)
    finally:
        server.stop()
    memory = []
    for size in (3 * 2**20, args.media):
        if not size:
            continue
        big_bundle = work / f"ca-{size}.pem"
        site = _site(big_bundle, size)
        try:
            measured = run_measured([sys.executable, __file__, "--child-capture",
                                     site.url("/story"), str(work / f"memory-{size}"),
                                     str(big_bundle), str(max(size * 2, 2**20))])
        finally:
            site.stop()
        if measured.returncode != 0:
            print(f"memory capture failed: {measured.stderr[-800:]}", file=sys.stderr)
            continue
        memory.append({"what": f"story page, {size / 1e6:.0f} MB media",
                       "tree_max_rss_mib": measured.max_rss_mib,
                       **json.loads(measured.stdout.strip().splitlines()[-1])})
    return {"pages": args.pages, "repeat": args.repeat, "rounds": rounds, "memory": memory}


def report(data: dict[str, Any]) -> None:
    best = {label: min(runs, key=lambda r: r["seconds"]) for label, runs in data["rounds"].items()}
    rows = []
    for label, run in best.items():
        concurrency = label.partition(", concurrency ")[2]
        alone = best.get(f"playwright, concurrency {concurrency}")
        ratio = run["seconds"] / alone["seconds"] if alone else float("nan")
        all_runs = ", ".join(f"{r['seconds']:.1f}" for r in data["rounds"][label])
        rows.append([label, run["seconds"], run["per_minute"], f"{ratio:.2f}x", all_runs])
    print_table(f"Browser captures of {data['pages']} pages, best of {data['repeat']} "
                "(interleaved)", ["mode", "seconds", "pages/min", "time vs Playwright alone",
                                  "every round (s)"], rows)
    print_table("Peak memory of a browser capture (library, one child process)",
                ["page", "preserve's own peak RSS MiB", "process tree peak RSS MiB",
                 "media bytes recorded", "WARC bytes", "seconds"],
                [[m["what"], m["self_max_rss_mib"], m["tree_max_rss_mib"], m["media_bytes"],
                  m["warc_bytes"], m["seconds"]] for m in data["memory"]])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pages", type=int, default=8)
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--media", type=lambda s: int(float(s)), default=300_000_000,
                        help="bytes of the large media requisite (0: skip)")
    parser.add_argument("--workdir", type=Path, help="where outputs go (default: a temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work directory")
    parser.add_argument("--json", type=Path, help="write the results as JSON here")
    parser.add_argument("--child-playwright", nargs=3, help=argparse.SUPPRESS)
    parser.add_argument("--child-capture", nargs=4, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_playwright:
        url_file, concurrency, out = args.child_playwright
        child_playwright(Path(url_file), int(concurrency), Path(out))
        return 0
    if args.child_capture:
        url, root, bundle, max_size = args.child_capture
        child_capture(url, Path(root), Path(bundle), int(max_size))
        return 0
    return run_benchmark("browser", args.workdir, args.keep, lambda work: bench(args, work),
                         report, args.json)


if __name__ == "__main__":
    raise SystemExit(main())
