"""The catalog: a derived SQLite index of the committed captures, for ``list``, ``history`` and
the ``previous`` captures of a URL, at any archive size.

``archive/index/catalog.sqlite3`` holds one row per logged manifest (capture id, requested and
final URL and the SHA-256 keys of their identities, start time, status, title, text hash, and
the SHA-256 of the manifest bytes) and the log size it was built up to. It is **derived data,
never trusted**:

* it is brought up to date from the integrity log, not from itself: when the log has grown
  past the size the catalog records, the rows of the newer manifest leaves are read from their
  manifests (O(new leaves)); a catalog that is missing, damaged, of another version, or ahead
  of the log (a restored copy) is rebuilt from the log and the manifests;
* whatever it returns for a new capture's ``previous`` is re-checked against the log and the
  manifests (each row names the leaf its manifest was logged as; that leaf must be a manifest
  leaf of that capture, the manifest must hash to it and name that URL), so a crafted row —
  even one pointing at a manifest planted beside it — can neither put false provenance into
  a signed manifest nor make a capture fail;
* ``verify`` compares it with the manifests, each row's URL keys with its URLs (finding W507:
  a changed key would hide a capture from ``history``), and ``repair`` rebuilds it; a write
  cut short by a crash (a hot journal) is compared as SQLite will roll it back.

Only a regular file is opened (never a symlink or FIFO). Writes are made under the archive
lock, without fsync: a torn catalog is rebuilt. This module reads manifests and the log; it
writes nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Container, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar, TypeGuard

from preserve._lazy import lazy_module
from preserve.errors import PreserveError
from preserve.storage.layout import ArchiveLayout

if TYPE_CHECKING:
    from preserve.storage import manifest as manifest_mod
    from preserve.storage.manifest import Manifest, ManifestSummary
else:  # only a (re)build reads manifests; ``list`` does not need the parser
    manifest_mod = lazy_module("preserve.storage.manifest")

INDEX_DIR = "archive/index"
CATALOG_FILE = "catalog.sqlite3"
#: 3: ``url_key`` and ``final_key`` hash a URL's identity (:func:`url_key`), not its spelling.
#: A catalog of another version is rebuilt from the log when it is next used.
SCHEMA_VERSION = 3
MAX_TITLE = 500
#: Leaves a sync reads before it commits the rows found (a rebuild of 100,000 captures holds
#: this many rows at most).
SYNC_BATCH = 10_000
#: The most a catalog and its hot journal may hold for verify to copy them and check the
#: catalog as it will be rolled back (a catalog of 100,000 captures is 75 MB); a file with
#: holes (a planted sparse one, which a copy would fill in) is not copied either.
MAX_ROLLBACK_COPY = 4 << 30
#: The fields of :meth:`Catalog.summaries` rows, in order (those of ``preserve list``).
SUMMARY_FIELDS = ("capture_id", "requested_url", "final_url", "started", "http_status",
                  "status", "title", "text_blake3")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS captures (
    capture_id TEXT PRIMARY KEY,
    url_key TEXT NOT NULL,
    final_key TEXT NOT NULL,
    requested_url TEXT NOT NULL,
    final_url TEXT NOT NULL,
    started TEXT NOT NULL,
    http_status INTEGER NOT NULL,
    status TEXT NOT NULL,
    title TEXT,
    text_blake3 TEXT,
    manifest_sha256 TEXT NOT NULL,
    leaf_index INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS captures_url ON captures (url_key);
CREATE INDEX IF NOT EXISTS captures_final ON captures (final_key);
CREATE INDEX IF NOT EXISTS captures_started ON captures (started, capture_id);
"""


def _count(value: str | None) -> TypeGuard[str]:
    """Whether a ``meta`` value is a count as the catalog writes them: ASCII digits, not too
    many (``str.isdigit`` also takes '²', and ``int`` refuses it or 5,000 digits: a catalog
    doctored so must be rebuilt, not crash the command that reads it)."""
    return value is not None and value.isascii() and value.isdigit() and len(value) <= 18


def url_key(url: str) -> str:
    """The catalog key of a URL: SHA-256 hex of its identity's UTF-8 bytes
    (:func:`~preserve.capture.urls.url_identity`: every spelling of a URL has one key, so a
    lookup finds what another tool recorded as ``HTTP://Example.org:80/%7ea``)."""
    from preserve.capture.urls import url_identity  # noqa: PLC0415 - not for ``list``

    return hashlib.sha256(url_identity(url).encode("utf-8", "surrogatepass")).hexdigest()


def _keys(row: CatalogRow) -> tuple[str, str]:
    """The ``url_key`` and ``final_key`` of ``row`` (one computation when they are equal)."""
    key = url_key(row.requested_url)
    return key, key if row.final_url == row.requested_url else url_key(row.final_url)


@dataclass(frozen=True, slots=True)
class CatalogRow:
    """One capture as the catalog lists it."""

    capture_id: str
    requested_url: str
    final_url: str
    started: str
    http_status: int
    status: str
    title: str | None
    text_blake3: str | None
    manifest_sha256: str

    @classmethod
    def of(cls, manifest: Manifest, manifest_sha256: str) -> CatalogRow:
        title = manifest.extraction.title
        return cls(
            capture_id=manifest.capture_id,
            requested_url=manifest.requested_url,
            final_url=manifest.final_url,
            started=manifest.started,
            http_status=manifest.http.status,
            status=manifest.status,
            title=title[:MAX_TITLE] if title else title,
            text_blake3=manifest.text.blake3 if manifest.text else None,
            manifest_sha256=manifest_sha256,
        )

    @classmethod
    def of_summary(cls, summary: ManifestSummary, manifest_sha256: str) -> CatalogRow:
        """The row :meth:`of` gives for the manifest ``summary`` was read from."""
        capture_id, requested, final, started, http_status, status, title, text = summary
        return cls(capture_id, requested, final, started, http_status, status,
                   title[:MAX_TITLE] if title else title, text, manifest_sha256)


@dataclass(frozen=True, slots=True)
class JsonRowLayout:
    """How a JSON text prints one summary row: for each ``(literal, field)`` of ``parts``
    the literal then the field's value as JSON, then ``end``; strings quoted by ``quote``
    (e.g. ``json.encoder.encode_basestring``), integers as ``repr``, None as ``null``."""

    parts: tuple[tuple[str, str], ...]
    end: str
    quote: Callable[[str], str]


#: Every class of character JSON string quoting treats apart: the C0 controls (with their
#: short escapes), quote, backslash, solidus, DEL, C1 controls, the line and paragraph
#: separators, non-ASCII characters of 2, 3 and 4 UTF-8 bytes.
_QUOTE_PROBE = ("".join(map(chr, range(0x20))) + '"\\/ ~\x7f\x80\x9f\u2028\u2029\xe9\u20ac'
                "\U0001d11e")


class CatalogError(PreserveError):
    """The catalog cannot be used (it is rebuilt)."""


class Catalog:
    """The catalog of one archive. Writers hold the archive lock."""

    def __init__(self, layout: ArchiveLayout) -> None:
        self.layout = layout
        self.path = layout.root / INDEX_DIR / CATALOG_FILE
        self._db: sqlite3.Connection | None = None
        self._connected: tuple[int, int] | None = None

    # --- opening ------------------------------------------------------------------------------

    def _identity(self) -> tuple[int, int] | None:
        try:
            st = self.path.lstat()
        except OSError:
            return None
        return st.st_dev, st.st_ino

    def _connect(self) -> sqlite3.Connection:
        if self._db is not None:
            if self._identity() == self._connected:
                return self._db
            self.close()  # the file was replaced (a rebuild by another process): reopen
        directory = self.path.parent
        if directory.is_symlink() or self.path.is_symlink():
            raise CatalogError(f"{directory} or {self.path.name} is a symlink; not used")
        try:
            directory.mkdir(parents=True, exist_ok=True)
            if self.path.exists() and not stat.S_ISREG(self.path.lstat().st_mode):
                raise CatalogError(f"{self.path} is not a regular file; not used")
            db = sqlite3.connect(self.path, timeout=60, isolation_level=None,
                                 check_same_thread=False)
        except (OSError, sqlite3.Error) as exc:
            raise CatalogError(f"cannot open the catalog {self.path}: {exc}") from exc
        try:
            db.execute("PRAGMA trusted_schema = OFF")
            db.execute("PRAGMA cell_size_check = ON")
            db.execute("PRAGMA synchronous = OFF")  # derived data: rebuilt if torn
            db.executescript(_SCHEMA)
            version = self._meta(db, "version")
            if version is None:
                db.execute("INSERT OR REPLACE INTO meta VALUES ('version', ?)",
                           (str(SCHEMA_VERSION),))
            elif version != str(SCHEMA_VERSION):
                raise CatalogError(f"catalog version {version!r} is not {SCHEMA_VERSION}")
        except CatalogError:
            db.close()
            raise
        except sqlite3.Error as exc:
            db.close()
            raise CatalogError(f"the catalog {self.path} is unusable: {exc}") from exc
        self._db = db
        self._connected = self._identity()
        return db

    @staticmethod
    def _meta(db: sqlite3.Connection, key: str) -> str | None:
        try:
            row = db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc
        return str(row[0]) if row is not None else None

    def close(self) -> None:
        if self._db is not None:
            self._db.close()
            self._db = None

    def _discard(self) -> None:
        """Drop a catalog that cannot be used; it is rebuilt from the log. Nothing is removed
        when ``archive/index`` is not a plain directory (a symlink would lead the removal out
        of the archive): CatalogError, and the catalog stays unusable until it is mended."""
        self.close()
        try:
            plain = stat.S_ISDIR(self.path.parent.lstat().st_mode)
        except FileNotFoundError:
            return
        except OSError as exc:
            raise CatalogError(f"cannot check {self.path.parent}: {exc}") from exc
        if not plain:
            raise CatalogError(f"{self.path.parent} is not a plain directory; not used")
        for suffix in ("", "-wal", "-shm", "-journal"):
            with contextlib.suppress(OSError):
                (self.path.parent / (self.path.name + suffix)).unlink()

    # --- keeping it current -------------------------------------------------------------------

    def indexed_size(self) -> int:
        value = self._meta(self._connect(), "log_size")
        return int(value) if _count(value) else 0

    def sync(self, log_size: int, leaves: Iterable[tuple[int, str]]) -> None:
        """Bring the catalog up to ``log_size`` leaves. ``leaves`` yields ``(leaf index,
        capture id)`` of the manifest leaves from :meth:`indexed_size` on (rebuilds start at
        0: call again with every leaf when this raises :class:`CatalogError`)."""
        db = self._connect()
        rows = []
        leaf_count = 0
        for index, capture_id in leaves:
            leaf_count += 1
            row = self._row_from_manifest(capture_id)
            if row is not None:
                rows.append((row, index))
            if leaf_count == SYNC_BATCH:  # up to this leaf: what a (re)build holds is bounded
                self._commit_rows(db, rows, index + 1, leaf_count)
                rows, leaf_count = [], 0
        self._commit_rows(db, rows, log_size, leaf_count)

    def _commit_rows(self, db: sqlite3.Connection, rows: list[tuple[CatalogRow, int]],
                     log_size: int, new_leaves: int) -> None:
        try:
            db.execute("BEGIN IMMEDIATE")
            logged = self._meta(db, "logged")
            before = int(logged) if _count(logged) else 0
            self._insert(db, rows)
            db.execute("INSERT OR REPLACE INTO meta VALUES ('log_size', ?)", (str(log_size),))
            db.execute("INSERT OR REPLACE INTO meta VALUES ('logged', ?)",
                       (str(before + new_leaves),))
            db.execute("COMMIT")
        except (sqlite3.Error, CatalogError) as exc:
            with contextlib.suppress(sqlite3.Error):
                db.execute("ROLLBACK")
            raise CatalogError(f"cannot update the catalog: {exc}") from exc
        self._check_count(db)

    def check(self) -> None:
        """CatalogError if the catalog lists more captures than the log ever gave it."""
        try:
            self._check_count(self._connect())
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc

    @staticmethod
    def _check_count(db: sqlite3.Connection) -> None:
        """Rows are only ever added for manifests in the log; more rows than the log has
        captures means rows were planted: the catalog is thrown away (CatalogError)."""
        logged = Catalog._meta(db, "logged")
        try:
            count = int(db.execute("SELECT count(*) FROM captures").fetchone()[0])
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc
        if _count(logged) and count > int(logged):
            raise CatalogError(f"the catalog has {count} rows for {logged} logged captures")

    def reset(self) -> None:
        """Forget everything (the next :meth:`sync` from 0 rebuilds it)."""
        self._discard()
        self._connect()

    def _row_from_manifest(self, capture_id: str) -> CatalogRow | None:
        """The row of the manifest of ``capture_id``: its listed fields, checked as the
        manifest parser checks them (:func:`~preserve.storage.manifest.summary_of`); None
        if the file is missing, unreadable, or another capture's."""
        try:
            path = self.layout.manifest_path_for(capture_id)
            data = manifest_mod.read_manifest_bytes(path)
            summary = manifest_mod.summary_of(data)
        except (PreserveError, OSError):
            return None  # verify reports the manifest; the catalog simply lacks it
        if summary[0] != capture_id:
            return None
        return CatalogRow.of_summary(summary, hashlib.sha256(data).hexdigest())

    @staticmethod
    def _insert(db: sqlite3.Connection, rows: Iterable[tuple[CatalogRow, int]]) -> None:
        db.executemany(
            "INSERT OR REPLACE INTO captures VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            [(r.capture_id, *_keys(r), r.requested_url, r.final_url, r.started,
              r.http_status, r.status, r.title, r.text_blake3, r.manifest_sha256, index)
             for r, index in rows],
        )

    def add(self, rows: Sequence[CatalogRow], log_size: int) -> None:
        """Record just-committed captures, whose leaves, in this order, were the last ones
        appended and brought the log to ``log_size`` (caller holds the lock, and the catalog
        was up to date before them)."""
        first = log_size - len(rows)
        self._commit_rows(self._connect(), [(row, first + i) for i, row in enumerate(rows)],
                          log_size, len(rows))

    # --- reading ------------------------------------------------------------------------------

    def _query(self, sql: str, params: tuple[object, ...] = ()) -> Iterator[CatalogRow]:
        try:
            cursor = self._connect().execute(sql, params)
            for row in cursor:
                yield CatalogRow(*row)
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc

    _COLUMNS: ClassVar[str] = ("capture_id, requested_url, final_url, started, http_status, "
                               "status, title, text_blake3, manifest_sha256")

    def rows(self) -> Iterator[CatalogRow]:
        """Every capture, oldest first."""
        return self._query(f"SELECT {self._COLUMNS} FROM captures ORDER BY started, capture_id")

    _SUMMARY: ClassVar[str] = ("capture_id, requested_url, final_url, started, http_status, "
                               "status, title, text_blake3")

    def summary_chunks(self, size: int, layout: JsonRowLayout | None = None,
                       ) -> Iterator[list[tuple[object, ...] | str]]:
        """Every capture, oldest first, as plain tuples of the :data:`SUMMARY_FIELDS` (what
        ``preserve list`` prints: no object per row), ``size`` rows at a time from one
        statement (one snapshot of the catalog), so that no caller holds them all. The
        values are the catalog's, checked by ``verify`` like :meth:`rows`.

        With ``layout``, SQLite renders each row's JSON text itself (``list --json``: a
        third less time at 100,000 captures) when it can do so exactly as ``layout`` says
        (see :meth:`_rendering`); a row it cannot render (a value not of its column's type:
        a tampered catalog) comes as its tuple, for the caller to render."""
        try:
            db = self._connect()
            rendering = self._rendering(db, layout) if layout is not None else None
            if rendering is None:
                cursor = db.execute(
                    f"SELECT {self._SUMMARY} FROM captures ORDER BY started, capture_id")
                while chunk := cursor.fetchmany(size):
                    yield chunk
                return
            cursor = db.execute(*rendering)
            while chunk := cursor.fetchmany(size):
                yield [text if text is not None else self._summary_at(db, rowid)
                       for text, rowid in chunk]
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc

    #: The SQLite type each summary column holds when written by preserve.
    _SUMMARY_TYPES: ClassVar[dict[str, str]] = {
        "capture_id": "'text'", "requested_url": "'text'", "final_url": "'text'",
        "started": "'text'", "http_status": "'integer'", "status": "'text'",
        "title": "'text', 'null'", "text_blake3": "'text', 'null'"}

    def _rendering(self, db: sqlite3.Connection, layout: JsonRowLayout,
                   ) -> tuple[str, list[str]] | None:
        """The statement (and its parameters) that renders each summary row as ``layout``
        says, or None when this SQLite would not render it byte for byte so: no JSON
        functions, or a ``json_quote`` that escapes differently from ``layout.quote``
        (checked on a string holding every class of character JSON quoting treats apart)."""
        fields = [name for _, name in layout.parts]
        if not set(fields) <= self._SUMMARY_TYPES.keys():
            return None
        try:
            quoted, number = db.execute("SELECT json_quote(?), json_quote(?)",
                                        (_QUOTE_PROBE, -(2**63))).fetchone()
        except sqlite3.Error:
            return None
        if quoted != layout.quote(_QUOTE_PROBE) or number != str(-(2**63)):
            return None
        guard = " AND ".join(f"typeof({name}) IN ({self._SUMMARY_TYPES[name]})"
                             for name in self._SUMMARY_TYPES)
        text = " || ".join(f"? || json_quote({name})" for name in fields)
        sql = (f"SELECT CASE WHEN {guard} THEN {text} || ? END, rowid FROM captures "
               "ORDER BY started, capture_id")
        return sql, [literal for literal, _ in layout.parts] + [layout.end]

    def _summary_at(self, db: sqlite3.Connection, rowid: int) -> tuple[object, ...]:
        row = db.execute(f"SELECT {self._SUMMARY} FROM captures WHERE rowid = ?",
                         (rowid,)).fetchone()
        if row is None:  # never: one snapshot; a row cannot vanish under its statement
            raise CatalogError("the catalog changed while it was read")
        return tuple(row)

    def of_url(self, url: str, *, final_too: bool) -> list[CatalogRow]:
        """Captures whose requested (and, with ``final_too``, final) URL is ``url``, however
        either was spelled (one :func:`url_key`)."""
        key = url_key(url)
        where = "url_key = ? OR final_key = ?" if final_too else "url_key = ? AND ? = ?"
        params = (key, key) if final_too else (key, 1, 1)
        return list(self._query(f"SELECT {self._COLUMNS} FROM captures WHERE {where} "
                                "ORDER BY started, capture_id", params))

    def leaves_of_url(self, url: str) -> list[tuple[str, int]]:
        """``(capture id, leaf index)`` of the captures whose requested URL is ``url`` (any
        spelling of it), as the catalog says: candidates only, to be checked against the log
        and the manifests."""
        try:
            return [(str(r[0]), int(r[1])) for r in self._connect().execute(
                "SELECT capture_id, leaf_index FROM captures WHERE url_key = ? "
                "ORDER BY started, capture_id", (url_key(url),))]
        except (sqlite3.Error, TypeError, ValueError) as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc

    def leaf_of(self, capture_id: str) -> int | None:
        """The leaf index the catalog gives for ``capture_id`` (None: not in it, or the
        catalog cannot be read): a candidate, to be checked against the log. Opened read-only
        (nothing is created or written: reading commands and exports leave the archive as
        they found it), never through a link."""
        try:
            if self.path.parent.is_symlink() or not stat.S_ISREG(self.path.lstat().st_mode):
                return None
            db = sqlite3.connect(f"{self.path.resolve().as_uri()}?mode=ro", uri=True,
                                 timeout=5, check_same_thread=False)
        except (OSError, ValueError, sqlite3.Error):
            return None
        try:
            db.execute("PRAGMA trusted_schema = OFF")
            row = db.execute("SELECT leaf_index FROM captures WHERE capture_id = ?",
                             (capture_id,)).fetchone()
            return int(row[0]) if row is not None else None
        except (sqlite3.Error, TypeError, ValueError):
            return None
        finally:
            db.close()

    def capture_ids(self) -> set[str]:
        try:
            return {str(r[0]) for r in self._connect().execute("SELECT capture_id FROM captures")}
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc

    def count(self) -> int:
        try:
            return int(self._connect().execute("SELECT count(*) FROM captures").fetchone()[0])
        except sqlite3.Error as exc:
            raise CatalogError(f"the catalog cannot be read: {exc}") from exc


def row_digest(row: CatalogRow) -> bytes:
    """A short digest of everything a catalog row says (to compare rows without keeping them)."""
    fields = (row.capture_id, row.requested_url, row.final_url, row.started, str(row.http_status),
              row.status, row.title or "", row.text_blake3 or "", row.manifest_sha256)
    joined = "\x00".join(fields).encode("utf-8", "surrogatepass")
    return hashlib.sha256(joined).digest()[:16]


#: ``(leaf index, capture id)`` of the log's manifest and adoption leaves before a leaf
#: (:func:`preserve.catalog_sync.logged_captures`).
LoggedCaptures = Callable[[int], Iterable[tuple[int, str]]]


def check_catalog(layout: ArchiveLayout, expected: Container[bytes],
                  meanwhile: range = range(0), logged: LoggedCaptures | None = None) -> list[str]:
    """Compare the catalog with what the manifests say (``expected``: the row digest of the
    row each manifest gives; a digest covers the capture id too); return the problems found.
    Rows of the leaves in ``meanwhile`` (appended while the manifests were being checked:
    their manifests came too late to be listed) are not compared. Given ``logged``, every
    logged capture the catalog was brought past must have a row too, when its manifest is
    there (a row deleted hides the capture from ``list`` and ``history``). Reads the catalog
    read-only; a catalog that is absent, or merely behind the log (rows missing), is no
    problem. A write a crash cut short leaves a hot journal, which a read-only connection
    cannot roll back: the catalog is then compared as it will be once rolled back, from a
    copy rolled back in a temporary directory (the archive is not written)."""
    path = layout.root / INDEX_DIR / CATALOG_FILE
    if path.parent.is_symlink():
        return [f"{INDEX_DIR} is a symlink (preserve neither reads nor writes through it)"]
    if not path.exists() and not path.is_symlink():
        return []
    if path.is_symlink() or not stat.S_ISREG(path.lstat().st_mode):
        return [f"{INDEX_DIR}/{CATALOG_FILE} is not a regular file"]
    try:
        return _compare_rows(f"file:{path}?mode=ro", expected, meanwhile,
                             _MissingRows(layout, logged) if logged else None)
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode != sqlite3.SQLITE_READONLY_ROLLBACK:
            return [f"the catalog cannot be read: {exc}"]
    journal = path.with_name(path.name + "-journal")
    try:
        if not stat.S_ISREG(journal.lstat().st_mode):
            return [f"{INDEX_DIR}/{journal.name} is not a regular file"]
        sizes = [path.stat(), journal.stat()]
        if sum(s.st_size for s in sizes) > MAX_ROLLBACK_COPY or any(
                s.st_blocks * 512 + (1 << 20) < s.st_size for s in sizes):
            return ["the catalog has an unfinished write and is too large (or sparse) to "
                    "copy to check it (repair rebuilds it)"]
        with tempfile.TemporaryDirectory(prefix="preserve-catalog-") as tmp:
            copy = Path(tmp) / CATALOG_FILE
            shutil.copyfile(path, copy, follow_symlinks=False)
            shutil.copyfile(journal, copy.with_name(journal.name), follow_symlinks=False)
            return _compare_rows(str(copy), expected, meanwhile,
                                 _MissingRows(layout, logged) if logged else None)
    except (OSError, sqlite3.Error) as exc:
        return [f"the catalog's unfinished write cannot be rolled back to check it: {exc}"]


class _MissingRows:
    """The logged captures with a manifest that a catalog lacks the row of."""

    def __init__(self, layout: ArchiveLayout, logged: LoggedCaptures) -> None:
        self.layout = layout
        self.logged = logged

    def __call__(self, db: sqlite3.Connection, meanwhile: range) -> list[str]:
        missing: list[str] = []
        try:
            size = Catalog._meta(db, "log_size")
            if not _count(size):
                return []
            for index, capture_id in self.logged(int(size)):
                if index in meanwhile or db.execute(
                        "SELECT 1 FROM captures WHERE capture_id = ?", (capture_id,)).fetchone():
                    continue
                if self._has_manifest(capture_id):
                    missing.append(capture_id)
        except (PreserveError, OSError, ValueError):
            pass  # an unreadable log is verify's to report
        return missing

    def _has_manifest(self, capture_id: str) -> bool:
        try:
            return self.layout.manifest_path_for(capture_id).is_file()
        except (PreserveError, OSError, ValueError):
            return False  # no valid capture id: its leaf is verify's to report


def _compare_rows(database: str, expected: Container[bytes], meanwhile: range,
                  missing_rows: _MissingRows | None = None) -> list[str]:
    """The problems of the catalog at ``database`` (a path or a ``file:`` URI); raises
    :class:`sqlite3.OperationalError` for a hot journal a read-only connection cannot roll
    back, returns any other failure as a problem."""
    wrong: list[str] = []
    try:
        db = sqlite3.connect(database, uri=database.startswith("file:"), timeout=60)
    except sqlite3.Error as exc:
        return [f"the catalog cannot be opened: {exc}"]
    try:
        db.execute("PRAGMA trusted_schema = OFF")
        version = db.execute("SELECT value FROM meta WHERE key = 'version'").fetchone()
        # another version's keys are another function's: it is rebuilt when next used
        keyed = version is not None and version[0] == str(SCHEMA_VERSION)
        for *values, keys, leaf_index in db.execute(
                f"SELECT {Catalog._COLUMNS}, url_key || ' ' || final_key, leaf_index "
                "FROM captures"):
            row = CatalogRow(*values)
            if leaf_index in meanwhile:
                continue
            if row_digest(row) not in expected or (keyed and keys != " ".join(_keys(row))):
                wrong.append(str(row.capture_id))
        missing = missing_rows(db, meanwhile) if missing_rows is not None else []
    except sqlite3.OperationalError as exc:
        if exc.sqlite_errorcode == sqlite3.SQLITE_READONLY_ROLLBACK:
            raise
        return [f"the catalog cannot be read: {exc}"]
    except (sqlite3.Error, TypeError, ValueError) as exc:
        return [f"the catalog cannot be read: {exc}"]
    finally:
        db.close()
    problems = []
    if wrong:
        problems.append(f"{len(wrong)} row(s) differ from their manifests or name none "
                        f"(e.g. {wrong[0][:80]!r})")
    if missing:
        problems.append(f"{len(missing)} logged capture(s) with a manifest have no row "
                        f"(e.g. {missing[0][:80]!r})")
    return problems


__all__ = [
    "CATALOG_FILE",
    "INDEX_DIR",
    "SUMMARY_FIELDS",
    "SYNC_BATCH",
    "Catalog",
    "CatalogError",
    "CatalogRow",
    "check_catalog",
    "row_digest",
    "url_key",
]
