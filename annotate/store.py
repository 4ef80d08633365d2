"""The store: one SQLite file (via sqlite-utils), one schema, every query.

Side effects are recorded as intent before the call and as result after it, so any
crash resumes: a HIT is posted under a UniqueRequestToken recorded first; an answer is
stored before its assignment is approved; an extension is recorded before it is bought.
"""

from __future__ import annotations

import json
import os
import sqlite3
from contextlib import contextmanager
from datetime import datetime, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any, Iterable, Iterator, NamedTuple

import sqlite_utils

from annotate import __version__
from annotate.errors import UserError
from annotate.migrations import MIGRATIONS, STEPS

SCHEMA_VERSION = len(STEPS)  # the schema this annotate reads and writes (annotate.migrations)


class StoreError(UserError):
    """The store file cannot be used as it is: damaged, read-only, made by a newer annotate, or the
    disk is full. Nothing was written."""


class StoreReadOnly(StoreError):
    pass


class StoreTooNew(StoreError):
    pass


# SQLite result codes (by family) that describe the file or the disk rather than a bug in annotate
# (a bad query or a broken constraint is a bug, and keeps its traceback).
_PROBLEMS = {
    "SQLITE_FULL": ("the disk is full", "free some space and run the command again (the failed write was rolled back)"),
    "SQLITE_NOTADB": ("not an annotate store, or a damaged one", "restore it from a backup, or move it aside to start afresh"),
    "SQLITE_CORRUPT": ("the store is damaged", "restore it from a backup, or move it aside to start afresh"),
    "SQLITE_READONLY": ("the store is read-only", "`annotate status`, `export` and `workers` can still read it"),
    "SQLITE_PERM": ("the store is read-only", "`annotate status`, `export` and `workers` can still read it"),
    "SQLITE_CANTOPEN": ("the store cannot be opened", "check that the file and its directory can be read and written"),
    "SQLITE_IOERR": ("a disk I/O error", "check the disk, then run the command again"),
    "SQLITE_BUSY": ("another process kept the store locked for 30 s", "run the command again when it has finished"),
    "SQLITE_LOCKED": ("another process kept the store locked for 30 s", "run the command again when it has finished"),
}
READ_ONLY_HINT = _PROBLEMS["SQLITE_READONLY"][1]


def _family(exc: sqlite3.Error) -> str:
    return "_".join((getattr(exc, "sqlite_errorname", None) or "").split("_")[:2])


def sqlite_problem(exc: BaseException, path: str | os.PathLike) -> StoreError | None:
    """The user-facing error for a SQLite failure caused by the file or the disk, naming the file;
    None when the failure is a bug."""
    if not isinstance(exc, sqlite3.DatabaseError):
        return None
    family = _family(exc)
    if family not in _PROBLEMS:
        return None
    what, hint = _PROBLEMS[family]
    kind = StoreReadOnly if family in ("SQLITE_READONLY", "SQLITE_PERM") else StoreError
    return kind(f"{what} (SQLite: {exc}); {hint}", file=str(path))


class HitIntent(NamedTuple):
    token: str
    item_id: str
    max_assignments: int


def utcnow() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def to_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, default=str)


# The layout every query relies on. annotate.migrations builds it: a change here is a new step
# there (tests/test_store_schema.py checks that the two agree).
SCHEMA = {
    "batches": dict(
        columns={"name": str, "uid": str, "dir": str, "target": str, "endpoint_url": str, "hit_type_id": str,
                 "task_type": str, "label_attribute": str, "labels": str, "answer_field": str, "reward": str, "lifetime": int,
                 "masters": int, "budget_usd": str, "policy": str, "config": str, "created_at": str, "posted_at": str},
        pk="name"),
    "items": dict(
        columns={"batch": str, "item_id": str, "position": int, "line": int, "data": str, "gold": str, "known": str},
        pk=("batch", "item_id")),
    # One row per HIT we intend to create; hit_id is filled in once MTurk has answered.
    "hits": dict(
        columns={"token": str, "batch": str, "item_id": str, "hit_id": str, "max_assignments": int,
                 "status": str, "hit_status": str, "created_at": str, "expires_at": str, "reviewed": int},
        pk="token"),
    "assignments": dict(
        columns={"assignment_id": str, "hit_id": str, "batch": str, "item_id": str, "worker_id": str,
                 "status": str, "accept_time": str, "submit_time": str, "answer_xml": str, "answer": str,
                 "label": str, "value": str, "quarantine": str, "stored_at": str, "approved_at": str},
        pk="assignment_id"),
    "answers": dict(
        columns={"assignment_id": str, "field": str, "value": str},
        pk=("assignment_id", "field")),
    "extensions": dict(
        columns={"token": str, "batch": str, "item_id": str, "hit_id": str, "round": int, "added": int, "max_after": int,
                 "state": str, "created_at": str, "done_at": str},
        pk="token"),
    "labels": dict(
        columns={"batch": str, "item_id": str, "status": str, "label": str, "value": str, "confidence": float,
                 "votes": str, "answers": int, "decided_at": str},
        pk=("batch", "item_id")),
    "workers": dict(
        columns={"worker_id": str, "answers": int, "agreed": int, "skill": float, "blocked": int,
                 "block_reason": str, "updated_at": str, "excluded": int, "exclude_reason": str, "excluded_at": str,
                 "pool": int, "pool_at": str},
        pk="worker_id"),
    # A worker's skill as learned in one batch; a batch's prior is what the others taught.
    "batch_workers": dict(
        columns={"batch": str, "worker_id": str, "answers": int, "skill": float, "gold_seen": int,
                 "gold_correct": int, "updated_at": str, "evidence": float, "evidence_right": float},
        pk=("batch", "worker_id")),
    # The project's own qualification types (exclusion, pool), one per purpose and marketplace.
    "qualification_types": dict(
        columns={"purpose": str, "marketplace": str, "qualification_type_id": str, "created_at": str},
        pk=("purpose", "marketplace")),
    "events": dict(
        columns={"id": int, "at": str, "batch": str, "kind": str, "detail": str},
        pk="id"),
    "api_calls": dict(
        columns={"batch": str, "operation": str, "calls": int},
        pk=("batch", "operation")),
    # Automated data labelling (annotate.automation): what a model labelled, apart from the crowd's labels.
    "machine_labels": dict(
        columns={"batch": str, "item_id": str, "label": str, "value": str, "confidence": float, "threshold": float,
                 "round": int, "model": str, "labelled_at": str},
        pk=("batch", "item_id")),
    "automation_rounds": dict(
        columns={"batch": str, "round": int, "at": str, "human_labels": int, "trained_on": int, "validation": int,
                 "threshold": float, "bound": float, "machine_labelled": int, "released": int, "remaining": int,
                 "compute_seconds": float, "note": str},
        pk=("batch", "round")),
    "automation_released": dict(
        columns={"batch": str, "item_id": str, "round": int},
        pk=("batch", "item_id")),
}
INDEXES = [
    ("hits", ["batch", "item_id"]),
    ("hits", ["hit_id"]),
    ("assignments", ["batch", "item_id"]),
    ("assignments", ["hit_id"]),
    ("extensions", ["batch", "hit_id"]),
]


def _schema_of(db: sqlite_utils.Database) -> tuple[int, list[str]]:
    """(PRAGMA user_version, names of the applied steps): reads only."""
    version = db.execute("PRAGMA user_version").fetchone()[0]
    return version, [m.name for m in MIGRATIONS.applied(db)]


def _writer(db: sqlite_utils.Database) -> str:
    """Which annotate last migrated the store, when it says (a newer one records its version)."""
    if "_annotate" not in db.table_names():
        return ""
    rows = list(db.query("select value from _annotate where key = 'migrated_by'"))
    return f" (migrated by annotate {rows[0]['value']})" if rows else ""


def _refuse_newer(db: sqlite_utils.Database, path: Path, version: int, applied: list[str]) -> None:
    unknown = [name for name in applied if name not in STEPS]
    if version > SCHEMA_VERSION or unknown:
        theirs = max(version, len(applied))
        raise StoreTooNew(f"the store has schema version {theirs}{_writer(db)}, newer than version {SCHEMA_VERSION} "
                          f"that this annotate {__version__} reads; upgrade annotate to use it (the file was left "
                          f"as it is)", file=str(path))


def _up_to_date(version: int, applied: list[str]) -> bool:
    return version == SCHEMA_VERSION and applied == STEPS


def migrate(db: sqlite_utils.Database, path: Path) -> None:
    """Bring a store to SCHEMA_VERSION: every pending step in one IMMEDIATE transaction, so two
    processes opening an old store do it once between them, and a failed step leaves it as it was."""
    conn = db.conn
    if conn.in_transaction:
        conn.commit()
    conn.execute("BEGIN IMMEDIATE")
    try:
        version, applied = _schema_of(db)  # again, under the write lock: another process may have done it
        _refuse_newer(db, path, version, applied)
        if not _up_to_date(version, applied):
            MIGRATIONS.apply(db)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")
            conn.execute("insert or replace into _annotate (key, value) values ('migrated_by', ?)", [__version__])
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise


def _connect_read_only(path: Path) -> sqlite3.Connection:
    """A connection that cannot write. In a directory it may not write to, a WAL store cannot make
    the shared-memory file a reader needs: it is read straight from the file as immutable (no
    writer can be at work there either) or, if a -wal file holds changes not yet merged into it,
    from a copy of both in a temporary directory, loaded into memory."""
    uri = path.resolve().as_uri()
    conn = sqlite3.connect(f"{uri}?mode=ro", uri=True)
    try:
        conn.execute("select count(*) from sqlite_master").fetchone()
        return conn
    except sqlite3.OperationalError as exc:
        conn.close()
        if _family(exc) not in ("SQLITE_READONLY", "SQLITE_CANTOPEN"):
            raise
    wal = path.with_name(path.name + "-wal")
    if not (wal.exists() and wal.stat().st_size > 0):
        return sqlite3.connect(f"{uri}?immutable=1", uri=True)
    import shutil
    import tempfile

    with tempfile.TemporaryDirectory(prefix="annotate-store-") as tmp:
        copy = Path(tmp) / path.name
        shutil.copyfile(path, copy)
        shutil.copyfile(wal, copy.with_name(wal.name))
        source = sqlite3.connect(copy)
        memory = sqlite3.connect(":memory:")
        try:
            source.backup(memory)
        finally:
            source.close()
    return memory


def _enable_wal(db: sqlite_utils.Database) -> None:
    """WAL mode, waiting for another process that holds the file (say, migrating it): switching the
    journal mode can answer "database is locked" at once instead of waiting out busy_timeout."""
    from tenacity import retry, retry_if_exception, stop_after_delay, wait_random

    locked = retry_if_exception(lambda e: isinstance(e, sqlite3.OperationalError) and "locked" in str(e))
    retry(retry=locked, stop=stop_after_delay(30), wait=wait_random(0.05, 0.25), reraise=True)(db.enable_wal)()


class Store:
    """The store at `path`. Opened for writing (the default), it is created or migrated to
    SCHEMA_VERSION first. With `readonly`, nothing is ever written to the file: an older store is
    migrated in a copy in memory, a missing one reads as empty (what `status`, `export` and
    `workers` use, so they work on a read-only file or directory). A store from a newer annotate,
    a damaged file or an unwritable one raise StoreError (exit 2) before anything is written."""

    def __init__(self, path: str | Path, *, readonly: bool = False):
        self.path = Path(path)
        self.db_path = self.path  # which file a SQLite error is about (annotate.cli names it)
        self.readonly = readonly
        try:
            self.db = self._open_read_only() if readonly else self._open()
        except sqlite3.DatabaseError as exc:
            problem = sqlite_problem(exc, self.path)
            if problem is None:
                raise
            raise problem from exc

    def _open(self) -> sqlite_utils.Database:
        home = self.path.parent
        if (self.path.exists() and not os.access(self.path, os.W_OK)) or (home.exists() and not os.access(home, os.W_OK)):
            raise StoreReadOnly(f"the store is read-only (this command writes to it: the file and its directory "
                                f"must be writable); {READ_ONLY_HINT}", file=str(self.path))
        try:
            home.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the project home: {exc.strerror}", file=str(home)) from exc
        db = sqlite_utils.Database(str(self.path))
        try:
            db.execute("PRAGMA busy_timeout = 30000")
            # The version is read before anything is written: a newer store is refused untouched.
            version, applied = _schema_of(db)
            _refuse_newer(db, self.path, version, applied)
            _enable_wal(db)
            db.execute("PRAGMA synchronous = NORMAL")
            if not _up_to_date(version, applied):
                migrate(db, self.path)
        except BaseException:
            db.close()
            raise
        return db

    def _open_read_only(self) -> sqlite_utils.Database:
        if not self.path.exists():
            db = sqlite_utils.Database(memory=True)
            migrate(db, self.path)
        else:
            db = sqlite_utils.Database(_connect_read_only(self.path))
            try:
                db.execute("PRAGMA busy_timeout = 30000")
                version, applied = _schema_of(db)
                _refuse_newer(db, self.path, version, applied)
                if not _up_to_date(version, applied):
                    copy = sqlite_utils.Database(memory=True)
                    db.conn.backup(copy.conn)
                    migrate(copy, self.path)
                    db.close()
                    db = copy
            except BaseException:
                db.close()
                raise
        db.execute("PRAGMA query_only = 1")  # a write through a read-only store is a bug: let it fail loudly
        return db

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All-or-nothing writes: nothing half-written if anything inside fails.

        Inside, write with `_write` (plain SQL): sqlite-utils' own write methods commit through
        `with conn:` and would end the transaction early."""
        conn = self.db.conn
        if conn.in_transaction:
            conn.commit()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                if conn.in_transaction:  # SQLite may have rolled back itself (a full disk does)
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.DatabaseError as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            problem = sqlite_problem(exc, self.path)
            if problem is None:
                raise
            raise problem from exc

    def _write(self, table: str, rows: list[dict], *, on_conflict: str = "abort") -> None:
        """INSERT (or INSERT OR REPLACE / IGNORE) many rows with one statement."""
        if not rows:
            return
        columns = list(SCHEMA[table]["columns"])
        verb = {"abort": "INSERT", "replace": "INSERT OR REPLACE", "ignore": "INSERT OR IGNORE"}[on_conflict]
        sql = f"{verb} INTO [{table}] ({', '.join(f'[{c}]' for c in columns)}) VALUES ({', '.join('?' * len(columns))})"
        self.db.conn.executemany(sql, [[row.get(c) for c in columns] for row in rows])

    def _exec(self, sql: str, params=()) -> None:
        self.db.conn.execute(sql, params)

    def close(self) -> None:
        self.db.close()

    # ---------------------------------------------------------------- batches and items
    def get_batch(self, name: str) -> dict | None:
        rows = list(self.db.query("select * from batches where name = ?", [name]))
        if not rows:
            return None
        row = dict(rows[0])
        row["labels"] = json.loads(row["labels"])
        row["config"] = json.loads(row["config"])
        return row

    def batch_names(self) -> list[str]:
        return [r["name"] for r in self.db.query("select name from batches order by created_at, name")]

    def add_batch(self, row: dict, items: Iterable[dict]) -> None:
        row = dict(row)
        row["labels"] = to_json(row["labels"])
        row["config"] = to_json(row["config"])
        with self.transaction():
            self._write("batches", [row])
            self._write("items", list(items))

    def add_items(self, items: list[dict]) -> None:
        with self.transaction():
            self._write("items", items)

    def update_batch(self, name: str, **values: Any) -> None:
        with self.transaction():
            self._exec("update batches set " + ", ".join(f"[{k}] = ?" for k in values) + " where name = ?",
                       [*values.values(), name])

    def items(self, batch: str) -> list[dict]:
        return [dict(r) for r in self.db.query("select * from items where batch = ? order by position", [batch])]

    def item_ids(self, batch: str) -> list[str]:
        return [r["item_id"] for r in self.db.query("select item_id from items where batch = ? order by position", [batch])]

    # ---------------------------------------------------------------- HITs
    def record_hit_intents(self, rows: list[dict]) -> None:
        with self.transaction():
            self._write("hits", rows, on_conflict="ignore")

    def hits(self, batch: str, *, created: bool = False) -> list[dict]:
        """Every HIT row of a batch; with `created`, only those MTurk has created (intents: `hit_intents`)."""
        sql = "select * from hits where batch = ?" + (" and hit_id is not null" if created else "")
        return [dict(r) for r in self.db.query(sql + " order by rowid", [batch])]

    def hit_intents(self, batch: str) -> list[HitIntent]:
        """HITs recorded but not yet created: three fields each, not whole rows (100,000 at a time)."""
        return [HitIntent(*r) for r in self.db.conn.execute(
            "select token, item_id, max_assignments from hits where batch = ? and hit_id is null order by rowid", [batch])]

    def hits_created(self, created: list[tuple[str, str, str | None]]) -> None:
        """(token, HIT id, expiration) triples, in one transaction."""
        if not created:
            return
        now = utcnow()
        with self.transaction():
            self.db.conn.executemany(
                "update hits set hit_id = ?, status = 'created', hit_status = 'Assignable', created_at = ?, "
                "expires_at = ? where token = ?",
                [(hit_id, now, expires, token) for token, hit_id, expires in created])

    def mark_collected(self, hit_ids: list[str]) -> None:
        """Closed: every answer the HIT will get is stored (it was Reviewable when read)."""
        with self.transaction():
            self.db.conn.executemany("update hits set reviewed = 1, hit_status = 'Reviewable' "
                                     "where hit_id = ? and hit_status != 'Reviewing'", [(h,) for h in hit_ids])
            self.db.conn.executemany("update hits set reviewed = 1 where hit_id = ?", [(h,) for h in hit_ids])

    def expire_hits(self, hit_ids: list[str], when: str) -> None:
        """HITs expired by the requester (`annotate cancel`): a harvest pass sees them closed."""
        with self.transaction():
            self.db.conn.executemany("update hits set expires_at = ? where hit_id = ?", [(when, h) for h in hit_ids])

    def mark_reviewing(self, hit_ids: list[str]) -> None:
        with self.transaction():
            self.db.conn.executemany("update hits set hit_status = 'Reviewing' where hit_id = ?", [(h,) for h in hit_ids])

    def unapproved(self, batch: str, hit_ids: list[str]) -> list[str]:
        """Stored assignments of these HITs still Submitted (a pass died between storing and approving)."""
        wanted = set(hit_ids)
        return [r["assignment_id"] for r in self.db.query(
            "select assignment_id, hit_id from assignments where batch = ? and status = 'Submitted'", [batch])
            if r["hit_id"] in wanted]

    def hit_frame(self, batch: str):
        """The batch's created HITs as columns, with the number of answers each has stored. A
        harvest pass looks at every HIT: as 100,000 row dicts that alone took ~70 MB."""
        import pandas as pd

        frame = pd.read_sql_query(
            "select h.hit_id, h.item_id, h.max_assignments, coalesce(h.reviewed, 0) as reviewed, h.hit_status, "
            "h.expires_at, (select count(*) from assignments a where a.hit_id = h.hit_id) as stored "
            "from hits h where h.batch = ? and h.hit_id is not null order by h.rowid", self.db.conn, params=[batch])
        return frame.astype({"max_assignments": "int64", "reviewed": "int64", "stored": "int64"})

    def hit(self, hit_id: str) -> dict | None:
        rows = [dict(r) for r in self.db.query("select * from hits where hit_id = ?", [hit_id])]
        return rows[0] if rows else None

    def set_hit_fields(self, hit_id: str, **values: Any) -> None:
        with self.transaction():
            self._exec("update hits set " + ", ".join(f"[{k}] = ?" for k in values) + " where hit_id = ?",
                       [*values.values(), hit_id])

    # ---------------------------------------------------------------- assignments and answers
    def assignment_statuses(self, hit_ids: list[str]) -> dict[str, str]:
        """AssignmentId -> stored status, for the assignments of these HITs (a few hundred at a time:
        the whole batch's would be ~300,000 entries)."""
        out: dict[str, str] = {}
        for start in range(0, len(hit_ids), 500):  # under SQLite's limit on bound parameters
            chunk = hit_ids[start:start + 500]
            out.update(self.db.conn.execute(
                f"select assignment_id, status from assignments where hit_id in ({', '.join('?' * len(chunk))})", chunk))
        return out

    def store_assignments(self, rows: list[dict]) -> None:
        """Raw and parsed answers (each row's `_fields`), in one transaction, before anything acts on them."""
        if not rows:
            return
        with self.transaction():
            self._write("assignments", rows, on_conflict="replace")
            self._write("answers", [{"assignment_id": r["assignment_id"], "field": k, "value": v}
                                    for r in rows for k, v in (r.get("_fields") or {}).items()], on_conflict="replace")

    def set_assignments_approved(self, assignment_ids: list[str]) -> None:
        now = utcnow()
        with self.transaction():
            self.db.conn.executemany(
                "update assignments set status = 'Approved', approved_at = coalesce(approved_at, ?) where assignment_id = ?",
                [(now, a) for a in assignment_ids])

    def set_assignment_statuses(self, changes: list[tuple[str, str]]) -> None:
        """(AssignmentId, status) pairs MTurk reports differently from the store (auto-approved, say)."""
        if not changes:
            return
        now = utcnow()
        with self.transaction():
            self.db.conn.executemany(
                "update assignments set status = ?, approved_at = coalesce(approved_at, ?) where assignment_id = ?",
                [(status, now if status == "Approved" else None, aid) for aid, status in changes])

    def answer_values(self, batch: str) -> list[dict]:
        """Usable answers of any task type: (item, worker, value as JSON text)."""
        return [dict(r) for r in self.db.query(
            "select item_id as item, worker_id as worker, value from assignments "
            "where batch = ? and value is not null and quarantine is null and status != 'Rejected' "
            "order by submit_time, assignment_id", [batch])]

    def answers(self, batch: str):
        """Usable answers as a frame (item, worker, label): approved/submitted, unquarantined assignments."""
        import pandas as pd

        return pd.read_sql_query(
            "select item_id as item, worker_id as worker, label from assignments "
            "where batch = ? and label is not null and quarantine is null and status != 'Rejected' "
            "order by submit_time, assignment_id", self.db.conn, params=[batch])

    def quarantined_by_item(self, batch: str) -> dict[str, int]:
        return {r["item_id"]: r["n"] for r in self.db.query(
            "select item_id, count(*) as n from assignments where batch = ? and quarantine is not null "
            "group by item_id", [batch])}

    def assignments_by_id(self, assignment_ids: list[str]) -> dict[str, dict]:
        """AssignmentId -> (batch, hit_id, item_id, worker_id, status) of the stored ones among these."""
        out: dict[str, dict] = {}
        for start in range(0, len(assignment_ids), 500):
            chunk = assignment_ids[start:start + 500]
            out.update({r["assignment_id"]: dict(r) for r in self.db.query(
                f"select assignment_id, batch, hit_id, item_id, worker_id, status, label from assignments "
                f"where assignment_id in ({', '.join('?' * len(chunk))})", chunk)})
        return out

    def worker_assignments(self, batch: str) -> list[dict]:
        """Every stored assignment of a batch, oldest first: (assignment_id, item_id, worker_id, status,
        label, quarantine)."""
        return [dict(r) for r in self.db.query(
            "select assignment_id, item_id, worker_id, status, label, quarantine from assignments where batch = ? "
            "order by submit_time, assignment_id", [batch])]

    def quarantine_reasons(self, batch: str) -> list[str]:
        return [r["quarantine"] for r in self.db.query(
            "select quarantine from assignments where batch = ? and quarantine is not null", [batch])]

    def item_results(self, batch: str) -> list[dict]:
        """Per item, in item order: its decision (none yet: pending), votes, answers and quarantined count."""
        rows = []
        for r in self.db.query(
                "select i.item_id, coalesce(l.status, 'pending') as status, l.label, l.value, l.confidence, l.votes, "
                "l.answers, (select count(*) from assignments a where a.batch = i.batch and a.item_id = i.item_id "
                "and a.quarantine is not null) as quarantined, (select count(*) from assignments a where "
                "a.batch = i.batch and a.item_id = i.item_id and a.status = 'Rejected') as rejected "
                "from items i left join labels l on l.batch = i.batch and l.item_id = i.item_id "
                "where i.batch = ? order by i.position", [batch]):
            r = dict(r)
            r["votes"] = json.loads(r["votes"] or "{}")
            rows.append(r)
        return rows

    def assignment_counts(self, batch: str) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self.db.query(
            "select status, count(*) as n from assignments where batch = ? group by status", [batch])}

    # ---------------------------------------------------------------- extensions
    def record_extension_intents(self, rows: list[dict]) -> None:
        """Extensions about to be bought (a token already recorded is left as it is)."""
        with self.transaction():
            self._write("extensions", rows, on_conflict="ignore")

    def extensions_done(self, rows: list[dict]) -> None:
        """Bought: the extension is done, and its HIT is open again with its new maximum."""
        now = utcnow()
        with self.transaction():
            for ext in rows:
                self._exec("update extensions set state = 'done', done_at = ? where token = ?", [now, ext["token"]])
                self._exec("update hits set max_assignments = max(max_assignments, ?), reviewed = 0, "
                           "hit_status = 'Assignable', expires_at = coalesce(?, expires_at) where hit_id = ?",
                           [ext["max_after"], ext.get("expires_at"), ext["hit_id"]])

    def close_extension(self, token: str, state: str) -> None:
        """An intent MTurk refused ('refused') or that could not be paid ('abandoned'): never bought."""
        with self.transaction():
            self._exec("update extensions set state = ?, done_at = ? where token = ? and state = 'intent'",
                       [state, utcnow(), token])

    def extension_refusals(self, batch: str) -> dict[str, str]:
        """Item → why MTurk will not extend its HIT (the harvest's 'extension-refused' events)."""
        return {d["item"]: d["reason"] for d in (json.loads(r["detail"]) for r in self.db.query(
            "select detail from events where batch = ? and kind = 'extension-refused' order by id", [batch]))}

    def pending_extensions(self, batch: str) -> list[dict]:
        return [dict(r) for r in self.db.query(
            "select * from extensions where batch = ? and state = 'intent' order by rowid", [batch])]

    def extension_rounds(self, batch: str) -> dict[str, int]:
        return {r["item_id"]: r["n"] for r in self.db.query(
            "select item_id, count(*) as n from extensions where batch = ? group by item_id", [batch])}

    # ---------------------------------------------------------------- labels and workers
    def save_labels(self, rows: list[dict]) -> None:
        rows = [{**row, "votes": to_json(row.get("votes", {})),
                 "value": row["value"] if isinstance(row.get("value"), (str, type(None))) else to_json(row["value"])}
                for row in rows]
        with self.transaction():
            self._write("labels", rows, on_conflict="replace")

    def save_decisions(self, batch: str, rows: Iterable[tuple[str, str, Any, str | None, float]]) -> None:
        """(item, status, label, value, confidence) per decided item, streamed into one statement:
        a pass decides up to the whole batch, and 100,000 label dicts would cost ~100 MB."""
        now = utcnow()
        with self.transaction():
            self.db.conn.executemany(
                "insert or replace into labels (batch, item_id, status, label, value, confidence, votes, answers, "
                "decided_at) values (?, ?, ?, ?, ?, ?, '{}', null, ?)",
                ((batch, item, status, label, value, float(confidence), now)
                 for item, status, label, value, confidence in rows))

    def labels(self, batch: str) -> dict[str, dict]:
        out = {}
        for r in self.db.query("select * from labels where batch = ?", [batch]):
            r = dict(r)
            r["votes"] = json.loads(r["votes"] or "{}")
            out[r["item_id"]] = r
        return out

    def labelled_items(self, batch: str) -> Iterator[tuple]:
        """(item_id, data, value, confidence, answers, decided_at) of labelled items, in item order."""
        return self.db.conn.execute(
            "select i.item_id, i.data, l.value, l.confidence, l.answers, l.decided_at from items i "
            "join labels l on l.batch = i.batch and l.item_id = i.item_id "
            "where i.batch = ? and l.status = 'labelled' and l.value is not null order by i.position", [batch])

    def label_status_counts(self, batch: str) -> dict[str, int]:
        return {r["status"]: r["n"] for r in self.db.query(
            "select status, count(*) as n from labels where batch = ? group by status", [batch])}

    def refresh_labels(self, batch: str, rows) -> None:
        """(item, label, confidence, value, votes, answers) from the aggregator: labelled items take
        the label; every decided item takes its votes and answer count."""
        with self.transaction():
            self.db.conn.executemany(
                "update labels set label = case when status = 'labelled' then ? else label end, "
                "confidence = case when status = 'labelled' then ? else confidence end, "
                "value = case when status = 'labelled' then ? else value end, votes = ?, answers = ? "
                "where batch = ? and item_id = ?",
                ((label, conf, value, votes, answers, batch, item) for item, label, conf, value, votes, answers in rows))

    def save_batch_workers(self, batch: str, rows: list[dict]) -> None:
        """A batch's learned skills; the workers table keeps the answer-weighted mean over batches."""
        with self.transaction():
            self._write("batch_workers", [{**r, "batch": batch} for r in rows], on_conflict="replace")
            ids = [r["worker_id"] for r in rows]
            for start in range(0, len(ids), 500):
                chunk = ids[start:start + 500]
                marks = ",".join("?" * len(chunk))
                self._exec(
                    f"insert into workers (worker_id, answers, skill, blocked, updated_at) "
                    f"select worker_id, sum(answers), sum(skill * answers) / max(sum(answers), 1), 0, max(updated_at) "
                    f"from batch_workers where worker_id in ({marks}) group by worker_id "
                    f"on conflict(worker_id) do update set answers = excluded.answers, skill = excluded.skill, "
                    f"updated_at = excluded.updated_at", chunk)

    def prior_skills(self, batch: str) -> dict[str, float]:
        """Worker skills learned in the other batches (answer-weighted), a prior for this one."""
        return {r["worker_id"]: r["skill"] for r in self.db.query(
            "select worker_id, sum(skill * answers) / sum(answers) as skill from batch_workers "
            "where batch != ? and answers > 0 and skill is not null group by worker_id", [batch])}

    def workers(self, batch: str | None = None) -> list[dict]:
        if batch is None:
            return [dict(r) for r in self.db.query(
                "select w.*, sum(bw.gold_seen) as gold_seen, sum(bw.gold_correct) as gold_correct "
                "from workers w left join batch_workers bw using (worker_id) group by w.worker_id "
                "order by w.answers desc, w.worker_id")]
        return [dict(r) for r in self.db.query(
            "select bw.worker_id, bw.answers, bw.skill, bw.gold_seen, bw.gold_correct, coalesce(w.blocked, 0) as blocked, "
            "w.block_reason, coalesce(w.excluded, 0) as excluded, w.exclude_reason, w.pool, bw.evidence, bw.evidence_right "
            "from batch_workers bw left join workers w using (worker_id) where bw.batch = ? "
            "order by bw.answers desc, bw.worker_id", [batch])]

    def known_answers(self, batch: str) -> dict[str, str]:
        return {r["item_id"]: r["known"] for r in self.db.query(
            "select item_id, known from items where batch = ? and known is not null", [batch])}

    def blocked_workers(self) -> set[str]:
        return {r["worker_id"] for r in self.db.query("select worker_id from workers where blocked = 1")}

    def set_blocked(self, worker_id: str, reason: str, blocked: bool = True) -> None:
        with self.transaction():
            self._exec("insert into workers (worker_id, answers, blocked, block_reason, updated_at) values (?, 0, ?, ?, ?) "
                       "on conflict(worker_id) do update set blocked = excluded.blocked, block_reason = excluded.block_reason, "
                       "updated_at = excluded.updated_at", [worker_id, int(blocked), reason, utcnow()])

    def worker(self, worker_id: str) -> dict | None:
        rows = list(self.db.query("select * from workers where worker_id = ?", [worker_id]))
        return dict(rows[0]) if rows else None

    def excluded_workers(self, decided: bool = False) -> set[str]:
        """Excluded workers; with `decided`, also those whose exclusion a person lifted (`workers
        include`): the harvest leaves both alone."""
        where = "excluded is not null" if decided else "excluded = 1"
        return {r["worker_id"] for r in self.db.query(f"select worker_id from workers where {where}")}

    def set_excluded(self, worker_id: str, reason: str, excluded: bool = True) -> None:
        """Recorded after MTurk granted (or revoked) the exclusion qualification."""
        with self.transaction():
            self._exec("insert into workers (worker_id, answers, blocked, excluded, exclude_reason, excluded_at, updated_at) "
                       "values (?, 0, 0, ?, ?, ?, ?) on conflict(worker_id) do update set excluded = excluded.excluded, "
                       "exclude_reason = excluded.exclude_reason, excluded_at = excluded.excluded_at",
                       [worker_id, int(excluded), reason, utcnow(), utcnow()])

    def pool_evidence(self) -> list[dict]:
        """Per worker over every batch: answers' worth of evidence, how much of it said right, the
        pool score granted on MTurk (None: none) and whether they are excluded."""
        return [dict(r) for r in self.db.query(
            "select bw.worker_id, sum(bw.answers) as answers, sum(coalesce(bw.evidence, 0)) as evidence, sum(coalesce(bw.evidence_right, 0)) as evidence_right, "
            "w.pool, coalesce(w.excluded, 0) as excluded from batch_workers bw left join workers w using (worker_id) "
            "group by bw.worker_id order by bw.worker_id")]

    def set_pool(self, worker_id: str, score: int | None) -> None:
        with self.transaction():
            self._exec("update workers set pool = ?, pool_at = ? where worker_id = ?", [score, utcnow(), worker_id])

    def qualification_type(self, purpose: str, marketplace: str) -> str | None:
        rows = list(self.db.query("select qualification_type_id from qualification_types where purpose = ? and "
                                  "marketplace = ?", [purpose, marketplace]))
        return rows[0]["qualification_type_id"] if rows else None

    def save_qualification_type(self, purpose: str, marketplace: str, type_id: str) -> None:
        with self.transaction():
            self._write("qualification_types", [{"purpose": purpose, "marketplace": marketplace,
                                                 "qualification_type_id": type_id, "created_at": utcnow()}],
                        on_conflict="replace")

    # ---------------------------------------------------------------- events and API calls
    def event(self, batch: str | None, kind: str, **detail: Any) -> None:
        with self.transaction():
            self._exec("insert into events (at, batch, kind, detail) values (?, ?, ?, ?)",
                       [utcnow(), batch, kind, to_json(detail)])

    def events(self, batch: str, kinds: tuple[str, ...]) -> list[dict]:
        """A batch's events of these kinds, oldest first, each its detail with `kind` and `at`."""
        return [{**json.loads(r["detail"]), "kind": r["kind"], "at": r["at"]} for r in self.db.query(
            f"select kind, at, detail from events where batch = ? and kind in ({', '.join('?' * len(kinds))}) "
            f"order by id", [batch, *kinds])]

    def cancelled(self, batch: str) -> bool:
        """`annotate cancel` expired the batch: a harvest buys nothing more for it."""
        return self.db.execute("select 1 from events where batch = ? and kind = 'cancel' limit 1", [batch]).fetchone() is not None

    def bonuses(self, batch: str) -> dict[str, dict]:
        """UniqueRequestToken -> the bonus (amount, fee, worker, assignment, paid?): an intent recorded before
        SendBonus, marked paid after it. One entry per token, however often a command was retried."""
        out: dict[str, dict] = {}
        for e in self.events(batch, ("bonus-intent", "bonus")):
            entry = out.setdefault(e["token"], {**e, "paid": False})
            entry["paid"] = entry["paid"] or e["kind"] == "bonus"
        return out

    def add_api_calls(self, batch: str, counts: dict[str, int]) -> None:
        with self.transaction():
            for op, n in counts.items():
                self._exec(
                    "insert into api_calls (batch, operation, calls) values (?, ?, ?) "
                    "on conflict(batch, operation) do update set calls = calls + excluded.calls", [batch, op, n])

    def api_calls(self, batch: str) -> dict[str, int]:
        return {r["operation"]: r["calls"] for r in
                self.db.query("select operation, calls from api_calls where batch = ? order by operation", [batch])}

    # ---------------------------------------------------------------- money
    def money(self, batch: str) -> dict[str, Decimal]:
        """Spent (approved), owed (submitted, not yet approved) and committed (bought, not yet submitted)."""
        from annotate.fees import assignment_cost

        b = self.get_batch(batch)
        if b is None:
            return {"spent": Decimal(0), "committed": Decimal(0)}
        reward = Decimal(b["reward"])
        masters = bool(b.get("masters"))
        spent = Decimal(0)
        committed = Decimal(0)
        submitted_by_hit = {r["hit_id"]: r["n"] for r in self.db.query(
            "select hit_id, count(*) as n from assignments where batch = ? and status in ('Approved', 'Submitted') group by hit_id", [batch])}
        # HITs recorded as intent count as committed too: a resumed post will create them.
        for hit in self.db.query("select hit_id, max_assignments from hits where batch = ?", [batch]):
            cost = assignment_cost(reward, hit["max_assignments"], masters)
            done = submitted_by_hit.get(hit["hit_id"], 0) if hit["hit_id"] else 0
            spent += cost * done
            committed += cost * max(hit["max_assignments"] - done, 0)
        # Bonuses and their fee: paid ones are spent; one recorded but not confirmed may have gone through.
        for bonus in self.bonuses(batch).values():
            cost = Decimal(bonus["amount"]) + Decimal(bonus["fee"])
            if bonus["paid"]:
                spent += cost
            else:
                committed += cost
        return {"spent": spent, "committed": committed}

    # ---------------------------------------------------------------- automated data labelling
    def human_labels(self, batch: str) -> dict[str, str]:
        """item → label decided by people: the crowd's consensus, or a known answer (never a machine label)."""
        return {r["item_id"]: r["label"] for r in self.db.query(
            "select item_id, label from labels where batch = ? and status in ('labelled', 'known') "
            "and label is not null order by item_id", [batch])}

    def machine_labels(self, batch: str) -> dict[str, dict]:
        if not self.db["machine_labels"].exists():  # a read-only store not yet migrated
            return {}
        return {r["item_id"]: dict(r) for r in self.db.query(
            "select * from machine_labels where batch = ? order by item_id", [batch])}

    def save_machine_labels(self, rows: list[dict]) -> None:
        with self.transaction():
            self._write("machine_labels", rows)  # abort on conflict: an item is machine-labelled once

    def released_items(self, batch: str) -> set[str]:
        """Items an automation round sent to the crowd (beside the initial sample)."""
        if not self.db["automation_released"].exists():
            return set()
        return {r["item_id"] for r in self.db.query("select item_id from automation_released where batch = ?", [batch])}

    def record_automation_round(self, row: dict, released: list[str]) -> None:
        """A round's figures and the items it sends to the crowd, together (before anything is posted)."""
        with self.transaction():
            self._write("automation_rounds", [row])
            self._write("automation_released", [{"batch": row["batch"], "item_id": i, "round": row["round"]}
                                                for i in released])

    def automation_rounds(self, batch: str) -> list[dict]:
        if not self.db["automation_rounds"].exists():
            return []
        return [dict(r) for r in self.db.query("select * from automation_rounds where batch = ? order by round", [batch])]

    def item_ids_with_hits(self, batch: str) -> set[str]:
        """Items with a HIT, created or only intended: never labelled by machine, never posted again."""
        return {r["item_id"] for r in self.db.query("select distinct item_id from hits where batch = ?", [batch])}
