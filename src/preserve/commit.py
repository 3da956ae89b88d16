"""The commit protocol: how prepared captures become part of the archive, one or a group at once.

Every way a capture arrives (HTTP fetch, browser, import) ends in a :class:`PreparedCapture`:
a sealed WARC file in the spool, its clean text and comments (bytes, or files in the spool
that the commit links into the text store), and its manifest fields. Under the archive lock,
:func:`commit_group` then, for the whole group:

1. refuses to go on if the log does not extend the operator's known head (a rolled-back or
   rewritten archive gets nothing new appended);
2. links each WARC file into ``archive/warc/YYYY/MM/`` (never replacing a file; a file that
   several captures of the group share, an imported WARC file, is linked once) and stores
   the text objects; then fsyncs every directory it touched, once;
3. builds each manifest (``previous`` from the catalog, re-checked against the manifests) and
   validates it with the parser verify uses; the manifest's exact bytes are now known;
4. writes one **commit record** (:mod:`preserve.log.journal`) naming every manifest by id and
   hashes (and kind: ``capture``, or ``import`` for a page of an imported file), signed with
   the archive key when it is at hand, and fsyncs it;
5. writes every manifest to a temp file, fsyncs them, links each into ``manifests/`` and fsyncs
   the directory once: **the commit point** (a capture exists iff its manifest exists);
6. appends all the manifest leaves to the log in one batch (one set of fsyncs): a ``manifest``
   leaf for a capture, an ``import`` leaf for an import;
7. adds the captures to the catalog (derived; a failure there is reported, not fatal);
8. with ``sign``, proves and signs a checkpoint (:func:`preserve.log.signing.prove_and_sign`),
   which also advances the operator's known head and removes the commit records it covers.

A failure before step 5 undoes steps 2 and 4 (the linked WARC files, the text objects this
group created, the record) and re-raises: nothing was committed. A failure in or after step 5
leaves what was committed committed, and raises :class:`PartialCommitError` naming it;
``preserve repair`` completes the log from the signed commit record. So "a manifest exists ⇒
everything it names is durable" and "a committed manifest is logged, or a signed record says
it must be" both hold at every instant.

This module does no network I/O and no extraction; it does not decide what is captured.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from preserve import log
from preserve.errors import (
    NotFoundError,
    NotProvedError,
    PreserveError,
    StorageError,
    UnverifiedManifestError,
)
from preserve.hashing import Digests, hash_bytes
from preserve.log.entries import AdoptionLeaf, ManifestLeaf, manifest_leaf_for_bytes
from preserve.log.journal import CommitEntry, remove_records, write_record
from preserve.log.known_heads import KnownHeads
from preserve.log.signing import Signed, check_extends, prove_and_sign
from preserve.safe_io import Durability, fsync_dir
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
from preserve.storage.text_store import SpooledObject, StoredObject, TextStore, object_digests
from preserve.warc import RecordRef, WarcWriteResult

Timestamper = Callable[[bytes], bytes]
#: A text or comments object of a prepared capture: its bytes, or spooled to a file (an
#: import of many pages spools each as it goes, so none is held until the commit).
TextObject = bytes | SpooledObject


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
        manifest = manifest_mod.parse_manifest(
            manifest_mod.canonical_bytes(manifest_mod.bound_fields(document)))
        # the bytes written are the parsed manifest's own serialisation, the form verify holds
        # canonical (W109): a field given as null that the schema leaves out when absent (an
        # extraction without a method, say) is left out, as verify expects
        self.draft = manifest.to_bytes()
        self.draft_manifest = manifest


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
    """What :func:`commit_group` committed, and what became of the checkpoint and catalog."""

    committed: list[CommittedCapture]
    signed: Signed | None = None
    #: why no checkpoint was signed (None when one was, or when signing was not asked for)
    not_signed: str | None = None
    catalog_error: str | None = None


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


@dataclass
class _Undo:
    """What a group created before its commit point, to remove if it fails there."""

    files: list[Path] = field(default_factory=list)

    def run(self) -> None:
        for path in reversed(self.files):
            with contextlib.suppress(OSError):
                path.unlink()


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
    """Commit ``group`` (see the module docstring). The caller holds the archive lock."""
    if not group:
        return GroupOutcome([])
    ctx.layout.require_plain_dirs()
    verifier = ctx.signer.verifier if ctx.signer is not None else _archive_verifier(ctx.root)
    check_extends(ctx.root, ctx.heads, verifier)
    undo = _Undo()
    durability = Durability(ctx.root)
    try:
        placed = _place_files(ctx, group, undo, durability)
        built = [_build_manifest(ctx, p, rel, text, comments)
                 for p, rel, text, comments in placed]
        entries = [CommitEntry(p.kind, m.capture_id, d.sha256, d.blake3, d.size)
                   for p, (m, _data, d) in zip(group, built, strict=True)]
        record_path = write_record(ctx.root, entries, signer=ctx.signer, origin=ctx.origin,
                                   durability=durability)
        undo.files.append(record_path)
        temps = [_write_temp_manifest(ctx.layout, m, data, undo, durability)
                 for m, data, _d in built]
        durability.flush()  # WARC files, text objects, the record, the manifests' bytes
    except BaseException as exc:
        undo.run()
        raise _storage_error(exc, "cannot commit") from exc
    committed: list[CommittedCapture] = []
    try:
        for (prepared, rel, text, comments), (m, _data, d), tmp in zip(
                placed, built, temps, strict=True):
            final = ctx.layout.manifest_path_for(m.capture_id)
            _link_no_replace(tmp, final)
            committed.append(CommittedCapture(prepared, m, ManifestRef(final, d.blake3, d.sha256,
                                                                       d.size),
                                              rel, text, comments))
        fsync_dir(ctx.layout.manifests_dir)
    except BaseException as exc:
        _remove_temps(temps)
        if not committed:  # nothing reached the commit point: undo it all
            undo.run()
            raise _storage_error(exc, "cannot write the manifests") from exc
        _undo_uncommitted(ctx, placed[len(committed):], {c.warc_rel for c in committed})
        raise PartialCommitError(_partial(committed, f"writing the manifests failed: {exc}"),
                                 [c.manifest.capture_id for c in committed]) from exc
    _remove_temps(temps)
    try:
        log.record_entries(ctx.root, [
            manifest_leaf_for_bytes(data, kind=p.kind).to_bytes()
            for p, (_m, data, _d) in zip(group, built, strict=True)])
    except (PreserveError, OSError, ValueError) as exc:
        raise PartialCommitError(_partial(committed, f"appending to the log failed: {exc}"),
                                 [c.manifest.capture_id for c in committed]) from exc
    if verifier is None:  # no key: nothing will ever sign, logged is all there is
        remove_records([record_path])
    outcome = GroupOutcome(committed)
    _add_to_catalog(ctx, committed, outcome)
    if sign:
        _sign(ctx, outcome)
    return outcome


def _archive_verifier(root: Path) -> log.Verifier | None:
    try:
        return log.read_verifier(root)
    except PreserveError:
        return None


def _place_files(
    ctx: CommitContext, group: Sequence[PreparedCapture], undo: _Undo, durability: Durability
) -> list[tuple[PreparedCapture, str, StoredObject | None, StoredObject | None]]:
    """Link the WARC files and store the text objects, leaving their flush to ``durability``
    (once for the whole group)."""
    placed = []
    linked: dict[str, Path] = {}  # a WARC file shared by captures of the group: linked once
    for prepared in group:
        rel = prepared.warc_rel
        warc_path = ctx.root / rel
        if rel in linked:
            if linked[rel] != prepared.warc_tmp:
                raise StorageError(f"captures of one group give different files for {rel}")
        else:
            require_plain_below(ctx.root, warc_path.parent)  # archive/warc/YYYY/MM
            try:
                if not warc_path.parent.is_dir():
                    makedirs_durable(warc_path.parent)
                os.link(prepared.warc_tmp, warc_path)  # fails if it exists: never overwrite
            except OSError as exc:
                raise StorageError(f"cannot place WARC file {rel}: {exc.strerror or exc}") \
                    from exc
            linked[rel] = prepared.warc_tmp
            undo.files.append(warc_path)
            durability.add(warc_path)
            durability.add(warc_path.parent, directory=True)
        refs = [_store_object(ctx, data, undo, durability)
                for data in (prepared.text, prepared.comments)]
        placed.append((prepared, rel, refs[0], refs[1]))
    return placed


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
        undo.files.append(ctx.root / stored.path_rel)
    return stored


def _build_manifest(
    ctx: CommitContext,
    prepared: PreparedCapture,
    warc_rel_path: str,
    text: StoredObject | None,
    comments: StoredObject | None,
) -> tuple[Manifest, bytes, Any]:
    """The final manifest: the sealed draft, checked against what was placed, plus
    ``previous`` (re-checked against the manifests it names)."""
    prepared.seal()
    draft, manifest = prepared.draft, prepared.draft_manifest
    assert draft is not None and manifest is not None
    placed = (warc_rel_path, text.blake3 if text else None, comments.blake3 if comments else None)
    sealed = (manifest.warc.path, manifest.text.blake3 if manifest.text else None,
              manifest.comments.blake3 if manifest.comments else None)
    if placed != sealed:
        raise StorageError(f"capture {prepared.capture_id}: the files placed are not the ones "
                           "its manifest names")
    previous = _previous(ctx, prepared.requested_url, prepared.capture_id)
    if previous:
        data = with_previous(draft, previous)
        manifest = dataclasses.replace(manifest, previous=tuple(previous))
    else:
        data = draft
    return manifest, data, hash_bytes(data)


def _previous(ctx: CommitContext, url: str, capture_id: str) -> list[str]:
    """Earlier captures of ``url``: catalog candidates, each re-checked against the log leaf
    the catalog names for it and against its manifest (:func:`logged_captures_of`)."""
    return [m.capture_id for m in logged_captures_of(ctx.layout, ctx.catalog, url)
            if m.capture_id != capture_id]


def logged_captures_of(layout: ArchiveLayout, catalog: Catalog, url: str) -> list[Manifest]:
    """The logged captures whose requested URL is ``url``, oldest first: the catalog's
    candidates, each kept only if the log leaf the catalog names for it logs its manifest
    byte for byte (:func:`logged_manifest`). A crafted row, or a manifest planted beside one,
    is never returned; an unusable catalog or log gives no candidates. The caller has
    brought the catalog up to the log."""
    try:
        candidates = catalog.leaves_of_url(url)
    except CatalogError:
        return []
    if not candidates:  # a URL never captured: no need to open the log (a few ms a capture)
        return []
    found = []
    try:
        with log.open_log(layout.root, readonly=True) as opened:
            for candidate, index in candidates:
                earlier = logged_manifest(layout, opened, candidate, index)
                if earlier is not None and earlier.requested_url == url:
                    found.append(earlier)
    except (PreserveError, OSError):
        return []  # no readable log: nothing can be shown to be logged (verify reports it)
    return found


def logged_manifest(layout: ArchiveLayout, opened: log.TransparencyLog, capture_id: str,
                    index: int) -> Manifest | None:
    """The manifest of ``capture_id`` if leaf ``index`` of ``opened`` is a manifest (or
    adoption) leaf of that capture naming exactly the manifest's bytes on disk; else None
    (a crafted or stale catalog row, a planted or edited manifest)."""
    try:
        leaf = log.parse_entry(opened.leaf(index))
        manifest, digests = manifest_mod.read_manifest(layout.manifest_path_for(capture_id))
    except (PreserveError, ValueError):
        return None
    if not (records(leaf, capture_id, digests) and manifest.capture_id == capture_id):
        return None
    return manifest


#: ``(index, leaf)`` of one capture's manifest, import or adoption leaves, in log order.
CaptureLeaves = list[tuple[int, ManifestLeaf | AdoptionLeaf]]


def records(leaf: object, capture_id: str, digests: Digests) -> bool:
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


def _write_temp_manifest(layout: ArchiveLayout, m: Manifest, data: bytes, undo: _Undo,
                         durability: Durability) -> Path:
    directory = layout.manifests_dir
    try:
        fd, name = tempfile.mkstemp(prefix=f"{MANIFEST_TMP_PREFIX}{m.capture_id}-",
                                    dir=directory)
    except OSError as exc:
        raise StorageError(f"cannot create a manifest temp file in {directory}: {exc}") from exc
    tmp = Path(name)
    undo.files.append(tmp)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            os.fchmod(f.fileno(), manifest_mod.MANIFEST_MODE)
    except OSError as exc:
        raise StorageError(f"cannot write manifest {m.capture_id}: {exc.strerror or exc}") \
            from exc
    durability.add(tmp)
    return tmp


def _link_no_replace(tmp: Path, final: Path) -> None:
    try:
        manifest_mod.link_no_replace(tmp, final)
    except FileExistsError as exc:
        raise StorageError(f"manifest {final.name} already exists; not rewritten") from exc


def _remove_temps(temps: Sequence[Path]) -> None:
    for tmp in temps:
        with contextlib.suppress(OSError):
            tmp.unlink()


def _undo_uncommitted(
    ctx: CommitContext,
    rest: Sequence[tuple[PreparedCapture, str, StoredObject | None, StoredObject | None]],
    keep: set[str],
) -> None:
    """After a partial commit, remove the WARC files of the captures that did not commit,
    except those a committed capture names too (``keep``: an imported file shared by the
    group); their text objects may be shared with committed ones and stay (verify calls any
    left unreferenced W502, repair quarantines them)."""
    for _prepared, rel, _text, _comments in rest:
        if rel in keep:
            continue
        with contextlib.suppress(OSError):
            (ctx.root / rel).unlink()


def _storage_error(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, PreserveError):
        return exc
    if isinstance(exc, OSError):
        return StorageError(f"{what}: {exc.strerror or exc}")
    return exc


def _partial(committed: Sequence[CommittedCapture], why: str) -> str:
    ids = ", ".join(c.manifest.capture_id for c in committed)
    return (f"{why}; committed but not logged yet: {ids} (a signed commit record names them: "
            "run preserve repair)")


def _add_to_catalog(ctx: CommitContext, committed: Sequence[CommittedCapture],
                    outcome: GroupOutcome) -> None:
    try:
        with log.open_log(ctx.root, readonly=True) as opened:
            size = opened.size
        indexed = ctx.catalog.indexed_size()
        if indexed + len(committed) == size:
            ctx.catalog.add([CatalogRow.of(c.manifest, c.ref.sha256) for c in committed], size)
        # else the catalog was behind already: its next sync reads these from the log
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
    "CaptureLeaves",
    "CommitContext",
    "CommittedCapture",
    "GroupOutcome",
    "PartialCommitError",
    "PreparedCapture",
    "TextObject",
    "commit_group",
    "held_manifest",
    "logged_leaves",
    "record_json",
    "records",
    "text_json",
]
