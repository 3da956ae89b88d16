"""Helpers shared by the export and report tests: a signed archive with real captures, tools.

:func:`build_archive` captures the seed pages (HTTP, one through a redirect) and, when given an
HTTPS server, a page over TLS, into a new archive with an integrity log and a signing key kept
under ``config`` (passed as ``PRESERVE_CONFIG_HOME``). :func:`tree_state` fingerprints a
directory tree so a test can prove an export did not touch the archive. :func:`tool` finds an
outside tool (``wacz``, ``bagit.py``, pywb) or skips the test, except on CI where a missing tool
is a failure.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import os
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from preserve import Archive
from preserve.archive import CaptureOptions
from preserve.capture.fetch import FetchOptions
from preserve.storage.manifest import (
    ArtifactRef,
    BrowserConnection,
    BrowserInfo,
    BrowserResource,
    ExtractionSource,
    InterceptionCA,
    Manifest,
    Viewport,
)
from servers import TestServer, redirect, respond
from tsa import running_tsa

SEEDS = Path(__file__).parent / "fixtures" / "seeds"
VENV_BIN = Path(sys.executable).parent
PRESERVE = str(VENV_BIN / "preserve")
KEY_NAME = "test.example/archive"


@dataclass
class Built:
    root: Path
    config: Path
    ids: list[str]  # news (via a redirect), blog, and the HTTPS page if any
    key_path: Path

    def env(self, **extra: str) -> dict[str, str]:
        return {**os.environ, "PRESERVE_CONFIG_HOME": str(self.config),
                "PRESERVE_ROOT": str(self.root), **extra}


def serve_seeds(server: TestServer) -> None:
    html = [("Content-Type", "text/html; charset=utf-8")]
    server.routes["/news"] = redirect("/news/story.html", status=301)
    server.routes["/news/story.html"] = respond(200, (SEEDS / "news.html").read_bytes(),
                                                headers=html)
    server.routes["/blog"] = respond(200, (SEEDS / "blog.html").read_bytes(), headers=html)


def build_archive(root: Path, config: Path, http: TestServer, https: TestServer | None = None,
                  ca_bundle: Path | None = None) -> Built:
    """A signed archive with the seed captures (and an HTTPS capture when ``https`` is given)."""
    old = os.environ.get("PRESERVE_CONFIG_HOME")
    os.environ["PRESERVE_CONFIG_HOME"] = str(config)
    try:
        archive = Archive(root)
        info = archive.init(key_name=KEY_NAME)
        serve_seeds(http)
        options = CaptureOptions(operator="Test Operator <ops@example.org>")
        ids = [archive.capture(http.url("/news"), options).capture_id,
               archive.capture(http.url("/blog"), options).capture_id]
        if https is not None:
            serve_seeds(https)
            tls = CaptureOptions(fetch=FetchOptions(ca_bundle=ca_bundle), operator="Test Operator")
            ids.append(archive.capture(https.url("/news"), tls).capture_id)
    finally:
        if old is None:
            os.environ.pop("PRESERVE_CONFIG_HOME", None)
        else:
            os.environ["PRESERVE_CONFIG_HOME"] = old
    return Built(root, config, ids, info.private_path)


def navigated(m: Manifest, page_url: str, *, loaded: bool = True, from_dom: bool = True,
              screenshot: str | None = None) -> Manifest:
    """``m`` (an HTTP capture) as a browser capture whose page changed the address the tab
    showed after it loaded, to ``page_url``: the browser section, a screenshot (record
    ``screenshot``, else a made-up id) and rendered DOM taken there, the text from that DOM
    (``from_dom``), and, when ``loaded`` (a script loading another document, not
    history.pushState), the recorded ``document`` response of ``page_url``, at the end of
    the capture. Built in memory (no WARC record is added): for what reads the manifest."""
    final = m.redirects[-1]

    def resource(url: str, started: str, n: int) -> BrowserResource:
        return BrowserResource(
            url=url, method="GET", status=200, resource_type="document", connection=1,
            request_record=f"urn:uuid:00000000-0000-4000-8000-00000000010{n}",
            response_record=f"urn:uuid:00000000-0000-4000-8000-00000000020{n}",
            started=started, ended=started, transfer_encoding=None, wire_sha256="0" * 64,
            wire_size=1, body_sha256="0" * 64, body_size=1, truncated=None)

    resources = [resource(m.final_url, final.started, 1)]
    if loaded:
        resources.append(resource(page_url, m.ended, 2))
    dom = "urn:uuid:00000000-0000-4000-8000-000000000302"
    artifacts = (
        ArtifactRef("screenshot", screenshot or "urn:uuid:00000000-0000-4000-8000-000000000301",
                    "urn:preserve:screenshot:" + page_url, "image/png", 1, "0" * 64, "0" * 64),
        ArtifactRef("dom", dom, "urn:preserve:dom:" + page_url, "text/html; charset=utf-8", 1,
                    "0" * 64, "0" * 64))
    browser = BrowserInfo(
        product="Chrome/1.0", version="1.0", user_agent="UA", executable="/usr/bin/chromium",
        viewport=Viewport(1280, 800), flags=(), timings_ms={"total": 1}, page_url=page_url,
        interception_ca=InterceptionCA("0" * 64, "urn:uuid:00000000-0000-4000-8000-000000000401"),
        log_record="urn:uuid:00000000-0000-4000-8000-000000000402", max_exchanges=1000,
        refused_over_cap=0, console_messages=0,
        connections=(BrowserConnection(1, "127.0.0.1", 80, "127.0.0.1", None),),
        resources=tuple(resources), failed=(), notes=())
    source = ExtractionSource("rendered-dom", dom) if from_dom else m.extraction.source
    return dataclasses.replace(m, browser=browser, artifacts=artifacts,
                               extraction=dataclasses.replace(m.extraction, source=source))


def tree_state(root: Path) -> dict[str, tuple[int, int, str]]:
    """relative path -> (size, mtime in ns, SHA-256) of every file below ``root``."""
    state = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            stat = path.stat()
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            state[path.relative_to(root).as_posix()] = (stat.st_size, stat.st_mtime_ns, digest)
    return state


def tool(name: str, env: str | None = None) -> str:
    """The path of an outside tool (``$env`` first, then next to python, then the PATH)."""
    candidates = [os.environ.get(env) if env else None, str(VENV_BIN / name), shutil.which(name)]
    for candidate in candidates:
        if candidate and Path(candidate).is_file():
            return candidate
    missing(f"{name} not installed (set ${env} or install it; .ci/run does)" if env else
            f"{name} not installed")
    raise AssertionError("unreachable")


def pywb_python() -> str:
    """The python of a venv with pywb (``$PRESERVE_PYWB_PYTHON``, as in tests/test_warc.py)."""
    python = os.environ.get("PRESERVE_PYWB_PYTHON", "")
    if not (python and Path(python).exists()):
        missing("pywb not available: set PRESERVE_PYWB_PYTHON to a python that has pywb")
    return python


def missing(message: str) -> None:
    """Skip the test for a missing outside tool; on CI (``$CI`` set) fail instead."""
    if os.environ.get("CI"):
        pytest.fail(message + " (required when CI is set)")
    pytest.skip(message)


@contextlib.contextmanager
def tsa_server(directory: Path) -> Iterator[tuple[str, Path]]:
    """A Time Stamping Authority on 127.0.0.1 (tests/tsa.py): yields its URL and the
    directory holding its ``ca.pem``."""
    if shutil.which("openssl") is None:
        missing("openssl not installed: no local TSA")
    with running_tsa(directory) as served:
        yield served
