"""Captures over time: the history of one URL and what changed between two captures.

Reads manifests and text objects through :class:`preserve.archive.Archive`; writes nothing.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from preserve.storage.manifest import Manifest

if TYPE_CHECKING:
    from preserve.archive import Archive, CaptureSummary
    from preserve.remote.archive import RemoteArchive


@dataclass(frozen=True)
class CaptureDiff:
    """How capture ``new`` differs from capture ``old``."""

    old: str
    new: str
    text_changed: bool
    payload_changed: bool  # the final response's payload digest differs
    final_url_changed: bool
    status_changed: bool
    unified_diff: str  # of the clean text, '' when the text is the same
    #: the address of the document each clean text was extracted from (the rendered page's
    #: after a client-side navigation; see :attr:`Manifest.text_url`)
    old_text_url: str = ""
    new_text_url: str = ""
    #: why the text can change when the payload did not ('' when nothing says)
    text_source_note: str = ""

    @property
    def summary(self) -> str:
        if not self.payload_changed:
            if self.text_changed:
                note = f" ({self.text_source_note})" if self.text_source_note else ""
                return f"clean text changed, the final response's payload did not{note}"
            return "identical payload: the server sent the same bytes"
        if not self.text_changed:
            return "payload changed, clean text did not (markup, ads or boilerplate only)"
        return "clean text changed"

    def to_json(self) -> dict[str, Any]:
        return {
            "old": self.old,
            "new": self.new,
            "text_changed": self.text_changed,
            "payload_changed": self.payload_changed,
            "final_url_changed": self.final_url_changed,
            "status_changed": self.status_changed,
            "old_text_url": self.old_text_url,
            "new_text_url": self.new_text_url,
            "summary": self.summary,
            "unified_diff": self.unified_diff,
        }


def history(archive: Archive, url: str) -> list[CaptureSummary]:
    """Every capture whose requested or final URL is ``url``, oldest first, with the
    unverified ones (see :meth:`Archive.history`)."""
    return archive.history(url)


def final_payload_digest(manifest: Manifest) -> str | None:
    """The payload digest of the last response record (the page as finally served)."""
    responses = [r for r in manifest.warc.records if r.type == "response"]
    return responses[-1].payload_digest if responses else None


def diff(archive: Archive | RemoteArchive, old_id: str, new_id: str) -> CaptureDiff:
    """Compare two captures' clean text and raw payload."""
    old, new = archive.manifest(old_id), archive.manifest(new_id)
    old_text, new_text = archive.text(old.capture_id), archive.text(new.capture_id)
    lines = difflib.unified_diff(
        old_text.splitlines(keepends=True),
        new_text.splitlines(keepends=True),
        fromfile=f"{old.capture_id} ({old.started}) {old.text_url}",
        tofile=f"{new.capture_id} ({new.started}) {new.text_url}",
    )
    unified = "".join(line if line.endswith("\n") else line + "\n" for line in lines)
    return CaptureDiff(
        old=old.capture_id,
        new=new.capture_id,
        text_changed=old_text != new_text,
        payload_changed=final_payload_digest(old) != final_payload_digest(new),
        final_url_changed=old.final_url != new.final_url,
        status_changed=old.http.status != new.http.status,
        unified_diff=unified,
        old_text_url=old.text_url,
        new_text_url=new.text_url,
        text_source_note=_text_source_note(old, new),
    )


def _text_source_note(old: Manifest, new: Manifest) -> str:
    """What besides the final payload the two texts came from, when that differs."""
    notes = []
    if any(m.extraction.source is not None and m.extraction.source.kind == "rendered-dom"
           for m in (old, new)):
        notes.append("text of the page as the browser rendered it")
    if old.text_url != new.text_url:
        notes.append("taken from different addresses")
    if old.extractor.version != new.extractor.version:
        notes.append(f"extractor {old.extractor.version} and {new.extractor.version}")
    return "; ".join(notes)
