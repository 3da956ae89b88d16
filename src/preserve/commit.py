"""The commit protocol: how prepared captures become part of the archive, one or a group at once.

Every way a capture arrives (HTTP fetch, browser, import) ends in a :class:`PreparedCapture`:
a sealed WARC file in the spool, its clean text and comments (bytes, or files in the spool
that the commit links into the text store), and its manifest fields. Sealed, it is a
:class:`Draft`: what the commit needs of it and no more. Under the archive lock,
:func:`commit_drafts` then, for the whole group:

1. refuses to go on if the log does not extend the operator's known head (a rolled-back or
   rewritten archive gets nothing new appended);
2. for each capture in turn: links its WARC file into ``archive/warc/YYYY/MM/`` (never
   replacing a file; a file that several captures of the group share, an imported WARC
   file, is linked once) and stores its text objects; builds its manifest (the sealed bytes
   plus ``previous`` from the catalog, re-checked against the manifests) and writes it to a
   temp file in ``manifests/``; keeps a line of what it did in a spill (:mod:`preserve.spill`),
   not in memory;
3. writes the **commit record** (:mod:`preserve.log.journal`) naming every manifest by id and
   hashes (and kind: ``capture``, or ``import`` for a page of an imported file), signed with
   the archive key when it is at hand (a group of more than
   :data:`~preserve.log.journal.MAX_RECORDS` manifests, only ever an import, gets one record
   for each that many, all written here);
4. flushes everything written so far at once (:class:`~preserve.safe_io.Durability`);
5. links each manifest into ``manifests/`` and fsyncs the directory once: **the commit point**
   (a capture exists iff its manifest exists);
6. appends the manifest leaves to the log, :data:`BATCH` at a time (one set of fsyncs each):
   a ``manifest`` leaf for a capture, an ``import`` leaf for an import;
7. adds the captures to the catalog (derived; a failure there is reported, not fatal);
8. with ``sign``, proves and signs a checkpoint (:func:`preserve.log.signing.prove_and_sign`),
   which also advances the operator's known head and removes the commit records it covers.

A failure before step 5 undoes steps 2 and 3 (the linked WARC files, the text objects this
group created, the temp manifests, the records) and re-raises: nothing was committed. A
failure in or after step 5 leaves what was committed committed, and raises
:class:`PartialCommitError` naming it; ``preserve repair`` completes the log from the signed
commit record. So "a manifest exists ⇒ everything it names is durable" and "a committed
manifest is logged, or a signed record says it must be" both hold at every instant.

Memory does not grow with the group: drafts are read one at a time (an import reads them
from its spool, :class:`SpilledDrafts`), and what later steps need of each capture is read
back from the spill. :func:`commit_group` is the same protocol for a group held in memory,
returning every committed capture.

This module does no network I/O and no extraction; it does not decide what is captured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TypeGuard

from preserve import catalog_sync, log
from preserve.capture.urls import url_identity
from preserve.errors import (
    NotFoundError,
    NotProvedError,
    PreserveError,
    StorageError,
    UnverifiedManifestError,
)
from preserve.hashing import Digests, hash_bytes
from preserve.log.entries import AdoptionLeaf, ManifestLeaf, manifest_leaf
from preserve.log.journal import MAX_RECORDS, CommitEntry, remove_records, write_record
from preserve.log.known_heads import KnownHeads
from preserve.log.signing import ProvedLeaves, Signed, check_extends, prove_and_sign
from preserve.log.storage import require_unshared
from preserve.safe_io import Durability, fsync_dir
from preserve.spill import Spill
from preserve.storage import manifest as manifest_mod
from preserve.storage.catalog import Catalog, CatalogError, CatalogRow
from preserve.storage.layout import (
    MANIFEST_TMP_PREFIX,
    ArchiveLayout,
    makedirs_durable,
    require_plain_below,
    text_rel,
    warc_rel,
)
from preserve.storage.manifest import Manifest, ManifestRef
from preserve.storage.text_store import (
    OBJECT_MODE,
    SpooledObject,
    StoredObject,
    TextStore,
    object_digests,
)
from preserve.warc import RecordRef, WarcWriteResult

Timestamper = Callable[[bytes], bytes]
#: A text or comments object of a prepared capture: its bytes, or spooled to a file (an
#: import of many pages spools each as it goes, so none is held until the commit).
TextObject = bytes | SpooledObject
#: Captures whose log leaves are appended, or catalog rows added, at once.
BATCH = 1000


@dataclass(slots=True)
class PreparedCapture:
    """A capture ready to commit: everything but what the commit itself decides."""

    capture_id: str
    started_at: datetime  # the month directory of the WARC file
    kind: str  # "capture" or "import" (the commit record's entry kind)
    requested_url: str
    warc_tmp: Path  # sealed and fsynced, in the spool
    warc: WarcWriteResult
    text: TextObject | None
    comments: TextObject | None
    #: manifest fields; :meth:`seal` adds schema, warc, text and comments, the commit previous
    document: dict[str, Any]
    #: the manifest's canonical bytes with an empty ``previous``, once :meth:`seal` ran
    draft: bytes | None = None
    draft_manifest: Manifest | None = None
    #: where the WARC file goes (archive-relative) when it is not the capture's own
    #: ``archive/warc/YYYY/MM/<capture id>.warc.gz``: an imported file that several captures
    #: of one group share (they all give the same ``warc_tmp`` and path; it is linked once)
    warc_path: str | None = None

    @property
    def warc_rel(self) -> str:
        """The archive-relative path of this capture's WARC file."""
        return self.warc_path or warc_rel(self.capture_id, self.started_at)

    def seal(self) -> None:
        """Build and validate the manifest (with the parser verify uses) from everything but
        ``previous``, which only the commit can know. Runs where the capture was prepared
        (a worker process, in a batch), so the committer only adds ``previous``."""
        if self.draft is not None:
            return
        document = dict(self.document)
        document.update(
            schema=manifest_mod.SCHEMA,
            warc={
                "path": self.warc_rel,
                "size": self.warc.digests.size,
                "blake3": self.warc.digests.blake3,
                "sha256": self.warc.digests.sha256,
                "records": [record_json(r) for r in self.warc.records],
            },
            text=_object_json(self.text),
            comments=_object_json(self.comments),
            previous=[],
        )
        canonical = manifest_mod.canonical_bytes(manifest_mod.bound_fields(document))
        decoded = manifest_mod.decode_manifest_json(canonical)
        manifest = manifest_mod.manifest_from_dict(decoded)  # = parse_manifest(canonical)
        # the bytes written are the parsed manifest's own serialisation, the form verify holds
        # canonical (W109): a field given as null that the schema leaves out when absent (an
        # extraction without a method, say) is left out, as verify expects. When the parsed
        # manifest holds exactly what was parsed (the validators keep values and their JSON
        # types), that serialisation is ``canonical`` itself, the bytes just parsed: the
        # second serialisation (a fifth of a seal) is made only when they differ.
        self.draft = canonical if manifest.to_dict() == decoded else manifest.to_bytes()
        self.draft_manifest = manifest

    def to_draft(self) -> Draft:
        """The sealed capture as the commit needs it (sealing it first)."""
        self.seal()
        assert self.draft is not None and self.draft_manifest is not None
        m = self.draft_manifest
        return Draft(self.capture_id, self.kind, self.requested_url, self.warc_tmp,
                     self.warc_rel, self.text, self.comments, self.draft,
                     (m.warc.path, m.text.blake3 if m.text else None,
                      m.comments.blake3 if m.comments else None),
                     CatalogRow.of(m, ""))


@dataclass(frozen=True, slots=True)
class Draft:
    """One sealed capture as the commit needs it, and no more: small enough that a group of
    tens of thousands is kept on disk (:class:`SpilledDrafts`) and read back one at a
    time."""

    capture_id: str
    kind: str
    requested_url: str
    warc_tmp: Path
    warc_rel: str
    text: TextObject | None
    comments: TextObject | None
    #: the sealed manifest's bytes (``previous`` empty)
    data: bytes
    #: what the manifest names: the WARC file's path, the text's and the comments' BLAKE3
    names: tuple[str, str | None, str | None]
    #: the capture's catalog row (``manifest_sha256`` empty until it is committed)
    row: CatalogRow

    def pack(self) -> tuple[Any, ...]:
        """The draft as plain values (see :mod:`preserve.spill`)."""
        return (self.capture_id, self.kind, self.requested_url, str(self.warc_tmp),
                self.warc_rel, _pack_object(self.text), _pack_object(self.comments), self.data,
                self.names, _pack_row(self.row))

    @classmethod
    def unpack(cls, values: Sequence[Any]) -> Draft:
        (capture_id, kind, url, warc_tmp, rel, text, comments, data, names, row) = values
        return cls(capture_id, kind, url, Path(warc_tmp), rel, _unpack_object(text),
                   _unpack_object(comments), data, tuple(names), CatalogRow(*row))


class SpilledDrafts:
    """Drafts written to a spill as they are made (an import's pages, in its spool), read
    back in order, one at a time, by the commit."""

    def __init__(self, spill: Spill) -> None:
        self._spill = spill

    def add(self, draft: Draft) -> None:
        self._spill.append(draft.pack())

    def __len__(self) -> int:
        return len(self._spill)

    def __iter__(self) -> Iterator[Draft]:
        return (Draft.unpack(values) for values in self._spill)


def _pack_object(data: TextObject | None) -> Any:
    if isinstance(data, SpooledObject):
        d = data.digests
        return (str(data.path), d.blake3, d.sha256, d.size)
    return data


def _unpack_object(values: Any) -> TextObject | None:
    if isinstance(values, tuple):
        path, blake3, sha256, size = values
        return SpooledObject(Path(path), Digests(blake3, sha256, size))
    return values  # type: ignore[no-any-return]


def _pack_row(row: CatalogRow) -> tuple[Any, ...]:
    return (row.capture_id, row.requested_url, row.final_url, row.started, row.http_status,
            row.status, row.title, row.text_blake3, row.manifest_sha256)


def _pack_stored(ref: StoredObject | None) -> Any:
    return None if ref is None else (ref.blake3, ref.sha256, ref.size, ref.path_rel)


def _unpack_stored(values: Any) -> StoredObject | None:
    return None if values is None else StoredObject(*values)


@dataclass(frozen=True, slots=True)
class _Placed:
    """What step 2 did for one capture: the line of the spill later steps read."""

    kind: str
    capture_id: str
    manifest: Digests  # of the manifest's exact bytes
    temp: str  # the manifest's temp file
    warc_rel: str
    text: StoredObject | None
    comments: StoredObject | None
    previous: tuple[str, ...]
    row: CatalogRow  # with the manifest's SHA-256

    def pack(self) -> tuple[Any, ...]:
        d = self.manifest
        return (self.kind, self.capture_id, d.blake3, d.sha256, d.size, self.temp,
                self.warc_rel, _pack_stored(self.text), _pack_stored(self.comments),
                self.previous, _pack_row(self.row))

    @classmethod
    def unpack(cls, values: Sequence[Any]) -> _Placed:
        (kind, capture_id, blake3, sha256, size, temp, rel, text, comments, previous,
         row) = values
        return cls(kind, capture_id, Digests(blake3, sha256, size), temp, rel,
                   _unpack_stored(text), _unpack_stored(comments), tuple(previous),
                   CatalogRow(*row))

    def entry(self) -> CommitEntry:
        d = self.manifest
        return CommitEntry(self.kind, self.capture_id, d.sha256, d.blake3, d.size)


@dataclass(frozen=True, slots=True)
class Committed:
    """One capture :func:`commit_drafts` committed (what its ``on_committed`` is given)."""

    capture_id: str
    kind: str
    ref: ManifestRef
    warc_rel: str
    text: StoredObject | None
    comments: StoredObject | None
    previous: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class CommittedCapture:
    prepared: PreparedCapture
    manifest: Manifest
    ref: ManifestRef
    warc_rel: str
    text: StoredObject | None
    comments: StoredObject | None


@dataclass(slots=True)
class GroupOutcome:
    """What a commit committed, and what became of the checkpoint and catalog."""

    #: every committed capture (:func:`commit_group`; empty from :func:`commit_drafts`,
    #: whose caller is given each as it goes)
    committed: list[CommittedCapture]
    signed: Signed | None = None
    #: why no checkpoint was signed (None when one was, or when signing was not asked for)
    not_signed: str | None = None
    catalog_error: str | None = None
    #: how many captures were committed
    count: int = 0


class PartialCommitError(StorageError):
    """Some captures of a group were committed, but a later step (logging) failed."""

    def __init__(self, message: str, committed: Sequence[str]) -> None:
        super().__init__(message)
        self.committed = tuple(committed)


@dataclass
class CommitContext:
    """What a commit needs from the archive it commits into."""

    root: Path
    layout: ArchiveLayout
    store: TextStore
    catalog: Catalog
    signer: log.Signer | None
    heads: KnownHeads | None
    timestamper: Timestamper | None = None
    origin: str = "-"
    #: called with the catalog's error instead of failing the commit
    on_catalog_error: Callable[[str], None] | None = None
    #: which leaves are proved (for ``previous``), by archive key: the caller passes the
    #: same dict for every group of a batch, so each commit record is read once
    proved: dict[str, ProvedLeaves] = field(default_factory=dict)


class _Undo:
    """What a group created before its commit point, to remove if it fails there: a few
    files in memory (WARC files, commit records), one a capture (text objects, temp
    manifests) in a spill."""

    def __init__(self, spill_dir: Path) -> None:
        self.files: list[Path] = []
        self.spilled = Spill.anonymous(spill_dir)

    def add(self, path: Path) -> None:
        self.spilled.append(str(path))

    def run(self) -> None:
        for path in [*reversed(self.files), *(Path(p) for p in self.spilled)]:
            with contextlib.suppress(OSError):
                path.unlink()

    def close(self) -> None:
        self.spilled.close()


def record_json(record: RecordRef) -> dict[str, Any]:
    return {
        "id": record.record_id,
        "type": record.type,
        "target_uri": record.target_uri,
        "offset": record.offset,
        "length": record.length,
        "block_digest": record.block_digest,
        "payload_digest": record.payload_digest,
        "refers_to": record.refers_to,
        "content_type": record.content_type,
    }


def text_json(ref: StoredObject | None) -> dict[str, Any] | None:
    if ref is None:
        return None
    return {"blake3": ref.blake3, "size": ref.size, "path": ref.path_rel}


def _object_json(data: TextObject | None) -> dict[str, Any] | None:
    digests = object_digests(data)
    if digests is None:
        return None
    return {"blake3": digests.blake3, "size": digests.size, "path": text_rel(digests.blake3)}


_EMPTY_PREVIOUS = b"\n" + json.dumps({"previous": []}, indent=2)[2:-2].encode() + b",\n"


def with_previous(draft: bytes, previous: Sequence[str]) -> bytes:
    """The sealed manifest bytes with ``previous`` filled in, formatted exactly as the
    canonical serialisation would (a ValueError if the draft is not a sealed one)."""
    if not previous:
        return draft
    if draft.count(_EMPTY_PREVIOUS) != 1:
        raise ValueError("not a sealed manifest draft")
    filled = json.dumps({"previous": list(previous)}, indent=2, ensure_ascii=False)[2:-2]
    return draft.replace(_EMPTY_PREVIOUS, b"\n" + filled.encode() + b",\n")


def commit_group(ctx: CommitContext, group: Sequence[PreparedCapture], *,
                 sign: bool) -> GroupOutcome:
    """Commit ``group`` (see the module docstring) and return every committed capture. The
    caller holds the archive lock."""
    if not group:
        return GroupOutcome([])
    committed: list[CommittedCapture] = []

    def collect(done: Committed) -> None:
        prepared = group[len(committed)]
        assert prepared.capture_id == done.capture_id and prepared.draft_manifest is not None
        manifest = prepared.draft_manifest
        if done.previous:
            manifest = dataclasses.replace(manifest, previous=done.previous)
        committed.append(CommittedCapture(prepared, manifest, done.ref, done.warc_rel,
                                          done.text, done.comments))

    outcome = commit_drafts(ctx, (p.to_draft() for p in group), sign=sign,
                            on_committed=collect)
    outcome.committed = committed
    return outcome


def commit_drafts(ctx: CommitContext, drafts: Iterable[Draft], *, sign: bool,
                  on_committed: Callable[[Committed], None] | None = None) -> GroupOutcome:
    """Commit the captures of ``drafts``, read once and one at a time (see the module
    docstring); ``on_committed`` is given each committed capture, in order, once all are
    logged. The caller holds the archive lock."""
    ctx.layout.require_plain_dirs()
    require_unshared(ctx.layout.log_dir)  # a hard-linked log could not be appended to
    log.check_clock(ctx.root)  # nor one whose last entry is dated after this clock
    verifier = ctx.signer.verifier if ctx.signer is not None else _archive_verifier(ctx.root)
    check_extends(ctx.root, ctx.heads, verifier)
    spill_dir = ctx.layout.tmp_dir
    with contextlib.closing(_Undo(spill_dir)) as undo, Spill.anonymous(spill_dir) as placed:
        # what a capture names as ``previous`` must be proved: the key signs its manifest
        proved = None
        if verifier is not None:
            proved = ctx.proved.get(verifier.to_text())
            if proved is None:
                proved = ctx.proved[verifier.to_text()] = ProvedLeaves(ctx.root, verifier)
            proved.new_group()
        records = _prepare(ctx, drafts, placed, undo, proved)
        if not placed:
            return GroupOutcome([])
        _commit_point(ctx, placed, undo)
        _log(ctx, placed)
        if verifier is None:  # no key: nothing will ever sign, logged is all there is
            remove_records(records)
        outcome = GroupOutcome([], count=len(placed))
        _add_to_catalog(ctx, placed, outcome)
        if on_committed is not None:
            for line in _lines(placed):
                on_committed(_committed(ctx, line))
    if sign:
        _sign(ctx, outcome)
    return outcome


def _lines(placed: Spill) -> Iterator[_Placed]:
    return (_Placed.unpack(values) for values in placed)


def _committed(ctx: CommitContext, line: _Placed) -> Committed:
    d = line.manifest
    ref = ManifestRef(ctx.layout.manifest_path_for(line.capture_id), d.blake3, d.sha256, d.size)
    return Committed(line.capture_id, line.kind, ref, line.warc_rel, line.text, line.comments,
                     line.previous)


def _prepare(ctx: CommitContext, drafts: Iterable[Draft], placed: Spill,
             undo: _Undo, proved: ProvedLeaves | None) -> list[Path]:
    """Steps 2-4: place, build and write each capture's files, one line each in
    ``placed``; then the commit records; then one flush. Returns the records' paths (none
    for an empty group). On failure everything is undone and the error raised."""
    durability = Durability(ctx.root)
    try:
        linked: dict[str, Path] = {}  # a WARC file shared by captures of the group: linked once
        for draft in drafts:
            placed.append(_place(ctx, draft, linked, undo, durability, proved).pack())
        if not placed:
            return []
        records = _write_records(ctx, placed, undo, durability)
        durability.flush()  # WARC files, text objects, manifests' bytes, the records
    except BaseException as exc:
        undo.run()
        raise _storage_error(exc, "cannot commit") from exc
    return records


def _place(ctx: CommitContext, draft: Draft, linked: dict[str, Path], undo: _Undo,
           durability: Durability, proved: ProvedLeaves | None) -> _Placed:
    """Step 2 for one capture, its flush left to ``durability``."""
    rel = draft.warc_rel
    _link_warc(ctx, draft, linked, undo, durability)
    text, comments = (_store_object(ctx, data, undo, durability)
                      for data in (draft.text, draft.comments))
    placed = (rel, text.blake3 if text else None, comments.blake3 if comments else None)
    if placed != draft.names:
        raise StorageError(f"capture {draft.capture_id}: the files placed are not the ones "
                           "its manifest names")
    previous = tuple(_previous(ctx, draft.requested_url, draft.capture_id, proved))
    data = with_previous(draft.data, previous)
    digests = hash_bytes(data)
    temp = _write_temp_manifest(ctx.layout, draft.capture_id, data, undo, durability)
    row = dataclasses.replace(draft.row, manifest_sha256=digests.sha256)
    return _Placed(draft.kind, draft.capture_id, digests, str(temp), rel, text, comments,
                   previous, row)


def _link_warc(ctx: CommitContext, draft: Draft, linked: dict[str, Path], undo: _Undo,
               durability: Durability) -> None:
    rel = draft.warc_rel
    if rel in linked:
        if linked[rel] != draft.warc_tmp:
            raise StorageError(f"captures of one group give different files for {rel}")
        return
    warc_path = ctx.root / rel
    require_plain_below(ctx.root, warc_path.parent)  # archive/warc/YYYY/MM
    try:
        if not warc_path.parent.is_dir():
            makedirs_durable(warc_path.parent)
        os.chmod(draft.warc_tmp, OBJECT_MODE)  # sealed: read-only, as objects and manifests
        os.link(draft.warc_tmp, warc_path)  # fails if it exists: never overwrite
    except OSError as exc:
        raise StorageError(f"cannot place WARC file {rel}: {exc.strerror or exc}") from exc
    linked[rel] = draft.warc_tmp
    undo.files.append(warc_path)
    durability.add(warc_path)
    durability.add(warc_path.parent, directory=True)


def _write_records(ctx: CommitContext, placed: Spill, undo: _Undo,
                   durability: Durability) -> list[Path]:
    """Step 3: one commit record for each :data:`MAX_RECORDS` captures, their flush left to
    ``durability``."""
    paths: list[Path] = []
    lines = _lines(placed)
    for _start in range(0, len(placed), MAX_RECORDS):
        entries = (line.entry() for line in itertools.islice(lines, MAX_RECORDS))
        paths.append(write_record(ctx.root, entries, signer=ctx.signer, origin=ctx.origin,
                                  durability=durability))
        undo.files.append(paths[-1])
    return paths


def _commit_point(ctx: CommitContext, placed: Spill, undo: _Undo) -> None:
    """Step 5: link every manifest into place. If none could be, everything is undone; if
    some were, the WARC files only the others name are removed and PartialCommitError
    names those committed."""
    count = 0
    try:
        for line in _lines(placed):
            _link_no_replace(Path(line.temp), ctx.layout.manifest_path_for(line.capture_id))
            count += 1
        fsync_dir(ctx.layout.manifests_dir)
    except BaseException as exc:
        _remove_temps(placed)
        if not count:  # nothing reached the commit point: undo it all
            undo.run()
            raise _storage_error(exc, "cannot write the manifests") from exc
        ids = _undo_uncommitted(ctx, placed, count)
        raise PartialCommitError(_partial(ids, "writing the manifests failed: "
                                          f"{exc or type(exc).__name__}"), ids) from exc
    _remove_temps(placed)


def _log(ctx: CommitContext, placed: Spill) -> None:
    """Step 6: the leaves, :data:`BATCH` at a time; PartialCommitError if they cannot be."""
    try:
        for batch in _batches(_lines(placed), BATCH):
            log.record_entries(ctx.root, [
                manifest_leaf(line.capture_id, line.row.started, line.manifest,
                              kind=line.kind).to_bytes() for line in batch])
    except (PreserveError, OSError, ValueError) as exc:
        ids = [line.capture_id for line in _lines(placed)]
        raise PartialCommitError(_partial(ids, f"appending to the log failed: {exc}"),
                                 ids) from exc


def _batches(lines: Iterable[_Placed], size: int) -> Iterator[list[_Placed]]:
    batch: list[_Placed] = []
    for line in lines:
        batch.append(line)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _archive_verifier(root: Path) -> log.Verifier | None:
    try:
        return log.read_verifier(root)
    except PreserveError:
        return None


def _store_object(ctx: CommitContext, data: TextObject | None, undo: _Undo,
                  durability: Durability) -> StoredObject | None:
    """Put one text or comments object (bytes, or spooled to a file) into the store."""
    if isinstance(data, SpooledObject):
        if not data.digests.size:
            return None
        stored, created = ctx.store.put_spooled(data, durability=durability)
    elif data:
        stored, created = ctx.store.put_deferred(data, durability=durability)
    else:
        return None
    if created:
        undo.add(ctx.root / stored.path_rel)
    return stored


def _previous(ctx: CommitContext, url: str, capture_id: str,
              proved: ProvedLeaves | None) -> list[str]:
    """Earlier captures of ``url`` however it was recorded (one
    :func:`~preserve.capture.urls.url_identity`: ``https://example.org``,
    ``https://example.org/`` and ``HTTPS://Example.org:443/`` are one resource), oldest
    first: catalog candidates, each re-checked against the log leaf the catalog names for it
    and against its manifest (:func:`logged_captures_of`), and, in an archive with a key,
    that leaf proved (``proved``): a planted capture, logged by someone without the key, is
    never named in a manifest the key signs."""
    return [m.capture_id for m in logged_captures_of(ctx.layout, ctx.catalog, url, proved)
            if m.capture_id != capture_id]


def logged_captures_of(layout: ArchiveLayout, catalog: Catalog, url: str,
                       proved: Callable[[int, ManifestLeaf | AdoptionLeaf], bool] | None = None,
                       ) -> list[Manifest]:
    """The logged captures whose requested URL is ``url`` (any spelling of it: one
    :func:`~preserve.capture.urls.url_identity`), oldest first: the catalog's
    candidates, each kept only if the log leaf the catalog names for it logs its manifest
    byte for byte (:func:`logged_manifest`) and, given ``proved``, passes it. A crafted row,
    or a manifest planted beside one, is never returned; an unusable catalog or log gives no
    candidates. The caller has brought the catalog up to the log."""
    try:
        candidates = catalog.leaves_of_url(url)
    except CatalogError:
        return []
    if not candidates:  # a URL never captured: no need to open the log (a few ms a capture)
        return []
    wanted = url_identity(url)
    found = []
    try:
        with log.open_log(layout.root, readonly=True) as opened:
            for candidate, index in candidates:
                earlier = logged_manifest(layout, opened, candidate, index, proved)
                if earlier is not None and url_identity(earlier.requested_url) == wanted:
                    found.append(earlier)
    except (PreserveError, OSError):
        return []  # no readable log: nothing can be shown to be logged (verify reports it)
    return found


def logged_manifest(layout: ArchiveLayout, opened: log.TransparencyLog, capture_id: str,
                    index: int,
                    proved: Callable[[int, ManifestLeaf | AdoptionLeaf], bool] | None = None,
                    ) -> Manifest | None:
    """The manifest of ``capture_id`` if leaf ``index`` of ``opened`` is a manifest (or
    adoption) leaf of that capture naming exactly the manifest's bytes on disk (and, given
    ``proved``, passing it); else None (a crafted or stale catalog row, a planted or edited
    manifest, a leaf nothing signed proves)."""
    try:
        leaf = log.parse_entry(opened.leaf(index))
        manifest, digests = manifest_mod.read_manifest(layout.manifest_path_for(capture_id))
    except (PreserveError, ValueError):
        return None
    if not (records(leaf, capture_id, digests) and manifest.capture_id == capture_id):
        return None
    if proved is not None and not proved(index, leaf):
        return None
    return manifest


#: ``(index, leaf)`` of one capture's manifest, import or adoption leaves, in log order.
CaptureLeaves = list[tuple[int, ManifestLeaf | AdoptionLeaf]]


def records(leaf: object, capture_id: str,
            digests: Digests) -> TypeGuard[ManifestLeaf | AdoptionLeaf]:
    """Whether ``leaf`` is a manifest (import, adoption) leaf of ``capture_id`` recording a
    manifest of exactly these ``digests``."""
    return isinstance(leaf, ManifestLeaf | AdoptionLeaf) and leaf.capture_id == capture_id \
        and (leaf.sha256, leaf.blake3, leaf.size) == (digests.sha256, digests.blake3,
                                                      digests.size)


def logged_leaves(root: Path) -> dict[str, CaptureLeaves]:
    """Every logged capture's leaves, by capture id in the order the log first names them:
    one pass over the log's entries (LogError or OSError if it cannot be read)."""
    found: dict[str, CaptureLeaves] = {}
    with log.open_log(root, readonly=True) as opened:
        for index, data in opened.iter_entries():
            try:
                entry = log.parse_entry(data)
            except ValueError:
                continue
            if isinstance(entry, ManifestLeaf | AdoptionLeaf):
                found.setdefault(entry.capture_id, []).append((index, entry))
    return found


def held_manifest(layout: ArchiveLayout, capture_id: str, leaves: CaptureLeaves) -> Manifest:
    """The manifest of ``capture_id`` if one of its ``leaves`` records exactly its bytes
    (read once, hashed before they are parsed); otherwise UnverifiedManifestError saying why
    (missing, unreadable, changed after it was logged, of another capture)."""
    rel = f"manifests/{capture_id}.json"
    why = f"{rel} is not the manifest log leaf {leaves[0][0] if leaves else '?'} records"
    try:
        data = manifest_mod.read_manifest_bytes(layout.manifest_path_for(capture_id))
    except NotFoundError:
        raise UnverifiedManifestError(f"{why}: it is missing; run preserve verify") from None
    except (PreserveError, OSError) as exc:
        raise UnverifiedManifestError(f"{why}: it cannot be read ({exc}); run preserve "
                                      "verify") from None
    digests = hash_bytes(data)
    if not any(records(leaf, capture_id, digests) for _index, leaf in leaves):
        raise UnverifiedManifestError(f"{why} (changed after it was logged: sha256 "
                                      f"{digests.sha256}); run preserve verify")
    try:
        manifest = manifest_mod.parse_manifest(data)
    except PreserveError as exc:
        raise UnverifiedManifestError(f"{rel}: logged, but not a valid manifest: {exc}") \
            from None
    if manifest.capture_id != capture_id:
        raise UnverifiedManifestError(f"{why}: it is the manifest of {manifest.capture_id}")
    return manifest


def _write_temp_manifest(layout: ArchiveLayout, capture_id: str, data: bytes, undo: _Undo,
                         durability: Durability) -> Path:
    directory = layout.manifests_dir
    try:
        fd, name = tempfile.mkstemp(prefix=f"{MANIFEST_TMP_PREFIX}{capture_id}-",
                                    dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot create a manifest temp file in {directory}: {exc}") from exc
    tmp = Path(name)
    undo.add(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), manifest_mod.MANIFEST_MODE)
    except OSError as exc:
        raise StorageError(f"cannot write manifest {capture_id}: {exc.strerror or exc}") \
            from exc
    durability.add(tmp)
    return tmp


def _link_no_replace(tmp: Path, final: Path) -> None:
    try:
        manifest_mod.link_no_replace(tmp, final)
    except FileExistsError as exc:
        raise StorageError(f"manifest {final.name} already exists; not rewritten") from exc


def _remove_temps(placed: Spill) -> None:
    for line in _lines(placed):
        with contextlib.suppress(OSError):
            os.unlink(line.temp)


def _undo_uncommitted(ctx: CommitContext, placed: Spill, count: int) -> list[str]:
    """After a partial commit of the first ``count`` captures, remove the WARC files of the
    others, except those a committed capture names too (an imported file shared by the
    group); their text objects may be shared with committed ones and stay (verify calls any
    left unreferenced W502, repair quarantines them). Returns the committed ids."""
    committed: list[str] = []
    keep: set[str] = set()
    for index, line in enumerate(_lines(placed)):
        if index < count:
            committed.append(line.capture_id)
            keep.add(line.warc_rel)
        elif line.warc_rel not in keep:
            with contextlib.suppress(OSError):
                (ctx.root / line.warc_rel).unlink()
    return committed


def _storage_error(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, PreserveError):
        return exc
    if isinstance(exc, OSError):
        return StorageError(f"{what}: {exc.strerror or exc}")
    return exc


def _partial(committed: Sequence[str], why: str) -> str:
    """The message of a commit cut short after its commit point (the ids are in the error;
    a message names the first few, an import's group holds thousands)."""
    shown = ", ".join(committed[:5]) + (f" and {len(committed) - 5} more"
                                        if len(committed) > 5 else "")
    return (f"{why}; committed but not logged yet: {shown} (a signed commit record names "
            "them: run preserve repair)")


def _add_to_catalog(ctx: CommitContext, placed: Spill, outcome: GroupOutcome) -> None:
    """Step 7: the rows, :data:`BATCH` at a time, each batch bringing the catalog up to its
    last leaf; a catalog that was behind the log is brought up to it from the log (else
    every later capture's ``previous`` would miss what it lacks until a ``list``)."""
    try:
        with log.open_log(ctx.root, readonly=True) as opened:
            size = opened.size
        indexed = ctx.catalog.indexed_size()
        if indexed + len(placed) == size:
            for batch in _batches(_lines(placed), BATCH):
                indexed += len(batch)
                ctx.catalog.add([line.row for line in batch], indexed)
        else:  # behind already (leaves appended by adopt or by hand): read them from the log
            catalog_sync.sync_catalog(ctx.root, ctx.catalog)
    except (CatalogError, PreserveError, OSError) as exc:
        outcome.catalog_error = str(exc)
        if ctx.on_catalog_error is not None:
            ctx.on_catalog_error(str(exc))


def _sign(ctx: CommitContext, outcome: GroupOutcome) -> None:
    if ctx.signer is None:
        outcome.not_signed = "the archive's signing key is not at hand"
        return
    try:
        outcome.signed = prove_and_sign(ctx.root, ctx.signer, heads=ctx.heads,
                                        timestamper=ctx.timestamper)
    except NotProvedError as exc:
        outcome.not_signed = f"not signed: {exc}"
    except PreserveError as exc:
        outcome.not_signed = f"checkpoint not signed: {exc}"


__all__ = [
    "BATCH",
    "CaptureLeaves",
    "CommitContext",
    "Committed",
    "CommittedCapture",
    "Draft",
    "GroupOutcome",
    "PartialCommitError",
    "PreparedCapture",
    "SpilledDrafts",
    "TextObject",
    "commit_drafts",
    "commit_group",
    "held_manifest",
    "logged_leaves",
    "record_json",
    "records",
    "text_json",
]
