"""Export captures as one WACZ 1.1.1 file (Webrecorder's Web Archive Collection Zipped).

Layout of the zip (every file at most two levels deep, as ``wacz validate`` requires)::

    archive/<capture_id>.warc.gz    each capture's WARC file, byte for byte (ZIP_STORED)
    indexes/index.cdx               CDXJ index of the replayable records, sorted
    pages/pages.jsonl               one page per capture: url, ts, title, id, size, text (the
                                    rendered page's after a client-side navigation; page_entry)
    manifests/<capture_id>.json     preserve's manifest, exact bytes
    text/<blake3>.txt               clean text (and comments) objects, named by their BLAKE3
    proofs/<capture_id>.json        the capture's inclusion proof (``preserve prove`` bundle)
    log/checkpoint.txt              the signed checkpoint the proofs lead to
    log/checkpoint.tsr              its RFC 3161 token, when the archive has one
    log/key.pub                     the archive's verifier key
    preserve/export.json            ``preserve-export/1``: which captures, where, partial or not
    datapackage.json                Frictionless data package: SHA-256 and size of every file
    datapackage-digest.json         SHA-256 of datapackage.json (and, with a key, signedData)

Files are streamed into the zip in one-MiB blocks and hashed on the way; each WARC file and
text object is checked against its manifest while it is copied, so a damaged capture stops the
export. The package is written under a temporary name and linked into place when complete.
"""

from __future__ import annotations

import json
import tempfile
import time
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve._version import __version__
from preserve.archive import Archive
from preserve.exchange import cdxj, signing
from preserve.exchange.files import (
    AtomicFile,
    Digester,
    SourceFile,
    as_source,
    copy_file,
    read_bounded,
)
from preserve.exchange.plan import (
    ExportPlan,
    ExportResult,
    LoadedCapture,
    descriptor,
    plan_export,
    proof_bytes,
)
from preserve.exchange.source import ArchiveSource, source_for
from preserve.storage.manifest import Manifest

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive

WACZ_VERSION = "1.1.1"
#: The replay files an export derives from its captures (``check-export`` derives them again).
INDEX_PATH = "indexes/index.cdx"
PAGES_PATH = "pages/pages.jsonl"
PAGES_HEADER: dict[str, Any] = {"format": "json-pages-1.0", "id": "pages",
                                "title": "All Pages", "hasText": True}
_DEFLATE = zipfile.ZIP_DEFLATED
_STORE = zipfile.ZIP_STORED


@dataclass
class _Zip:
    """A zip being written, remembering each entry's SHA-256 and size for datapackage.json."""

    file: zipfile.ZipFile
    date_time: tuple[int, int, int, int, int, int]
    resources: list[dict[str, Any]] = field(default_factory=list)

    def _info(self, path: str, size: int, compress: int) -> zipfile.ZipInfo:
        info = zipfile.ZipInfo(path, self.date_time)
        info.compress_type = compress
        info.file_size = size  # lets zipfile choose ZIP64 for large files up front
        info.external_attr = 0o644 << 16
        return info

    def _record(self, path: str, digester: Digester, listed: bool) -> None:
        if listed:
            self.resources.append({
                "name": path.lower(),
                "path": path,
                "hash": "sha256:" + digester.hexdigests()["sha256"],
                "bytes": digester.size,
            })

    def add_file(self, path: str, source: Path | SourceFile, compress: int, *,
                 expect: dict[str, str] | None = None, expect_size: int | None = None) -> None:
        # (a file of another size is refused by copy_file before a byte is written)
        size = expect_size if expect_size is not None else as_source(source).size()
        with self.file.open(self._info(path, size, compress), "w") as out:
            digester = copy_file(source, out.write, ["sha256"], expect=expect,
                                 expect_size=expect_size)
        self._record(path, digester, True)

    def add_bytes(self, path: str, data: bytes, compress: int = _DEFLATE, *,
                  listed: bool = True) -> str:
        digester = Digester(["sha256"])
        digester.update(data)
        self.file.writestr(self._info(path, len(data), compress), data)
        self._record(path, digester, listed)
        return digester.hexdigests()["sha256"]

    def add_stream(self, path: str, produce: Callable[[Callable[[bytes], None]], None]) -> None:
        digester = Digester(["sha256"])
        with self.file.open(self._info(path, 0, _DEFLATE), "w", force_zip64=True) as out:
            def write(data: bytes) -> None:
                digester.update(data)
                out.write(data)
            produce(write)
        self._record(path, digester, True)


def export_wacz(
    archive: Archive | RemoteArchive | ArchiveSource,
    ids: Sequence[str],
    out: Path,
    *,
    all_captures: bool = False,
    signer: signing.WaczSigner | None = None,
    tsa_url: str | None = None,
    title: str | None = None,
) -> ExportResult:
    """Write the captures ``ids`` (or all) of ``archive`` (a directory or an ``s3://`` root)
    to the WACZ file ``out``.

    Raises :class:`~preserve.errors.NotFoundError` for an unknown id,
    :class:`~preserve.errors.StorageError` when ``out`` exists or cannot be written or a
    capture's files do not match its manifest, and
    :class:`~preserve.log.timestamp.TimestampError` when the TSA fails. Nothing is left at
    ``out`` unless the export completed.
    """
    started = time.monotonic()
    out = Path(out)
    source = source_for(archive)
    source.refuse_output(out)
    plan = plan_export(source, ids, all_captures=all_captures)
    signature: dict[str, Any] | None = None
    with AtomicFile(out) as handle, zipfile.ZipFile(handle, "w", allowZip64=True) as raw:
        created = plan.created[:19] + "Z"  # RFC 3339 to the second, as datapackages use
        stamp = datetime.strptime(created, "%Y-%m-%dT%H:%M:%SZ")
        zf = _Zip(raw, (stamp.year, stamp.month, stamp.day, stamp.hour, stamp.minute,
                        stamp.second))
        with tempfile.TemporaryDirectory(prefix=f".{out.name}.", suffix=".spool",
                                         dir=out.parent) as spool:
            package_hash = _write_package(zf, plan, created, title, Path(spool))
        digest: dict[str, Any] = {"path": "datapackage.json", "hash": package_hash}
        if signer is not None:
            signed = signing.signed_data(package_hash, created, signer, tsa_url)
            digest["signedData"] = signed
            signature = {"key_path": str(signer.path), "key_created": signer.created,
                         "public_key": signer.public_key, "fingerprint": signer.fingerprint,
                         "timestamped": "timeSignature" in signed}
        zf.add_bytes("datapackage-digest.json", _json(digest), listed=False)
    total = out.stat().st_size
    return ExportResult(out, "wacz", [c.capture_id for c in plan.captures],
                        len(zf.resources) + 2, total, plan.partial, plan.warnings(),
                        time.monotonic() - started, signature)


def _write_package(zf: _Zip, plan: ExportPlan, created: str, title: str | None,
                   spool: Path) -> str:
    """Write everything but datapackage-digest.json; return the package hash.

    One pass over the captures: their files go into the zip as they come, their index lines
    and pages are spooled (sorted runs, a pages file) in ``spool`` and added afterwards.
    """
    paths: dict[str, dict[str, Any]] = {}
    texts: set[str] = set()
    pages = spool / "pages.jsonl"
    main_page: dict[str, Any] = {}
    with pages.open("wb") as page_file, cdxj.SortedLines(spool) as lines:
        page_file.write(json_line(PAGES_HEADER))
        warcs: set[str] = set()
        for capture in plan.captures_loaded():
            paths[capture.capture_id] = _add_capture(zf, capture, texts, warcs)
            if indexed(capture.manifest):
                name = warc_member(capture.manifest).removeprefix("archive/")
                for line in cdxj.capture_lines(capture, name):
                    lines.add(line)
            page = _page(capture)
            page_file.write(json_line(page))
            main_page = main_page or page
        page_file.flush()

        def index(write: Callable[[bytes], None]) -> None:
            for line in lines:
                write(line.encode("utf-8"))

        zf.add_stream(INDEX_PATH, index)
    zf.add_file(PAGES_PATH, pages, _DEFLATE)
    log_paths: dict[str, str | None] = {"checkpoint": None, "timestamp": None, "key": None}
    snapshot = plan.snapshot
    if snapshot is not None:
        if snapshot.checkpoint is not None:
            log_paths["checkpoint"] = "log/checkpoint.txt"
            zf.add_bytes("log/checkpoint.txt", snapshot.checkpoint.encode("utf-8"))
        if snapshot.checkpoint_token is not None:
            log_paths["timestamp"] = "log/checkpoint.tsr"
            zf.add_bytes("log/checkpoint.tsr", snapshot.checkpoint_token, _STORE)
        if snapshot.key_text is not None:
            log_paths["key"] = "log/key.pub"
            zf.add_bytes("log/key.pub", snapshot.key_text)
    zf.add_bytes("preserve/export.json", descriptor(plan, "wacz", paths, log_paths))
    package: dict[str, Any] = {
        "profile": "data-package",
        "wacz_version": WACZ_VERSION,
        "title": title or _default_title(plan, main_page),
        "description": _description(plan),
        "created": created,
        "modified": created,
        "software": f"preserve {__version__}",
        "resources": zf.resources,
    }
    if len(plan.captures) == 1:
        package["mainPageUrl"] = main_page["url"]
        package["mainPageDate"] = main_page["ts"]
    return "sha256:" + zf.add_bytes("datapackage.json", _json(package), listed=False)


def warc_member(manifest: Manifest) -> str:
    """A capture's WARC file in the package: ``archive/<capture id>.warc.gz``; an imported
    file, which several captures may share, keeps its name in the archive
    (``archive/<capture id of its first page>.warc[.gz]``)."""
    if manifest.imported is not None:
        return "archive/" + manifest.warc.path.rsplit("/", 1)[-1]
    return f"archive/{manifest.capture_id}.warc.gz"


def indexed(manifest: Manifest) -> bool:
    """Whether the index holds the capture's records: not those of an imported gzip file
    whose records are not each a member (no file offset reaches them; docs/exchange.md)."""
    return not manifest.stream_offsets


def _add_capture(zf: _Zip, capture: LoadedCapture, texts: set[str],
                 warcs: set[str]) -> dict[str, Any]:
    m = capture.manifest
    warc = warc_member(m)
    if warc not in warcs:  # an imported file shared by several captures goes in once
        zf.add_file(warc, capture.warc_file, _STORE, expect={"sha256": m.warc.sha256},
                    expect_size=m.warc.size)
        warcs.add(warc)
    manifest = f"manifests/{capture.capture_id}.json"
    zf.add_bytes(manifest, capture.manifest_bytes)
    paths: dict[str, Any] = {"warc": {"path": warc, "sha256": m.warc.sha256,
                                      "size": m.warc.size},
                             "manifest": manifest, "text": None, "comments": None,
                             "proof": None}
    for kind, ref, source in (("text", m.text, capture.text_file),
                              ("comments", m.comments, capture.comments_file)):
        if ref is None or source is None:
            continue
        path = f"text/{ref.blake3}.txt"
        if ref.blake3 not in texts:
            zf.add_file(path, source, _DEFLATE, expect={"blake3": ref.blake3},
                        expect_size=ref.size)
            texts.add(ref.blake3)
        paths[kind] = path
    if capture.proof is not None:
        paths["proof"] = f"proofs/{capture.capture_id}.json"
        zf.add_bytes(paths["proof"], proof_bytes(capture.proof))
    return paths


def _page(capture: LoadedCapture) -> dict[str, Any]:
    """The pages.jsonl entry of a capture; its text object is read here, one at a time."""
    ref, file = capture.manifest.text, capture.text_file
    text = read_bounded(file, ref.size) if ref is not None and file is not None else None
    return page_entry(capture.manifest, text)


def page_entry(manifest: Manifest, text: bytes | None) -> dict[str, Any]:
    """The pages.jsonl entry of a capture whose text object holds ``text``.

    ``url`` and ``ts`` name a response record of the capture's WARC file (``ts`` is its
    WARC-Date), so replay loads it: the final response's, or, when the text came from the
    rendered DOM of another document the browser loaded after a client-side navigation
    (:attr:`Manifest.rendered_document`), that document's response. WACZ 1.1.1 defines a page
    as "a web document as viewed in a web browser that is viewing a specific URL" and ``text``
    as "text extracted from the snapshot": the entry names the address its title and text were
    taken from whenever replay can load it. ``title`` and ``text`` are never put beside a URL
    they were not taken from: when the rendered page is not a recorded document (history.pushState
    changed the address without loading anything), the entry names the final URL (the only
    document replay can load) and carries neither; the manifest and the text object, in the
    package too, still hold them."""
    hops = manifest.redirects
    url, ts = manifest.final_url, hops[-1].started if hops else manifest.started
    attributed = manifest.text_url == url
    if not attributed:
        document = manifest.rendered_document
        if document is not None:
            url, ts, attributed = document.url, document.started, True
    page: dict[str, Any] = {"id": manifest.capture_id, "url": url, "ts": ts}
    if attributed and manifest.extraction.title:
        page["title"] = manifest.extraction.title
    page["size"] = manifest.warc.size
    if attributed and text is not None:
        page["text"] = text.decode("utf-8", errors="replace")
    return page


def _default_title(plan: ExportPlan, main_page: dict[str, Any]) -> str:
    if len(plan.captures) == 1:
        return str(main_page.get("title") or main_page["url"])
    return f"{len(plan.captures)} captures exported by preserve"


def _description(plan: ExportPlan) -> str:
    first = plan.captures[0].started
    last = plan.captures[-1].started
    partial = " This is a partial export of the archive." if plan.partial else ""
    return (f"{len(plan.captures)} web page capture(s) made with preserve between {first} and "
            f"{last}, with preserve's manifests, clean text, integrity-log checkpoint and "
            f"inclusion proofs (see preserve/export.json).{partial}")


def json_line(value: dict[str, Any]) -> bytes:
    """One line of a JSON Lines file, as pages.jsonl holds them."""
    return (json.dumps(value, ensure_ascii=False) + "\n").encode("utf-8")


def _json(value: dict[str, Any]) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode("utf-8")


__all__ = ["INDEX_PATH", "PAGES_HEADER", "PAGES_PATH", "WACZ_VERSION", "export_wacz",
           "indexed", "json_line", "page_entry", "warc_member"]
