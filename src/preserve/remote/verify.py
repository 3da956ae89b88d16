"""``verify`` of an object-store archive: the same checks and finding codes as a local one.

Per manifest (:func:`check_remote_manifests`, what Dask workers run), the manifest and the
objects it names are streamed into a private temporary directory laid out like an archive
root, and checked there by :func:`preserve.audit.verify.check_manifests` — the very code of a
local verify, so codes, messages and paths are the same. One capture is on local disk at a
time. The sweep (objects no manifest names, leftovers in ``staging/``, unexpected names)
works on listings. The log (:func:`audit_remote_log`) is checked from its tiles, streamed:
tree against entries, entries against manifests, checkpoints (signature and consistency),
commit records, unproved leaves and the operator's known head (E3xx/W3xx), reusing the
local log audit's entry, proof and known-head checks.

It takes no lease, so another process may commit while it reads: the log is audited as the
log audit opens it, and what is read after that and not explained by it (a manifest no leaf
records, a newer checkpoint or known head, a torn tail, an object no checked manifest names)
is held against the log as it is later, once the committer holding the lease is gone
(:mod:`preserve.remote.meanwhile`): a commit made meanwhile is no finding, and only a proved
leaf explains anything.

It reads only; recording the audit (an audit leaf and a checkpoint) is
:meth:`RemoteArchive.record_audit`'s business.
"""

from __future__ import annotations

import contextlib
import math
import re
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

from preserve import errors
from preserve.audit.findings import Code, Finding, Report
from preserve.audit.merged import MergedChecks
from preserve.audit.verify import ManifestChecks, check_manifests, merge_checks
from preserve.hashing import hash_bytes
from preserve.log import audit as log_audit
from preserve.log.archive_log import read_checkpoint_file
from preserve.log.audit_index import AuditIndex
from preserve.log.entries import (
    MAX_MANIFEST_BYTES,
    AdoptionLeaf,
    ManifestLeaf,
    parse_entry,
)
from preserve.log.journal import CommitRecord, iter_entries
from preserve.log.keys import Verifier
from preserve.log.known_heads import KnownHeads, identity_for
from preserve.log.merkle import verify_consistency
from preserve.log.note import Checkpoint, NoteError, verify_checkpoint
from preserve.remote.lease import LEASE_SECONDS
from preserve.remote.meanwhile import Meanwhile
from preserve.remote.store import ObjectStore
from preserve.safe_io import loads_strict
from preserve.storage.layout import check_relative, is_hex_digest

if TYPE_CHECKING:
    from preserve.remote.archive import RemoteArchive, RemotePlace
    from preserve.remote.tiles import TiledLog

#: Largest object streamed to the temporary root for checking (bigger: E202 from its size).
MAX_MIRROR = 8 * 2**30


def _fetch(store: ObjectStore, rel: str, root: Path, limit: int) -> None:
    """Copy object ``rel`` to ``root/rel`` streamed (absent: nothing; too big: a sparse file
    of its size, so the size check reports it without reading it)."""
    target = root / rel
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        info = store.info(rel)
    except errors.NotFoundError:
        return
    if info.size > limit:
        with target.open("wb") as f:
            f.truncate(info.size)
        return
    with store.open(rel) as src, target.open("wb") as dst:
        shutil.copyfileobj(src, dst, 8 * 2**20)


def _head(path: Path, limit: int) -> bytes | None:
    """At most ``limit`` bytes of the mirrored object at ``path`` (None when there is none):
    one larger than a manifest is a sparse file of its stated size, never read whole."""
    if not path.is_file():
        return None
    with path.open("rb") as f:
        return f.read(limit)


def _named(data: bytes | None) -> list[tuple[str, int]]:
    """Objects a manifest names (read leniently; the real check is check_manifests)."""
    if data is None:
        return []
    try:
        doc = loads_strict(data, max_bytes=MAX_MANIFEST_BYTES, what="manifest")
    except errors.PreserveError:
        return []
    named: list[tuple[str, int]] = []
    if not isinstance(doc, dict):
        return named
    warc = doc.get("warc")
    if isinstance(warc, dict) and isinstance(warc.get("path"), str):
        size = warc.get("size")
        named.append((warc["path"], (size if isinstance(size, int) else 0) + 2**20))
    for key in ("text", "comments"):
        ref = doc.get(key)
        if isinstance(ref, dict) and isinstance(ref.get("path"), str):
            named.append((ref["path"], 64 * 2**20))
    safe = []
    for rel, limit in named:
        with contextlib.suppress(errors.PreserveError):
            safe.append((check_relative(rel, under="archive"), limit))
    return safe


def check_remote_manifests(store: ObjectStore, names: Sequence[str], *,
                           deep: bool = False) -> ManifestChecks:
    """Check manifests ``names`` (relative keys) and what they name, as a local verify does."""
    parts = []
    with tempfile.TemporaryDirectory(prefix="preserve-verify-") as tmp:
        root = Path(tmp)
        for rel in names:
            parts.append(_check_mirrored(store, rel, root, deep))
            for child in ("archive", "manifests"):
                shutil.rmtree(root / child, ignore_errors=True)
    report = Report(root=store.url, deep=deep)
    merged = merge_checks(report, parts)
    merged.findings = report.findings
    counted = next((part.stats for part in parts if part.stats), {})
    merged.stats = {k: getattr(report.stats, k) for k in counted}
    return merged


def _check_mirrored(store: ObjectStore, rel: str, root: Path, deep: bool) -> ManifestChecks:
    """Mirror manifest ``rel`` and what it names below ``root``, and check them there; a
    name no local file can have (NUL, newline, too long) is a finding, never mirrored."""
    if not store.addressable(rel):
        return _not_mirrored(rel, "object name holds a NUL byte, a newline or another control "
                             "character: not read, not checked (no manifest is named so)")
    try:
        (root / "manifests").mkdir(exist_ok=True)
        _fetch(store, rel, root, MAX_MANIFEST_BYTES + 1)
        data = _head(root / rel, MAX_MANIFEST_BYTES + 1)
        for named, limit in _named(data):
            _fetch(store, named, root, min(limit, MAX_MIRROR))
    except (OSError, ValueError) as exc:  # the local file system refuses the name
        return _not_mirrored(rel, f"cannot be copied to a local file to be checked: {exc}")
    part = check_manifests(root, [rel], deep=deep)
    if data is not None and len(data) <= MAX_MANIFEST_BYTES:  # the bytes checked: the log
        d = hash_bytes(data)  # audit holds them to the leaf
        part.manifest_digests[rel] = (d.sha256, d.blake3, d.size)
    return part


def _not_mirrored(rel: str, why: str) -> ManifestChecks:
    return ManifestChecks([Finding(Code.E101, rel, why)], {}, set(), set(), {}, set(), [])


#: The objects of the tiled log (below ``manifests/log/``): head, key, checkpoint copy,
#: commit records, hash tiles and entry bundles, full or partial. ``checkpoints/`` is swept
#: by :func:`sweep_findings`; anything else there is none preserve writes (W505, as locally).
_LOG_OBJECT = re.compile(
    r"(?:head\.json|key\.pub|checkpoint|checkpoints/.*"
    r"|journal/[0-9]{8}T[0-9]{6}Z-[0-9a-f]{12}\.txt"
    r"|tile/(?:entries|[0-9]{1,2})/(?:x[0-9]{3}/)*[0-9]{3}(?:\.p/(?:[1-9][0-9]?|1[0-9]{2}|2[0-4][0-9]|25[0-5]))?)\Z",
    re.ASCII | re.DOTALL)


def list_manifests(store: ObjectStore, report: Report) -> list[str]:
    """The manifests to check (other objects in manifests/, and objects in manifests/log/
    the log does not consist of, are reported here)."""
    names = []
    for info in store.list("manifests"):
        rel = info.key
        if rel.startswith("manifests/log/"):
            if not _LOG_OBJECT.match(rel, len("manifests/log/")):
                report.add(Finding(Code.W505, rel, "unexpected object in manifests/log/"))
            continue
        if rel.count("/") == 1 and rel.endswith(".json"):
            names.append(rel)  # one named so no local file can be: E101 when checked
        else:
            report.add(Finding(Code.W505, rel, "unexpected object in manifests/"))
    return names


def sweep(store: ObjectStore, report: Report, merged: MergedChecks) -> None:
    """Objects no manifest names, staging leftovers, unexpected names (as the local sweep)."""
    for finding in sweep_findings(store, merged):
        report.add(finding)


def sweep_findings(store: ObjectStore, merged: MergedChecks) -> list[Finding]:
    """The findings of :func:`sweep`, in its order."""
    from preserve.remote.archive import CHECKPOINTS, staged_recently

    found = [Finding(Code.W110, rel, f"previous capture {previous_id} has no manifest",
                     capture_id)
             for capture_id, previous_id, rel in merged.dangling_previous()]
    found += [Finding(Code.W505, info.key, "object nested in manifests/log/checkpoints/ is no "
                      "checkpoint (they are checkpoints/<size>-<time>.txt)")
              for info in store.list(CHECKPOINTS) if "/" in info.key[len(CHECKPOINTS) + 1:]]
    found += [Finding(Code.W503, info.key, "leftover staging object (an interrupted capture); "
                      "repair removes it" if store.addressable(info.key) else "object in "
                      "staging/ under a name preserve does not address (it may reach another "
                      "object); remove it by hand") for info in store.list("staging")
              if not (store.addressable(info.key) and staged_recently(info))]
    found += [f for info in store.list("archive") if (f := _archive_finding(info.key, merged))]
    return found


def _archive_finding(rel: str, merged: MergedChecks) -> Finding | None:
    """What the sweep says of object ``rel`` below ``archive/`` (None: a named object)."""
    if rel.startswith("archive/warc/"):
        return None if merged.names_warc(rel) else \
            Finding(Code.W501, rel, "no manifest names this WARC file")
    if not rel.startswith("archive/text/"):
        return Finding(Code.W505, rel, "unexpected entry in archive/")
    name = rel.rsplit("/", 1)[-1]
    if not (is_hex_digest(name) and rel == f"archive/text/{name[:2]}/{name[2:4]}/{name}"):
        return Finding(Code.W505, rel, "file in archive/text is not at archive/text/ab/cd/<hash>")
    return None if merged.names_text(name) else \
        Finding(Code.W502, rel, "no manifest names this text object")


#: What a commit in progress while verify lists its objects leaves for a while.
EXPLAINABLE = (Code.W501, Code.W502, Code.W503)


def explain_sweep(found: Sequence[Finding], meanwhile: Meanwhile, *, first: int,
                  checked: Mapping[str, tuple[str, str, int]], since: float) -> list[Finding]:
    """``found`` less what commits made while verify ran explain (see
    :mod:`preserve.remote.meanwhile`): a WARC file or text object named by a manifest logged
    from leaf ``first`` on whose files were not ``checked`` (proved, and the manifest its leaf
    records); a staging object the commit has removed since. ``since``: when the sweep
    began listing (``time.monotonic()``)."""
    suspects = [f for f in found if f.code in EXPLAINABLE]
    if not suspects:
        return list(found)
    meanwhile.settle(since)
    store = meanwhile.store
    named = _named_since(store, meanwhile, first, checked) \
        if any(f.code is not Code.W503 for f in suspects) else set()
    explained = {f.path for f in suspects if f.path in named
                 or (f.code is Code.W503 and not _exists(store, f.path))}
    return [f for f in found if f.code not in EXPLAINABLE or f.path not in explained]


def _named_since(store: ObjectStore, meanwhile: Meanwhile, first: int,
                 checked: Mapping[str, tuple[str, str, int]]) -> set[str]:
    """The objects named by the manifests logged from leaf ``first`` on (in the log as it
    is now) that verify did not check, each proved and the bytes its leaf records."""
    tiles = meanwhile.log()
    named: set[str] = set()
    if tiles is None:
        return named
    with contextlib.suppress(errors.PreserveError):
        for index, data in tiles.iter_entries(first):
            leaf = _manifest_leaf(data)
            if leaf is not None and leaf.path not in checked and meanwhile.proved(index, leaf):
                named.update(rel for rel, _limit in _named(_logged_bytes(store, leaf)))
    return named


def _manifest_leaf(data: bytes) -> ManifestLeaf | AdoptionLeaf | None:
    try:
        entry = parse_entry(data)
    except ValueError:
        return None
    return entry if isinstance(entry, ManifestLeaf | AdoptionLeaf) else None


def _logged_bytes(store: ObjectStore, leaf: ManifestLeaf | AdoptionLeaf) -> bytes | None:
    """The manifest ``leaf`` names, if it is the one the leaf records."""
    try:
        data = store.get(leaf.path, MAX_MANIFEST_BYTES)
    except errors.PreserveError:
        return None
    d = hash_bytes(data)
    return data if (d.sha256, d.blake3, d.size) == (leaf.sha256, leaf.blake3, leaf.size) \
        else None


def _exists(store: ObjectStore, rel: str) -> bool:
    """Whether object ``rel`` is there (True when that cannot be told: nothing explained)."""
    try:
        return store.exists(rel)
    except errors.PreserveError:
        return True


def logged_manifests(archive: RemoteArchive, meanwhile: Meanwhile | None = None) -> list[str]:
    """The manifest named by each leaf of the log as it is now (its leaf order; a leaf that
    is no manifest or adoption leaf: ''). Empty if the log cannot be read (the log audit
    reports it). ``meanwhile`` takes this log as its base."""
    names: list[str] = []
    try:
        with archive.place.open_log() as tiles:
            if meanwhile is not None:
                meanwhile.rebase(tiles)
            for _index, data in tiles.iter_entries():
                try:
                    entry = parse_entry(data)
                except ValueError:
                    entry = None
                names.append(entry.path if isinstance(entry, ManifestLeaf | AdoptionLeaf)
                             else "")
    except errors.PreserveError:
        return []
    return names


def missed(store: ObjectStore, logged: Sequence[str],
           checked: Mapping[str, tuple[str, str, int]]) -> list[str]:
    """The logged manifests whose files were not ``checked`` (hidden from the listing, say
    behind a delete marker) and that are there now: they are checked too. One still not
    there is E305 in the log audit."""
    names = sorted({rel for rel in logged if rel and rel not in checked})
    return [rel for rel in names if _listable(rel) and store.exists(rel)]


def _listable(rel: str) -> bool:
    """Whether ``rel`` is a name verify lists as a manifest (``manifests/<name>.json``)."""
    return (rel.startswith("manifests/") and rel.count("/") == 1 and rel.endswith(".json")
            and ObjectStore.addressable(rel))


#: A map of manifest chunks to their checks, yielded in the chunks' order (Dask's).
MapChunks = Callable[[list[list[str]]], Iterable[ManifestChecks]]


def _check_files(store: ObjectStore, report: Report, logged: Sequence[str], *, deep: bool,
                 progress: Callable[[int, int], None] | None,
                 map_chunks: MapChunks | None, chunk: int) -> MergedChecks:
    """Check the listed manifests and their files, then those of ``logged`` the listing
    missed; findings added to ``report`` in that order, each part merged as it comes (the
    caller closes what is returned)."""
    def check(names: list[str]) -> Iterator[ManifestChecks]:
        if not names:
            return
        chunks = [names[i:i + chunk] for i in range(0, len(names), chunk)]
        if map_chunks is not None:
            yield from map_chunks(chunks)
            return
        for done, part in enumerate(chunks, start=1):
            yield check_remote_manifests(store, part, deep=deep)
            if progress is not None:
                progress(min(done * chunk, len(names)), len(names))

    merged = MergedChecks(report)
    try:
        for part in check(list_manifests(store, report)):
            merged.add(part)
        for part in check(missed(store, logged, merged.checked)):
            merged.add(part)
    except BaseException:
        merged.close()
        raise
    return merged


def verify_remote(
    archive: RemoteArchive,
    *,
    deep: bool = False,
    progress: Callable[[int, int], None] | None = None,
    checkpoints: Sequence[Path] = (),
    trusted_key: str | None = None,
    record: bool = True,
    tsa_roots: Path | None = None,
    anchor_max_age: timedelta | None = None,
    map_chunks: MapChunks | None = None,
    chunk: int = 64,
    commit_wait: float | None = None,
    **_ignored: Any,
) -> Report:
    """Audit the archive; ``map_chunks`` checks chunks of manifests elsewhere (Dask).
    ``tsa_roots`` and ``anchor_max_age`` as for a local verify (E314, W307).
    ``commit_wait``: seconds, in all, verify waits for commits other processes have in
    progress before it reports what they may explain (default: the lease's lifetime; 0 when
    the caller holds the lease); see :mod:`preserve.remote.meanwhile`."""
    started = time.monotonic()
    store = archive.store
    store.invalidate()
    report = Report(root=store.url, deep=deep,
                    started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ"))
    meanwhile = Meanwhile(archive, wait=LEASE_SECONDS if commit_wait is None else commit_wait)
    logged = logged_manifests(archive, meanwhile)  # every leaf up to here: files checked
    with _check_files(store, report, logged, deep=deep, progress=progress,
                      map_chunks=map_chunks, chunk=chunk) as merged:
        swept = time.monotonic()
        found = sweep_findings(store, merged)
        check = None
        if tsa_roots is not None:
            from preserve.log.timestamp import TimestampChecker, load_roots_file

            check = TimestampChecker(load_roots_file(tsa_roots))
        audited = audit_remote_log(archive, external_checkpoints=checkpoints,
                                   trusted_key=trusted_key, heads=archive.heads,
                                   timestamp_check=check, anchor_max_age=anchor_max_age,
                                   checked=merged.checked, logged=len(logged),
                                   meanwhile=meanwhile)
        for finding in explain_sweep(found, meanwhile, first=len(logged),
                                     checked=merged.checked, since=swept):
            report.add(finding)
    for item in [*audited, *meanwhile.take_problems()]:
        report.add(Finding(Code.from_code(item.code), item.path, item.message))
    report.stats.duration_seconds = time.monotonic() - started
    archive.last_audit = _record(archive, report) if record else None
    return report


def _record(archive: RemoteArchive, report: Report) -> Any:
    """Record the audit (:meth:`RemoteArchive.record_audit`); if that cannot be done (the
    lease held by another committer, or lost while recording), the report still stands and
    says why it was not recorded, instead of being lost behind the error."""
    from preserve.integrity import AuditRecord

    try:
        return archive.record_audit(report)
    except errors.PreserveError as exc:
        return AuditRecord(not_recorded=f"recording it failed: {exc}")


def audit_remote_log(
    archive: RemoteArchive,
    *,
    external_checkpoints: Sequence[Path] = (),
    trusted_key: str | None = None,
    heads: KnownHeads | None = None,
    timestamp_check: log_audit.TimestampCheck | None = None,
    anchor_max_age: timedelta | None = None,
    checked: Mapping[str, tuple[str, str, int]] | None = None,
    logged: int = 0,
    meanwhile: Meanwhile | None = None,
) -> list[log_audit.LogFinding]:
    """The E3xx/W3xx checks of :func:`preserve.log.audit.verify_log`, from the tiles.
    ``checked``: the digests of the manifest bytes whose files were checked; each must be
    its leaf's as well (an object replaced between two reads is E306), and every manifest
    of the first ``logged`` leaves (the log when verify started) must be among them (E305;
    later leaves are commits made while verify ran). The log is audited as it is opened
    here; what is read after it and not explained by it is held against the log as it is
    later (``meanwhile``; default: a new one, waiting up to the lease's lifetime)."""
    from preserve.remote.archive import KEY_PUB, LOG

    later = meanwhile if meanwhile is not None else Meanwhile(archive)
    place = archive.place
    store = archive.store
    audit = log_audit._Audit(place.root, [])
    if not external_checkpoints:  # given ones are aged once checked, as locally
        log_audit._check_anchor_age(audit, (), anchor_max_age, None)
    opened = time.monotonic()
    try:
        tiles = place.open_log()
    except errors.PreserveError as exc:
        audit.add(log_audit.E_LOG_DAMAGED, f"{LOG}/head.json", str(exc))
        return audit.findings
    later.rebase(tiles)
    _check_tail(audit, tiles, later, opened)
    tree_ok = True
    for index, problem in tiles.check():
        tree_ok = False
        where = f"leaf {index}: " if index is not None else ""
        audit.add(log_audit.E_TREE_MISMATCH, f"{LOG}/tile", where + problem)
    # as locally: a key.pub missing from an archive this operator verified, or replaced, is
    # E313 (not a never-signed archive); checkpoints are checked with the trusted key if given
    verifier = log_audit._archive_key(
        audit, trusted_key, heads, bool(external_checkpoints),
        stored_key=lambda: place.read_verifier() if store.exists(KEY_PUB) else None,
        has_checkpoints=lambda: bool(place.checkpoint_names()))
    later.know_key(verifier)
    with AuditIndex() as leaves:
        return _audit_leaves(audit, archive, tiles, leaves, verifier, later, tree_ok,
                             external_checkpoints=external_checkpoints, heads=heads,
                             timestamp_check=timestamp_check, anchor_max_age=anchor_max_age,
                             checked=checked, logged=logged)


def _audit_leaves(
    audit: log_audit._Audit,
    archive: RemoteArchive,
    tiles: TiledLog,
    leaves: AuditIndex,
    verifier: Verifier | None,
    later: Meanwhile,
    tree_ok: bool,
    *,
    external_checkpoints: Sequence[Path],
    heads: KnownHeads | None,
    timestamp_check: log_audit.TimestampCheck | None,
    anchor_max_age: timedelta | None,
    checked: Mapping[str, tuple[str, str, int]] | None,
    logged: int,
) -> list[log_audit.LogFinding]:
    """The rest of :func:`audit_remote_log` once the log is open and its key known, what it
    keeps of every leaf kept in ``leaves``."""
    from preserve.remote.archive import CHECKPOINTS, LOG

    place = archive.place
    store = archive.store
    log_audit._check_entries(audit, tiles, leaves, verifier)  # type: ignore[arg-type]
    records, bad = place.read_journal(verifier)
    for item in bad:
        audit.add(log_audit.E_COMMIT_RECORD_INVALID, str(item.path), item.problem)
    listed = time.monotonic()
    on_store = {n[len("manifests/"):-len(".json")] for n in archive.manifest_names()}
    _check_records(audit, records, on_store, leaves, later, listed)
    _check_unlogged(audit, sorted(c for c in on_store if c not in leaves), checked, later,
                    listed)
    _check_logged(audit, store, leaves, on_store, checked, logged)
    if verifier is not None:
        covered, newest = _check_stored(audit, archive, tiles, verifier, timestamp_check,
                                        later)
        anchors: list[Path] = []  # the external checkpoints that hold
        for path in map(Path, external_checkpoints):
            found = _check_one(audit, tiles, verifier, str(path),  # bounded, a regular file
                               partial(read_checkpoint_file, path),  # (never a FIFO's wait)
                               log_audit.E_EXTERNAL_CHECKPOINT_INCONSISTENT, later)
            if found is not None:
                anchors.append(path)
                covered = max(covered, found[0].size)
        if anchors:
            log_audit._check_anchor_age(audit, anchors, anchor_max_age, None)
        if timestamp_check is not None:  # proof of time for the newest state, as locally
            if newest is None:
                audit.add(log_audit.E_TIMESTAMP_INVALID, CHECKPOINTS, "no valid signed "
                          "checkpoint, so no timestamp token, covers the log")
            elif not store.exists(newest[:-4] + ".tsr"):
                audit.add(log_audit.E_TIMESTAMP_INVALID, newest, "the newest checkpoint has "
                          "no RFC 3161 timestamp token (--tsa-roots asks for proof of time)")
        if covered < tiles.size:
            audit.add(log_audit.W_UNCHECKPOINTED, f"{LOG}/head.json", f"leaves {covered} to "
                      f"{tiles.size - 1} are not covered by a valid signed checkpoint")
        log_audit._check_unproved(audit, leaves, records, covered)
    else:
        log_audit._fail_anchors(audit, external_checkpoints, "the archive key is not available")
        if timestamp_check is not None:
            audit.add(log_audit.E_TIMESTAMP_INVALID, CHECKPOINTS, "no signed checkpoint, so "
                      "no timestamp token, covers the log (the archive has no key)")
    _check_known_head(audit, tiles, later, heads, verifier, tree_ok)
    return audit.findings + later.take_problems()


def _check_tail(audit: log_audit._Audit, tiles: TiledLog, later: Meanwhile,
                since: float) -> None:
    """W301 for the torn tail of ``tiles`` (opened at ``since``), unless it was an append
    in progress: the log covers it once the committer that held the lease is gone."""
    from preserve.remote.archive import LOG

    if not tiles.torn_tail:
        return
    end = tiles.size + tiles.tail_size
    later.settle(since)
    now = later.log(end, since=math.inf)
    if now is not None and now.size >= end:
        return
    for tail in tiles.torn_tail:
        audit.add(log_audit.W_TORN_TAIL, f"{LOG}/tile/entries", tail)


def _check_records(audit: log_audit._Audit, records: Sequence[CommitRecord],
                   on_store: set[str], leaves: AuditIndex, later: Meanwhile,
                   since: float) -> None:
    """W306 for a commit record none of whose manifests was committed (listed at
    ``since``), unless its commit was in progress: once the committer that held the lease
    is gone, the record is removed or one of its manifests is there."""
    idle = [r for r in records if all(e.capture_id not in on_store and e.capture_id not in
                                      leaves for e in r.entries)]
    if idle:
        later.settle(since)
    for record in idle:
        if _exists(later.store, str(record.path)) and not any(
                later.leaf(e.capture_id) or _exists(later.store, _manifest_rel(e.capture_id))
                for e in record.entries):
            audit.add(log_audit.W_INTERRUPTED_COMMIT, str(record.path), f"names "
                      f"{len(record.entries)} manifest(s), none committed (an interrupted "
                      "capture); repair removes it")


def _manifest_rel(capture_id: str) -> str:
    return f"manifests/{capture_id}.json"


def _check_unlogged(audit: log_audit._Audit, unlogged: Sequence[str],
                    checked: Mapping[str, tuple[str, str, int]] | None, later: Meanwhile,
                    since: float) -> None:
    """E304 (W305 when a signed commit record names it) for each manifest listed at
    ``since`` that no leaf records, unless a leaf appended while verify ran does (once the
    committer that held the lease is gone): then it is held to that leaf instead."""
    pending = [c for c in unlogged if not _explained(audit, c, checked, later)]
    if pending:
        later.settle(since)
        pending = [c for c in pending if not _explained(audit, c, checked, later)]
    if not pending:
        return
    verifier = later.verifier
    records, _bad = later.archive.place.read_journal(verifier)
    signed = {e.capture_id: e for _r, e in iter_entries(records, signed_only=True)}
    for capture_id in pending:
        rel = _manifest_rel(capture_id)
        entry = signed.get(capture_id)
        digests = _digests(later.store, rel)
        if entry is not None and digests is not None and entry.matches(*digests):
            audit.add(log_audit.W_AWAITING_LEAF, rel, "committed, but its log leaf is missing; "
                      "a signed commit record names it: preserve repair appends the leaf")
        else:
            audit.add(log_audit.E_MANIFEST_NOT_LOGGED, rel, "no log leaf records this manifest, "
                      "and no commit record signed by the archive key names it (planted, or "
                      "foreign)")


def _explained(audit: log_audit._Audit, capture_id: str,
               checked: Mapping[str, tuple[str, str, int]] | None, later: Meanwhile) -> bool:
    """Whether a leaf appended while verify ran records ``capture_id``'s manifest; if so,
    E316 unless it is proved, E306 unless the manifest is the one it records."""
    found = later.leaf(capture_id)
    if found is None:
        return False
    index, leaf = found
    rel = _manifest_rel(capture_id)
    meanwhile = f"leaf {index} (appended while verify ran)"
    if not later.proved(index, leaf):
        audit.add(log_audit.E_UNPROVED_LEAF, rel, f"{meanwhile} names it, but no commit record "
                  "signed by the archive key and no signed checkpoint proves it (planted, or "
                  "captured without the key)")
    digests = _digests(later.store, rel)
    expected = (leaf.sha256, leaf.blake3, leaf.size)
    if digests != expected:
        audit.add(log_audit.E_MANIFEST_CHANGED, rel, f"{meanwhile} has sha256 {leaf.sha256}, "
                  f"the object has {digests[0] if digests else 'none'}")
    elif checked is not None and checked.get(rel, expected) != expected:
        audit.add(log_audit.E_MANIFEST_CHANGED, rel, f"{meanwhile} has sha256 {leaf.sha256}, "
                  f"the object whose files were checked had {checked[rel][0]} (replaced while "
                  "verify read it)")
    return True


def _check_logged(audit: log_audit._Audit, store: ObjectStore, leaves: AuditIndex,
                  on_store: set[str], checked: Mapping[str, tuple[str, str, int]] | None,
                  logged: int) -> None:
    """E305 and E306 for the manifests the leaves name (see :func:`audit_remote_log`)."""
    for leaf, _on_disk in leaves.by_capture_id():
        index = leaf.leaf
        if leaf.capture_id not in on_store:
            audit.add(log_audit.E_LOGGED_MANIFEST_MISSING, leaf.path, f"leaf {index} names it")
            continue
        digests = _digests(store, leaf.path)
        expected = (leaf.sha256, leaf.blake3, leaf.size)
        if digests != expected:
            audit.add(log_audit.E_MANIFEST_CHANGED, leaf.path, f"leaf {index} has sha256 "
                      f"{leaf.sha256}, the object has {digests[0] if digests else 'none'}")
        elif checked is not None and checked.get(leaf.path, expected) != expected:
            audit.add(log_audit.E_MANIFEST_CHANGED, leaf.path, f"leaf {index} has sha256 "
                      f"{leaf.sha256}, the object whose files were checked had "
                      f"{checked[leaf.path][0]} (replaced while verify read it)")
        elif checked is not None and index < logged and leaf.path not in checked:
            audit.add(log_audit.E_LOGGED_MANIFEST_MISSING, leaf.path, f"leaf {index} names it, "
                      "but it was not there when verify checked the files it names (hidden, "
                      "then put back): they were not checked")


def _check_known_head(audit: log_audit._Audit, tiles: TiledLog, later: Meanwhile,
                      heads: KnownHeads | None, verifier: Verifier | None,
                      tree_ok: bool) -> None:
    """E315 as locally; a known head larger than the log audited (moved on by this
    operator's commit while verify ran) is held against the log as it is later."""
    from preserve.remote.archive import LOG

    if heads is None:
        return
    read = time.monotonic()
    try:
        head = heads.get(identity_for(verifier, audit.root), audit.root)
    except errors.LogError as exc:
        audit.add(log_audit.E_ROLLBACK, f"{LOG}/head.json", "your known head of this archive "
                  f"is unreadable: {exc}")
        return
    if head is None:
        return
    log = later.log(head.size, since=read) if head.size > tiles.size else None
    log_audit._check_head(audit, log or tiles, head, tree_ok)  # type: ignore[arg-type]


def _check_one(audit: log_audit._Audit, tiles: TiledLog, verifier: Verifier, rel: str,
               read: Callable[[], str], code: str,
               later: Meanwhile) -> tuple[Checkpoint, str] | None:
    """Checkpoint ``rel`` and its text (from ``read()``) if it is signed by ``verifier`` and
    the log extends it (one larger than ``tiles``, signed while verify ran: the log as it is
    later); else None, and E307 or ``code`` (E308/E309) said why."""
    read_at = time.monotonic()
    try:
        text = read()
        checkpoint = verify_checkpoint(text, verifier, origin=verifier.name)
    except (errors.PreserveError, NoteError, OSError, UnicodeDecodeError) as exc:
        audit.add(log_audit.E_CHECKPOINT_SIGNATURE, rel, str(exc))
        if code == log_audit.E_EXTERNAL_CHECKPOINT_INCONSISTENT:  # as locally
            audit.add(code, rel, "this anchor does not verify with the archive key")
        return None
    size = checkpoint.size
    log = tiles if size <= tiles.size else later.log(size, since=read_at)
    if log is None or size > log.size or not verify_consistency(
            size, log.size, checkpoint.root_hash, log.root_hash(),
            log.consistency_proof(size) if size else []):
        audit.add(code, rel, f"the log's first {size} leaves do not match this checkpoint")
        return None
    return checkpoint, text


def _check_stored(audit: log_audit._Audit, archive: RemoteArchive, tiles: TiledLog,
                  verifier: Verifier, timestamp_check: log_audit.TimestampCheck | None,
                  later: Meanwhile) -> tuple[int, str | None]:
    """As the local log audit: every stored checkpoint (E307 also when its name does not
    give its size), their tokens, then the ``checkpoint`` copy (W303 unless it is the newest
    stored one). Returns the size they cover and the newest stored checkpoint."""
    from preserve.remote.archive import checkpoint_size

    place = archive.place
    covered = 0
    newest: str | None = None
    listed = time.monotonic()
    names = place.checkpoint_names()
    for rel in names:
        checked = _check_one(audit, tiles, verifier, rel, partial(place.read_checkpoint, rel),
                             log_audit.E_CHECKPOINT_INCONSISTENT, later)
        if checked is None:
            continue
        found, text = checked
        if found.size >= covered:
            newest = rel
        covered = max(covered, found.size)
        if checkpoint_size(rel) != found.size:
            audit.add(log_audit.E_CHECKPOINT_SIGNATURE, rel, "file name does not match the "
                      "checkpoint size")
        if timestamp_check is not None:
            _check_token(audit, archive.store, rel, text, timestamp_check)
    covered = _check_latest(audit, archive, tiles, verifier, names, covered, later, listed)
    return covered, newest


def _check_latest(audit: log_audit._Audit, archive: RemoteArchive, tiles: TiledLog,
                  verifier: Verifier, names: Sequence[str], covered: int, later: Meanwhile,
                  listed: float) -> int:
    """W303 (first, then its own findings) when the ``checkpoint`` copy is not the newest
    stored checkpoint (``names``, listed at ``listed``) — nor, once the committer that held
    the lease is gone, one stored since; returns ``covered``, raised to the copy's size if
    it holds."""
    from preserve.remote.archive import LATEST

    place = archive.place
    if not archive.store.exists(LATEST):
        return covered
    newest = names[-1:]
    if not _stale(place, newest):
        return covered
    later.settle(listed)
    if not _stale(place, [n for n in place.checkpoint_names() if n >= "".join(newest)]):
        return covered
    at = len(audit.findings)
    found = _check_one(audit, tiles, verifier, LATEST, partial(place.read_checkpoint, LATEST),
                       log_audit.E_CHECKPOINT_INCONSISTENT, later)
    copy = found[0] if found is not None else None
    audit.findings.insert(at, log_audit.LogFinding(
        log_audit.W_LATEST_CHECKPOINT_STALE, LATEST,
        log_audit._stale_copy(copy, covered, tiles.size)))
    return max(covered, copy.size) if copy is not None else covered


def _stale(place: RemotePlace, stored: Sequence[str]) -> bool:
    """Whether the ``checkpoint`` copy is none of the ``stored`` checkpoints (or unreadable)."""
    from preserve.remote.archive import LATEST

    try:
        copy = place.read_checkpoint(LATEST)
        return all(place.read_checkpoint(rel) != copy for rel in stored)
    except errors.LogError:
        return True


def _check_token(audit: log_audit._Audit, store: ObjectStore, rel: str, text: str,
                 timestamp_check: log_audit.TimestampCheck) -> None:
    """E314 when the RFC 3161 token stored beside checkpoint ``rel`` does not verify."""
    from preserve.log.archive_log import MAX_TOKEN_FILE

    token = rel[:-4] + ".tsr"
    try:
        data = store.get(token, MAX_TOKEN_FILE)
    except errors.NotFoundError:
        return
    except errors.StorageError as exc:
        problem: str | None = str(exc)
    else:
        try:
            problem = timestamp_check(text.encode("utf-8"), data)
        except errors.LogError as exc:
            problem = str(exc)
    if problem is not None:
        audit.add(log_audit.E_TIMESTAMP_INVALID, token, problem)


def _digests(store: ObjectStore, rel: str) -> tuple[str, str, int] | None:
    try:
        d = hash_bytes(store.get(rel, MAX_MANIFEST_BYTES))
    except errors.PreserveError:
        return None
    return d.sha256, d.blake3, d.size


__all__ = ["audit_remote_log", "check_remote_manifests", "list_manifests",
           "logged_manifests", "missed", "sweep", "verify_remote"]
