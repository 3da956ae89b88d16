"""``RemoteArchive(url)``: an archive kept in an object store (``s3://bucket/prefix``).

Objects have the same names, relative to the prefix, as files below a local root
(``archive/warc/YYYY/MM/<id>.warc.gz``, ``archive/text/ab/cd/<blake3>``,
``manifests/<id>.json``, ``manifests/log/…``), and the same bytes: manifests, commit records,
checkpoints and ``key.pub`` are identical in format, so a proof made here checks with the
offline verifier. Differences: the log is in tlog-tiles objects (:mod:`.tiles`), the lock is a
lease (:mod:`.lease`), sealed WARC files arrive through ``staging/`` and there is no catalog.

The commit, under the lease, in the order of :mod:`preserve.commit`:

1. the log must extend the operator's known head;
2. each WARC file is copied server-side from ``staging/`` to its final name, and each text
   object created — create-only and sealed (Object Lock retention); a text object already
   there is used only if it holds those bytes, and that version is then sealed as a new
   one would be (:meth:`ObjectStore.use_existing`);
3. the manifests are built and validated with the parser verify uses;
4. one commit record, signed with the archive key, is created in ``manifests/log/journal/``;
5. each manifest is created with ``If-None-Match: *`` and sealed: **the commit point**;
6. the manifest leaves are appended to the tiled log;
7. with ``sign``, :func:`preserve.log.signing.prove_and_sign` proves the log through a
   :class:`RemotePlace` and signs a checkpoint; then the staging objects are deleted.

A failure before step 5 deletes the commit record; sealed copies already made cannot be
deleted before their retention ends and stay as unreferenced files (verify: W501/W502,
never part of a capture). A failure after it raises
:class:`~preserve.commit.PartialCommitError`: :meth:`RemoteArchive.repair` appends the
missing leaves from the signed record, as ``preserve repair`` does locally.

Every write of these steps (and of ``init``, ``repair``, ``checkpoint``, recording an audit)
passes the store's write guard, the check of the lease held (:mod:`.lease`): a committer
that lost its lease stops with :class:`~preserve.errors.LockTimeoutError` before its next
write and writes nothing more, not even that clean-up (a commit record left so is W306 until
``repair`` removes it; a loss after step 5 is a PartialCommitError as above).
"""

from __future__ import annotations

import contextlib
import dataclasses
import tempfile
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from preserve import errors, log
from preserve.capture.urls import url_identity
from preserve.commit import (
    CommittedCapture,
    GroupOutcome,
    PartialCommitError,
    PreparedCapture,
    TextObject,
    record_json,
    text_json,
)
from preserve.hashing import hash_bytes
from preserve.log.archive_log import CHECKPOINT_NAME, TIME_EXTENSION
from preserve.log.entries import (
    MAX_MANIFEST_BYTES,
    AdoptionLeaf,
    ManifestLeaf,
    format_time,
    manifest_leaf_for_bytes,
    parse_entry,
)
from preserve.log.journal import (
    JOURNAL_DIR,
    MAX_RECORD_FILE,
    BadRecord,
    CommitEntry,
    CommitRecord,
    new_group_id,
    parse_record,
    record_text,
)
from preserve.log.keys import Signer, Verifier
from preserve.log.known_heads import KnownHeads, identity_for
from preserve.log.note import Checkpoint, NoteError, sign_checkpoint, sign_note, verify_checkpoint
from preserve.log.signing import Signed, known_head, prove_and_sign, require_known_key
from preserve.remote.lease import Lease
from preserve.remote.store import ObjectInfo, ObjectStore
from preserve.remote.tiles import TiledLog
from preserve.safe_io import open_binary
from preserve.storage import manifest as manifest_mod
from preserve.storage.layout import ArchiveLayout, require_capture_id
from preserve.storage.manifest import Manifest, ManifestRef
from preserve.storage.text_store import SpooledObject, StoredObject, object_digests

LOG = "manifests/log"
KEY_PUB = f"{LOG}/key.pub"
LATEST = f"{LOG}/checkpoint"
CHECKPOINTS = f"{LOG}/checkpoints"
JOURNAL = f"{LOG}/{JOURNAL_DIR}"
STAGING = "staging"
#: Seconds after it was written that a staging object is kept by repair, and not called
#: debris by verify: a worker's sealed WARC file waits there for its group's commit (a Dask
#: batch can be staging while repair or verify runs).
STAGING_GRACE = 3600.0
MAX_SMALL = 64 * 1024
Unverified = errors.UnverifiedManifestError


def place_name(url: str) -> Path:
    """The place under which the operator's known heads remember a remote archive."""
    return Path("/") / url.replace("://", ":/", 1)


def staged_recently(info: ObjectInfo) -> bool:
    """Whether the staging object ``info`` was written less than :data:`STAGING_GRACE`
    seconds ago (by the store's time, as it lists it; a store that does not say is taken
    as old, as before there was a grace)."""
    return info.modified is not None and time.time() - info.modified < STAGING_GRACE


class RemotePlace:
    """The :class:`~preserve.log.signing.LogPlace` of an object-store archive."""

    def __init__(self, store: ObjectStore) -> None:
        self.store = store

    @property
    def root(self) -> Path:
        return place_name(self.store.url)

    def read_verifier(self) -> Verifier:
        try:
            text = self.store.get(KEY_PUB, 4096).decode("utf-8")
        except (errors.NotFoundError, errors.StorageError, UnicodeDecodeError) as exc:
            raise errors.SigningKeyError(f"the archive's public key: {exc}") from exc
        return log.parse_verifier_key(text.strip())

    def checkpoint_names(self) -> list[str]:
        """The stored checkpoints, oldest first (names sort by tree size, then time): the
        ``.txt`` objects right in ``checkpoints/``, as a local directory's files (a nested
        name is none; verify reports it, W505)."""
        return [i.key for i in self.store.list(CHECKPOINTS)
                if i.key.endswith(".txt") and "/" not in i.key[len(CHECKPOINTS) + 1:]]

    def read_checkpoint(self, rel: str) -> str:
        try:
            return self.store.get(rel, MAX_SMALL).decode("utf-8")
        except (errors.StorageError, errors.NotFoundError, UnicodeDecodeError) as exc:
            raise errors.LogError(f"{rel}: {exc}") from exc

    def newest_signed_checkpoint(self, verifier: Verifier, *,
                                 stored_only: bool = False) -> Checkpoint | None:
        candidates = [] if stored_only else [LATEST]
        for attempt in range(2):
            for rel in candidates:
                try:
                    return verify_checkpoint(self.read_checkpoint(rel), verifier,
                                             origin=verifier.name)
                except (errors.LogError, NoteError, errors.SigningKeyError):
                    continue
            if attempt == 0:
                candidates = sorted(self.checkpoint_names(), reverse=True)
        return None

    def read_journal(self, verifier: Verifier | None) -> tuple[list[CommitRecord],
                                                               list[BadRecord]]:
        records: list[CommitRecord] = []
        bad: list[BadRecord] = []
        for item in self._journal(verifier):
            if isinstance(item, CommitRecord):
                records.append(item)
            else:
                bad.append(item)
        return records, bad

    def journal_records(self, verifier: Verifier | None) -> Iterator[CommitRecord]:
        return (r for r in self._journal(verifier) if isinstance(r, CommitRecord))

    def _journal(self, verifier: Verifier | None) -> Iterator[CommitRecord | BadRecord]:
        for info in self.store.list(JOURNAL):
            path = PurePosixPath(info.key)
            try:
                text = self.store.get(info.key, MAX_RECORD_FILE).decode("utf-8")
                yield parse_record(Path(path), text, verifier)
            except errors.NotFoundError:
                continue  # removed since the listing: its commit was signed meanwhile
            except (errors.LogError, errors.StorageError, UnicodeDecodeError) as exc:
                yield BadRecord(Path(path), str(exc))

    def open_log(self) -> TiledLog:
        return TiledLog.open(self.store, LOG, readonly=True)

    def latest_note(self) -> str | None:
        """The text of the ``checkpoint`` copy (None when there is none)."""
        if not self.store.exists(LATEST):
            return None
        return self.read_checkpoint(LATEST)

    def read_manifest(self, rel: str) -> bytes:
        try:
            return self.store.get(rel, MAX_MANIFEST_BYTES)
        except errors.NotFoundError as exc:
            raise errors.ManifestError(str(exc)) from exc

    def write_checkpoint(self, signer: Signer, *, timestamper: Any, size: int) -> Path:
        self.store.check_write("signing a checkpoint")  # the committer lease is still held
        verifier = self.read_verifier()
        if signer.verifier != verifier:
            raise errors.SigningKeyError("the signing key is not the archive's key")
        when = datetime.now(UTC)
        with self.open_log() as tiles:
            checkpoint = Checkpoint(verifier.name, size, tiles.root_hash(size),
                                    (TIME_EXTENSION + when.strftime("%Y-%m-%dT%H:%M:%SZ"),))
        note = sign_checkpoint(checkpoint, signer).encode("utf-8")
        stamp = format_time(when).replace("-", "").replace(":", "").replace(".", "")
        rel = f"{CHECKPOINTS}/{size:012d}-{stamp}.txt"
        if timestamper is not None:  # the token first, as locally
            self.store.put_new(rel[:-4] + ".tsr", timestamper(note), seal=True)
        self.store.put_new(rel, note, seal=True)
        self.store.put_mutable(LATEST, note)
        return Path(rel)

    def remove_records(self, paths: Sequence[Path]) -> None:
        for path in paths:
            self.store.delete(PurePosixPath(path).as_posix())

    def write_record(self, entries: list[CommitEntry], signer: Signer | None,
                     origin: str) -> str:
        group = new_group_id()
        text = record_text(origin, group, entries)
        note = sign_note(text, [signer]) if signer is not None else text
        rel = f"{JOURNAL}/{group}.txt"
        self.store.put_new(rel, note.encode("utf-8"), seal=False)
        return rel


#: The ``status`` of a capture whose manifest is not the one its log leaf records (changed,
#: missing or unreadable): nothing it says is shown (see :attr:`RemoteCapture.problem`).
UNVERIFIED = "unverified"


@dataclasses.dataclass(frozen=True)
class RemoteCapture:
    """One line of ``preserve list`` for a remote archive. A capture whose manifest is not
    the one its log leaf records has only its id and the leaf's capture time, status
    :data:`UNVERIFIED` and ``problem`` saying why."""

    capture_id: str
    requested_url: str
    final_url: str
    started: str
    http_status: int
    status: str
    title: str | None
    text_blake3: str | None
    problem: str | None = dataclasses.field(default=None, compare=False)

    @classmethod
    def of(cls, m: Manifest) -> RemoteCapture:
        return cls(m.capture_id, m.requested_url, m.final_url, m.started, m.http.status,
                   m.status, m.extraction.title, m.text.blake3 if m.text else None)

    @classmethod
    def unverified(cls, leaf: ManifestLeaf | AdoptionLeaf, problem: str) -> RemoteCapture:
        return cls(leaf.capture_id, "", "", leaf.captured, 0, UNVERIFIED, None, None, problem)

    def to_json(self) -> dict[str, Any]:
        row = dataclasses.asdict(self)
        del row["problem"]
        return row


class RemoteArchive:
    """An archive in an object store (see the module docstring)."""

    def __init__(self, url: str, *, key: str | Path | None = None, tsa_url: str | None = None,
                 heads: KnownHeads | Literal["default"] | None = "default",
                 store: ObjectStore | None = None) -> None:
        self.store = store if store is not None else ObjectStore(url)
        self.url = self.store.url
        self.place = RemotePlace(self.store)
        self.root = self.place.root
        self.key_path = Path(key) if key is not None else None
        self.tsa_url = tsa_url
        self.heads: KnownHeads | None = KnownHeads() if heads == "default" else heads
        self.layout = ArchiveLayout(Path("/nonexistent-remote-root"))  # names only

    def __repr__(self) -> str:
        return f"RemoteArchive({self.url!r})"

    # --- set-up --------------------------------------------------------------------------

    def is_archive(self) -> bool:
        return self.store.exists(f"{LOG}/head.json")

    def init(self, *, key_name: str | None = None) -> str:
        """Create the log and, unless there is one, the archive key (private half outside
        the archive, as locally); returns the verifier key text."""
        with Lease(self.store, wait=30):
            try:
                verifier = self.place.read_verifier()
            except errors.SigningKeyError:
                verifier = None
            if verifier is None:
                if self.key_path is not None and self.key_path.exists():
                    verifier = log.load_signer(self.key_path).verifier
                else:
                    name = key_name or f"s3/{self.store.bucket}-{self.store.prefix}".rstrip("-")
                    name = "".join(c if c.isalnum() or c in "./-_" else "-" for c in name)
                    _path, verifier = log.generate_key(name, self.key_path)
                self.store.put_new(KEY_PUB, (verifier.to_text() + "\n").encode(), seal=True,
                                   same_ok=(verifier.to_text() + "\n").encode())
            TiledLog.open(self.store, LOG, create=True)
        return verifier.to_text()

    def signer(self) -> Signer | None:
        import os

        explicit = self.key_path or (Path(os.environ["PRESERVE_KEY"])
                                     if os.environ.get("PRESERVE_KEY") else None)
        if explicit is not None:
            return log.load_signer(explicit)
        try:
            verifier = self.place.read_verifier()
        except errors.SigningKeyError:
            return None
        default = log.default_key_path(verifier.name)
        return log.load_signer(default) if default.exists() else None

    def _timestamper(self) -> Any:
        from preserve import integrity

        return integrity.timestamper(self.tsa_url)

    # --- capture -----------------------------------------------------------------------------

    def stage(self, prepared: PreparedCapture) -> PreparedCapture:
        """Upload a prepared capture's sealed WARC file to ``staging/`` (no lease needed;
        workers do this); the result names the staged object instead of the spool file."""
        rel = f"{STAGING}/{prepared.capture_id}.warc.gz"
        self.store.put_file_new(rel, prepared.warc_tmp, seal=False)
        return dataclasses.replace(prepared, warc_tmp=PurePosixPath(rel))  # type: ignore[arg-type]

    def capture(self, url: str, options: Any = None, *, checkpoint: bool = True) -> Any:
        """Capture ``url`` here (fetch and WARC in a local temporary spool), then commit."""
        from preserve.archive import CaptureOptions, CaptureResult, prepare_fetched
        from preserve.capture import fetch
        from preserve.storage.layout import new_capture_id

        options = options or CaptureOptions()
        fetch.parse_url(url)
        with tempfile.TemporaryDirectory(prefix="preserve-spool-") as spool_dir:
            now = datetime.now(UTC)
            capture_id = new_capture_id(now)
            spool = Path(spool_dir)
            result = fetch.fetch(url, spool, options.fetch)
            prepared = prepare_fetched(result, options, capture_id=capture_id, now=now,
                                       spool=spool)
            staged = self.stage(prepared)
        outcome = self.commit([staged], sign=checkpoint)
        return CaptureResult.of(outcome.committed[0], outcome)

    def check_known_head(self, tiles: TiledLog) -> None:
        try:
            verifier: Verifier | None = self.place.read_verifier()
        except errors.SigningKeyError:
            verifier = None
        require_known_key(self.heads, verifier, self.root)
        head = known_head(self.heads, identity_for(verifier, self.root), self.root)
        if head is None:
            return
        if tiles.size < head.size or (head.size and tiles.root_hash(head.size) != head.root):
            raise errors.NotProvedError(
                f"the log ({tiles.size} leaves) does not extend the head of {head.size} leaves "
                "you last verified or signed (rolled back or rewritten); run preserve verify")

    def commit(self, group: Sequence[PreparedCapture], *, sign: bool,
               lease: Lease | None = None) -> GroupOutcome:
        """Commit staged captures (see the module docstring); holds the lease unless given."""
        if not group:
            return GroupOutcome([])
        with contextlib.ExitStack() as stack:
            if lease is None:
                stack.enter_context(Lease(self.store, wait=60))
            else:
                lease.check("committing")
            return self._commit(group, sign=sign)
        raise AssertionError("unreachable")

    def _commit(self, group: Sequence[PreparedCapture], *, sign: bool) -> GroupOutcome:
        signer = self.signer()
        try:
            origin = self.place.read_verifier().name
        except errors.SigningKeyError:
            origin = "-"
        tiles = TiledLog.open(self.store, LOG)  # a writable open rolls a torn tail forward
        self.check_known_head(tiles)
        record: str | None = None
        try:
            placed = [self._place(p) for p in group]
            built = [self._build(p, warc_rel, text, comments)
                     for p, warc_rel, text, comments in placed]
            entries = [CommitEntry(p.kind, m.capture_id, d.sha256, d.blake3, d.size)
                       for p, (m, _data, d) in zip(group, built, strict=True)]
            record = self.place.write_record(entries, signer, origin)
        except BaseException:
            if record is not None:
                with contextlib.suppress(errors.PreserveError):
                    self.store.delete(record)
            raise
        committed: list[CommittedCapture] = []
        try:
            for (prepared, warc_rel, text, comments), (m, data, d) in zip(placed, built,
                                                                         strict=True):
                rel = f"manifests/{m.capture_id}.json"
                self.store.put_new(rel, data, seal=True)  # THE COMMIT POINT
                committed.append(CommittedCapture(prepared, m, ManifestRef(
                    Path(rel), d.blake3, d.sha256, d.size), warc_rel, text, comments))
        except BaseException as exc:
            if not committed:
                with contextlib.suppress(errors.PreserveError):
                    self.store.delete(record)
                raise _storage_error(exc, "cannot write the manifests") from exc
            raise PartialCommitError(_partial(committed, f"writing the manifests failed: {exc}"),
                                     [c.manifest.capture_id for c in committed]) from exc
        try:
            tiles.append_many([manifest_leaf_for_bytes(data).to_bytes()
                               for _m, data, _d in built])
        except (errors.PreserveError, OSError, ValueError) as exc:
            raise PartialCommitError(_partial(committed, f"appending to the log failed: {exc}"),
                                     [c.manifest.capture_id for c in committed]) from exc
        if signer is None and origin == "-":
            with contextlib.suppress(errors.LockTimeoutError):  # committed: a leftover only
                self.store.delete(record)
        outcome = GroupOutcome(committed)
        if sign:
            self._sign(outcome, signer)
        for prepared in group:
            with contextlib.suppress(errors.PreserveError):
                self.store.delete(PurePosixPath(prepared.warc_tmp).as_posix())
        return outcome

    def _place(self, prepared: PreparedCapture) -> tuple[PreparedCapture, str,
                                                         StoredObject | None,
                                                         StoredObject | None]:
        warc_rel = self.layout.warc_rel_for(prepared.capture_id, prepared.started_at)
        try:
            self.store.copy_new(PurePosixPath(prepared.warc_tmp).as_posix(), warc_rel,
                                seal=True, sha256=prepared.warc.digests.sha256)
        except FileExistsError as exc:
            raise errors.StorageError(f"WARC file {warc_rel} already exists; not replaced") \
                from exc
        refs = [self._put_text(data) for data in (prepared.text, prepared.comments)]
        return prepared, warc_rel, refs[0], refs[1]

    def _put_text(self, data: TextObject | None) -> StoredObject | None:
        """Store one text or comments object (bytes, or a spooled file streamed up)."""
        digest = object_digests(data)
        if digest is None or data is None:
            return None
        rel = self.layout.text_rel_for(digest.blake3)
        try:
            if isinstance(data, SpooledObject):
                with open_binary(data.path) as spooled:
                    self.store.put_new(rel, spooled, seal=True)
            else:
                self.store.put_new(rel, data, seal=True)
        except FileExistsError:  # content-addressed: already stored, if it holds these bytes
            def same(stored: bytes) -> None:
                found = hash_bytes(stored)
                if (found.blake3, found.size) != (digest.blake3, digest.size):
                    raise errors.StorageError(
                        f"existing text object {self.url}/{rel} does not match its name "
                        f"(BLAKE3 {found.blake3}); left untouched as evidence, run preserve "
                        "verify")

            try:  # that version, sealed as a new one would be (whoever put it there)
                self.store.use_existing(rel, digest.size, same, seal=True)
            except errors.NotFoundError as exc:
                raise errors.StorageError(f"existing text object {self.url}/{rel} cannot be "
                                          f"read: {exc}") from exc
        return StoredObject(digest.blake3, digest.sha256, digest.size, rel)

    def _build(self, prepared: PreparedCapture, warc_rel: str, text: StoredObject | None,
               comments: StoredObject | None) -> tuple[Manifest, bytes, Any]:
        document = dict(prepared.document)
        document.update(
            schema=manifest_mod.SCHEMA,
            warc={"path": warc_rel, "size": prepared.warc.digests.size,
                  "blake3": prepared.warc.digests.blake3,
                  "sha256": prepared.warc.digests.sha256,
                  "records": [record_json(r) for r in prepared.warc.records]},
            text=text_json(text), comments=text_json(comments), previous=[])
        built = manifest_mod.manifest_from_dict(manifest_mod.bound_fields(document))
        data = built.to_bytes()
        manifest_mod.parse_manifest(data)
        return built, data, hash_bytes(data)

    def _sign(self, outcome: GroupOutcome, signer: Signer | None) -> None:
        if signer is None:
            outcome.not_signed = "the archive's signing key is not at hand"
            return
        try:
            outcome.signed = self.prove_and_sign(signer)
        except errors.NotProvedError as exc:
            outcome.not_signed = f"not signed: {exc}"
        except errors.PreserveError as exc:
            outcome.not_signed = f"checkpoint not signed: {exc}"

    def prove_and_sign(self, signer: Signer) -> Signed:
        return prove_and_sign(self.root, signer, heads=self.heads,
                              timestamper=self._timestamper(), place=self.place)

    def checkpoint(self, *, whole_archive: bool = True) -> Signed | None:
        """As :meth:`preserve.Archive.checkpoint` (``whole_archive=False``: the new leaves
        only, what a batch of captures signs at its end)."""
        signer = self.signer()
        if signer is None:
            return None
        with Lease(self.store, wait=60):
            return self.sign_if_intact(signer) if whole_archive else self.prove_and_sign(signer)

    def sign_if_intact(self, signer: Signer) -> Signed:
        """As :func:`preserve.integrity.sign_if_intact`: sign only if verify's check of the
        whole archive finds no error (caller holds the lease). Raises NotProvedError."""
        from preserve.integrity import not_intact
        from preserve.remote.verify import verify_remote

        found = verify_remote(self, record=False, commit_wait=0).errors  # no commit but ours
        if found:
            raise errors.NotProvedError(not_intact(found))
        return self.prove_and_sign(signer)

    # --- reading ---------------------------------------------------------------------------

    def manifest_names(self) -> list[str]:
        return [i.key for i in self.store.list("manifests")
                if i.key.count("/") == 1 and i.key.endswith(".json")]

    def manifest_bytes(self, capture_id: str) -> bytes:
        require_capture_id(capture_id)
        return self.store.get(f"manifests/{capture_id}.json", MAX_MANIFEST_BYTES)

    def logged_leaves(self) -> Iterator[tuple[int, ManifestLeaf | AdoptionLeaf]]:
        """``(index, leaf)`` of each capture's first manifest (or adoption) leaf, in log
        order: one pass over the entry bundles, no listing of ``manifests/``."""
        seen: set[str] = set()
        with self.place.open_log() as tiles:
            for index, data in tiles.iter_entries():
                try:
                    entry = parse_entry(data)
                except ValueError:
                    continue
                if isinstance(entry, ManifestLeaf | AdoptionLeaf) and \
                        entry.capture_id not in seen:
                    seen.add(entry.capture_id)
                    yield index, entry

    def logged_manifest(self, index: int, leaf: ManifestLeaf | AdoptionLeaf) -> Manifest:
        """The manifest leaf ``index`` names, held to it: UnverifiedManifestError unless its
        bytes are the ones the leaf records (changed, missing, of another capture)."""
        rel = f"manifests/{leaf.capture_id}.json"
        why = f"{rel} is not the manifest log leaf {index} records"
        try:
            require_capture_id(leaf.capture_id)
            data = self.store.get(rel, MAX_MANIFEST_BYTES)
        except errors.NotFoundError:
            raise Unverified(f"{why}: it is missing; run preserve verify") from None
        except errors.UnsafePathError as exc:
            raise Unverified(f"{why}: {exc}") from None
        except errors.StorageError as exc:
            if not self.store.exists(rel):  # not one larger than a manifest: unreachable
                raise
            raise Unverified(f"{why}: {exc}; run preserve verify") from None
        d = hash_bytes(data)
        if leaf.path != rel or (d.sha256, d.blake3, d.size) != (leaf.sha256, leaf.blake3,
                                                                  leaf.size):
            raise Unverified(f"{why} (changed after it was logged: sha256 {d.sha256}); run "
                             "preserve verify")
        try:
            m = manifest_mod.parse_manifest(data)
        except errors.ManifestError as exc:
            raise Unverified(f"{rel}: logged, but not a valid manifest: {exc}") from None
        if m.capture_id != leaf.capture_id:
            raise Unverified(f"{why}: it is the manifest of {m.capture_id}")
        return m

    def _leaf_of(self, capture_id: str) -> tuple[int, ManifestLeaf | AdoptionLeaf]:
        """The leaf of the one logged capture whose id is or holds ``capture_id``."""
        leaves = list(self.logged_leaves())
        matches = [x for x in leaves if x[1].capture_id == capture_id]
        if not matches and capture_id:
            needle = capture_id.lower()
            matches = [x for x in leaves if needle in x[1].capture_id.lower()]
        if len(matches) == 1:
            return matches[0]
        if not matches:
            raise errors.NotFoundError(f"no capture matching {capture_id!r} in {self.url}")
        raise errors.NotFoundError(f"{capture_id!r} matches {len(matches)} captures; be longer")

    def find(self, capture_id: str) -> str:
        """The full id of the logged capture of a unique prefix or part (NotFoundError)."""
        return self._leaf_of(capture_id)[1].capture_id

    def manifest(self, capture_id: str) -> Manifest:
        """The manifest of a logged capture (any unique part of its id), held to its log
        leaf (UnverifiedManifestError if it is not the one the leaf records)."""
        return self.logged_manifest(*self._leaf_of(capture_id))

    def captures(self) -> list[RemoteCapture]:
        """Every logged capture, oldest first, each manifest held to its log leaf (one GET
        a capture, no listing); one that is not the leaf's is :meth:`RemoteCapture.unverified`."""
        found = []
        for index, leaf in self.logged_leaves():
            try:
                found.append(RemoteCapture.of(self.logged_manifest(index, leaf)))
            except Unverified as exc:
                found.append(RemoteCapture.unverified(leaf, str(exc)))
        found.sort(key=lambda c: (c.started, c.capture_id))
        return found

    def history(self, url: str) -> list[RemoteCapture]:
        """Every capture whose requested or final URL is ``url``, however either was spelled
        (one :func:`~preserve.capture.urls.url_identity`), oldest first (reads every logged
        manifest: no catalog on an object store yet), and every unverified one (its URLs
        cannot be told)."""
        wanted = url_identity(url)
        return [c for c in self.captures() if url_identity(c.requested_url) == wanted
                or url_identity(c.final_url) == wanted or c.status == UNVERIFIED]

    def text(self, capture_id: str) -> str:
        """The clean text of one capture ('' when it has none), checked against its
        manifest's BLAKE3 digest (UnverifiedTextError when it does not match)."""
        m = self.manifest(capture_id)
        if m.text is None:
            return ""
        data = self.store.get(m.text.path, m.text.size + 1)
        if len(data) != m.text.size or hash_bytes(data).blake3 != m.text.blake3:
            raise errors.UnverifiedTextError(
                f"{m.text.path} is not the text the manifest of {m.capture_id} names (another "
                "size or BLAKE3): not shown; run preserve verify")
        return data.decode("utf-8")

    def make_proof(self, capture_id: str) -> dict[str, Any]:
        """The proof bundle of one capture (as :func:`preserve.log.make_proof` locally)."""
        from preserve.log.proof import build_proof

        return build_proof(self.place, capture_id)

    def history_rows(self) -> Iterator[dict[str, Any]]:
        """The log's entries in commit order (as :func:`preserve.integrity.history`)."""
        from preserve.integrity import history_rows

        try:
            verifier: Verifier | None = self.place.read_verifier()
        except errors.PreserveError:
            verifier = None
        with self.place.open_log() as tiles:
            yield from history_rows(tiles.iter_entries(), verifier)

    # --- audit and repair ------------------------------------------------------------------

    def verify(self, **kwargs: Any) -> Any:
        from preserve.remote.verify import verify_remote

        return verify_remote(self, **kwargs)

    last_audit: Any = None

    def _is_archive_key(self, signer: Signer) -> bool:
        """Whether ``signer`` is the archive's own key (an audit leaf signed by another key
        would be reported as a forgery for good)."""
        try:
            return signer.verifier == self.place.read_verifier()
        except errors.PreserveError:
            return False

    def record_audit(self, report: Any) -> Any:
        """Append the audit as a fixity event (pass or fail) and, only if it passed, prove
        and sign (as :func:`preserve.integrity.record_audit` does locally)."""
        from preserve.integrity import AuditRecord, fixity_event_for
        from preserve.log.entries import AuditLeaf, utc_now

        signer = self.signer()
        with Lease(self.store, wait=60):
            tiles = TiledLog.open(self.store, LOG)
            leaf = AuditLeaf(fixity_event_for(report), utc_now())
            if signer is not None and self._is_archive_key(signer):
                leaf = leaf.signed_by(signer)
            tiles.append(leaf.to_bytes())
            outcome = "pass" if report.ok else "fail"
            if not report.ok:
                return AuditRecord(True, outcome, None, "the audit found integrity errors: "
                                   "nothing was signed")
            if signer is None:
                return AuditRecord(True, outcome, None, None)
            try:
                return AuditRecord(True, outcome, self.prove_and_sign(signer), None)
            except errors.PreserveError as exc:
                return AuditRecord(True, outcome, None, f"not signed: {exc}")

    def repair(self, *, dry_run: bool = False) -> list[str]:
        """Complete interrupted commits: append the leaves of committed manifests that a
        signed commit record names; delete records of commits that never reached their commit
        point and leftover staging objects. Returns what was (or would be) done."""
        done: list[str] = []
        with Lease(self.store, wait=60):
            tiles = TiledLog.open(self.store, LOG, readonly=dry_run)
            done += [f"rolled forward: {t}" for t in tiles.torn_tail]
            try:
                verifier: Verifier | None = self.place.read_verifier()
            except errors.SigningKeyError:
                verifier = None
            records, _bad = self.place.read_journal(verifier)
            logged = set()
            for _i, data in tiles.iter_entries():
                with contextlib.suppress(ValueError):
                    entry = parse_entry(data)
                    if isinstance(entry, ManifestLeaf | AdoptionLeaf):
                        logged.add(entry.capture_id)
            on_store = {n[len("manifests/"):-len(".json")] for n in self.manifest_names()}
            leaves: list[bytes] = []
            for record in records:
                if verifier is not None and not record.signed:
                    continue
                if not any(e.capture_id in on_store for e in record.entries):
                    done.append(f"remove commit record {record.path} (nothing committed)")
                    if not dry_run:
                        self.store.delete(PurePosixPath(record.path).as_posix())
                    continue
                for e in record.entries:
                    if e.capture_id in on_store and e.capture_id not in logged and \
                            e.kind in ("capture", "import"):
                        data = self.manifest_bytes(e.capture_id)
                        d = hash_bytes(data)
                        if e.matches(d.sha256, d.blake3, d.size):
                            leaves.append(manifest_leaf_for_bytes(data).to_bytes())
                            logged.add(e.capture_id)
                            done.append(f"log {e.capture_id} (signed commit record "
                                        f"{PurePosixPath(record.path).name})")
            if leaves and not dry_run:
                tiles.append_many(leaves)
            for info in self.store.list(STAGING):
                if not self.store.addressable(info.key):
                    done.append(f"kept {info.key}: a name preserve does not address (it may "
                                "reach another object); remove it by hand")
                    continue
                if staged_recently(info):
                    done.append(f"kept {info.key}: staged less than {STAGING_GRACE:.0f} s "
                                "ago, its capture may be committing; a later repair removes "
                                "it if it is still there")
                    continue
                done.append(f"remove staging object {info.key}")
                if not dry_run:
                    self.store.delete(info.key)
            restored = self._restore_latest(tiles, verifier, dry_run=dry_run)
            done += [restored] if restored else []
            signer = self.signer()
            if not dry_run and signer is not None and (leaves or tiles.torn_tail):
                try:
                    self.sign_if_intact(signer)
                except errors.PreserveError as exc:
                    done.append(f"not signed: {exc}")
        return done


    def _restore_latest(self, tiles: TiledLog, verifier: Verifier | None, *,
                        dry_run: bool) -> str | None:
        """As a local repair: put the newest stored checkpoint back as the ``checkpoint``
        copy when the copy is not it (W303): only one validly signed by the archive key,
        consistent with the log and not older than the copy, which is kept otherwise.
        Returns what was (or would be) done, None when the copy is fine."""
        if verifier is None or not self.store.exists(LATEST):
            return None
        names = self.place.checkpoint_names()
        text = self._checkpoint_text(LATEST)
        if names and text is not None and text == self._checkpoint_text(names[-1]):
            return None
        copy = self._valid_checkpoint(text, tiles, verifier)
        newest: tuple[str, str, int] | None = None
        for rel in names:
            stored = self._checkpoint_text(rel)
            found = self._valid_checkpoint(stored, tiles, verifier)
            if stored is not None and found is not None and (newest is None
                                                             or found.size >= newest[2]):
                newest = (rel, stored, found.size)
        if newest is None or (copy is not None and copy.size > newest[2]):
            return (f"kept {LATEST}: not a copy of the newest stored checkpoint, and no stored "
                    "one that is valid, consistent with the log and not older replaces it: "
                    "restore manifests/log/checkpoints/ from a copy, or verify with an "
                    "off-site checkpoint (--checkpoint)")
        if not dry_run:
            self.store.put_mutable(LATEST, newest[1].encode("utf-8"))
        return f"restore {LATEST} from {newest[0]} ({newest[2]} leaves)"

    def _checkpoint_text(self, rel: str) -> str | None:
        try:
            return self.place.read_checkpoint(rel)
        except errors.LogError:
            return None

    @staticmethod
    def _valid_checkpoint(text: str | None, tiles: TiledLog,
                          verifier: Verifier) -> Checkpoint | None:
        """The checkpoint ``text`` if signed by ``verifier`` and a prefix of ``tiles``."""
        if text is None:
            return None
        try:
            checkpoint = verify_checkpoint(text, verifier, origin=verifier.name)
            if checkpoint.size <= tiles.size and \
                    tiles.root_hash(checkpoint.size) == checkpoint.root_hash:
                return checkpoint
        except (NoteError, errors.PreserveError):
            pass
        return None


def _storage_error(exc: BaseException, what: str) -> BaseException:
    if isinstance(exc, errors.PreserveError):
        return exc
    if isinstance(exc, OSError):
        return errors.StorageError(f"{what}: {exc.strerror or exc}")
    return exc


def _partial(committed: Sequence[CommittedCapture], why: str) -> str:
    ids = ", ".join(c.manifest.capture_id for c in committed)
    return (f"{why}; committed but not logged yet: {ids} (a signed commit record names them: "
            "run preserve repair)")


def checkpoint_size(name: str) -> int | None:
    match = CHECKPOINT_NAME.match(PurePosixPath(name).name)
    return int(match.group(1)) if match else None


__all__ = ["UNVERIFIED", "RemoteArchive", "RemoteCapture", "RemotePlace", "place_name"]
