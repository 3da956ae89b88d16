"""Regenerate the sample collection in ``archive/`` + ``manifests/`` at the repository root.

Serves the seed-derived test pages (``tests/fixtures/seeds/*.html``) from a local HTTP server
on 127.0.0.1 and captures them with preserve itself, so the sample is real preserve output:

    python scripts/make_sample.py            # refuses to touch an existing sample
    python scripts/make_sample.py --replace  # deletes archive/ and manifests/ first

The news page is requested through a 301 redirect so the sample shows a redirect chain.
The archive is initialised with a fresh signing key (name ``preserve-sample``) whose private
half is written to a temporary directory and discarded: the sample's checkpoints verify with
``manifests/log/key.pub``, but nobody can sign new ones for it.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SEEDS = REPO / "tests" / "fixtures" / "seeds"
PAGES = {
    "/2011/04/camp-ashraf-massacre/": "blog.html",
    "/opinion/iran-in-the-world-press/a-massacre-in-iraq.html": "news.html",
}
REDIRECTS = {"/news/a-massacre-in-iraq": "/opinion/iran-in-the-world-press/a-massacre-in-iraq.html"}


class SeedHandler(BaseHTTPRequestHandler):
    """Serves the seed pages as a small web site would: HTML with charset, one redirect."""

    server_version = "SampleSite/1.0"

    def do_GET(self) -> None:
        if self.path in REDIRECTS:
            self.send_response(301)
            self.send_header("Location", REDIRECTS[self.path])
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        name = PAGES.get(self.path)
        if name is None:
            self.send_error(404)
            return
        body = (SEEDS / name).read_bytes()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        return


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", type=Path, default=REPO, help="archive root (default: repo)")
    parser.add_argument("--replace", action="store_true", help="delete the existing sample first")
    args = parser.parse_args(argv)

    sys.path.insert(0, str(REPO / "src"))
    import preserve  # noqa: PLC0415 - after sys.path is set, so the script runs from a clone

    root: Path = args.root
    existing = [root / "archive", root / "manifests"]
    if any(p.exists() and any(p.iterdir()) for p in existing):
        if not args.replace:
            parser.error(f"{root} already holds a sample; pass --replace to regenerate it")
        for path in existing:
            shutil.rmtree(path, ignore_errors=True)

    server = ThreadingHTTPServer(("127.0.0.1", 0), SeedHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_address[1]}"
    options = preserve.CaptureOptions(operator="preserve sample generator")
    with tempfile.TemporaryDirectory() as keys:
        archive = preserve.Archive(root, key=os.path.join(keys, "sample.key"))
        archive.init(key_name="preserve-sample")
        try:
            for path in ("/2011/04/camp-ashraf-massacre/", "/news/a-massacre-in-iraq"):
                result = archive.capture(base + path, options)
                print(result.capture_id, result.status, result.title)
        finally:
            server.shutdown()
        report = archive.verify(deep=True)
    print("ok" if report.ok else "NOT INTACT", report.counts())
    return report.exit_status


if __name__ == "__main__":
    sys.exit(main())
