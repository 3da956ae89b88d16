"""The operator's own memory of each archive's log: the last tree head they verified or signed.

Like a transparency-log client, an operator keeps, *outside* the archive (beside the private
key: ``$PRESERVE_CONFIG_HOME/heads/`` or ``~/.config/preserve/heads/``), the newest tree head
``(size, root)`` they have proved for each archive identity. A later verify, capture or
signing refuses a log that does not extend it, so restoring an older copy of an archive, or
rewriting its log and deleting its checkpoints, is caught without any off-site checkpoint —
as long as the attacker cannot also change this machine's files (off-site checkpoints remain
the defence against that).

A keyed archive is known by its identity, its log key (``<origin>+<key id>``), wherever it
lives: moved or copied to another path it keeps its anchor, and a copy that lags behind (a
backup, an exported bag) is held to the same head, so it is reported as not extending it (it
cannot be told from a rollback; ``preserve reset-head`` after restoring one on purpose). One
key signs one archive's log. Each head lists the paths where it was seen, so an archive whose
``key.pub`` disappeared or changed is still recognised by where it lives. An archive without
a key has no identity but its place: its head belongs to the real path of its root. Heads
written per path by earlier versions (``preserve-known-head/1``) are read as the newest head
of their identity and replaced on the next advance. ``forget`` resets a head deliberately.

This module stores and loads heads; it does not decide whether a log extends one (see
:meth:`preserve.log.storage.TransparencyLog.verify_extension`).
"""

from __future__ import annotations

import hashlib
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import LogError
from ..safe_io import loads_strict, read_regular, write_atomic
from .entries import canonical_json, utc_now
from .keys import Verifier, config_home

FORMAT = "preserve-known-head/2"
LEGACY_FORMAT = "preserve-known-head/1"  # one head per identity *and* real path
UNSIGNED = "unsigned"
MAX_HEAD_FILE = 64 * 1024
MAX_PATHS = 16  # places a head remembers (the newest last)
_SAFE = re.compile(r"[^A-Za-z0-9._-]")
_HEX64 = re.compile(r"^[0-9a-f]{64}\Z")


@dataclass(frozen=True, slots=True)
class KnownHead:
    """The newest tree head an operator proved for one archive identity."""

    identity: str
    path: str  # the real path of the archive root where it was last proved
    size: int
    root: bytes
    updated: str
    paths: tuple[str, ...] = ()  # every real path where it was proved (the newest last)
    legacy: bool = False  # stored per path by an earlier version


def identity_for(verifier: Verifier | None, root: Path) -> str:
    """``<origin>+<key id hex>`` for a keyed archive, ``unsigned`` for one without a key."""
    if verifier is not None:
        return f"{verifier.name}+{verifier.key_id.hex()}"
    return UNSIGNED


def _real(root: Path) -> str:
    return str(Path(root).resolve())


def _digest(identity: str, real: str | None = None) -> str:
    """The file-name digest of an identity (and of a place, for a per-path head)."""
    text = identity if real is None else f"{identity}\n{real}"
    return hashlib.sha256(text.encode("utf-8", "surrogateescape")).hexdigest()[:20]


class KnownHeads:
    """The heads directory of this operator: one JSON file per archive identity (per real
    path for archives without a key)."""

    def __init__(self, directory: Path | None = None) -> None:
        self.directory = Path(directory) if directory is not None else config_home() / "heads"
        # file name -> ((device, inode, mtime, size) it had, the head read from it): a head
        # file is parsed again only when it was replaced or changed (preserve replaces them
        # by rename: a new inode), so asking for every head is a directory scan, not a read
        # of every file (a batch asks once a group)
        self._parsed: dict[str, tuple[tuple[int, int, int, int], KnownHead]] = {}

    def _file(self, identity: str, root: Path) -> Path:
        if identity == UNSIGNED:
            return self._legacy_file(identity, _real(root))
        return self.directory / f"{_SAFE.sub('_', identity)[:60]}-{_digest(identity)}.json"

    def get(self, identity: str, root: Path) -> KnownHead | None:
        """The stored head of ``identity`` (of the archive at ``root`` when it has no key),
        or None. LogError if it is damaged."""
        path = self._file(identity, root)
        if path.exists() or path.is_symlink():
            head = self._load(path)
            if head.identity != identity or (identity == UNSIGNED and head.path != _real(root)):
                raise LogError(f"{path} holds the head of {head.identity!r} at {head.path!r}")
            return head
        return self._legacy(identity)

    def _legacy(self, identity: str) -> KnownHead | None:
        """The newest head an earlier version stored for ``identity`` at any path."""
        if identity == UNSIGNED:
            return None
        found = [head for _path, head in self._all() if head.legacy and head.identity == identity]
        return max(found, key=lambda head: (head.size, head.updated), default=None)

    def _all(self) -> list[tuple[Path, KnownHead]]:
        """Every readable head file (damaged ones are skipped)."""
        if not self.directory.is_dir():
            return []
        try:
            with os.scandir(self.directory) as listing:
                entries = sorted((e for e in listing if e.name.endswith(".json")),
                                 key=lambda e: e.name)
        except OSError:
            return []
        found = []
        for entry in entries:
            path = Path(entry.path)
            try:
                st = entry.stat(follow_symlinks=False)
            except OSError:
                continue
            version = (st.st_dev, st.st_ino, st.st_mtime_ns, st.st_size)
            parsed = self._parsed.get(entry.name)
            if parsed is not None and parsed[0] == version and stat.S_ISREG(st.st_mode):
                found.append((path, parsed[1]))
                continue
            try:
                head = self._load(path)
            except LogError:
                continue
            self._parsed[entry.name] = (version, head)
            found.append((path, head))
        return found

    def _load(self, path: Path) -> KnownHead:
        doc = loads_strict(read_regular(path, MAX_HEAD_FILE, what="known head", error=LogError),
                           max_bytes=MAX_HEAD_FILE, max_depth=2, what=str(path), error=LogError)
        if not isinstance(doc, dict) or doc.get("format") not in (FORMAT, LEGACY_FORMAT):
            raise LogError(f"{path} is not a {FORMAT} file")
        identity, size, root = doc.get("identity"), doc.get("size"), doc.get("root")
        updated, where = doc.get("updated"), doc.get("path")
        paths = doc.get("paths", [where])
        if not (isinstance(identity, str) and isinstance(size, int)
                and not isinstance(size, bool) and size >= 0 and isinstance(root, str)
                and _HEX64.match(root) and isinstance(updated, str) and isinstance(where, str)
                and isinstance(paths, list) and all(isinstance(p, str) for p in paths)):
            raise LogError(f"{path} is malformed")
        return KnownHead(identity, where, size, bytes.fromhex(root), updated,
                         tuple(paths[-MAX_PATHS:]), doc["format"] == LEGACY_FORMAT)

    def for_path(self, root: Path) -> list[KnownHead]:
        """Heads of keyed identities proved at ``root`` (to notice a removed or replaced key)."""
        real = _real(root)
        return [head for _path, head in self._all()
                if real in head.paths and head.identity != UNSIGNED]

    def others_at(self, root: Path, identity: str) -> list[KnownHead]:
        """Keyed heads known at ``root`` under another identity than ``identity`` (the
        archive's key was replaced or removed, or another archive now lives at that path)."""
        return [head for head in self.for_path(root) if head.identity != identity]

    def advance(self, identity: str, size: int, root_hash: bytes, archive_root: Path) -> None:
        """Record ``(size, root_hash)`` as the newest proved head of ``identity``, seen at
        ``archive_root``. The caller has proved that it extends the stored head."""
        real = _real(archive_root)
        path = self._file(identity, archive_root)
        migrating = not path.exists()  # only then can per-path heads of it be left over
        try:
            seen = self.get(identity, archive_root)
        except LogError:
            seen = None
        paths = [p for p in (seen.paths if seen is not None else ()) if p != real] + [real]
        self._write(identity, size, root_hash, paths, path, utc_now())
        if migrating:
            self._drop_legacy(identity)

    def _write(self, identity: str, size: int, root_hash: bytes, paths: list[str],
               path: Path, updated: str) -> None:
        doc = {"format": FORMAT, "identity": identity, "path": paths[-1],
               "paths": paths[-MAX_PATHS:], "root": root_hash.hex(), "size": size,
               "updated": updated}
        try:
            os.makedirs(self.directory, mode=0o700, exist_ok=True)
        except OSError as exc:
            raise LogError(f"cannot create {self.directory}: {exc.strerror or exc}") from exc
        write_atomic(path, canonical_json(doc) + b"\n", mode=0o600)

    def _drop_legacy(self, identity: str) -> None:
        """Remove the per-path heads of ``identity`` an earlier version wrote (migrated)."""
        if identity == UNSIGNED:
            return
        for path, head in self._all():
            if head.legacy and head.identity == identity:
                try:
                    path.unlink()
                except OSError as exc:
                    raise LogError(f"cannot remove a known head: {exc}") from exc

    def forget(self, identity: str, root: Path) -> KnownHead | None:
        """Delete the stored head of ``identity`` (wherever it was seen); return it (None:
        there was none)."""
        head = self.get(identity, root)
        if head is not None:
            try:
                self._file(identity, root).unlink(missing_ok=True)
            except OSError as exc:
                raise LogError(f"cannot remove a known head: {exc}") from exc
            self._drop_legacy(identity)
        return head

    def leave(self, identity: str, root: Path) -> None:
        """Forget that ``identity`` was seen at ``root`` (another archive, or another key,
        lives there now), keeping its head for the other places it was seen."""
        real = _real(root)
        try:
            if identity != UNSIGNED:
                self._legacy_file(identity, real).unlink(missing_ok=True)
            path = self._file(identity, root)
            if not path.exists():
                return
            head = self._load(path)
            rest = [p for p in head.paths if p != real]
            if not rest:
                path.unlink()
                return
        except OSError as exc:
            raise LogError(f"cannot change a known head: {exc}") from exc
        self._write(identity, head.size, head.root, rest, path, head.updated)

    def _legacy_file(self, identity: str, real: str) -> Path:
        """Where an earlier version kept the head of ``identity`` at ``real``."""
        return self.directory / f"{_SAFE.sub('_', identity)[:60]}-{_digest(identity, real)}.json"


__all__ = ["FORMAT", "LEGACY_FORMAT", "KnownHead", "KnownHeads", "identity_for"]
