"""The marketplace's state machine: HIT types, HITs, assignments, blocks, the balance.

No HTTP here. State lives in the marketplace's own SQLite file (WAL), so separate processes
(post now, harvest later from cron) see the same HITs; every operation runs in one
`BEGIN IMMEDIATE` transaction with a busy timeout so two processes can write safely.

Time-driven transitions (assignment deadlines, auto-approval, HIT expiry) are settled lazily at
the start of every operation, so the state is always as MTurk would show it "now".

Money model (kept simple and consistent). `mode` says which MTurk this stands in for: "sandbox"
keeps the fixed $10,000.00 balance (no HIT or bonus costs anything), "production" debits. There
creating a HIT debits MaxAssignments x (reward + fee)
and CreateAdditionalAssignmentsForHIT debits the added slots; the money stays held by the HIT
until DeleteHIT, which refunds every slot not paid out (never used, abandoned, or rejected).
Expiry alone refunds nothing, because an expired HIT can be given a new expiration and go on.
The fee tier cannot change during a HIT's life (a HIT with < 10 assignments cannot be extended
to 10 or more), so one per-slot cost, fixed at creation, serves every debit and refund; a HIT
that requires Masters pays 5% more (as annotate/fees.py has it). A HIT created in sandbox mode
holds a per-slot cost of 0, so a database later served in production mode stays consistent.
GetAccountBalance in production mode also reports OnHoldBalance: what live HITs still hold.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import sqlite3
import string
import threading
import time
import xml.etree.ElementTree as ET
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any, Callable, Iterator, Sequence
from xml.sax.saxutils import escape as xml_escape

from annotate.fees import assignment_cost, assignment_fee, format_money, money, requires_masters
from annotate.marketplace import outbox

START_BALANCE = Decimal("10000.00")
TOKEN_TTL = 24 * 3600
AUTO_DISPOSAL = 120 * 24 * 3600  # HITs are disposed of this long after they expire
DEFAULT_AUTO_APPROVAL_DELAY = 2592000  # 30 days, MTurk's default
MAX_QUESTION_BYTES = 65535
QUESTION_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/"
HTML_QUESTION_NS = QUESTION_NS + "2011-11-11/HTMLQuestion.xsd"
EXTERNAL_QUESTION_NS = QUESTION_NS + "2006-07-14/ExternalQuestion.xsd"
ANSWERS_NS = QUESTION_NS + "2005-10-01/QuestionFormAnswers.xsd"
ID_ALPHABET = string.ascii_uppercase + string.digits
MODES = ("sandbox", "production")

# Assignment states. Accepted, Abandoned (the deadline passed) and Returned (the worker gave it
# back) exist only on the worker side: the requester API never shows an assignment before it is
# submitted, as on MTurk. An abandoned or returned assignment frees its slot for others.
ACCEPTED, ABANDONED, RETURNED = "Accepted", "Abandoned", "Returned"
GONE = (ABANDONED, RETURNED)
SUBMITTED, APPROVED, REJECTED = "Submitted", "Approved", "Rejected"


class MarketplaceError(Exception):
    """An error in MTurk's shape: `error_type` becomes `__type` (botocore's ClientError code)."""

    error_type = "RequestError"
    http_status = 400

    def __init__(self, message: str, turk_error_code: str | None = None):
        super().__init__(message)
        self.message = message
        self.turk_error_code = turk_error_code


class RequestError(MarketplaceError):
    error_type = "RequestError"


class ParameterValidationError(MarketplaceError):
    # The real service answers malformed parameters with __type ParameterValidationError.
    error_type = "ParameterValidationError"


class ServiceFault(MarketplaceError):
    error_type = "ServiceFault"
    http_status = 500


class ThrottlingException(MarketplaceError):
    error_type = "ThrottlingException"

    def __init__(self, message: str = "Rate exceeded", turk_error_code: str | None = None):
        super().__init__(message, turk_error_code)


class WorkerError(Exception):
    """A worker-side refusal (blocked, no slots, already working on it): an HTTP 4xx page."""

    def __init__(self, http_status: int, message: str, code: str):
        super().__init__(message)
        self.http_status = http_status
        self.message = message
        self.code = code


def new_id(length: int = 30, prefix: str = "3") -> str:
    """An MTurk-style id: uppercase letters and digits, 30 characters."""
    return prefix + "".join(secrets.choice(ID_ALPHABET) for _ in range(length - len(prefix)))


def answers_xml(fields: Sequence[tuple[str, str]]) -> str:
    """Form fields as QuestionFormAnswers XML, exactly as MTurk's externalSubmit builds it.

    The declared encoding is ASCII, so anything beyond ASCII becomes a character reference.
    """
    def text(value: str) -> str:
        escaped = xml_escape(value)
        return escaped.encode("ascii", "xmlcharrefreplace").decode("ascii")

    parts = ['<?xml version="1.0" encoding="ASCII"?>', f'<QuestionFormAnswers xmlns="{ANSWERS_NS}">']
    for name, value in fields:
        parts.append(f"<Answer><QuestionIdentifier>{text(name)}</QuestionIdentifier>"
                     f"<FreeText>{text(value)}</FreeText></Answer>")
    parts.append("</QuestionFormAnswers>")
    return "".join(parts)


def parse_question(question: str) -> dict[str, Any]:
    """Check a Question document the way MTurk does; return its kind and parts."""
    if len(question.encode("utf-8")) > MAX_QUESTION_BYTES:
        raise RequestError(
            f"The Question parameter is {len(question.encode('utf-8'))} bytes; it must not be larger than "
            f"{MAX_QUESTION_BYTES} bytes.", "AWS.MechanicalTurk.XMLParseError")
    try:
        root = ET.fromstring(question)
    except ET.ParseError as exc:
        raise RequestError(f"There was an error parsing the XML question or answer data in your request. "
                           f"Please make sure the data is well-formed and validates against the appropriate "
                           f"schema. Details: {exc}", "AWS.MechanicalTurk.XMLParseError") from None

    def child(name: str, ns: str) -> str:
        node = root.find(f"{{{ns}}}{name}")
        if node is None or node.text is None or not node.text.strip():
            raise RequestError(f"There was an error parsing the XML question data in your request: "
                               f"element {name} is missing or empty.", "AWS.MechanicalTurk.XMLParseError")
        return node.text

    def frame_height(ns: str) -> int:
        value = child("FrameHeight", ns).strip()
        if not value.isdigit():
            raise RequestError(f"FrameHeight must be a non-negative integer, not {value!r}.",
                               "AWS.MechanicalTurk.XMLParseError")
        return int(value)

    if root.tag == f"{{{HTML_QUESTION_NS}}}HTMLQuestion":
        return {"kind": "HTMLQuestion", "html": child("HTMLContent", HTML_QUESTION_NS),
                "frame_height": frame_height(HTML_QUESTION_NS)}
    if root.tag.endswith("}ExternalQuestion") and root.tag.startswith("{" + QUESTION_NS):
        ns = root.tag[1:root.tag.index("}")]
        url = child("ExternalURL", ns).strip()
        if not url.startswith(("https://", "http://")):
            raise RequestError(f"ExternalURL must be an http(s) URL, not {url!r}.", "AWS.MechanicalTurk.XMLParseError")
        return {"kind": "ExternalQuestion", "url": url, "frame_height": frame_height(ns)}
    if root.tag.startswith("{" + QUESTION_NS) and root.tag.endswith("}QuestionForm"):
        from annotate.marketplace import question_form
        try:
            question_form.parse(question)
        except question_form.QuestionFormError as exc:
            raise RequestError(f"There was an error parsing the XML question data in your request: {exc}",
                               "AWS.MechanicalTurk.XMLParseError") from None
        return {"kind": "QuestionForm"}
    raise RequestError(f"There was an error parsing the XML question data in your request: the root element "
                       f"{root.tag!r} is not an HTMLQuestion ({HTML_QUESTION_NS}), an ExternalQuestion or a "
                       f"QuestionForm.", "AWS.MechanicalTurk.XMLParseError")


SCHEMA = """
CREATE TABLE IF NOT EXISTS account (id INTEGER PRIMARY KEY CHECK (id = 1), balance TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS hit_types (
    hit_type_id TEXT PRIMARY KEY, title TEXT, description TEXT, keywords TEXT, reward TEXT,
    assignment_duration INTEGER, auto_approval_delay INTEGER, qualification_requirements TEXT,
    created REAL);
CREATE TABLE IF NOT EXISTS hits (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, hit_id TEXT UNIQUE NOT NULL, hit_type_id TEXT NOT NULL,
    question TEXT, requester_annotation TEXT, max_assignments INTEGER NOT NULL,
    initial_max_assignments INTEGER NOT NULL, unit_cost TEXT NOT NULL,
    creation_time REAL NOT NULL, expiration REAL NOT NULL, expiry_settled INTEGER NOT NULL DEFAULT 0,
    reviewing INTEGER NOT NULL DEFAULT 0, disposed INTEGER NOT NULL DEFAULT 0,
    status TEXT NOT NULL, pending INTEGER NOT NULL DEFAULT 0, available INTEGER NOT NULL DEFAULT 0,
    completed INTEGER NOT NULL DEFAULT 0, submitted_ever INTEGER NOT NULL DEFAULT 0);
CREATE INDEX IF NOT EXISTS hits_by_status ON hits (status, seq);
CREATE INDEX IF NOT EXISTS hits_by_expiry ON hits (expiry_settled, expiration);
CREATE TABLE IF NOT EXISTS assignments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, assignment_id TEXT UNIQUE NOT NULL, hit_id TEXT NOT NULL,
    worker_id TEXT NOT NULL, status TEXT NOT NULL, accept_time REAL, deadline REAL, submit_time REAL,
    auto_approval_time REAL, approval_time REAL, rejection_time REAL, answer TEXT, requester_feedback TEXT);
CREATE INDEX IF NOT EXISTS assignments_by_hit ON assignments (hit_id, seq);
CREATE INDEX IF NOT EXISTS assignments_by_deadline ON assignments (status, deadline);
CREATE INDEX IF NOT EXISTS assignments_by_auto_approval ON assignments (status, auto_approval_time);
CREATE INDEX IF NOT EXISTS assignments_by_worker ON assignments (worker_id, hit_id);
CREATE TABLE IF NOT EXISTS request_tokens (
    scope TEXT NOT NULL, token TEXT NOT NULL, ref TEXT NOT NULL, created REAL NOT NULL,
    PRIMARY KEY (scope, token));
CREATE TABLE IF NOT EXISTS worker_blocks (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, worker_id TEXT UNIQUE NOT NULL, reason TEXT);
CREATE TABLE IF NOT EXISTS bonuses (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, worker_id TEXT, assignment_id TEXT, amount TEXT,
    reason TEXT, grant_time REAL);
CREATE TABLE IF NOT EXISTS api_calls (operation TEXT PRIMARY KEY, count INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS returns (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, assignment_id TEXT NOT NULL, hit_id TEXT NOT NULL,
    worker_id TEXT NOT NULL, reason TEXT, return_time REAL NOT NULL);
"""


def create_tables(conn: sqlite3.Connection, schema: str) -> None:
    """Run a schema's statements one by one: executescript would commit the open transaction."""
    for statement in schema.split(";"):
        if statement.strip():
            conn.execute(statement)


_WRITER_LOCKS: dict[str, threading.RLock] = {}
_WRITER_LOCKS_GUARD = threading.Lock()


def _writer_lock(db_path: str) -> threading.RLock:
    """One lock per database file in this process, shared by every Marketplace on it."""
    key = str(Path(db_path).resolve())
    with _WRITER_LOCKS_GUARD:
        return _WRITER_LOCKS.setdefault(key, threading.RLock())


class Marketplace:
    """The backend. Thread-safe: one SQLite connection per thread, one transaction per call."""

    def __init__(self, db_path: str | Path, clock: Callable[[], float] | None = None, mode: str = "production"):
        if mode not in MODES:
            raise ValueError(f"mode must be sandbox or production, not {mode!r}")
        self.db_path = str(db_path)
        self.clock = clock or time.time
        self.mode = mode
        self._local = threading.local()
        # This process's writers queue here rather than in SQLite's busy handler, which sleeps
        # (1 ms, 2 ms ... up to 100 ms) and retries: with many request threads that sleeping, not
        # the writes, was most of a busy marketplace's time. Other processes still meet the busy timeout.
        self._writer = _writer_lock(self.db_path)
        Path(self.db_path).parent.mkdir(parents=True, exist_ok=True)
        conn = self._conn()
        conn.execute("PRAGMA journal_mode=WAL")
        with self._tx() as c:
            create_tables(c, SCHEMA)
            c.execute("INSERT OR IGNORE INTO account (id, balance) VALUES (1, ?)", (format_money(START_BALANCE),))
            create_tables(c, outbox.SCHEMA)
            from annotate.marketplace import layouts  # imports this module
            layouts.create_schema(c)
        # Split out by concept (they import this module, hence here).
        from annotate.marketplace.file_uploads import FileUploads
        from annotate.marketplace.qualifications import Qualifications
        self.qualifications = Qualifications(self)
        self.file_uploads = FileUploads(self)

    # -- plumbing ---------------------------------------------------------------------------

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # isolation_level=None: we issue BEGIN IMMEDIATE ourselves.
            conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA busy_timeout = 30000")
            conn.execute("PRAGMA synchronous = NORMAL")
            self._local.conn = conn
        return conn

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        conn = self._conn()
        with self._writer:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def create_tables(self, schema: str) -> None:
        """A concept's own tables (CREATE … IF NOT EXISTS statements), in one transaction."""
        with self._tx() as conn:
            create_tables(conn, schema)

    def now(self) -> float:
        return float(self.clock())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    @contextmanager
    def operation(self, name: str | None = None) -> Iterator[tuple[sqlite3.Connection, float]]:
        """One settled transaction; counts the call (by operation name) when it commits."""
        now = self.now()
        with self._tx() as conn:
            self._settle(conn, now)
            yield conn, now
            if name:
                self._count(conn, name)

    def count_call(self, name: str) -> None:
        """Count a call that failed (its own transaction was rolled back)."""
        with self._tx() as conn:
            self._count(conn, name)

    @staticmethod
    def _count(conn: sqlite3.Connection, name: str) -> None:
        conn.execute("INSERT INTO api_calls (operation, count) VALUES (?, 1) "
                     "ON CONFLICT (operation) DO UPDATE SET count = count + 1", (name,))

    def stats(self) -> dict[str, Any]:
        conn = self._conn()
        calls = {r["operation"]: r["count"] for r in conn.execute("SELECT * FROM api_calls ORDER BY operation")}
        hits = {r["status"]: r["n"] for r in conn.execute("SELECT status, COUNT(*) AS n FROM hits GROUP BY status")}
        assignments = {r["status"]: r["n"] for r in
                       conn.execute("SELECT status, COUNT(*) AS n FROM assignments GROUP BY status")}
        returned = conn.execute("SELECT COUNT(*) FROM returns").fetchone()[0]
        recent = [{"assignmentId": r["assignment_id"], "hitId": r["hit_id"], "workerId": r["worker_id"],
                   "reason": r["reason"], "time": r["return_time"]}
                  for r in conn.execute("SELECT * FROM returns ORDER BY seq DESC LIMIT 20")]
        return {"api_calls": calls, "total_api_calls": sum(calls.values()), "hits": hits,
                "assignments": assignments, "balance": self._balance(conn), "mode": self.mode,
                "returned": {"count": returned, "recent": recent}}

    # -- time -------------------------------------------------------------------------------

    def _settle(self, conn: sqlite3.Connection, now: float) -> None:
        """Apply what time did: abandon late assignments, auto-approve, expire HITs."""
        touched: set[str] = set()
        rows = conn.execute("SELECT assignment_id, hit_id FROM assignments WHERE status = ? AND deadline <= ?",
                            (ACCEPTED, now)).fetchall()
        for row in rows:
            touched.add(row["hit_id"])
        if touched:
            conn.execute("UPDATE assignments SET status = ? WHERE status = ? AND deadline <= ?",
                         (ABANDONED, ACCEPTED, now))
            for row in rows:
                outbox.record(conn, "AssignmentAbandoned", row["hit_id"], now, row["assignment_id"])
        rows = conn.execute("SELECT assignment_id, hit_id FROM assignments WHERE status = ? AND auto_approval_time <= ?",
                            (SUBMITTED, now)).fetchall()
        if rows:
            touched.update(r["hit_id"] for r in rows)
            conn.execute("UPDATE assignments SET status = ?, approval_time = auto_approval_time "
                         "WHERE status = ? AND auto_approval_time <= ?", (APPROVED, SUBMITTED, now))
            for row in rows:
                outbox.record(conn, "AssignmentApproved", row["hit_id"], now, row["assignment_id"])
        rows = conn.execute("SELECT hit_id FROM hits WHERE expiry_settled = 0 AND expiration <= ?", (now,)).fetchall()
        if rows:
            touched.update(r["hit_id"] for r in rows)
            conn.execute("UPDATE hits SET expiry_settled = 1 WHERE expiry_settled = 0 AND expiration <= ?", (now,))
            for row in rows:
                outbox.record(conn, "HITExpired", row["hit_id"], now)
        for hit_id in touched:
            self._recompute(conn, hit_id, now)
        # "HITs are automatically disposed of after 120 days": counted from expiry (a HIT may live
        # a year), once no worker holds an assignment and nothing awaits review.
        for row in conn.execute("SELECT hit_id FROM hits WHERE expiry_settled = 1 AND disposed = 0 AND expiration <= ? "
                                "AND pending = 0 AND NOT EXISTS (SELECT 1 FROM assignments a "
                                "WHERE a.hit_id = hits.hit_id AND a.status = ?)",
                                (now - AUTO_DISPOSAL, SUBMITTED)).fetchall():
            self._dispose(conn, row["hit_id"], now)

    def _recompute(self, conn: sqlite3.Connection, hit_id: str, now: float) -> None:
        """Derive a HIT's counts and status from its assignments."""
        hit = conn.execute("SELECT * FROM hits WHERE hit_id = ?", (hit_id,)).fetchone()
        counts = {r["status"]: r["n"] for r in conn.execute(
            "SELECT status, COUNT(*) AS n FROM assignments WHERE hit_id = ? GROUP BY status", (hit_id,))}
        pending = counts.get(ACCEPTED, 0)
        submitted = counts.get(SUBMITTED, 0) + counts.get(APPROVED, 0) + counts.get(REJECTED, 0)
        completed = counts.get(APPROVED, 0) + counts.get(REJECTED, 0)
        available = max(hit["max_assignments"] - pending - submitted, 0)
        expired = hit["expiration"] <= now
        if hit["disposed"]:
            status = "Disposed"
        elif available > 0 and not expired:
            status = "Assignable"
        elif pending > 0:
            status = "Unassignable"
        elif submitted > 0:
            status = "Reviewing" if hit["reviewing"] else "Reviewable"
        else:
            # Expired without a single submission: MTurk leaves such a HIT Assignable (it no
            # longer shows to workers) and lets the requester delete it.
            status = "Assignable"
        reviewing = hit["reviewing"] if status in ("Reviewable", "Reviewing") else 0
        if status == "Reviewable" and hit["status"] not in ("Reviewable", "Reviewing"):
            outbox.record(conn, "HITReviewable", hit_id, now)
        conn.execute("UPDATE hits SET status = ?, pending = ?, available = ?, completed = ?, submitted_ever = ?, "
                     "reviewing = ? WHERE hit_id = ?",
                     (status, pending, available, completed, submitted, reviewing, hit_id))

    # -- money ------------------------------------------------------------------------------

    @staticmethod
    def _balance(conn: sqlite3.Connection) -> str:
        return conn.execute("SELECT balance FROM account WHERE id = 1").fetchone()["balance"]

    def _on_hold(self, conn: sqlite3.Connection) -> Decimal:
        """What live HITs hold: every slot not paid out yet (open, in progress, or awaiting review)."""
        held = Decimal("0")
        for row in conn.execute(
                "SELECT h.unit_cost, h.max_assignments - (SELECT COUNT(*) FROM assignments a "
                "WHERE a.hit_id = h.hit_id AND a.status = ?) AS slots FROM hits h WHERE h.disposed = 0 "
                "AND h.unit_cost != '0'", (APPROVED,)):
            held += money(row["unit_cost"]) * row["slots"]
        return held

    def _debit(self, conn: sqlite3.Connection, amount: Decimal) -> None:
        balance = money(self._balance(conn))
        if amount > balance:
            raise RequestError(f"This Requester has insufficient funds in their account to complete this "
                               f"transaction. Please visit https://requester.mturk.com/account to purchase "
                               f"more. (needed {format_money(amount)}, available {format_money(balance)})",
                               "AWS.MechanicalTurk.InsufficientFunds")
        conn.execute("UPDATE account SET balance = ? WHERE id = 1", (format_money(balance - amount),))

    def _credit(self, conn: sqlite3.Connection, amount: Decimal) -> None:
        balance = money(self._balance(conn))
        conn.execute("UPDATE account SET balance = ? WHERE id = 1", (format_money(balance + amount),))

    # -- lookups ----------------------------------------------------------------------------

    @staticmethod
    def _hit_row(conn: sqlite3.Connection, hit_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT h.*, t.title, t.description, t.keywords, t.reward, t.assignment_duration, "
                           "t.auto_approval_delay, t.qualification_requirements FROM hits h "
                           "JOIN hit_types t USING (hit_type_id) WHERE h.hit_id = ?", (hit_id,)).fetchone()
        if row is None:
            raise RequestError(f"Hit {hit_id} does not exist.", "AWS.MechanicalTurk.HITDoesNotExist")
        return row

    @staticmethod
    def _assignment_row(conn: sqlite3.Connection, assignment_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM assignments WHERE assignment_id = ? AND status IN (?, ?, ?)",
                           (assignment_id, SUBMITTED, APPROVED, REJECTED)).fetchone()
        if row is None:
            raise RequestError(f"Assignment {assignment_id} does not exist.",
                               "AWS.MechanicalTurk.AssignmentDoesNotExist")
        return row

    @staticmethod
    def hit_shape(row: sqlite3.Row) -> dict[str, Any]:
        shape = {
            "HITId": row["hit_id"], "HITTypeId": row["hit_type_id"], "HITGroupId": row["hit_type_id"],
            "CreationTime": row["creation_time"], "Title": row["title"], "Description": row["description"],
            "Question": row["question"], "Keywords": row["keywords"], "HITStatus": row["status"],
            "MaxAssignments": row["max_assignments"], "Reward": row["reward"],
            "AutoApprovalDelayInSeconds": row["auto_approval_delay"], "Expiration": row["expiration"],
            "AssignmentDurationInSeconds": row["assignment_duration"],
            "RequesterAnnotation": row["requester_annotation"], "HITLayoutId": row["hit_layout_id"],
            "QualificationRequirements": json.loads(row["qualification_requirements"] or "[]"),
            "HITReviewStatus": "NotReviewed",
            "NumberOfAssignmentsPending": row["pending"], "NumberOfAssignmentsAvailable": row["available"],
            "NumberOfAssignmentsCompleted": row["completed"],
        }
        return {k: v for k, v in shape.items() if v is not None}

    @staticmethod
    def assignment_shape(row: sqlite3.Row) -> dict[str, Any]:
        shape = {
            "AssignmentId": row["assignment_id"], "WorkerId": row["worker_id"], "HITId": row["hit_id"],
            "AssignmentStatus": row["status"], "AutoApprovalTime": row["auto_approval_time"],
            "AcceptTime": row["accept_time"], "SubmitTime": row["submit_time"],
            "ApprovalTime": row["approval_time"], "RejectionTime": row["rejection_time"],
            "Deadline": row["deadline"], "Answer": row["answer"], "RequesterFeedback": row["requester_feedback"],
        }
        return {k: v for k, v in shape.items() if v is not None}

    # -- pagination -------------------------------------------------------------------------

    @staticmethod
    def _page(rows: list, max_results: int, seq_of: Callable[[Any], int]) -> tuple[list, str | None]:
        """Keyset paging: the token is the last seq seen, so order stays stable under inserts."""
        # As MTurk does, every page that holds results carries a NextToken, the last one too
        # (clients loop `while page["HITs"]`); the page after the last is empty and has none.
        rows = rows[:max_results]
        return rows, (_encode_token(seq_of(rows[-1])) if rows else None)

    # -- requester operations ---------------------------------------------------------------

    def get_account_balance(self) -> dict[str, Any]:
        with self.operation("GetAccountBalance") as (conn, _):
            out = {"AvailableBalance": self._balance(conn)}
            if self.mode == "production":
                out["OnHoldBalance"] = format_money(self._on_hold(conn))
            return out

    def _hit_type(self, conn: sqlite3.Connection, p: dict[str, Any], now: float) -> str:
        """Find or create the HIT type with these properties (MTurk reuses the id of an identical one)."""
        props = {
            "title": p["Title"], "description": p["Description"], "keywords": p.get("Keywords"),
            "reward": format_money(money(p["Reward"])), "assignment_duration": int(p["AssignmentDurationInSeconds"]),
            "auto_approval_delay": int(p.get("AutoApprovalDelayInSeconds", DEFAULT_AUTO_APPROVAL_DELAY)),
            "qualification_requirements": json.dumps(p.get("QualificationRequirements") or [], sort_keys=True),
        }
        self.qualifications.check_requirements(conn, p.get("QualificationRequirements"))
        digest = hashlib.sha256(json.dumps(props, sort_keys=True).encode()).digest()
        hit_type_id = "3" + "".join(ID_ALPHABET[b % 36] for b in digest[:29])
        conn.execute("INSERT OR IGNORE INTO hit_types (hit_type_id, title, description, keywords, reward, "
                     "assignment_duration, auto_approval_delay, qualification_requirements, created) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                     (hit_type_id, *props.values(), now))
        return hit_type_id

    def create_hit_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.operation("CreateHITType") as (conn, now):
            return {"HITTypeId": self._hit_type(conn, p, now)}

    def create_hit(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.operation("CreateHIT") as (conn, now):
            return self._create_hit(conn, now, self._hit_type(conn, p, now), p)

    def create_hit_with_hit_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.operation("CreateHITWithHITType") as (conn, now):
            hit_type = conn.execute("SELECT qualification_requirements FROM hit_types WHERE hit_type_id = ?",
                                    (p["HITTypeId"],)).fetchone()
            if hit_type is None:
                raise RequestError(f"Hit type {p['HITTypeId']} does not exist.",
                                   "AWS.MechanicalTurk.HITTypeDoesNotExist")
            # A qualification type deleted (or made Inactive) since cannot guard new HITs.
            self.qualifications.check_requirements(conn, json.loads(hit_type["qualification_requirements"] or "[]"))
            return self._create_hit(conn, now, p["HITTypeId"], p)

    def _check_token(self, conn: sqlite3.Connection, scope: str, token: str | None, now: float) -> sqlite3.Row | None:
        """The earlier request with this UniqueRequestToken, if it is younger than 24 hours."""
        if token is None:
            return None
        row = conn.execute("SELECT * FROM request_tokens WHERE scope = ? AND token = ?", (scope, token)).fetchone()
        if row is not None and row["created"] > now - TOKEN_TTL:
            return row
        return None

    def _remember_token(self, conn: sqlite3.Connection, scope: str, token: str | None, ref: str, now: float) -> None:
        if token is not None:
            conn.execute("INSERT OR REPLACE INTO request_tokens (scope, token, ref, created) VALUES (?, ?, ?, ?)",
                         (scope, token, ref, now))

    def _create_hit(self, conn: sqlite3.Connection, now: float, hit_type_id: str, p: dict[str, Any]) -> dict[str, Any]:
        token = p.get("UniqueRequestToken")
        earlier = self._check_token(conn, "hit", token, now)
        if earlier is not None:
            raise RequestError(f'The HIT with ID "{earlier["ref"]}" already exists.',
                               "AWS.MechanicalTurk.HitAlreadyExists")
        from annotate.marketplace import layouts, review_policies  # they import this module
        review_policies.refuse(p)
        question = layouts.question_of(conn, p)
        parse_question(question)
        hit_type = conn.execute("SELECT * FROM hit_types WHERE hit_type_id = ?", (hit_type_id,)).fetchone()
        max_assignments = int(p.get("MaxAssignments", 1))
        masters = requires_masters(json.loads(hit_type["qualification_requirements"] or "[]"))
        unit = assignment_cost(money(hit_type["reward"]), max_assignments, masters) \
            if self.mode == "production" else Decimal("0")
        self._debit(conn, unit * max_assignments)
        hit_id = new_id()
        conn.execute("INSERT INTO hits (hit_id, hit_type_id, question, requester_annotation, max_assignments, "
                     "initial_max_assignments, unit_cost, creation_time, expiration, status, available) "
                     "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 'Assignable', ?)",
                     (hit_id, hit_type_id, question, p.get("RequesterAnnotation"), max_assignments,
                      max_assignments, str(unit), now, now + int(p["LifetimeInSeconds"]), max_assignments))
        if p.get("HITLayoutId"):
            conn.execute("UPDATE hits SET hit_layout_id = ? WHERE hit_id = ?", (p["HITLayoutId"], hit_id))
        self._remember_token(conn, "hit", token, hit_id, now)
        outbox.record(conn, "HITCreated", hit_id, now)
        self._recompute(conn, hit_id, now)
        return {"HIT": self.hit_shape(self._hit_row(conn, hit_id))}

    def get_hit(self, hit_id: str) -> dict[str, Any]:
        with self.operation("GetHIT") as (conn, _):
            return {"HIT": self.hit_shape(self._hit_row(conn, hit_id))}

    def _list_hits(self, conn: sqlite3.Connection, where: str, args: tuple, next_token: str | None,
                   max_results: int) -> dict[str, Any]:
        after = _decode_token(next_token)
        rows = conn.execute(
            "SELECT h.*, t.title, t.description, t.keywords, t.reward, t.assignment_duration, "
            "t.auto_approval_delay, t.qualification_requirements FROM hits h JOIN hit_types t USING (hit_type_id) "
            f"WHERE {where} AND h.seq > ? ORDER BY h.seq LIMIT ?", (*args, after, max_results + 1)).fetchall()
        rows, token = self._page(rows, max_results, lambda r: r["seq"])
        out: dict[str, Any] = {"NumResults": len(rows), "HITs": [self.hit_shape(r) for r in rows]}
        if token:
            out["NextToken"] = token
        return out

    def list_hits(self, next_token: str | None = None, max_results: int = 10) -> dict[str, Any]:
        with self.operation("ListHITs") as (conn, _):
            return self._list_hits(conn, "h.disposed = 0", (), next_token, max_results)

    def list_reviewable_hits(self, hit_type_id: str | None = None, status: str | None = None,
                             next_token: str | None = None, max_results: int = 10) -> dict[str, Any]:
        with self.operation("ListReviewableHITs") as (conn, _):
            where, args = "h.status = ?", (status or "Reviewable",)
            if hit_type_id:
                where, args = where + " AND h.hit_type_id = ?", (*args, hit_type_id)
            return self._list_hits(conn, where, args, next_token, max_results)

    def update_hit_review_status(self, hit_id: str, revert: bool = False) -> dict[str, Any]:
        with self.operation("UpdateHITReviewStatus") as (conn, now):
            hit = self._hit_row(conn, hit_id)
            source, target = ("Reviewing", 0) if revert else ("Reviewable", 1)
            if hit["status"] != source:
                raise RequestError(f"This HIT is currently in the state '{hit['status']}'. This operation can be "
                                   f"called with a status of: {source}", "AWS.MechanicalTurk.InvalidHITState")
            conn.execute("UPDATE hits SET reviewing = ? WHERE hit_id = ?", (target, hit_id))
            self._recompute(conn, hit_id, now)
            return {}

    def list_assignments_for_hit(self, hit_id: str, statuses: Sequence[str] | None = None,
                                 next_token: str | None = None, max_results: int = 10) -> dict[str, Any]:
        with self.operation("ListAssignmentsForHIT") as (conn, _):
            self._hit_row(conn, hit_id)
            wanted = list(statuses) if statuses else [SUBMITTED, APPROVED, REJECTED]
            marks = ", ".join("?" for _ in wanted)
            rows = conn.execute(f"SELECT * FROM assignments WHERE hit_id = ? AND status IN ({marks}) AND seq > ? "
                                f"ORDER BY seq LIMIT ?",
                                (hit_id, *wanted, _decode_token(next_token), max_results + 1)).fetchall()
            rows, token = self._page(rows, max_results, lambda r: r["seq"])
            out: dict[str, Any] = {"NumResults": len(rows), "Assignments": [self.assignment_shape(r) for r in rows]}
            if token:
                out["NextToken"] = token
            return out

    def get_assignment(self, assignment_id: str) -> dict[str, Any]:
        with self.operation("GetAssignment") as (conn, _):
            row = self._assignment_row(conn, assignment_id)
            return {"Assignment": self.assignment_shape(row),
                    "HIT": self.hit_shape(self._hit_row(conn, row["hit_id"]))}

    def approve_assignment(self, assignment_id: str, feedback: str | None = None,
                           override_rejection: bool = False) -> dict[str, Any]:
        with self.operation("ApproveAssignment") as (conn, now):
            row = self._assignment_row(conn, assignment_id)
            allowed = (SUBMITTED, REJECTED) if override_rejection else (SUBMITTED,)
            if row["status"] not in allowed:
                raise RequestError(f"This operation can be called with a status of: {', '.join(allowed)}",
                                   "AWS.MechanicalTurk.InvalidAssignmentState")
            if row["status"] == REJECTED and self._hit_row(conn, row["hit_id"])["disposed"]:
                raise RequestError("The HIT of this assignment has been deleted; its rejection cannot be overridden.",
                                   "AWS.MechanicalTurk.InvalidAssignmentState")
            conn.execute("UPDATE assignments SET status = ?, approval_time = ?, rejection_time = NULL, "
                         "requester_feedback = ? WHERE assignment_id = ?", (APPROVED, now, feedback, assignment_id))
            outbox.record(conn, "AssignmentApproved", row["hit_id"], now, assignment_id)
            self._recompute(conn, row["hit_id"], now)
            return {}

    def reject_assignment(self, assignment_id: str, feedback: str) -> dict[str, Any]:
        with self.operation("RejectAssignment") as (conn, now):
            row = self._assignment_row(conn, assignment_id)
            if row["status"] != SUBMITTED:
                raise RequestError("This operation can be called with a status of: Submitted",
                                   "AWS.MechanicalTurk.InvalidAssignmentState")
            conn.execute("UPDATE assignments SET status = ?, rejection_time = ?, requester_feedback = ? "
                         "WHERE assignment_id = ?", (REJECTED, now, feedback, assignment_id))
            outbox.record(conn, "AssignmentRejected", row["hit_id"], now, assignment_id)
            self._recompute(conn, row["hit_id"], now)
            return {}

    def create_additional_assignments_for_hit(self, hit_id: str, number: int,
                                              token: str | None = None) -> dict[str, Any]:
        with self.operation("CreateAdditionalAssignmentsForHIT") as (conn, now):
            hit = self._hit_row(conn, hit_id)
            earlier = self._check_token(conn, "extend", token, now)
            if earlier is not None:
                # MTurk documents only "an error with a message containing the request ID"; we name it.
                raise RequestError(f'The request with UniqueRequestToken "{token}" has already been processed '
                                   f'(HIT "{earlier["ref"]}").',
                                   "AWS.MechanicalTurk.UniqueRequestTokenRequestAlreadyProcessed")
            if hit["disposed"]:
                raise RequestError(f"This HIT is currently in the state 'Disposed'. This operation can be called "
                                   f"with a status of: Assignable, Unassignable, Reviewable, Reviewing",
                                   "AWS.MechanicalTurk.InvalidHITState")
            total = hit["max_assignments"] + number
            if hit["initial_max_assignments"] < 10 <= total:
                raise RequestError(f"HITs created with fewer than 10 assignments cannot be extended to have 10 or "
                                   f"more assignments (HIT {hit_id} has {hit['max_assignments']}, asked for {number} "
                                   f"more).", "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")
            if total > 1000000:
                raise RequestError("MaxAssignments cannot exceed 1000000.", "AWS.MechanicalTurk.InvalidParameterValue")
            self._debit(conn, money(hit["unit_cost"]) * number)
            conn.execute("UPDATE hits SET max_assignments = ?, reviewing = 0 WHERE hit_id = ?", (total, hit_id))
            self._remember_token(conn, "extend", token, hit_id, now)
            outbox.record(conn, "HITExtended", hit_id, now)
            self._recompute(conn, hit_id, now)
            return {}

    def update_expiration_for_hit(self, hit_id: str, expire_at: float) -> dict[str, Any]:
        with self.operation("UpdateExpirationForHIT") as (conn, now):
            hit = self._hit_row(conn, hit_id)
            if hit["disposed"]:
                raise RequestError("This HIT is currently in the state 'Disposed'.", "AWS.MechanicalTurk.InvalidHITState")
            expiration = max(float(expire_at), now)  # a time in the past expires the HIT now
            conn.execute("UPDATE hits SET expiration = ?, expiry_settled = ? WHERE hit_id = ?",
                         (expiration, int(expiration <= now), hit_id))
            if expiration > max(hit["expiration"], now):
                outbox.record(conn, "HITExtended", hit_id, now)
            elif expiration <= now and not hit["expiry_settled"]:
                outbox.record(conn, "HITExpired", hit_id, now)
            self._recompute(conn, hit_id, now)
            return {}

    def delete_hit(self, hit_id: str) -> dict[str, Any]:
        with self.operation("DeleteHIT") as (conn, now):
            hit = self._hit_row(conn, hit_id)
            status = hit["status"]
            never_used = hit["submitted_ever"] == 0 and hit["pending"] == 0 and hit["expiration"] <= now
            # The reference: "You can only dispose of HITs that are in the Reviewable state" (not
            # Reviewing). An expired HIT nobody worked on stays Assignable and may go too, as on MTurk.
            if status != "Reviewable" and not (status == "Assignable" and never_used):
                raise RequestError(f"This HIT is currently in the state '{status}'. This operation can be called "
                                   f"with a status of: Reviewable", "AWS.MechanicalTurk.InvalidHITState")
            waiting = conn.execute("SELECT COUNT(*) FROM assignments WHERE hit_id = ? AND status = ?",
                                   (hit_id, SUBMITTED)).fetchone()[0]
            if waiting:
                raise RequestError(f"This HIT has {waiting} submitted assignment(s) that must be approved or rejected "
                                   f"before it can be deleted.", "AWS.MechanicalTurk.InvalidHITState")
            self._dispose(conn, hit_id, now)
            return {}

    def _dispose(self, conn: sqlite3.Connection, hit_id: str, now: float) -> None:
        """Dispose of a HIT: every slot not paid out is refunded."""
        hit = conn.execute("SELECT unit_cost, max_assignments FROM hits WHERE hit_id = ?", (hit_id,)).fetchone()
        approved = conn.execute("SELECT COUNT(*) FROM assignments WHERE hit_id = ? AND status = ?",
                                (hit_id, APPROVED)).fetchone()[0]
        self._credit(conn, money(hit["unit_cost"]) * (hit["max_assignments"] - approved))
        # expiry_settled = 2: out of the index range the auto-disposal sweep scans, for good.
        conn.execute("UPDATE hits SET disposed = 1, expiry_settled = 2 WHERE hit_id = ?", (hit_id,))
        outbox.record(conn, "HITDisposed", hit_id, now)
        self._recompute(conn, hit_id, now)

    def create_worker_block(self, worker_id: str, reason: str) -> dict[str, Any]:
        with self.operation("CreateWorkerBlock") as (conn, _):
            conn.execute("INSERT INTO worker_blocks (worker_id, reason) VALUES (?, ?) "
                         "ON CONFLICT (worker_id) DO UPDATE SET reason = excluded.reason", (worker_id, reason))
            return {}

    def delete_worker_block(self, worker_id: str, reason: str | None = None) -> dict[str, Any]:
        with self.operation("DeleteWorkerBlock") as (conn, _):
            # Unblocking a worker who is not blocked succeeds: the end state is the one asked for.
            conn.execute("DELETE FROM worker_blocks WHERE worker_id = ?", (worker_id,))
            return {}

    def list_worker_blocks(self, next_token: str | None = None, max_results: int = 10) -> dict[str, Any]:
        with self.operation("ListWorkerBlocks") as (conn, _):
            rows = conn.execute("SELECT * FROM worker_blocks WHERE seq > ? ORDER BY seq LIMIT ?",
                                (_decode_token(next_token), max_results + 1)).fetchall()
            rows, token = self._page(rows, max_results, lambda r: r["seq"])
            out: dict[str, Any] = {"NumResults": len(rows),
                                   "WorkerBlocks": [{"WorkerId": r["worker_id"], "Reason": r["reason"]} for r in rows]}
            if token:
                out["NextToken"] = token
            return out

    def send_bonus(self, worker_id: str, assignment_id: str, amount: str, reason: str,
                   token: str | None = None) -> dict[str, Any]:
        with self.operation("SendBonus") as (conn, now):
            earlier = self._check_token(conn, "bonus", token, now)
            if earlier is not None:
                raise RequestError(f'The bonus with UniqueRequestToken "{token}" has already been paid '
                                   f'(assignment "{earlier["ref"]}").',
                                   "AWS.MechanicalTurk.UniqueRequestTokenRequestAlreadyProcessed")
            row = self._assignment_row(conn, assignment_id)
            if row["worker_id"] != worker_id:
                raise RequestError(f"Assignment {assignment_id} was not done by worker {worker_id}.",
                                   "AWS.MechanicalTurk.InvalidParameterValue")
            bonus = money(amount)
            if self.mode == "production":
                self._debit(conn, bonus + assignment_fee(bonus, 1))
            conn.execute("INSERT INTO bonuses (worker_id, assignment_id, amount, reason, grant_time) "
                         "VALUES (?, ?, ?, ?, ?)", (worker_id, assignment_id, format_money(bonus), reason, now))
            self._remember_token(conn, "bonus", token, assignment_id, now)
            return {}

    # -- worker side ------------------------------------------------------------------------

    def available_hits(self, worker_id: str | None = None, limit: int = 1000,
                       after: str | None = None) -> list[dict[str, Any]]:
        """HITs a worker could accept now, oldest first (for the worker pages and the crowd).

        `after` (a HIT id) pages: only HITs posted after that one. Keyset paging, so a crowd that
        submits while it pages neither skips nor repeats a HIT.
        """
        with self.operation() as (conn, now):
            args: list[Any] = [now]
            extra = ""
            if after:
                row = conn.execute("SELECT seq FROM hits WHERE hit_id = ?", (after,)).fetchone()
                if row is None:
                    raise WorkerError(400, f"There is no HIT {after} to list after.", "HITNotFound")
                extra += " AND h.seq > ?"
                args.append(row["seq"])
            if worker_id:
                if conn.execute("SELECT 1 FROM worker_blocks WHERE worker_id = ?", (worker_id,)).fetchone():
                    return []
                extra += (" AND NOT EXISTS (SELECT 1 FROM assignments a WHERE a.hit_id = h.hit_id AND a.worker_id = ? "
                          "AND a.status NOT IN (?, ?))")
                args += [worker_id, *GONE]
            sql = ("SELECT h.*, t.title, t.description, t.keywords, t.reward, t.assignment_duration, "
                   "t.auto_approval_delay, t.qualification_requirements FROM hits h JOIN hit_types t USING (hit_type_id) "
                   f"WHERE h.status = 'Assignable' AND h.available > 0 AND h.expiration > ?{extra} AND h.seq > ? "
                   "ORDER BY h.seq LIMIT ?")
            rows, seq = [], 0
            while len(rows) < limit:  # HITs a worker may not discover are skipped, so read on past them
                batch = conn.execute(sql, (*args, seq, limit)).fetchall()
                if not batch:
                    break
                seq = batch[-1]["seq"]
                rows += [r for r in batch if not worker_id or r["qualification_requirements"] in (None, "[]")
                         or "Discover" in self.qualifications.access(conn, worker_id, r["qualification_requirements"])[0]]
                if len(batch) < limit:
                    break
            rows = rows[:limit]
            return [{"hitId": r["hit_id"], "hitTypeId": r["hit_type_id"], "title": r["title"],
                     "description": r["description"], "keywords": r["keywords"], "reward": r["reward"],
                     "assignmentsAvailable": r["available"], "maxAssignments": r["max_assignments"],
                     "assignmentDurationInSeconds": r["assignment_duration"],
                     "expiration": r["expiration"], "requesterAnnotation": r["requester_annotation"]} for r in rows]

    def hit_for_worker(self, hit_id: str, worker_id: str | None = None) -> dict[str, Any]:
        """What a worker may see of a HIT (never the RequesterAnnotation); with `worker_id`, also
        what that worker may do with it (`actions`) and the requirements they do not meet."""
        with self.operation() as (conn, now):
            row = conn.execute(
                "SELECT h.*, t.title, t.description, t.keywords, t.reward, t.assignment_duration, "
                "t.qualification_requirements FROM hits h "
                "JOIN hit_types t USING (hit_type_id) WHERE h.hit_id = ? AND h.disposed = 0", (hit_id,)).fetchone()
            if row is None:
                raise WorkerError(404, f"There is no HIT {hit_id}.", "HITNotFound")
            requirements = json.loads(row["qualification_requirements"] or "[]")
            access: dict[str, Any] = {"requirements": [self.qualifications.describe(conn, r) for r in requirements]}
            if worker_id:
                actions, unmet = self.qualifications.access(conn, worker_id, requirements)
                access.update(actions=sorted(actions), unmet=[self.qualifications.describe(conn, r) for r in unmet])
            return {**access, "hitId": row["hit_id"], "title": row["title"], "description": row["description"],
                    "keywords": row["keywords"], "reward": row["reward"], "question": row["question"],
                    "assignmentsAvailable": row["available"] if row["expiration"] > now else 0,
                    "assignmentDurationInSeconds": row["assignment_duration"], "status": row["status"]}

    def accept(self, hit_id: str, worker_id: str) -> dict[str, Any]:
        with self.operation() as (conn, now):
            if not worker_id or not worker_id.startswith("A") or not worker_id[1:].isalnum() \
                    or worker_id != worker_id.upper() or len(worker_id) > 64:
                raise WorkerError(400, f"{worker_id!r} is not a worker id (A followed by uppercase letters and digits).",
                                  "InvalidWorkerId")
            hit = conn.execute("SELECT h.*, t.assignment_duration, t.qualification_requirements FROM hits h "
                               "JOIN hit_types t USING (hit_type_id) WHERE hit_id = ? AND disposed = 0",
                               (hit_id,)).fetchone()
            if hit is None:
                raise WorkerError(404, f"There is no HIT {hit_id}.", "HITNotFound")
            if conn.execute("SELECT 1 FROM worker_blocks WHERE worker_id = ?", (worker_id,)).fetchone():
                raise WorkerError(403, "You have been blocked by this requester and cannot accept their HITs.",
                                  "WorkerBlocked")
            if conn.execute("SELECT 1 FROM assignments WHERE hit_id = ? AND worker_id = ? AND status NOT IN (?, ?)",
                            (hit_id, worker_id, *GONE)).fetchone():
                raise WorkerError(409, "You have already worked on this HIT; a worker gets at most one assignment "
                                       "of a HIT.", "AlreadyWorkedOn")
            if "Accept" not in self.qualifications.access(conn, worker_id, hit["qualification_requirements"])[0]:
                raise WorkerError(403, "You do not meet the Qualification requirements of this HIT.",
                                  "QualificationRequirementNotMet")
            if hit["expiration"] <= now or hit["available"] <= 0 or hit["status"] != "Assignable":
                raise WorkerError(410, "There are no more assignments of this HIT available.", "NoAssignmentsAvailable")
            assignment_id = new_id()
            deadline = now + hit["assignment_duration"]
            conn.execute("INSERT INTO assignments (assignment_id, hit_id, worker_id, status, accept_time, deadline) "
                         "VALUES (?, ?, ?, ?, ?, ?)", (assignment_id, hit_id, worker_id, ACCEPTED, now, deadline))
            outbox.record(conn, "AssignmentAccepted", hit_id, now, assignment_id)
            self._recompute(conn, hit_id, now)
            return {"assignmentId": assignment_id, "hitId": hit_id, "workerId": worker_id, "deadline": deadline}

    def task(self, assignment_id: str) -> dict[str, Any]:
        """The assignment a worker holds, with its HIT's question."""
        with self.operation() as (conn, _):
            row = conn.execute("SELECT a.*, h.question FROM assignments a JOIN hits h USING (hit_id) "
                               "WHERE a.assignment_id = ?", (assignment_id,)).fetchone()
            if row is None:
                raise WorkerError(404, f"There is no assignment {assignment_id}.", "AssignmentNotFound")
            return {"assignmentId": row["assignment_id"], "hitId": row["hit_id"], "workerId": row["worker_id"],
                    "status": row["status"], "deadline": row["deadline"], "question": row["question"]}

    def submit(self, assignment_id: str, fields: Sequence[tuple[str, str]],
               answer_with: Callable[[sqlite3.Connection, float], str] | None = None) -> dict[str, Any]:
        """Submit form fields as FreeText answers, or the answer XML `answer_with` builds inside this
        transaction (a QuestionForm, whose uploaded files are stored with the submission)."""
        with self.operation() as (conn, now):
            row = conn.execute("SELECT a.*, t.auto_approval_delay FROM assignments a JOIN hits h USING (hit_id) "
                               "JOIN hit_types t USING (hit_type_id) WHERE a.assignment_id = ?",
                               (assignment_id,)).fetchone()
            if row is None:
                raise WorkerError(404, f"There is no assignment {assignment_id}.", "AssignmentNotFound")
            if row["status"] == ABANDONED:
                raise WorkerError(410, "The time allotted for this assignment has expired.", "AssignmentExpired")
            if row["status"] == RETURNED:
                raise WorkerError(410, "This assignment was returned.", "AssignmentReturned")
            if row["status"] != ACCEPTED:
                raise WorkerError(409, "This assignment has already been submitted.", "AlreadySubmitted")
            answer = answer_with(conn, now) if answer_with is not None else answers_xml(fields)
            conn.execute("UPDATE assignments SET status = ?, submit_time = ?, auto_approval_time = ?, answer = ? "
                         "WHERE assignment_id = ?",
                         (SUBMITTED, now, now + row["auto_approval_delay"], answer, assignment_id))
            outbox.record(conn, "AssignmentSubmitted", row["hit_id"], now, assignment_id)
            self._recompute(conn, row["hit_id"], now)
            return {"assignmentId": assignment_id, "hitId": row["hit_id"], "workerId": row["worker_id"],
                    "answer": answer}

    def return_assignment(self, assignment_id: str, worker_id: str | None = None,
                          reason: str | None = None) -> dict[str, Any]:
        """The worker gives an accepted assignment back (MTurk's "Return"): its slot is free again.
        `worker_id`, when given, must be the assignment's; `reason` (why a simulated worker could not
        do it) is kept for the stats page."""
        with self.operation() as (conn, now):
            row = conn.execute("SELECT * FROM assignments WHERE assignment_id = ?", (assignment_id,)).fetchone()
            if row is None:
                raise WorkerError(404, f"There is no assignment {assignment_id}.", "AssignmentNotFound")
            if worker_id and row["worker_id"] != worker_id:
                raise WorkerError(403, "This assignment is not yours to return.", "NotYourAssignment")
            if row["status"] != ACCEPTED:
                raise WorkerError(409, f"This assignment is {row['status']}; only an accepted one can be returned.",
                                  "NotAccepted")
            conn.execute("UPDATE assignments SET status = ? WHERE assignment_id = ?", (RETURNED, assignment_id))
            conn.execute("INSERT INTO returns (assignment_id, hit_id, worker_id, reason, return_time) "
                         "VALUES (?, ?, ?, ?, ?)", (assignment_id, row["hit_id"], row["worker_id"], reason, now))
            outbox.record(conn, "AssignmentReturned", row["hit_id"], now, assignment_id)
            self._recompute(conn, row["hit_id"], now)
            return {"assignmentId": assignment_id, "hitId": row["hit_id"], "status": RETURNED}


def _encode_token(seq: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"after": seq}).encode()).decode()


def _decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        value = json.loads(base64.urlsafe_b64decode(token.encode()))["after"]
        if not isinstance(value, int):
            raise ValueError(value)
        return value
    except (ValueError, KeyError, TypeError):
        raise ParameterValidationError(f"The NextToken {token!r} is not valid.") from None
