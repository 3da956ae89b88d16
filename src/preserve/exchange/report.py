"""A capture report for people: one self-contained HTML page (or a PDF of it) per capture.

The report states what an editor or a court needs without preserve: the screenshot (when a
browser capture recorded one), the requested and final URL (and the rendered page, when the
page changed the address the browser showed: the screenshot and the text are labelled with the
address they were taken at, see :attr:`~preserve.storage.manifest.Manifest.text_url`), the
redirect chain, the capture time in UTC, the peer address, the TLS certificate, the software
and operator, the clean text, the hashes of every file (re-checked when the report is made),
the integrity-log checkpoint and inclusion proof, the RFC 3161 status, and the exact commands
to check it all independently.

Safety: every value that came from the captured page or its server (title, text, URLs,
headers, certificate names) is HTML-escaped, and control and bidirectional-override
characters in single-line values are shown as ``⟨U+202E⟩`` so that a hostile page cannot
disguise a URL. The page carries a Content-Security-Policy that allows no script, no network
and only inline images, and it links nowhere. Screenshots are embedded only if their bytes
match the record's digest and are PNG, JPEG or WebP.

A screenshot is the first WARC record of type ``resource`` (or ``metadata``) whose
Content-Type is ``image/png``, ``image/jpeg`` or ``image/webp``; one whose target URI
mentions ``screenshot`` is preferred. PDF output prints the HTML with a headless Chromium
(``$PRESERVE_CHROMIUM``, else ``chromium``/``google-chrome`` on the PATH).

This module reads the archive; it never writes to it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import html
import os
import re
import shlex
import shutil
import subprocess
import tempfile
import unicodedata
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import log
from preserve._version import __version__
from preserve.archive import Archive
from preserve.capture.page import SCREENSHOT_URI_PREFIX
from preserve.errors import ManifestNotLoggedError, PreserveError, UnverifiedManifestError
from preserve.exchange.files import AtomicFile, SourceFile, copy_file, read_bounded
from preserve.exchange.plan import (
    LoadedCapture,
    LogSnapshot,
    plan_export,
)
from preserve.exchange.source import ArchiveSource, source_for
from preserve.hashing import warc_digest_to_hex
from preserve.log.entries import utc_now
from preserve.log.timestamp import load_roots_file, timestamp_time, verify_timestamp
from preserve.storage.manifest import Hop, Manifest, TlsInfo, WarcRecordRef
from preserve.warc.heads import read_block_from

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive

SCREENSHOT_TYPES = {"image/png": b"\x89PNG\r\n\x1a\n", "image/jpeg": b"\xff\xd8\xff",
                    "image/webp": b"RIFF"}
SCREENSHOT_LIMIT = 32 * 2**20
CHROMIUM_ENV = "PRESERVE_CHROMIUM"
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable",
                  "chrome")
CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-extensions",
    "--disable-default-apps", "--mute-audio", "--hide-scrollbars",
)
PDF_TIMEOUT = 120.0


class ReportError(PreserveError):
    """A report could not be rendered (for example: PDF asked for but no Chromium installed)."""


@dataclass(frozen=True)
class FileCheck:
    """One file the capture consists of, with its digests and whether they still hold."""

    label: str
    path: str
    size: int
    sha256: str | None
    blake3: str | None
    status: str  # "match", "MISMATCH", "missing", or (a manifest) "not in the log"

    @property
    def bad(self) -> bool:
        return self.status in ("MISMATCH", "missing")


@dataclass
class ReportData:
    """Everything the report shows, gathered from the archive."""

    capture: LoadedCapture
    snapshot: LogSnapshot | None
    files: list[FileCheck]
    text: str
    comments: str
    screenshot: tuple[str, bytes, WarcRecordRef] | None
    screenshot_note: str
    proof_problems: list[str]
    timestamp: dict[str, str | None]
    trusted_key: str | None
    generated: str = field(default_factory=utc_now)

    @property
    def manifest(self) -> Manifest:
        return self.capture.manifest


def gather(archive: Archive | RemoteArchive | ArchiveSource, capture_id: str, *,
           trusted_key: str | None = None, tsa_roots: Path | None = None) -> ReportData:
    """Read one capture (a unique id prefix works) of an archive directory or an ``s3://``
    root and check what can be checked now.
    A manifest that is not the one a log leaf records is not reported on
    (:class:`~preserve.errors.UnverifiedManifestError`, as ``show`` refuses it)."""
    try:
        plan = plan_export(archive, [capture_id])
    except ManifestNotLoggedError as exc:
        raise UnverifiedManifestError(f"{exc}; no report was written") from exc
    capture = plan.load(plan.captures[0])
    m = capture.manifest
    logged = capture.planned.leaf_index is not None  # the plan checked it against its leaf
    files = [FileCheck("manifest", capture.manifest_rel, capture.manifest_digests.size,
                       capture.manifest_digests.sha256, capture.manifest_digests.blake3,
                       "match" if logged else "not in the log")]
    files.append(_check_file("WARC file", m.warc.path, capture.warc_file, m.warc.size,
                             {"sha256": m.warc.sha256, "blake3": m.warc.blake3}))
    text = comments = ""
    for label, ref, path in (("clean text", m.text, capture.text_file),
                             ("reader comments", m.comments, capture.comments_file)):
        if ref is None or path is None:
            continue
        check = _check_file(label, ref.path, path, ref.size, {"blake3": ref.blake3})
        files.append(check)
        if check.status == "match":
            value = read_bounded(path, ref.size).decode("utf-8", errors="replace")
            text, comments = (value, comments) if label == "clean text" else (text, value)
    screenshot, note = _screenshot(capture)
    problems = log.check_proof(capture.proof, trusted_key) if capture.proof else []
    return ReportData(capture, plan.snapshot, files, text, comments, screenshot, note, problems,
                      _timestamp_status(plan.snapshot, tsa_roots), trusted_key)


def _check_file(label: str, rel: str, path: SourceFile, size: int,
                expect: dict[str, str]) -> FileCheck:
    try:
        actual = path.size()
    except (OSError, PreserveError):
        return FileCheck(label, rel, size, expect.get("sha256"), expect.get("blake3"), "missing")
    if actual != size:  # damaged: not read at all (it may be a sparse file of terabytes)
        return FileCheck(label, rel, size, None, None, "MISMATCH")
    try:
        digests = copy_file(path, lambda _: None, ["sha256", "blake3"],
                            expect_size=size).hexdigests()
    except PreserveError:
        return FileCheck(label, rel, size, expect.get("sha256"), expect.get("blake3"), "missing")
    ok = all(digests[k] == v for k, v in expect.items())
    return FileCheck(label, rel, size, digests["sha256"], digests["blake3"],
                     "match" if ok else "MISMATCH")


def find_screenshot(records: Sequence[WarcRecordRef]) -> WarcRecordRef | None:
    """The record holding the page's screenshot, by the rule in the module docstring."""
    images = [r for r in records if r.type in ("resource", "metadata")
              and (r.content_type or "").split(";")[0].strip().lower() in SCREENSHOT_TYPES]
    named = [r for r in images if "screenshot" in (r.target_uri or "").lower()]
    candidates = named or images
    return candidates[0] if candidates else None


def _screenshot(capture: LoadedCapture) -> tuple[tuple[str, bytes, WarcRecordRef] | None, str]:
    ref = find_screenshot(capture.manifest.warc.records)
    if ref is None:
        if capture.manifest.imported is not None:
            return None, "No screenshot: the imported file holds none for this page."
        return None, "No screenshot (HTTP capture): preserve fetched the page without a browser."
    media = (ref.content_type or "").split(";")[0].strip().lower()
    try:
        with capture.warc_file.open() as (handle, _size):
            _, block = read_block_from(handle, ref.offset, SCREENSHOT_LIMIT,
                                       str(capture.warc_file))
    except (OSError, PreserveError) as exc:
        return None, f"The screenshot record could not be read: {exc}"
    try:
        algo, expected = warc_digest_to_hex(ref.block_digest or "")
        actual = hashlib.new(algo, block).hexdigest()
    except (ValueError, binascii.Error):
        return None, "The screenshot record has a digest this report cannot check; not shown."
    if actual != expected:
        return None, "The screenshot's bytes do not match its recorded digest; not shown."
    if not block.startswith(SCREENSHOT_TYPES[media]):
        return None, f"The screenshot record is not a {media} image; not shown."
    if capture.manifest.imported is not None:  # the file's claim, not preserve's own capture
        return (media, block, ref), ("An image the imported file holds as a screenshot of the "
                                     "page: the file's claim, not a screenshot preserve took.")
    return (media, block, ref), "Screenshot taken by the capturing browser."


def _timestamp_status(snapshot: LogSnapshot | None, roots: Path | None) -> dict[str, str | None]:
    status: dict[str, str | None] = {"state": "none", "time": None, "file": None,
                                     "detail": None}
    if snapshot is None or snapshot.checkpoint_name is None:
        status["detail"] = "There is no signed checkpoint, so there is no timestamp either."
        return status
    token_name = snapshot.checkpoint_name.removesuffix(".txt") + ".tsr"
    status["file"] = f"manifests/log/checkpoints/{token_name}"
    if snapshot.checkpoint_token is None:
        status["file"] = None
        status["detail"] = ("The checkpoint carries no RFC 3161 timestamp: the time of the log "
                            "rests on the archive's own clock.")
        return status
    token = snapshot.checkpoint_token
    try:
        status["time"] = timestamp_time(token).strftime("%Y-%m-%dT%H:%M:%SZ")
    except PreserveError as exc:
        status["state"] = "invalid"
        status["detail"] = f"The stored token cannot be read: {exc}"
        return status
    if roots is None:
        status["state"] = "present"
        status["detail"] = ("A Time Stamping Authority dated the checkpoint. Its signature was "
                            "not checked here (no trusted TSA roots were given); check it with "
                            "the openssl command below.")
        return status
    assert snapshot.checkpoint is not None
    problem = verify_timestamp(snapshot.checkpoint.encode("utf-8"), token,
                               load_roots_file(roots))
    status["state"] = "verified" if problem is None else "invalid"
    status["detail"] = problem or f"Verified against the TSA roots in {roots.name}."
    return status


# --- rendering ------------------------------------------------------------------------------------

_CONTROL_CATEGORIES = ("Cc", "Cf", "Zl", "Zp")


def visible(value: str | None) -> str:
    """HTML-escaped one-line text with control, format and bidi characters made visible."""
    if value is None:
        return "—"
    out = []
    for char in value:
        if unicodedata.category(char) in _CONTROL_CATEGORIES:
            out.append(f"⟨U+{ord(char):04X}⟩")
        else:
            out.append(char)
    return html.escape("".join(out), quote=True)


def esc(value: object) -> str:
    """HTML-escape any value (multi-line text keeps its line breaks and tabs; other control
    characters, which no HTML document may hold, are shown as ``⟨U+0000⟩``)."""
    text = "" if value is None else str(value)
    return html.escape(_CONTROLS.sub(lambda m: f"⟨U+{ord(m.group()):04X}⟩", text), quote=True)


_CONTROLS = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f]")


def _utc(stamp: str | None) -> str:
    if not stamp:
        return "—"
    return esc(stamp.replace("T", " ").replace("Z", " UTC"))


def _rows(rows: Iterable[tuple[str, str]]) -> str:
    return "".join(f"<tr><th scope=\"row\">{label}</th><td>{value}</td></tr>"
                   for label, value in rows)


def _code(value: str | None) -> str:
    return f"<code>{visible(value)}</code>" if value else "—"


def render_html(data: ReportData) -> str:
    """The report as one HTML document (no external resources, no script)."""
    m = data.manifest
    title = m.extraction.title or m.text_url
    sections = [
        _summary(data),
        _screenshot_section(data),
        _where_when(m),
        _tls_section(m.connection.tls, m.redirects),
        _who_section(m),
        _text_section(data),
        _files_section(data),
        _log_section(data),
        _howto_section(data),
    ]
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
        "img-src data:; style-src 'unsafe-inline'\">"
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
        "<meta name=\"referrer\" content=\"no-referrer\">"
        f"<title>Capture report: {visible(title)}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        "<header><p class=\"kicker\">Web capture report · preserve</p>"
        f"<h1>{visible(title)}</h1>"
        f"<p class=\"url\">{visible(m.text_url)}</p>{_navigated_note(m)}"
        f"<p class=\"meta\">Capture <code>{esc(m.capture_id)}</code> · captured "
        f"{_utc(m.started)}</p></header>"
        + "".join(sections)
        + f"<footer><p>Generated by preserve {esc(__version__)} on {_utc(data.generated)}. "
        "This report is a reading aid: the evidence is the WARC file and the manifest, "
        "whose hashes are listed above. Everything shown from the page (title, addresses, "
        "text) is quoted as received and may be false or hostile; it was not interpreted."
        "</p></footer></main></body></html>\n"
    )


def _url(value: str) -> str:
    return f"<span class=\"url\">{visible(value)}</span>"


def _navigated_note(m: Manifest) -> str:
    """Under the title, when the browser showed another address than the final URL: which of
    the two the screenshot, title and text belong to."""
    rendered = m.rendered_url
    if rendered is None:
        return ""
    if m.text_url == rendered:
        what = "What the browser showed (screenshot, PDF, rendered DOM), the title and the text are"
    else:
        what = ("The title and text are those of the final URL's response; what the browser "
                "showed (screenshot, PDF, rendered DOM) is")
    return (f"<p class=\"note\">{what} of the rendered page {_url(rendered)}: after it "
            "loaded, the page itself changed the address the browser showed (a script's "
            "navigation or the history API). The HTTP request for the requested URL ended at "
            f"the final URL {_url(m.final_url)}.</p>")


def _summary(data: ReportData) -> str:
    m = data.manifest
    files_ok = not any(f.bad for f in data.files)
    proof = data.capture.proof
    if proof is not None and not data.proof_problems:
        log_state = ("ok", "in the signed integrity log (leaf index "
                           f"{proof['leaf']['index']} of {proof['inclusion_proof']['tree_size']})")
    elif proof is not None:
        log_state = ("bad", "the inclusion proof does NOT hold")
    else:
        log_state = ("none", f"no inclusion proof: {data.capture.proof_problem}")
    stamp = data.timestamp
    stamp_state = {"verified": ("ok", f"checkpoint timestamped {stamp['time']} (verified)"),
                   "present": ("ok", f"checkpoint timestamped {stamp['time']} "
                                     "(signature not checked here)"),
                   "invalid": ("bad", "timestamp does NOT verify"),
                   "none": ("none", "no RFC 3161 timestamp")}[stamp["state"] or "none"]
    items = [
        ("Captured (UTC)", _utc(m.started)),
        ("Server answer", visible(f"HTTP {m.http.status} {m.http.reason}".strip())),
        ("Files", _badge("ok" if files_ok else "bad",
                         "all files match their recorded hashes" if files_ok
                         else "a file does NOT match its recorded hash")),
        ("Integrity log", _badge(*log_state)),
        ("Trusted time", _badge(*stamp_state)),
    ]
    return f"<section class=\"summary\"><table>{_rows(items)}</table></section>"


def _badge(state: str, text: str) -> str:
    mark = {"ok": "✓", "bad": "✗", "none": "-"}[state]
    return f"<span class=\"badge {state}\">{mark}</span> {esc(text)}"


def _screenshot_section(data: ReportData) -> str:
    body = f"<p class=\"note\">{esc(data.screenshot_note)}</p>"
    if data.screenshot is not None:
        media, block, ref = data.screenshot
        encoded = base64.b64encode(block).decode("ascii")
        body = (f"<figure class=\"shot\"><div class=\"frame\"><img alt=\"Screenshot of the "
                f"captured page\" src=\"data:{media};base64,{encoded}\"></div><figcaption>"
                f"{esc(data.screenshot_note)}{_shown_at(data.manifest, ref)} "
                "<span class=\"screen\">Scroll inside the frame to "
                "see all of it.</span><span class=\"print\">Printed: the top of the page; the "
                "HTML report and the WARC record hold all of it.</span> WARC record "
                f"<code>{visible(ref.id)}</code>, {len(block):,} bytes, "
                f"<code>{visible(ref.block_digest)}</code>.</figcaption></figure>")
    return f"<section><h2>What the page looked like</h2>{body}</section>"


def _shown_at(m: Manifest, ref: WarcRecordRef) -> str:
    """Where the browser was when it took the screenshot record ``ref`` (the address its
    artifact's target URI names), said in the caption of a browser capture's screenshot."""
    artifact = next((a for a in m.artifacts or () if a.record == ref.id), None)
    if artifact is None or not artifact.target_uri.startswith(SCREENSHOT_URI_PREFIX):
        return ""
    shown = artifact.target_uri[len(SCREENSHOT_URI_PREFIX):]
    if shown == m.final_url:
        return f" It shows the page at {_url(shown)}."
    return (f" It shows the rendered page at {_url(shown)}, not the final URL of the HTTP "
            "request: the page changed the address after it loaded.")


def _rendered_row(m: Manifest, rendered: str) -> str:
    """The value of the "Rendered page" row: the address, and how the page got there."""
    said = ("the address the browser showed when it took the screenshot, PDF and rendered DOM; "
            "the page itself changed it after loading, so it is not the final URL of the HTTP "
            "request")
    document = m.rendered_document
    if document is not None:
        how = (f"the browser loaded this document: HTTP {esc(document.status)}, WARC record "
               f"<code>{visible(document.response_record)}</code>")
    else:
        how = ("no document response for this address was recorded, as when a script changes "
               "the address without loading a document (history.pushState)")
    return f"{_url(rendered)} <span class=\"note\">({said}; {how})</span>"


def _where_when(m: Manifest) -> str:
    conn = m.connection
    rendered = m.rendered_url
    final = _url(m.final_url)
    if rendered is not None:
        final += (" <span class=\"note\">(where the HTTP request for the requested URL and its "
                  "redirects ended)</span>")
    rows = [
        ("Requested URL", _url(m.requested_url)),
        ("Final URL", final),
        *([("Rendered page", _rendered_row(m, rendered))] if rendered is not None else []),
        ("Capture started", _utc(m.started)),
        ("Capture ended", _utc(m.ended)),
        ("HTTP status", visible(f"{m.http.status} {m.http.reason}".strip())),
        ("Content type", visible(m.http.content_type)),
        ("Server address", esc(f"{conn.remote_ip or 'not stated'} port {conn.remote_port}")),
        ("Our address", visible(conn.local_ip)),
        ("Outcome", esc(m.status) + (f" ({visible(m.extraction.reason)})"
                                     if m.extraction.reason else "")),
    ]
    if m.extraction.page_type or m.extraction.method:
        rows.append(("Page type (extractor's guess)", visible(m.extraction.page_type)))
        rows.append(("Text found by", visible(m.extraction.method)))
    imported = m.imported
    if imported is not None:  # the times above are the receipt; the rest is the file's claim
        source = imported.source
        member = f", member {source.member}" if source.member else ""
        rows[2:4] = [("Received by preserve", _utc(imported.received)),
                     ("Import checked by", _utc(m.ended))]
        rows.append(("Imported from", visible(f"{source.name} ({source.kind}{member}), "
                                          f"{source.size:,} bytes, SHA-256 {source.sha256}")))
        rows.append(("Date the file claims", visible(imported.original_date)))
        rows.append(("Note", "An import: the exchange, addresses and dates are what the file "
                             "states; preserve vouches for when it received the bytes."))
    hops = "".join(
        f"<tr><td>{i}</td><td>{esc(hop.status)}</td><td class=\"url\">{visible(hop.url)}</td>"
        f"<td class=\"url\">{visible(hop.location) if hop.location else '—'}</td>"
        f"<td>{esc(hop.remote_ip)}:{esc(hop.remote_port)}</td><td>{_utc(hop.started)}</td></tr>"
        for i, hop in enumerate(m.redirects, 1)
    )
    chain = ("<h3>Redirect chain</h3><p class=\"note\">Every HTTP exchange, from the requested "
             "URL to the final answer.</p><table class=\"grid\"><thead><tr><th>#</th>"
             "<th>Status</th><th>URL</th><th>Redirects to</th><th>Server</th>"
             f"<th>Time (UTC)</th></tr></thead><tbody>{hops}</tbody></table>")
    return f"<section><h2>Where and when</h2><table>{_rows(rows)}</table>{chain}</section>"


def _tls_section(tls: TlsInfo | None, hops: Sequence[Hop]) -> str:
    if tls is None:
        return ("<section><h2>Connection security</h2><p>Plain HTTP: the final answer came over "
                "an unencrypted connection, so there is no TLS certificate to show.</p></section>")
    rows = [("TLS version", esc(tls.version)), ("Cipher", esc(tls.cipher)),
            ("ALPN", visible(tls.alpn)),
            ("Certificate verified", "yes" if tls.verified else
             "<strong>NO</strong> (captured with certificate checks turned off)")]
    cert = tls.certificate
    if cert is not None:
        rows += [
            ("Subject", visible(cert.subject)),
            ("Issuer", visible(cert.issuer)),
            ("Valid from", _utc(cert.not_before)),
            ("Valid until", _utc(cert.not_after)),
            ("SHA-256 fingerprint", _code(cert.sha256_fingerprint)),
            ("Serial number", _code(cert.serial_number)),
            ("Names (SAN)", ", ".join(visible(n) for n in cert.subject_alt_names) or "—"),
        ]
    return ("<section><h2>Connection security</h2><p class=\"note\">TLS facts of the connection "
            "that carried the final answer, read from that very connection.</p>"
            f"<table>{_rows(rows)}</table></section>")


def _who_section(m: Manifest) -> str:
    software = dict(m.software)
    main_parts = [f"preserve {software.pop('preserve', '?')}"]
    for key in ("python", "platform"):
        if key in software:
            main_parts.append(software.pop(key))
    libraries = " · ".join(f"{name} {version}" for name, version in sorted(software.items()))
    rows = [("Operator", visible(m.operator) if m.operator else "—"),
            ("Capturing machine", visible(m.host) if m.host else "—"),
            ("Software", esc(", ".join(main_parts))),
            ("Libraries", esc(libraries) or "—"),
            ("Text extractor", esc(f"{m.extractor.name} {m.extractor.version}"))]
    return (f"<section><h2>Who captured it, with what</h2><table>{_rows(rows)}</table>"
            "</section>")


def _paragraphs(text: str) -> str:
    blocks = [b for b in text.replace("\r\n", "\n").split("\n\n") if b.strip()]
    return "".join(f"<p dir=\"auto\">{esc(b).replace(chr(10), '<br>')}</p>" for b in blocks)


def _text_section(data: ReportData) -> str:
    m = data.manifest
    ex = m.extraction
    source = ex.source
    if source is not None and source.kind == "rendered-dom":
        origin = (f"{_url(m.text_url)} <span class=\"note\">(the browser's rendered DOM, "
                  "when the snapshot was taken)</span>")
    else:
        origin = f"{_url(m.final_url)} <span class=\"note\">(the final HTTP response)</span>"
    rows = [("Taken from", origin), ("Title", visible(ex.title)),
            ("Byline", visible(ex.byline)), ("Published", visible(ex.published)),
            ("Language", visible(ex.language))]
    if data.text:
        body = f"<div class=\"text\">{_paragraphs(data.text)}</div>"
    else:
        reason = ex.reason or "no text was extracted"
        body = f"<p class=\"note\">No clean text: {visible(reason)}.</p>"
    if data.comments:
        body += ("<h3>Reader comments</h3><p class=\"note\">Kept apart from the article text."
                 f"</p><div class=\"text\">{_paragraphs(data.comments)}</div>")
    return ("<section><h2>Clean text</h2><p class=\"note\">The article text with navigation, "
            "advertising and other page furniture removed, as claimed by the page.</p>"
            f"<table>{_rows(rows)}</table>{body}</section>")


def _files_section(data: ReportData) -> str:
    files = "".join(
        f"<tbody class=\"file\"><tr><th>{esc(f.label)}</th><td><code>{esc(f.path)}</code></td>"
        f"<td class=\"num\">{f.size:,} bytes</td>"
        f"<td class=\"{'bad' if f.bad else 'ok'}\">{esc(f.status)}</td></tr>"
        f"<tr class=\"digest\"><td>SHA-256</td><td colspan=\"3\"><code>{esc(f.sha256 or '—')}"
        f"</code></td></tr><tr class=\"digest\"><td>BLAKE3</td><td colspan=\"3\"><code>"
        f"{esc(f.blake3 or '—')}</code></td></tr></tbody>"
        for f in data.files
    )
    records = "".join(
        f"<tr><td>{i}</td><td>{visible(r.type)}</td><td class=\"url\">{visible(r.target_uri)}</td>"
        f"<td class=\"num\">{r.offset:,}</td><td class=\"num\">{r.length:,}</td>"
        f"<td><code>{visible(r.block_digest)}</code></td></tr>"
        for i, r in enumerate(data.manifest.warc.records, 1)
    )
    return (
        "<section><h2>Files and hashes</h2><p class=\"note\">The files this capture consists "
        "of, with their SHA-256 and BLAKE3 digests as re-computed when this report was made; "
        "“match” means they equal the digests recorded in the manifest (and, for the manifest, "
        "in the integrity log).</p>"
        f"<table class=\"files\">{files}</table>"
        "<h3>Records in the WARC file</h3><table class=\"grid small\"><thead><tr><th>#</th>"
        "<th>Type</th><th>Target</th><th>Offset</th><th>Length</th><th>Block digest</th></tr>"
        f"</thead><tbody>{records}</tbody></table></section>"
    )


def _log_section(data: ReportData) -> str:
    proof = data.capture.proof
    stamp = data.timestamp
    stamp_text = esc(stamp["detail"])
    if stamp["time"]:
        stamp_text = f"Time asserted by the TSA: <strong>{_utc(stamp['time'])}</strong>. " + \
            stamp_text
    stamp_html = f"<h3>RFC 3161 timestamp</h3><p>{stamp_text}</p>"
    if proof is None:
        return (f"<section><h2>Integrity log</h2><p>No inclusion proof: "
                f"{esc(data.capture.proof_problem)}.</p>{stamp_html}</section>")
    verdict = ("The proof holds: this manifest is in the log the checkpoint signs."
               if not data.proof_problems else "The proof does NOT hold: "
               + "; ".join(data.proof_problems))
    trusted = ("checked against the key given to this report" if data.trusted_key
               else "taken from the archive itself: compare it with a copy kept elsewhere")
    hashes = "".join(f"<li><code>{esc(h)}</code></li>" for h in proof["inclusion_proof"]["hashes"])
    rows = [
        ("Verdict", f"<strong>{esc(verdict)}</strong>"),
        ("Leaf", esc(f"index {proof['leaf']['index']} (counting from 0) in a log of "
                     f"{proof['inclusion_proof']['tree_size']} entries")),
        ("Log entry", f"<code class=\"wrap\">{esc(proof['leaf']['entry'])}</code>"),
        ("Archive key", f"<code class=\"wrap\">{esc(proof['verifier_key'])}</code> ({trusted})"),
        ("Audit path", f"<ol class=\"hashes\">{hashes}</ol>" if hashes else "— (single leaf)"),
    ]
    return (
        "<section><h2>Integrity log</h2><p class=\"note\">The archive keeps an append-only "
        "Merkle log (RFC 9162) of every manifest, and signs checkpoints of it. The inclusion "
        "proof below shows this capture's manifest is in the signed log, so it cannot have been "
        f"changed or back-dated since without detection.</p><table>{_rows(rows)}</table>"
        f"<h3>Signed checkpoint</h3><pre>{esc(proof['checkpoint'])}</pre>{stamp_html}</section>"
    )


def _howto_section(data: ReportData) -> str:
    m = data.manifest
    c = data.capture
    q = shlex.quote
    steps: list[tuple[str, list[str]]] = [
        ("The manifest: its hashes must be the ones recorded in the integrity log", [
            f"sha256sum {q(c.manifest_rel)}", f"#   expect {c.manifest_digests.sha256}",
            f"b3sum {q(c.manifest_rel)}", f"#   expect {c.manifest_digests.blake3}"]),
        ("The WARC file, then every record's digest inside it", [
            f"sha256sum {q(m.warc.path)}", f"#   expect {m.warc.sha256}",
            f"warcio check -v {q(m.warc.path)}"]),
    ]
    if m.text is not None:
        steps.append(("The clean text: the file is named by its own BLAKE3 hash", [
            f"b3sum {q(m.text.path)}", f"#   expect {m.text.blake3}"]))
    key = c.proof["verifier_key"] if c.proof else None
    steps.append(("The inclusion proof in the signed log (or use the standalone Python "
                  "check in docs/integrity-log.md)", [
        f"preserve prove {c.capture_id} -o proof.json",
        f"preserve check-proof proof.json --trusted-key {q(key)}" if key
        else "preserve check-proof proof.json --trusted-key KEY_KEPT_ELSEWHERE"]))
    if data.timestamp.get("file") and data.snapshot and data.snapshot.checkpoint_name:
        cp = f"manifests/log/checkpoints/{data.snapshot.checkpoint_name}"
        steps.append(("The RFC 3161 timestamp on the checkpoint (tsa-roots.pem: the TSA's "
                      "root certificate, obtained from the TSA)", [
            f"openssl ts -verify -data {q(cp)} -in {q(str(data.timestamp['file']))} "
            "-CAfile tsa-roots.pem"]))
    steps.append(("Everything at once", ["preserve verify --deep --no-record"]))
    lines: list[str] = []
    for number, (title, commands) in enumerate(steps, 1):
        lines += [f"# {number}. {title}", *commands, ""]
    return (
        "<section class=\"howto\"><h2>How to check this yourself</h2><p>Run these in the "
        "archive's root directory (or in <code>data/</code> of an exported bag). Each hash a "
        "command prints must equal the one on the <code>#   expect</code> line below it. The "
        "tools are standard: GNU coreutils, <code>b3sum</code>, <code>warcio</code> (Python), "
        "<code>openssl</code>; docs/verify-without-preserve.md explains each step.</p>"
        f"<pre>{esc(chr(10).join(lines).rstrip())}</pre></section>"
    )


_CSS = """
:root{--ink:#1b1f24;--muted:#57606a;--line:#d0d7de;--ok:#1a7f37;--bad:#cf222e;--bg:#f6f8fa}
*{box-sizing:border-box}
body{margin:0;color:var(--ink);font:15px/1.5 -apple-system,"Segoe UI",Roboto,"Liberation Sans",
Arial,sans-serif;background:#fff}
main{max-width:60rem;margin:0 auto;padding:2rem 1.5rem}
header{border-bottom:3px solid var(--ink);padding-bottom:1rem;margin-bottom:1.5rem}
.kicker{text-transform:uppercase;letter-spacing:.08em;font-size:.75rem;color:var(--muted);margin:0}
h1{font-size:1.6rem;line-height:1.25;margin:.3rem 0;overflow-wrap:anywhere}
h2{font-size:1.2rem;border-bottom:1px solid var(--line);padding-bottom:.25rem;margin-top:2rem}
h3{font-size:1rem;margin:1.25rem 0 .4rem}
p.url,.url{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.85rem;
overflow-wrap:anywhere}
.meta,.note{color:var(--muted);font-size:.9rem}
table{border-collapse:collapse;width:100%;margin:.5rem 0}
th,td{text-align:left;vertical-align:top;padding:.3rem .5rem;border-bottom:1px solid var(--line)}
th[scope=row]{width:13rem;color:var(--muted);font-weight:600}
table.grid th{background:var(--bg);font-size:.85rem}
table.grid td{font-size:.85rem}
table.small td{font-size:.78rem}
td.num{text-align:right;white-space:nowrap}
table.files{border-top:1px solid var(--line)}
table.files tbody.file th{width:9rem}
table.files tr.digest td{border-bottom:none;padding-top:0;padding-bottom:.1rem;color:var(--muted);
font-size:.8rem}
table.files tr.digest td:first-child{padding-left:1.5rem}
table.files tbody.file tr:last-child td{border-bottom:1px solid var(--line);padding-bottom:.4rem}
table.files tbody.file{break-inside:avoid}
code,pre{font-family:ui-monospace,"DejaVu Sans Mono",Menlo,monospace;font-size:.8rem}
code{overflow-wrap:anywhere}
pre{background:var(--bg);border:1px solid var(--line);padding:.75rem;white-space:pre-wrap;
overflow-wrap:anywhere}
.summary table{border:2px solid var(--ink)}
.summary th[scope=row]{width:10rem}
.badge{display:inline-block;width:1.3em;text-align:center;font-weight:700;border-radius:3px;
color:#fff}
.badge.ok{background:var(--ok)}.badge.bad{background:var(--bad)}.badge.none{background:var(--muted)}
td.ok{color:var(--ok);font-weight:600}td.bad{color:var(--bad);font-weight:700}
.text{border-left:3px solid var(--line);padding-left:1rem;unicode-bidi:plaintext}
.text p{margin:.5rem 0;overflow-wrap:anywhere}
figure.shot{margin:0}
figure.shot .frame{max-height:38rem;overflow:auto;border:1px solid var(--line)}
figure.shot img{display:block;width:100%;height:auto}
.print{display:none}
figcaption{color:var(--muted);font-size:.8rem;overflow-wrap:anywhere}
ol.hashes{margin:0;padding-left:1.5rem}
footer{margin-top:2.5rem;border-top:1px solid var(--line);color:var(--muted);font-size:.8rem}
@media print{
 .screen{display:none}.print{display:inline}
 figure.shot .frame{max-height:none;overflow:visible}
 figure.shot img{max-height:12.5cm;object-fit:cover;object-position:top}
 body{font-size:10.5pt}
 main{max-width:none;padding:0}
 h2{break-after:avoid}
 tr,figure,pre{break-inside:avoid}
}
@page{size:A4;margin:16mm 14mm}
"""


# --- output ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportResult:
    path: Path
    format: str
    capture_id: str
    proof_holds: bool | None
    files_match: bool

    def to_json(self) -> dict[str, Any]:
        return {"path": str(self.path), "format": self.format, "capture_id": self.capture_id,
                "proof_holds": self.proof_holds, "files_match": self.files_match}


def find_chromium(explicit: str | None = None) -> str | None:
    """The Chromium (or Chrome) to print with: ``explicit``, ``$PRESERVE_CHROMIUM``, the PATH."""
    for candidate in (explicit, os.environ.get(CHROMIUM_ENV)):
        if candidate:
            return shutil.which(candidate) or (candidate if Path(candidate).is_file() else None)
    for name in CHROMIUM_NAMES:
        found = shutil.which(name)
        if found:
            return found
    return None


def chromium_command(chromium: str, profile: Path, *extra: str) -> list[str]:
    return [chromium, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *extra]


def print_pdf(html_text: str, pdf: Path, *, chromium: str | None = None) -> None:
    """Print ``html_text`` to the file ``pdf`` with headless Chromium (never replacing it)."""
    binary = find_chromium(chromium)
    if binary is None:
        raise ReportError("PDF output needs Chromium or Chrome (install chromium, or set "
                          f"${CHROMIUM_ENV}); write .html instead")
    with tempfile.TemporaryDirectory(prefix="preserve-report-") as tmp:
        page = Path(tmp) / "report.html"
        page.write_text(html_text, encoding="utf-8")
        printed = Path(tmp) / "report.pdf"
        command = chromium_command(binary, Path(tmp) / "profile", "--no-pdf-header-footer",
                                   "--print-to-pdf-no-header", f"--print-to-pdf={printed}",
                                   page.as_uri())
        try:
            done = subprocess.run(command, capture_output=True, timeout=PDF_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise ReportError(f"Chromium could not print the report: {exc}") from exc
        if not printed.is_file() or printed.read_bytes()[:5] != b"%PDF-":
            tail = done.stderr.decode(errors="replace").strip().splitlines()[-3:]
            raise ReportError(f"Chromium did not write a PDF (exit {done.returncode}): "
                              + " | ".join(tail))
        with AtomicFile(pdf) as out:
            copy_file(printed, out.write, [])


def write_report(archive: Archive | RemoteArchive | ArchiveSource, capture_id: str, out: Path,
                 *, fmt: str | None = None, trusted_key: str | None = None,
                 tsa_roots: Path | None = None, chromium: str | None = None) -> ReportResult:
    """Write the report of one capture of an archive directory or an ``s3://`` root to
    ``out`` (HTML, or PDF when ``out`` ends in .pdf)."""
    out = Path(out)
    archive = source_for(archive)
    archive.refuse_output(out)  # as exports: verify would report a stray file
    fmt = fmt or ("pdf" if out.suffix.lower() == ".pdf" else "html")
    if fmt == "pdf" and find_chromium(chromium) is None:  # fail before the work
        raise ReportError("PDF output needs Chromium or Chrome (install chromium, or set "
                          f"${CHROMIUM_ENV}); write .html instead")
    data = gather(archive, capture_id, trusted_key=trusted_key, tsa_roots=tsa_roots)
    page = render_html(data)
    if fmt == "pdf":
        print_pdf(page, out, chromium=chromium)
    else:
        with AtomicFile(out) as handle:
            handle.write(page.encode("utf-8"))
    proof_holds = None if data.capture.proof is None else not data.proof_problems
    return ReportResult(out, fmt, data.capture.capture_id, proof_holds,
                        not any(f.bad for f in data.files))


__all__ = [
    "CHROMIUM_ENV",
    "FileCheck",
    "ReportData",
    "ReportError",
    "ReportResult",
    "chromium_command",
    "esc",
    "find_chromium",
    "find_screenshot",
    "gather",
    "print_pdf",
    "render_html",
    "visible",
    "write_report",
]
