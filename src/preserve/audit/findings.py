"""Finding codes, findings and the audit report of ``preserve verify``.

Finding codes are public API: one :class:`Code` enum whose values (``E101``, ``W501``…) are
never renumbered or reused. The letter is the severity (E = error, W = warning); the hundreds
digit is the area: 1xx manifests, 2xx WARC files and records, 3xx integrity log and checkpoints
(reserved), 4xx text objects and re-extraction, 5xx archive layout (unreferenced files, debris),
6xx and up reserved for later areas (network, reliability). docs/format.md carries the table,
generated from this catalogue by scripts/gen_findings_doc.py.

This module holds data only: it does not inspect the archive (:mod:`preserve.audit.verify` does) and
does not print (the CLI renders :meth:`Report.to_json`).
"""

from __future__ import annotations

import enum
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


class Severity(enum.Enum):
    ERROR = "error"
    WARNING = "warning"


class Code(enum.Enum):
    """Every finding code, with its severity, title and one-line description.

    ``Code.from_code("E203")`` looks a code up; ``.value``/``.code`` is the string.
    """

    E101 = ("E101", "manifest unreadable",
            "The manifest file exists but cannot be read (I/O error, permission, too large).")
    E102 = ("E102", "manifest not valid JSON",
            "The manifest is not UTF-8 JSON, is nested too deeply, or repeats a key.")
    E103 = ("E103", "manifest invalid",
            "The manifest JSON does not validate against its schema (field, type or format).")
    E104 = ("E104", "manifest schema unsupported",
            "The manifest names a schema version this preserve does not know.")
    E105 = ("E105", "manifest name mismatch",
            "The manifest's file name is not <capture_id>.json for the capture id inside it.")
    E106 = ("E106", "duplicate capture id",
            "Two manifests claim the same capture id.")
    E107 = ("E107", "unsafe path",
            "A path in a manifest or the archive tree would lead outside the archive root, or "
            "a file a manifest names is reached through a symlink inside it.")
    E108 = ("E108", "text path inconsistent",
            "A text or comments path is not archive/text/ab/cd/<hash> for its own hash.")
    W109 = ("W109", "manifest not canonical",
            "The manifest parses but its bytes are not the canonical serialisation.")
    W110 = ("W110", "previous capture missing",
            "A capture id listed in 'previous' has no manifest in this archive.")
    W111 = ("W111", "WARC path off layout",
            "The WARC path is not archive/warc/YYYY/MM/<capture_id>.warc.gz.")

    E201 = ("E201", "WARC file missing",
            "The WARC file named by a manifest does not exist.")
    E202 = ("E202", "WARC size mismatch",
            "The WARC file is larger than the manifest records (bytes were appended or changed).")
    E203 = ("E203", "WARC BLAKE3 mismatch",
            "The WARC file's BLAKE3 digest differs from the manifest.")
    E204 = ("E204", "WARC SHA-256 mismatch",
            "The WARC file's SHA-256 digest differs from the manifest.")
    E205 = ("E205", "WARC file unreadable",
            "The WARC file exists but cannot be read (I/O error, permission, not a file), or "
            "is not read: a sparse file with more than 1 GiB of holes (MAX_HOLE_BYTES; "
            "preserve writes every byte of its files).")
    E206 = ("E206", "WARC truncated",
            "The WARC file is shorter than the manifest records.")
    E207 = ("E207", "WARC record unreadable",
            "Deep check: a record cannot be parsed (bad gzip member, header or length).")
    E210 = ("E210", "WARC record not found",
            "Deep check: no record starts at the offset the manifest gives.")
    E211 = ("E211", "WARC record id mismatch",
            "Deep check: the record at the manifest's offset has a different WARC-Record-ID.")
    E212 = ("E212", "WARC record differs from manifest",
            "Deep check: type, target URI, length or digest label differ from the manifest.")
    E213 = ("E213", "block digest mismatch",
            "Deep check: the record block does not hash to its WARC-Block-Digest.")
    E214 = ("E214", "payload digest mismatch",
            "Deep check: the record payload does not hash to its WARC-Payload-Digest.")
    W215 = ("W215", "WARC record not in manifest",
            "Deep check: the WARC file holds a record the manifest does not list.")
    E216 = ("E216", "artifact record missing",
            "Deep check: a screenshot, PDF or rendered DOM the manifest names cannot be read as "
            "that resource record of the WARC file.")
    E217 = ("E217", "artifact digest mismatch",
            "Deep check: a screenshot, PDF or rendered DOM record does not hash to the "
            "manifest's SHA-256, BLAKE3 or size.")

    E301 = ("E301", "integrity log missing, unreadable or structurally damaged",
            "The log's head or files are missing, cut short, or give a root other than the "
            "head's; nothing past that could be checked.")
    W301 = ("W301", "torn tail of an interrupted append (ignored)",
            "Bytes past the committed log size from an interrupted append; ignored, and removed "
            "by the next write.")
    E302 = ("E302", "stored Merkle tree does not match the log entries",
            "A stored leaf or subtree hash differs from one recomputed from the entries (an entry"
            " or a hash file was edited).")
    W302 = ("W302", "log entries not yet covered by a signed checkpoint",
            "The newest leaves are not covered by any valid signed checkpoint yet.")
    E303 = ("E303", "log entry malformed or not canonical",
            "A leaf entry is not canonical JSON of a known type and version.")
    W303 = ("W303", "latest-checkpoint copy differs from the newest stored checkpoint",
            "manifests/log/checkpoint is not a copy of the newest stored checkpoint.")
    E304 = ("E304", "manifest on disk is not in the log",
            "A manifest exists on disk but no manifest leaf records it (planted, or a crash "
            "between commit and log).")
    W304 = ("W304", "the log has no archive key and no checkpoints: nothing is signed",
            "The archive has no key.pub and no checkpoints, so the log is not signed.")
    E305 = ("E305", "manifest named by the log is missing",
            "A manifest leaf names a manifest that is not on disk (deleted); on an object "
            "store also one that was not there when verify checked the files it names "
            "(hidden, then put back).")
    E306 = ("E306", "manifest bytes differ from its log entry",
            "The manifest file's BLAKE3/SHA-256/size differ from its leaf (edited).")
    E307 = ("E307", "checkpoint malformed or not validly signed by the archive key",
            "A stored or given checkpoint does not parse, is for another origin, or is not "
            "validly signed by the archive key.")
    E308 = ("E308", "log is not consistent with a stored checkpoint",
            "The current log is not an extension of a stored signed checkpoint (rewritten, "
            "reordered or truncated).")
    E309 = ("E309", "log is not consistent with an external checkpoint",
            "The current log is not an extension of a checkpoint kept outside the archive "
            "(rewritten, reordered or truncated).")
    E310 = ("E310", "log entry committed before the previous entry (back-dated)",
            "A leaf's commit time precedes an earlier leaf's (back-dated entry or a clock jump "
            "back), or is more than 10 minutes ahead of the verifier's clock (from the future: "
            "every later leaf would look back-dated).")
    E311 = ("E311", "capture time is after the time it was logged",
            "A manifest leaf's capture time is after its commit time.")
    E312 = ("E312", "capture logged more than once",
            "Two manifest leaves record the same capture id.")
    E313 = ("E313", "archive public key missing, invalid or not the trusted key",
            "manifests/log/key.pub is missing or malformed while checkpoints exist, or differs "
            "from the trusted key given to verify.")
    E314 = ("E314", "RFC 3161 timestamp token of a checkpoint does not verify or is missing",
            "An RFC 3161 token stored beside a checkpoint does not verify against the trusted TSA"
            " roots or is not over that checkpoint; or, verify being given --tsa-roots, the "
            "newest checkpoint has no token.")
    E315 = ("E315", "log does not extend the head this operator last verified or signed",
            "The log is smaller than, or not an extension of, the tree head this operator last "
            "verified or signed (kept outside the archive): an older copy was restored, or the "
            "log was rewritten. `preserve reset-head` accepts it deliberately.")
    E316 = ("E316", "manifest leaf not proved by a signed checkpoint or signed commit record",
            "A manifest leaf newer than every valid signed checkpoint has no commit record of "
            "its kind (capture, import, adopt) signed by the archive key: it was appended, or "
            "its type changed, by someone without the key (a planted capture, or a capture "
            "made without the key). `preserve adopt` vouches for it explicitly.")
    E317 = ("E317", "commit record malformed or not validly signed",
            "A file in manifests/log/journal/ is not a well-formed commit record, or carries a "
            "signature by the archive key that does not verify (forged).")
    E318 = ("E318", "audit leaf signed, but not validly by the archive key",
            "An audit leaf carries a signature that is not a valid one by the archive key: a "
            "forged record of a verify made to look like the key holder's. An audit leaf with "
            "no signature is a claim by an auditor without the key, shown as such.")
    W305 = ("W305", "committed manifest awaiting its log leaf (a signed commit record names it)",
            "A manifest on disk is not in the log yet, but a commit record signed by the archive "
            "key names it exactly: a capture whose log append failed after its commit (crash, "
            "full disk). `preserve repair` appends its leaf.")
    W306 = ("W306", "commit record of an interrupted commit (no manifest was committed)",
            "A commit record names manifests of which none was committed (the capture died "
            "before its commit point); `preserve repair` removes it.")
    W307 = ("W307", "no off-site anchor recent enough was given",
            "verify was given no signed checkpoint kept outside the archive (or only older ones "
            "than --anchor-max-age): a rollback to an older consistent copy is then caught only "
            "by this operator's known head.")
    W308 = ("W308", "a partial export: logged captures left out, as its signed descriptor says",
            "The root is a partial export, a BagIt bag's data/ directory, whose descriptor is "
            "signed by the archive key and describes it (the log is as long as when it was "
            "exported; every manifest present is listed): the log's captures that it does not "
            "list are absent on purpose (otherwise E305). An unsigned or forged descriptor "
            "changes nothing.")
    W310 = ("W310", "log file shared by hard links",
            "A file of the integrity log has more than one name (a snapshot made with hard "
            "links, cp -al or rsync --link-dest, or a link planted to a file elsewhere): "
            "appending to either copy would change both, so preserve writes neither (no "
            "capture, audit or repair appends to this log) until it is copied without hard "
            "links.")
    W311 = ("W311", "log entry dated ahead of this clock",
            "A leaf's commit time is after this computer's clock, by less than the 10 minutes "
            "verify allows for clocks that differ (more is E310). Nothing can be appended or "
            "signed after it until this clock passes that time: entries dated now would look "
            "back-dated. This clock is slow, or someone dated the entry ahead (an unsigned "
            "audit needs no key).")
    W309 = ("W309", "an export descriptor that does not describe this root (ignored)",
            "preserve-export.json at the root is signed by the archive key but is not this "
            "root's: the root is not a bag's data/ directory, or the log has grown since that "
            "export, or manifests it does not list are present (a descriptor copied into a "
            "live archive). Its partial-export allowance is not applied: every logged capture "
            "must be there.")

    E401 = ("E401", "text object missing",
            "The clean-text object named by a manifest does not exist.")
    E402 = ("E402", "text object corrupt",
            "A text object's bytes do not hash to its name, differ in size from the manifest, "
            "or are more than any text object can be (64 MiB: reported from its size, unread).")
    E403 = ("E403", "comments object missing",
            "The comments object named by a manifest does not exist.")
    E404 = ("E404", "comments object corrupt",
            "A comments object's bytes do not hash to its name (or size differs).")
    E405 = ("E405", "text object unreadable",
            "A text or comments object exists but cannot be read.")
    E406 = ("E406", "re-extraction differs",
            "Deep check: re-extracting the archived response with the same extractor version "
            "(and the same Python and libraries, where the manifest records them) gives "
            "different text or comments.")
    W407 = ("W407", "extractor version changed",
            "Deep check: re-extraction differs, but the extractor version, or the version of "
            "Python or of a library the text depends on (HTML parsers, charset detection, "
            "content decoders), differs from what the manifest records, so a difference is "
            "expected.")
    E408 = ("E408", "re-extraction failed",
            "Deep check: the final response could not be found, read, decoded or extracted.")
    W409 = ("W409", "re-extraction stopped at its time limit",
            "Deep check: the extraction, at capture or now, ran past the extractor's time limit "
            "(a page built to be slow, or a much slower machine) and was stopped, so the text "
            "was not compared: a stopped extraction says nothing about the page. The text "
            "object, if any, is still checked against its hash.")

    W501 = ("W501", "unreferenced WARC file",
            "A file under archive/warc/ is named by no manifest (e.g. an interrupted capture).")
    W502 = ("W502", "unreferenced text object",
            "A text object is named by no manifest (e.g. an interrupted capture).")
    W503 = ("W503", "debris in archive/tmp",
            "A leftover temporary file in archive/tmp/ (an interrupted write).")
    W504 = ("W504", "manifest temp debris",
            "A leftover manifests/.tmp-* file (an interrupted manifest write).")
    W505 = ("W505", "unexpected file",
            "A file, directory or symlink where the layout expects none.")
    E506 = ("E506", "directory unreadable",
            "A directory of the layout cannot be listed or inspected, so its contents were "
            "not checked.")

    W507 = ("W507", "catalog disagrees with the manifests",
            "The derived catalog (archive/index/catalog.sqlite3) has rows that differ from their "
            "manifests or name none, or URL keys that are not their URLs' (which would hide "
            "captures from history); it is never trusted for provenance, and repair rebuilds "
            "it.")

    def __new__(cls, code: str, title: str, description: str) -> Code:
        member = object.__new__(cls)
        member._value_ = code
        member.title = title
        member.description = description
        return member

    title: str
    description: str

    @property
    def code(self) -> str:
        """The stable code string, e.g. ``"E203"`` (same as ``.value``)."""
        return str(self.value)

    @classmethod
    def from_code(cls, value: str) -> Code:
        """The member for a code string such as ``"E203"`` (ValueError if unknown)."""
        for member in cls:
            if member.value == value:
                return member
        raise ValueError(f"unknown finding code {value!r}")

    @property
    def severity(self) -> Severity:
        return Severity.ERROR if self.code.startswith("E") else Severity.WARNING

    def __str__(self) -> str:
        return self.code


@dataclass(frozen=True, slots=True)
class Finding:
    """One thing verify found: a code, the root-relative path concerned, and a message."""

    code: Code
    path: str
    message: str
    capture_id: str | None = None
    detail: Mapping[str, Any] | None = None

    @property
    def severity(self) -> Severity:
        return self.code.severity

    def to_json(self) -> dict[str, Any]:
        return {
            "code": self.code.code,
            "severity": self.severity.value,
            "title": self.code.title,
            "path": self.path,
            "message": self.message,
            "capture_id": self.capture_id,
            "detail": dict(self.detail) if self.detail is not None else None,
        }


@dataclass(slots=True)
class Stats:
    """What an audit covered."""

    manifests_checked: int = 0
    warc_files_checked: int = 0
    records_checked: int = 0
    text_objects_checked: int = 0
    texts_reextracted: int = 0
    bytes_hashed: int = 0
    duration_seconds: float = 0.0


@dataclass(slots=True)
class Report:
    """The result of one audit: every finding, in the order found, plus statistics."""

    root: str
    deep: bool
    findings: list[Finding] = field(default_factory=list)
    stats: Stats = field(default_factory=Stats)
    started: str | None = None

    def add(self, finding: Finding) -> None:
        self.findings.append(finding)

    @property
    def errors(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.ERROR]

    @property
    def warnings(self) -> list[Finding]:
        return [f for f in self.findings if f.severity is Severity.WARNING]

    @property
    def ok(self) -> bool:
        """True when there is no error (warnings allowed)."""
        return not self.errors

    @property
    def exit_status(self) -> int:
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        """Number of findings per code, e.g. ``{"E203": 1}``."""
        return dict(sorted(Counter(f.code.code for f in self.findings).items()))

    def codes(self) -> set[Code]:
        return {f.code for f in self.findings}

    def to_json(self) -> dict[str, Any]:
        return {
            "root": self.root,
            "deep": self.deep,
            "started": self.started,
            "ok": self.ok,
            "exit_status": self.exit_status,
            "errors": len(self.errors),
            "warnings": len(self.warnings),
            "counts": self.counts(),
            "stats": {
                "manifests_checked": self.stats.manifests_checked,
                "warc_files_checked": self.stats.warc_files_checked,
                "records_checked": self.stats.records_checked,
                "text_objects_checked": self.stats.text_objects_checked,
                "texts_reextracted": self.stats.texts_reextracted,
                "bytes_hashed": self.stats.bytes_hashed,
                "duration_seconds": round(self.stats.duration_seconds, 3),
            },
            "findings": [f.to_json() for f in self.findings],
        }


def _escape_cell(text: str) -> str:
    return text.replace("|", "\\|")


def markdown_table() -> str:
    """The finding-code table for docs/format.md (generated; see scripts/gen_findings_doc.py)."""
    lines = ["| Code | Severity | Title | Meaning |", "|---|---|---|---|"]
    for code in Code:
        lines.append(
            f"| `{code.code}` | {code.severity.value} | {_escape_cell(code.title)} | "
            f"{_escape_cell(code.description)} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["Code", "Finding", "Report", "Severity", "Stats", "markdown_table"]
