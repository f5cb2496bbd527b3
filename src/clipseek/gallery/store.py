"""SQLite catalog of indexed images: the single source of truth for a gallery.

One row per file (absolute path, size, mtime, content hash, width/height, float32 vector, perceptual
hash), a table of skipped files with reasons, and a meta table (schema version, database id, model
fingerprint, model name, dtype, dim, the highest row id whose vector was checked); older databases
are upgraded in place when opened (`_MIGRATIONS`). WAL mode; every write happens in one
transaction, so a killed run loses nothing that was committed and leaves no half-written batch
behind. SQL is parameterised only.

Schema 3 adds `taken_ns`, the capture time (EXIF DateTimeOriginal, ns since the epoch; NULL: the file
has none, so filters use its mtime; `query.PENDING`, the column's default: not read yet, filled by the
next `index` run without re-embedding) and `files_facets`, a covering index over what filters read
(path, size, dates), so a filter never reads a vector. Adding the column rewrites no row.

Schema 4 adds videos: `files.kind` (0 photo, 1 video), `files.duration_s` and the table `moments`
(a video's sampled frames: time, shot change or not, vector; `store_moments`), whose rows go with
their file's (removed by `remove_*`/`record_skipped`, moved with it). A video's `files.vector` is the
normalised mean of its moments, so code reading file vectors (dupes, the sample) keeps working.

Paths are stored as `core.paths.db_value` says: a name that is valid UTF-8 as TEXT (as always), any
other name as a BLOB of its exact bytes; reads give the `str` back (`from_db`, surrogate escapes). A
prefix query compares bytes (`CAST(path AS BLOB)`), so it finds both kinds.

Row ids come from AUTOINCREMENT and are never reused: a changed file gets a new id (delete + insert),
a moved file keeps its id. The FAISS index (vector_index.py) relies on that to extend itself instead of
rebuilding.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import uuid
from contextlib import contextmanager
from typing import Iterator


from clipseek._io import temp_name
from clipseek.errors import ModelMismatchError, UsageError
from clipseek.gallery.dbfile import (  # StoreError: its home was here; importers still find it here
    FileIdentity,
    StoreError,
    can_write_folder,
    connect,
    write_error,
)
from clipseek.gallery.query import PENDING
from clipseek.gallery.store_moments import MomentRows
from clipseek.gallery.store_rows import FileRows, _file_row
from clipseek.gallery.store_vectors import MAX_DIM, VectorReads
from clipseek.model.fingerprint import Fingerprint, FingerprintError

SCHEMA_VERSION = 4
APP_ID = "clipseek-gallery"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    path TEXT NOT NULL UNIQUE,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    hash TEXT NOT NULL,
    width INTEGER NOT NULL,
    height INTEGER NOT NULL,
    vector BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS files_hash ON files(hash);
CREATE TABLE IF NOT EXISTS skipped (
    path TEXT PRIMARY KEY,
    size INTEGER NOT NULL,
    mtime_ns INTEGER NOT NULL,
    reason TEXT NOT NULL
);
"""
# Schema version N -> the statements that upgrade a version N-1 database in place. A fresh database is
# created at version 1 and upgraded through every step, so old and new databases end up identical.
_MIGRATIONS = {
    2: ("ALTER TABLE files ADD COLUMN phash TEXT",),  # 64-bit perceptual hash, hex; NULL until computed
    3: (f"ALTER TABLE files ADD COLUMN taken_ns INTEGER DEFAULT {PENDING}",  # capture time
        "CREATE INDEX IF NOT EXISTS files_facets ON files(path, width, height, mtime_ns, taken_ns)"),
    4: ("ALTER TABLE files ADD COLUMN kind INTEGER NOT NULL DEFAULT 0",  # 0 photo, 1 video
        "ALTER TABLE files ADD COLUMN duration_s REAL",                   # a video's, NULL for a photo
        "CREATE TABLE IF NOT EXISTS moments (id INTEGER PRIMARY KEY AUTOINCREMENT, "
        "file_id INTEGER NOT NULL REFERENCES files(id) ON DELETE CASCADE, time_s REAL NOT NULL, "
        "shot INTEGER NOT NULL, vector BLOB NOT NULL)",
        "CREATE INDEX IF NOT EXISTS moments_file ON moments(file_id)",
        # a file row that goes takes its moments with it (whatever the connection's foreign_keys setting)
        "CREATE TRIGGER IF NOT EXISTS files_moments_gone AFTER DELETE ON files "
        "BEGIN DELETE FROM moments WHERE file_id = old.id; END",
        "DROP INDEX IF EXISTS files_facets",  # the filter columns gain kind and duration (still covering)
        "CREATE INDEX IF NOT EXISTS files_facets ON files(path, width, height, mtime_ns, taken_ns, kind, "
        "duration_s)"),
}


def file_hash(path: str, chunk: int = 1 << 20) -> str:
    """blake2b-128 of the file's bytes (hashlib releases the GIL, so threads help)."""
    h = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


class Store(FileRows, MomentRows, VectorReads):
    """An open gallery database. Use `Store.open(path)`; close with `.close()` or a `with` block.
    Its row queries and writes are `store_rows.FileRows`; its reads of vectors (and pHashes) are
    `store_vectors.VectorReads`."""

    def __init__(self, path: str, conn: sqlite3.Connection, readonly: bool = False):
        self.path = path
        self.conn = conn
        self.readonly = readonly  # opened read-only (gallery.dbfile): nothing may be written
        self.identity = FileIdentity(path)
        self._init_vector_reads()

    _file_row = staticmethod(_file_row)  # for VectorReads

    # ---- opening -------------------------------------------------------------------------------
    @classmethod
    def open(cls, path: str, create: bool = True,
             model: tuple[Fingerprint, int] | None = None) -> "Store":
        """Open (or with `create`, make) the database at `path`. `model`: (fingerprint, dim) recorded
        in the same transaction that creates the schema, so a database never exists without the
        model it is for (a run killed before its first batch re-runs with the right model)."""
        path = os.path.abspath(os.path.expanduser(os.fsdecode(path)))
        exists = os.path.exists(path)
        if not exists and not create:
            raise UsageError(f"no clipseek database at {path} (run `clipseek index DIR --db {path}` first)")
        if exists and os.path.isdir(path):
            raise UsageError(f"{path} is a directory, not a clipseek database")
        if not exists and not os.path.isdir(os.path.dirname(path) or "."):
            raise UsageError(f"cannot create database {path}: folder does not exist")
        if not exists and model is not None:
            cls._create(path, model)
            exists = True
        fresh = not exists or os.path.getsize(path) == 0
        readonly = not create and not fresh and not can_write_folder(path)
        try:
            return cls._connect(path, fresh, model, readonly)
        except StoreError:
            raise
        except sqlite3.OperationalError as e:
            if create or readonly or write_error(path, e) is None:
                raise write_error(path, e, "opening") or UsageError(
                    f"{path} is not a clipseek database ({e})") from None
            return cls._connect(path, fresh, model, readonly=True)  # a reader on a full disk

    @classmethod
    def _connect(cls, path: str, fresh: bool, model, readonly: bool) -> "Store":
        conn = connect(path, readonly)
        try:
            store = cls(path, conn, readonly)
            store._init_or_check(fresh=fresh, model=model)
            if not readonly:
                conn.execute("PRAGMA journal_mode=WAL")  # only once we know the file is ours
                conn.execute("PRAGMA synchronous=NORMAL")
            store.identity = FileIdentity(path)
        except sqlite3.OperationalError:
            conn.close()
            raise
        except sqlite3.DatabaseError as e:
            conn.close()
            raise UsageError(f"{path} is not a clipseek database ({e})") from None
        except BaseException:
            conn.close()
            raise
        return store

    @classmethod
    def _create(cls, path: str, model: tuple[Fingerprint, int]) -> None:
        """Make the database under a temp name (schema and model in one transaction) and rename it
        into place: a kill at any moment leaves no database or a whole one, never an empty file."""
        tmp = temp_name(path)
        try:
            conn = sqlite3.connect(tmp, isolation_level=None)
            try:
                cls(path, conn)._init_or_check(fresh=True, model=model)
            finally:
                conn.close()
            os.replace(tmp, path)
        except BaseException as e:
            for leftover in (tmp, tmp + "-journal"):
                if os.path.exists(leftover):
                    os.remove(leftover)
            error = write_error(path, e, "creating")
            if error is not None:
                raise error from None
            raise

    def _init_or_check(self, fresh: bool, model: tuple[Fingerprint, int] | None = None) -> None:
        tables = {r[0] for r in self.conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if fresh or not tables:
            with self.transaction():
                for stmt in filter(str.strip, _SCHEMA.split(";")):  # not executescript: it commits
                    self.conn.execute(stmt)
                self._set_meta_rows({"app": APP_ID, "schema_version": "1", "db_id": uuid.uuid4().hex,
                                     **(_model_meta(*model) if model else {})})
        elif "meta" not in tables or self.meta("app") != APP_ID:
            raise UsageError(f"{self.path} is not a clipseek database (it is some other SQLite file)")
        version = int(self.meta("schema_version") or 0)
        if not 1 <= version <= SCHEMA_VERSION:
            raise StoreError(f"{self.path} has schema version {version}; this clipseek reads versions 1 "
                             f"to {SCHEMA_VERSION}. Re-index into a new --db.")
        if version < SCHEMA_VERSION:
            self._migrate()

    def _migrate(self) -> None:
        """Upgrade to SCHEMA_VERSION in one transaction (another process may have done it already)."""
        try:
            with self.transaction():
                version = int(self.meta("schema_version") or 0)
                for v in range(version + 1, SCHEMA_VERSION + 1):
                    for stmt in _MIGRATIONS[v]:
                        self.conn.execute(stmt)
                self._set_meta_rows({"schema_version": str(max(version, SCHEMA_VERSION))})
        except (sqlite3.OperationalError, StoreError) as e:
            why = e.__context__ if isinstance(e, StoreError) and e.__context__ else e  # SQLite's words
            raise StoreError(f"{self.path} needs a schema upgrade to version {SCHEMA_VERSION} and it "
                             f"cannot be written ({why})") from None

    def close(self) -> None:
        self.conn.close()

    def check_file(self) -> None:
        """Raise DatabaseGone when the database file was deleted or replaced since it was opened."""
        self.identity.check()

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE ... COMMIT, or ROLLBACK on any exception (KeyboardInterrupt included). A
        full disk or a read-only folder is one StoreError line (gallery.dbfile); earlier commits stay."""
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self._rollback()
                raise
            self.conn.execute("COMMIT")
        except sqlite3.OperationalError as e:
            self._rollback()
            raise (write_error(self.path, e) or e) from None

    def _rollback(self) -> None:
        if self.conn.in_transaction:  # SQLite may have rolled back already (a full disk at COMMIT)
            try:
                self.conn.execute("ROLLBACK")
            except sqlite3.OperationalError:
                pass

    # ---- meta ----------------------------------------------------------------------------------
    def meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return row[0] if row else None

    def set_meta(self, values: dict[str, str]) -> None:
        with self.transaction():
            self._set_meta_rows(values)

    def _set_meta_rows(self, values: dict[str, str]) -> None:
        self.conn.executemany("INSERT INTO meta(key, value) VALUES (?, ?) "
                              "ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                              [(k, str(v)) for k, v in values.items()])

    @property
    def db_id(self) -> str:
        return self.meta("db_id") or ""

    @property
    def fingerprint(self) -> Fingerprint | None:
        """The model the vectors were made with (None until the first index run binds one)."""
        text = self.meta("fingerprint")
        if text is None:
            return None
        try:
            return Fingerprint.parse(text)
        except FingerprintError as e:
            raise StoreError(f"{self.path}: {e}") from None

    @property
    def dim(self) -> int:
        """The length of the stored vectors (0 before a model is bound); StoreError when the database
        holds something else than a whole number from 1 to 65536."""
        text = self.meta("dim")
        if text is None:
            return 0
        try:
            dim = int(text)
        except (TypeError, ValueError):
            dim = 0
        if not 1 <= dim <= MAX_DIM:
            raise StoreError(f"{self.path}: its recorded vector dim {str(text)[:40]!r} is not a whole number "
                             f"from 1 to {MAX_DIM} (a damaged database); re-index into a new --db")
        return dim

    def model_info(self) -> dict[str, str]:
        return {k: v for k in ("model", "dtype", "framing", "fingerprint", "dim")
                if (v := self.meta(k)) is not None}

    def bind_model(self, fingerprint: Fingerprint, dim: int) -> None:
        """Record the model of an empty DB, or check that `fingerprint` has the DB's model's weights."""
        check_fingerprint(self, fingerprint)
        if self.dim and self.dim != dim:
            raise ModelMismatchError(f"{self.path} holds vectors of {self.dim} dimensions but the model gives "
                                     f"{dim}; use another --db")
        if self.fingerprint is None:
            with self.transaction():
                self._set_meta_rows(_model_meta(fingerprint, dim))

    # ---- reads ---------------------------------------------------------------------------------
def _model_meta(fingerprint: Fingerprint, dim: int) -> dict[str, str]:
    return {"fingerprint": str(fingerprint), "dim": str(dim), "model": fingerprint.name,
            "dtype": fingerprint.dtype, "framing": fingerprint.framing}


def check_fingerprint(store: Store, fingerprint: Fingerprint) -> None:
    have = store.fingerprint
    if have is not None and not have.same_weights(fingerprint):
        raise ModelMismatchError(f"{store.path} was indexed with model [{have}] but the model given is "
                         f"[{fingerprint}]; to use this database, leave --model out (it names its own model: "
                         f"--model {have.name}); to use this model, give a new --db")
