"""Qualifications, as MTurk has them: custom types (with a QuestionForm Test scored by an
AnswerKey, or requests the requester accepts or rejects, or auto-granted), workers' scores, and
the system types whose values MTurk computes (Locale, Adult, Masters, NumberHITsApproved,
PercentAssignmentsApproved).

State lives in the marketplace's SQLite beside the HITs; every requester operation runs in the
marketplace's own settled transaction (`Marketplace.operation`). `access()` is what the worker
pages and accept ask: may this worker discover, preview, accept a HIT with these requirements?
"""

from __future__ import annotations

import json
import re
import sqlite3
from typing import TYPE_CHECKING, Any, Sequence

from annotate.marketplace import answer_key, question_form
from annotate.marketplace.models import (APPROVED, REJECTED, ParameterValidationError, RequestError, WorkerError,
                                         _decode_token, new_id)

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

# The system types, with the ids MTurk gives them (the API reference's QualificationRequirement page).
MASTERS_SANDBOX = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6"
MASTERS_PRODUCTION = "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
LOCALE = "00000000000000000071"
NUMBER_HITS_APPROVED = "00000000000000000040"
PERCENT_ASSIGNMENTS_APPROVED = "000000000000000000L0"
ADULT = "00000000000000000060"
SYSTEM_TYPES = {
    MASTERS_SANDBOX: ("Masters", "Workers who have demonstrated excellence across a wide range of HITs (sandbox)."),
    MASTERS_PRODUCTION: ("Masters", "Workers who have demonstrated excellence across a wide range of HITs."),
    LOCALE: ("Worker_Locale", "The location of the Worker, as given in their mailing address."),
    NUMBER_HITS_APPROVED: ("Worker_NumberHITsApproved", "The total number of HITs submitted by the Worker that "
                                                        "have been approved."),
    PERCENT_ASSIGNMENTS_APPROVED: ("Worker_PercentAssignmentsApproved", "The percentage of assignments the Worker "
                                                                        "has submitted that were approved."),
    ADULT: ("Worker_Adult", "The Worker has agreed to see adult content."),
}
MASTERS = (MASTERS_SANDBOX, MASTERS_PRODUCTION)
INTEGER_COMPARATORS = ("LessThan", "LessThanOrEqualTo", "GreaterThan", "GreaterThanOrEqualTo")
MAX_VALUES = 30  # In / NotIn take at most this many values
MAX_DOCUMENT_BYTES = 65535  # Test and AnswerKey
ACTIONS = ("Discover", "Preview", "Accept")
GUARDS = {"Accept": ("Accept",), "PreviewAndAccept": ("Preview", "Accept"),
          "DiscoverPreviewAndAccept": ("Discover", "Preview", "Accept")}

SCHEMA = """
CREATE TABLE IF NOT EXISTS qualification_types (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qualification_type_id TEXT UNIQUE NOT NULL, system INTEGER NOT NULL,
    name TEXT NOT NULL, description TEXT, keywords TEXT, status TEXT NOT NULL, test TEXT, answer_key TEXT,
    test_duration INTEGER, retry_delay INTEGER, auto_granted INTEGER NOT NULL DEFAULT 0, auto_granted_value INTEGER,
    creation_time REAL NOT NULL, disposing INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS qualifications (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, qualification_type_id TEXT NOT NULL, worker_id TEXT NOT NULL,
    integer_value INTEGER NOT NULL, status TEXT NOT NULL, grant_time REAL NOT NULL,
    UNIQUE (qualification_type_id, worker_id));
CREATE TABLE IF NOT EXISTS qualification_requests (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, request_id TEXT UNIQUE NOT NULL, qualification_type_id TEXT NOT NULL,
    worker_id TEXT NOT NULL, test TEXT, answer TEXT, submit_time REAL NOT NULL, status TEXT NOT NULL,
    reason TEXT);
CREATE INDEX IF NOT EXISTS qualification_requests_by_worker ON qualification_requests (worker_id, qualification_type_id);
CREATE TABLE IF NOT EXISTS qualification_tests (
    test_id TEXT PRIMARY KEY, qualification_type_id TEXT NOT NULL, worker_id TEXT NOT NULL, started REAL NOT NULL,
    deadline REAL NOT NULL, done INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS worker_profiles (
    worker_id TEXT PRIMARY KEY, country TEXT NOT NULL, subdivision TEXT, adult INTEGER NOT NULL DEFAULT 0,
    masters INTEGER NOT NULL DEFAULT 0);
"""
# Request states: Pending (the requester decides), Granted / Rejected (decided), Scored (an
# AnswerKey decided at once; never listed to the requester, as on MTurk).
PENDING, GRANTED, REJECTED_REQUEST, SCORED = "Pending", "Granted", "Rejected", "Scored"
DEFAULT_PROFILE = {"country": "US", "subdivision": None, "adult": 0, "masters": 0}


def _no_type(type_id: str) -> RequestError:
    return RequestError(f"QualificationType {type_id} does not exist.", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")


def _compare(comparator: str, have: Any, want: list[Any]) -> bool:
    if comparator == "Exists":
        return have is not None
    if comparator == "DoesNotExist":
        return have is None
    if have is None:
        return False
    if comparator == "EqualTo":
        return have == want[0]
    if comparator == "NotEqualTo":
        return have != want[0]
    if comparator == "In":
        return have in want
    if comparator == "NotIn":
        return have not in want
    value = want[0]
    return {"LessThan": have < value, "LessThanOrEqualTo": have <= value, "GreaterThan": have > value,
            "GreaterThanOrEqualTo": have >= value}[comparator]


def guarded_actions(requirement: dict[str, Any]) -> tuple[str, ...]:
    """What a requirement guards: ActionsGuarded, else PreviewAndAccept when the deprecated
    RequiredToPreview is true, else Accept (the API reference's default)."""
    if requirement.get("ActionsGuarded"):
        return GUARDS[requirement["ActionsGuarded"]]
    return GUARDS["PreviewAndAccept" if requirement.get("RequiredToPreview") else "Accept"]


class Qualifications:
    def __init__(self, backend: "Marketplace"):
        self.backend = backend
        backend.create_tables(SCHEMA)
        with backend._tx() as conn:
            for type_id, (name, description) in SYSTEM_TYPES.items():
                conn.execute("INSERT OR IGNORE INTO qualification_types (qualification_type_id, system, name, "
                             "description, status, creation_time) VALUES (?, 1, ?, ?, 'Active', 0)",
                             (type_id, name, description))

    # -- shapes ---------------------------------------------------------------------------------

    @staticmethod
    def type_shape(row: sqlite3.Row) -> dict[str, Any]:
        shape = {
            "QualificationTypeId": row["qualification_type_id"], "CreationTime": row["creation_time"],
            "Name": row["name"], "Description": row["description"], "Keywords": row["keywords"],
            "QualificationTypeStatus": "Inactive" if row["disposing"] else row["status"], "Test": row["test"],
            "TestDurationInSeconds": row["test_duration"], "AnswerKey": row["answer_key"],
            "RetryDelayInSeconds": row["retry_delay"], "IsRequestable": not row["system"],
            "AutoGranted": bool(row["auto_granted"]), "AutoGrantedValue": row["auto_granted_value"],
        }
        return {k: v for k, v in shape.items() if v is not None}

    @staticmethod
    def qualification_shape(row: sqlite3.Row) -> dict[str, Any]:
        return {"QualificationTypeId": row["qualification_type_id"], "WorkerId": row["worker_id"],
                "GrantTime": row["grant_time"], "IntegerValue": row["integer_value"], "Status": row["status"]}

    # -- lookups --------------------------------------------------------------------------------

    def _settle_disposals(self, conn: sqlite3.Connection) -> None:
        """A deleted type goes once no live HIT uses it (MTurk waits for them, then frees the name)."""
        for row in conn.execute("SELECT qualification_type_id FROM qualification_types WHERE disposing = 1").fetchall():
            if not self._live_hits_using(conn, row["qualification_type_id"]):
                conn.execute("DELETE FROM qualification_types WHERE qualification_type_id = ?",
                             (row["qualification_type_id"],))

    @staticmethod
    def _live_hits_using(conn: sqlite3.Connection, type_id: str) -> bool:
        return conn.execute("SELECT 1 FROM hits h JOIN hit_types t USING (hit_type_id) WHERE h.disposed = 0 AND "
                            "t.qualification_requirements LIKE ? LIMIT 1", (f'%"QualificationTypeId": "{type_id}"%',)
                            ).fetchone() is not None

    def _type(self, conn: sqlite3.Connection, type_id: str, *, live: bool = True) -> sqlite3.Row:
        self._settle_disposals(conn)
        row = conn.execute("SELECT * FROM qualification_types WHERE qualification_type_id = ?", (type_id,)).fetchone()
        if row is None or (live and row["disposing"]):
            raise _no_type(type_id)
        return row

    def _custom_type(self, conn: sqlite3.Connection, type_id: str) -> sqlite3.Row:
        row = self._type(conn, type_id)
        if row["system"]:
            raise RequestError(f"QualificationType {type_id} is a system Qualification type; its values are "
                               f"assigned by Amazon Mechanical Turk, not by a requester.",
                               "AWS.MechanicalTurk.InvalidQualificationType")
        return row

    # -- checking a type's Test / AnswerKey ----------------------------------------------------------

    @staticmethod
    def _check_test(test: str | None, key: str | None, auto_granted: bool, duration: int | None) -> None:
        for name, value in (("Test", test), ("AnswerKey", key)):
            if value is not None and len(value.encode("utf-8")) > MAX_DOCUMENT_BYTES:
                raise RequestError(f"{name} is {len(value.encode('utf-8'))} bytes; it must not be longer than "
                                   f"{MAX_DOCUMENT_BYTES} bytes.", "AWS.MechanicalTurk.InvalidParameterValue")
        if test is None:
            if key is not None:
                raise RequestError("An AnswerKey needs a Test to score.", "AWS.MechanicalTurk.InvalidParameterValue")
            return
        if auto_granted:
            raise RequestError("AutoGranted cannot be true for a QualificationType with a Test.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        if duration is None:
            raise RequestError("TestDurationInSeconds is required when a Test is given.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        try:
            form = question_form.parse(test)
        except question_form.QuestionFormError as exc:
            raise RequestError(f"There was an error parsing the XML question data in your request (Test): {exc}",
                               "AWS.MechanicalTurk.XMLParseError") from None
        if key is not None:
            try:
                answer_key.parse(key, form)
            except answer_key.AnswerKeyError as exc:
                raise RequestError(f"There was an error parsing the AnswerKey in your request: {exc}",
                                   "AWS.MechanicalTurk.XMLParseError") from None

    # -- requester operations --------------------------------------------------------------------

    def create_qualification_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("CreateQualificationType") as (conn, now):
            self._settle_disposals(conn)
            if conn.execute("SELECT 1 FROM qualification_types WHERE name = ? AND system = 0", (p["Name"],)).fetchone():
                raise RequestError(f"You have already created a QualificationType with this name. A QualificationType's "
                                   f"name must be unique among all of the QualificationTypes created by the same user. "
                                   f"(Name: {p['Name']})", "AWS.MechanicalTurk.QualificationTypeAlreadyExists")
            auto = bool(p.get("AutoGranted", False))
            self._check_test(p.get("Test"), p.get("AnswerKey"), auto, p.get("TestDurationInSeconds"))
            type_id = new_id()
            conn.execute("INSERT INTO qualification_types (qualification_type_id, system, name, description, keywords, "
                         "status, test, answer_key, test_duration, retry_delay, auto_granted, auto_granted_value, "
                         "creation_time) VALUES (?, 0, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                         (type_id, p["Name"], p["Description"], p.get("Keywords"), p["QualificationTypeStatus"],
                          p.get("Test"), p.get("AnswerKey"), p.get("TestDurationInSeconds"),
                          p.get("RetryDelayInSeconds"), int(auto),
                          p.get("AutoGrantedValue", 1) if auto else p.get("AutoGrantedValue"), now))
            return {"QualificationType": self.type_shape(self._type(conn, type_id))}

    def get_qualification_type(self, type_id: str) -> dict[str, Any]:
        with self.backend.operation("GetQualificationType") as (conn, _):
            return {"QualificationType": self.type_shape(self._type(conn, type_id, live=False))}

    def update_qualification_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("UpdateQualificationType") as (conn, _):
            row = self._custom_type(conn, p["QualificationTypeId"])
            changes: dict[str, Any] = {}
            if "Description" in p:
                changes["description"] = p["Description"]
            if "QualificationTypeStatus" in p:
                changes["status"] = p["QualificationTypeStatus"]
            if "RetryDelayInSeconds" in p:
                changes["retry_delay"] = p["RetryDelayInSeconds"]
            if "Test" in p:
                # A new test makes the old key meaningless: it goes unless a new one comes too.
                changes["test"], changes["answer_key"] = p["Test"], p.get("AnswerKey")
            elif "AnswerKey" in p:
                changes["answer_key"] = p["AnswerKey"]
            if "TestDurationInSeconds" in p:
                changes["test_duration"] = p["TestDurationInSeconds"]
            if "AutoGranted" in p:
                changes["auto_granted"] = int(p["AutoGranted"])
            if "AutoGrantedValue" in p:
                changes["auto_granted_value"] = p["AutoGrantedValue"]
            merged = {**dict(row), **changes}
            self._check_test(merged["test"], merged["answer_key"], bool(merged["auto_granted"]),
                             merged["test_duration"])
            if merged["auto_granted"] and merged["auto_granted_value"] is None:
                changes["auto_granted_value"] = 1
            if changes:
                sets = ", ".join(f"{k} = ?" for k in changes)
                conn.execute(f"UPDATE qualification_types SET {sets} WHERE qualification_type_id = ?",
                             (*changes.values(), row["qualification_type_id"]))
            return {"QualificationType": self.type_shape(self._type(conn, row["qualification_type_id"]))}

    def delete_qualification_type(self, type_id: str) -> dict[str, Any]:
        with self.backend.operation("DeleteQualificationType") as (conn, now):
            self._custom_type(conn, type_id)
            # Pending requests are rejected; granted qualifications stay (live HITs may need them).
            conn.execute("UPDATE qualification_requests SET status = ?, reason = ? WHERE qualification_type_id = ? AND "
                         "status = ?", (REJECTED_REQUEST, "The Qualification type was deleted.", type_id, PENDING))
            conn.execute("UPDATE qualification_types SET disposing = 1 WHERE qualification_type_id = ?", (type_id,))
            self._settle_disposals(conn)
            return {}

    def list_qualification_types(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("ListQualificationTypes") as (conn, _):
            self._settle_disposals(conn)
            where, args = ["disposing = 0", "seq > ?"], [_decode_token(p.get("NextToken"))]
            if p["MustBeRequestable"] or p.get("MustBeOwnedByCaller"):
                where.append("system = 0")  # system types are neither requestable nor the caller's
            if p.get("Query"):
                where.append("(instr(lower(name), ?) OR instr(lower(coalesce(description, '')), ?) OR "
                             "instr(lower(coalesce(keywords, '')), ?))")
                args += [p["Query"].lower()] * 3
            size = p.get("MaxResults", 10)
            rows = conn.execute(f"SELECT * FROM qualification_types WHERE {' AND '.join(where)} ORDER BY seq LIMIT ?",
                                (*args, size + 1)).fetchall()
            rows, token = self.backend._page(rows, size, lambda r: r["seq"])
            out: dict[str, Any] = {"NumResults": len(rows), "QualificationTypes": [self.type_shape(r) for r in rows]}
            if token:
                out["NextToken"] = token
            return out

    def _grant(self, conn: sqlite3.Connection, type_id: str, worker_id: str, value: int, now: float) -> None:
        conn.execute("INSERT INTO qualifications (qualification_type_id, worker_id, integer_value, status, grant_time) "
                     "VALUES (?, ?, ?, 'Granted', ?) ON CONFLICT (qualification_type_id, worker_id) DO UPDATE SET "
                     "integer_value = excluded.integer_value, status = 'Granted', grant_time = excluded.grant_time",
                     (type_id, worker_id, value, now))

    def associate_qualification_with_worker(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("AssociateQualificationWithWorker") as (conn, now):
            self._custom_type(conn, p["QualificationTypeId"])
            self._grant(conn, p["QualificationTypeId"], p["WorkerId"], p.get("IntegerValue", 1), now)
            return {}

    def disassociate_qualification_from_worker(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("DisassociateQualificationFromWorker") as (conn, _):
            self._custom_type(conn, p["QualificationTypeId"])
            done = conn.execute("UPDATE qualifications SET status = 'Revoked' WHERE qualification_type_id = ? AND "
                                "worker_id = ? AND status = 'Granted'", (p["QualificationTypeId"], p["WorkerId"]))
            if done.rowcount == 0:
                raise RequestError(f"Worker {p['WorkerId']} does not have a Qualification of type "
                                   f"{p['QualificationTypeId']}.", "AWS.MechanicalTurk.QualificationDoesNotExist")
            return {}

    def get_qualification_score(self, type_id: str, worker_id: str) -> dict[str, Any]:
        with self.backend.operation("GetQualificationScore") as (conn, _):
            self._custom_type(conn, type_id)
            row = conn.execute("SELECT * FROM qualifications WHERE qualification_type_id = ? AND worker_id = ?",
                               (type_id, worker_id)).fetchone()
            if row is None:
                raise RequestError(f"You requested a Qualification that does not exist. (Worker {worker_id}, "
                                   f"QualificationType {type_id})", "AWS.MechanicalTurk.QualificationDoesNotExist")
            return {"Qualification": self.qualification_shape(row)}

    def list_workers_with_qualification_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("ListWorkersWithQualificationType") as (conn, _):
            self._type(conn, p["QualificationTypeId"], live=False)
            where, args = "qualification_type_id = ? AND seq > ?", [p["QualificationTypeId"],
                                                                    _decode_token(p.get("NextToken"))]
            if p.get("Status"):
                where, args = where + " AND status = ?", args + [p["Status"]]
            size = p.get("MaxResults", 10)
            rows = conn.execute(f"SELECT * FROM qualifications WHERE {where} ORDER BY seq LIMIT ?",
                                (*args, size + 1)).fetchall()
            rows, token = self.backend._page(rows, size, lambda r: r["seq"])
            out: dict[str, Any] = {"NumResults": len(rows),
                                   "Qualifications": [self.qualification_shape(r) for r in rows]}
            if token:
                out["NextToken"] = token
            return out

    def list_qualification_requests(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("ListQualificationRequests") as (conn, _):
            where, args = "r.status = ? AND r.seq > ?", [PENDING, _decode_token(p.get("NextToken"))]
            if p.get("QualificationTypeId"):
                self._type(conn, p["QualificationTypeId"], live=False)
                where, args = where + " AND r.qualification_type_id = ?", args + [p["QualificationTypeId"]]
            size = p.get("MaxResults", 10)
            rows = conn.execute(f"SELECT r.* FROM qualification_requests r WHERE {where} ORDER BY r.seq LIMIT ?",
                                (*args, size + 1)).fetchall()
            rows, token = self.backend._page(rows, size, lambda r: r["seq"])
            requests = []
            for r in rows:
                shape = {"QualificationRequestId": r["request_id"], "QualificationTypeId": r["qualification_type_id"],
                         "WorkerId": r["worker_id"], "Test": r["test"], "Answer": r["answer"],
                         "SubmitTime": r["submit_time"]}
                requests.append({k: v for k, v in shape.items() if v is not None})
            out: dict[str, Any] = {"NumResults": len(rows), "QualificationRequests": requests}
            if token:
                out["NextToken"] = token
            return out

    def _pending_request(self, conn: sqlite3.Connection, request_id: str) -> sqlite3.Row:
        row = conn.execute("SELECT * FROM qualification_requests WHERE request_id = ?", (request_id,)).fetchone()
        if row is None or row["status"] == SCORED:
            raise RequestError(f"QualificationRequest {request_id} does not exist.",
                               "AWS.MechanicalTurk.QualificationRequestDoesNotExist")
        if row["status"] != PENDING:
            raise RequestError(f"QualificationRequest {request_id} has already been {row['status'].lower()}; this "
                               f"operation can be called with a status of: Pending",
                               "AWS.MechanicalTurk.InvalidQualificationRequestState")
        return row

    def accept_qualification_request(self, request_id: str, value: int | None) -> dict[str, Any]:
        with self.backend.operation("AcceptQualificationRequest") as (conn, now):
            row = self._pending_request(conn, request_id)
            self._grant(conn, row["qualification_type_id"], row["worker_id"], 1 if value is None else value, now)
            conn.execute("UPDATE qualification_requests SET status = ? WHERE request_id = ?", (GRANTED, request_id))
            return {}

    def reject_qualification_request(self, request_id: str, reason: str | None) -> dict[str, Any]:
        with self.backend.operation("RejectQualificationRequest") as (conn, _):
            self._pending_request(conn, request_id)
            conn.execute("UPDATE qualification_requests SET status = ?, reason = ? WHERE request_id = ?",
                         (REJECTED_REQUEST, reason, request_id))
            return {}

    def list_hits_for_qualification_type(self, p: dict[str, Any]) -> dict[str, Any]:
        with self.backend.operation("ListHITsForQualificationType") as (conn, _):
            type_id = p["QualificationTypeId"]
            self._type(conn, type_id, live=False)
            return self.backend._list_hits(conn, "h.disposed = 0 AND t.qualification_requirements LIKE ?",
                                           (f'%"QualificationTypeId": "{type_id}"%',), p.get("NextToken"),
                                           p.get("MaxResults", 10))

    # -- requirements on HITs ------------------------------------------------------------------------

    def check_requirements(self, conn: sqlite3.Connection, requirements: Sequence[dict[str, Any]] | None) -> None:
        """Refuse requirements MTurk refuses: unknown or deleted types, comparators whose values do
        not fit, integer values on Locale or locales on anything else."""
        for i, r in enumerate(requirements or [], start=1):
            where = f"QualificationRequirements.{i}"
            type_id = r["QualificationTypeId"]
            row = conn.execute("SELECT * FROM qualification_types WHERE qualification_type_id = ?",
                               (type_id,)).fetchone()
            if row is None or row["disposing"]:
                raise RequestError(f"QualificationType {type_id} does not exist ({where}).",
                                   "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
            if not row["system"] and row["status"] != "Active":
                raise RequestError(f"QualificationType {type_id} is Inactive and cannot be used in new HITs "
                                   f"({where}).", "AWS.MechanicalTurk.QualificationTypeNotActive")
            comparator = r["Comparator"]
            ints, locales = r.get("IntegerValues") or [], r.get("LocaleValues") or []
            if "ActionsGuarded" in r and "RequiredToPreview" in r:
                raise ParameterValidationError(f"{where}: ActionsGuarded should not be used in combination with "
                                               f"RequiredToPreview.")
            if type_id == LOCALE and ints:
                raise ParameterValidationError(f"{where}: the Worker_Locale Qualification takes LocaleValues, not "
                                               f"IntegerValues.")
            if type_id != LOCALE and locales:
                raise ParameterValidationError(f"{where}: LocaleValues can only be used with the Worker_Locale "
                                               f"Qualification ({LOCALE}).")
            values = ints or locales
            if ints and locales:
                raise ParameterValidationError(f"{where}: give IntegerValues or LocaleValues, not both.")
            if comparator in ("Exists", "DoesNotExist"):
                if values:
                    raise ParameterValidationError(f"{where}: Comparator {comparator} takes no IntegerValues or "
                                                   f"LocaleValues.")
            elif comparator in ("In", "NotIn"):
                if not 1 <= len(values) <= MAX_VALUES:
                    raise ParameterValidationError(f"{where}: Comparator {comparator} needs 1 to {MAX_VALUES} values, "
                                                   f"not {len(values)}.")
            elif len(values) != 1:
                raise ParameterValidationError(f"{where}: Comparator {comparator} needs exactly one value, "
                                               f"not {len(values)}.")
            if comparator in INTEGER_COMPARATORS and type_id == LOCALE:
                raise ParameterValidationError(f"{where}: a locale cannot be compared with {comparator}.")

    # -- what a worker has --------------------------------------------------------------------------

    @staticmethod
    def profile(conn: sqlite3.Connection, worker_id: str) -> dict[str, Any]:
        row = conn.execute("SELECT * FROM worker_profiles WHERE worker_id = ?", (worker_id,)).fetchone()
        return dict(row) if row is not None else {"worker_id": worker_id, **DEFAULT_PROFILE}

    def set_profile(self, worker_id: str, country: str, subdivision: str | None = None, adult: bool = False,
                    masters: bool = False) -> dict[str, Any]:
        """A worker's own attributes (the emulator's stand-in for a worker's MTurk account)."""
        _check_worker_id(worker_id)
        if not re.fullmatch(r"[A-Z]{2}", country):
            raise WorkerError(400, f"country must be an ISO 3166 two-letter code, not {country!r}.", "InvalidLocale")
        if subdivision is not None and not re.fullmatch(r"[A-Z0-9]{1,3}", subdivision):
            raise WorkerError(400, f"subdivision must be an ISO 3166-2 code, not {subdivision!r}.", "InvalidLocale")
        with self.backend.operation() as (conn, _):
            conn.execute("INSERT INTO worker_profiles (worker_id, country, subdivision, adult, masters) VALUES "
                         "(?, ?, ?, ?, ?) ON CONFLICT (worker_id) DO UPDATE SET country = excluded.country, "
                         "subdivision = excluded.subdivision, adult = excluded.adult, masters = excluded.masters",
                         (worker_id, country, subdivision, int(adult), int(masters)))
            return self.profile(conn, worker_id)

    def value(self, conn: sqlite3.Connection, worker_id: str, type_id: str) -> Any:
        """The worker's value for a type: an int, a (country, subdivision) pair, or None (has none)."""
        if type_id in MASTERS:
            return 1 if self.profile(conn, worker_id)["masters"] else None
        if type_id == LOCALE:
            p = self.profile(conn, worker_id)
            return (p["country"], p["subdivision"])
        if type_id == ADULT:
            return 1 if self.profile(conn, worker_id)["adult"] else 0
        if type_id in (NUMBER_HITS_APPROVED, PERCENT_ASSIGNMENTS_APPROVED):
            counts = dict(conn.execute("SELECT status, COUNT(*) FROM assignments WHERE worker_id = ? AND status IN "
                                       "(?, ?) GROUP BY status", (worker_id, APPROVED, REJECTED)).fetchall())
            approved, rejected = counts.get(APPROVED, 0), counts.get(REJECTED, 0)
            if type_id == NUMBER_HITS_APPROVED:
                return approved
            # A worker with nothing decided yet counts as 100% approved.
            return 100 if approved + rejected == 0 else (approved * 100) // (approved + rejected)
        row = conn.execute("SELECT integer_value FROM qualifications WHERE qualification_type_id = ? AND worker_id = ? "
                           "AND status = 'Granted'", (type_id, worker_id)).fetchone()
        return row["integer_value"] if row is not None else None

    def meets(self, conn: sqlite3.Connection, worker_id: str, requirement: dict[str, Any]) -> bool:
        have = self.value(conn, worker_id, requirement["QualificationTypeId"])
        comparator = requirement["Comparator"]
        if requirement["QualificationTypeId"] == LOCALE:
            wanted = requirement.get("LocaleValues") or []
            if comparator in ("Exists", "DoesNotExist"):
                return _compare(comparator, have, [])
            country, subdivision = have
            # A locale with a Subdivision matches only that subdivision; without, the whole country.
            hits = [w for w in wanted if w.get("Country") == country and
                    (not w.get("Subdivision") or w.get("Subdivision") == subdivision)]
            return bool(hits) if comparator in ("EqualTo", "In") else not hits
        return _compare(comparator, have, requirement.get("IntegerValues") or [])

    def access(self, conn: sqlite3.Connection, worker_id: str,
               requirements: str | Sequence[dict[str, Any]] | None) -> tuple[set[str], list[dict[str, Any]]]:
        """The actions (Discover, Preview, Accept) a worker may take on a HIT, and the unmet requirements."""
        if isinstance(requirements, str):
            requirements = json.loads(requirements or "[]")
        allowed, unmet = set(ACTIONS), []
        for r in requirements or []:
            if not self.meets(conn, worker_id, r):
                unmet.append(r)
                allowed -= set(guarded_actions(r))
        # Actions nest (Discover < Preview < Accept): one you cannot see you cannot accept.
        for i, action in enumerate(ACTIONS):
            if action not in allowed:
                allowed -= set(ACTIONS[i:])
        return allowed, unmet

    def describe(self, conn: sqlite3.Connection, requirement: dict[str, Any]) -> dict[str, Any]:
        """A requirement as a worker page shows it: the type's name and whether it can be requested."""
        row = conn.execute("SELECT * FROM qualification_types WHERE qualification_type_id = ?",
                           (requirement["QualificationTypeId"],)).fetchone()
        values = requirement.get("IntegerValues") or [
            "-".join(x for x in (v.get("Country"), v.get("Subdivision")) if x) for v in
            requirement.get("LocaleValues") or []]
        return {"qualificationTypeId": requirement["QualificationTypeId"],
                "name": row["name"] if row is not None else requirement["QualificationTypeId"],
                "comparator": requirement["Comparator"], "values": values,
                "requestable": bool(row is not None and not row["system"] and row["status"] == "Active"
                                    and not row["disposing"])}

    # -- worker side: requesting a qualification, taking its test ---------------------------------

    def requestable(self, worker_id: str | None) -> list[dict[str, Any]]:
        with self.backend.operation() as (conn, _):
            self._settle_disposals(conn)
            rows = conn.execute("SELECT * FROM qualification_types WHERE system = 0 AND disposing = 0 AND "
                                "status = 'Active' ORDER BY seq").fetchall()
            out = []
            for r in rows:
                entry = {"qualificationTypeId": r["qualification_type_id"], "name": r["name"],
                         "description": r["description"], "hasTest": r["test"] is not None,
                         "autoGranted": bool(r["auto_granted"])}
                if worker_id:
                    entry["score"] = self.value(conn, worker_id, r["qualification_type_id"])
                out.append(entry)
            return out

    def request(self, type_id: str, worker_id: str) -> dict[str, Any]:
        """A worker asks for a qualification: the test to take, an immediate grant (AutoGranted),
        or a request left for the requester."""
        _check_worker_id(worker_id)
        with self.backend.operation() as (conn, now):
            row = self._worker_type(conn, type_id)
            self._check_retry(conn, row, worker_id, now)
            if row["test"] is not None:
                test_id = new_id()
                deadline = now + row["test_duration"]
                conn.execute("INSERT INTO qualification_tests (test_id, qualification_type_id, worker_id, started, "
                             "deadline) VALUES (?, ?, ?, ?, ?)", (test_id, type_id, worker_id, now, deadline))
                return {"outcome": "Test", "testId": test_id, "test": row["test"], "deadline": deadline,
                        "name": row["name"], "answerKey": row["answer_key"]}
            request_id = new_id()
            if row["auto_granted"]:
                value = row["auto_granted_value"] if row["auto_granted_value"] is not None else 1
                self._grant(conn, type_id, worker_id, value, now)
                conn.execute("INSERT INTO qualification_requests (request_id, qualification_type_id, worker_id, "
                             "submit_time, status) VALUES (?, ?, ?, ?, ?)", (request_id, type_id, worker_id, now, SCORED))
                return {"outcome": "Granted", "value": value, "name": row["name"]}
            conn.execute("INSERT INTO qualification_requests (request_id, qualification_type_id, worker_id, "
                         "submit_time, status) VALUES (?, ?, ?, ?, ?)", (request_id, type_id, worker_id, now, PENDING))
            return {"outcome": "Pending", "qualificationRequestId": request_id, "name": row["name"]}

    def _worker_type(self, conn: sqlite3.Connection, type_id: str) -> sqlite3.Row:
        self._settle_disposals(conn)
        row = conn.execute("SELECT * FROM qualification_types WHERE qualification_type_id = ? AND system = 0 AND "
                           "disposing = 0", (type_id,)).fetchone()
        if row is None:
            raise WorkerError(404, f"There is no Qualification type {type_id} to request.", "QualificationTypeNotFound")
        if row["status"] != "Active":
            raise WorkerError(409, "This Qualification type is not accepting requests right now.",
                              "QualificationTypeInactive")
        return row

    @staticmethod
    def _check_retry(conn: sqlite3.Connection, row: sqlite3.Row, worker_id: str, now: float) -> None:
        type_id = row["qualification_type_id"]
        if conn.execute("SELECT 1 FROM qualification_requests WHERE qualification_type_id = ? AND worker_id = ? AND "
                        "status = ?", (type_id, worker_id, PENDING)).fetchone():
            raise WorkerError(409, "Your request for this Qualification is waiting for the requester.", "RequestPending")
        last = conn.execute("SELECT MAX(t) FROM (SELECT submit_time AS t FROM qualification_requests WHERE "
                            "qualification_type_id = ? AND worker_id = ? UNION ALL SELECT started AS t FROM "
                            "qualification_tests WHERE qualification_type_id = ? AND worker_id = ?)",
                            (type_id, worker_id, type_id, worker_id)).fetchone()[0]
        if last is None:
            return
        if row["retry_delay"] is None:
            raise WorkerError(409, "You have already requested this Qualification, and it cannot be requested again.",
                              "RetryNotAllowed")
        wait = last + row["retry_delay"] - now
        if wait > 0:
            raise WorkerError(409, f"You can request this Qualification again in {int(wait) + 1} seconds.",
                              "RetryDelayNotElapsed")

    def test_for(self, test_id: str, worker_id: str) -> dict[str, Any]:
        with self.backend.operation() as (conn, now):
            return dict(self._open_test(conn, test_id, worker_id, now))

    def _open_test(self, conn: sqlite3.Connection, test_id: str, worker_id: str, now: float) -> sqlite3.Row:
        row = conn.execute("SELECT q.*, t.test, t.answer_key, t.name FROM qualification_tests q JOIN "
                           "qualification_types t USING (qualification_type_id) WHERE q.test_id = ?",
                           (test_id,)).fetchone()
        if row is None or row["worker_id"] != worker_id:
            raise WorkerError(404, f"There is no test {test_id} for worker {worker_id}.", "TestNotFound")
        if row["done"]:
            raise WorkerError(409, "This test has already been submitted.", "AlreadySubmitted")
        if row["deadline"] < now:
            raise WorkerError(410, "The time allotted for this Qualification test has expired.", "TestExpired")
        return row

    def submit_test(self, test_id: str, worker_id: str, answers: Sequence[dict[str, Any]]) -> dict[str, Any]:
        """Score the test by its AnswerKey and grant, or leave it with the requester."""
        with self.backend.operation() as (conn, now):
            row = self._open_test(conn, test_id, worker_id, now)
            answer = question_form.answers_xml(answers)
            conn.execute("UPDATE qualification_tests SET done = 1 WHERE test_id = ?", (test_id,))
            type_id = row["qualification_type_id"]
            request_id = new_id()
            if row["answer_key"] is None:
                conn.execute("INSERT INTO qualification_requests (request_id, qualification_type_id, worker_id, test, "
                             "answer, submit_time, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                             (request_id, type_id, worker_id, row["test"], answer, now, PENDING))
                return {"outcome": "Pending", "qualificationRequestId": request_id, "name": row["name"]}
            key = answer_key.parse(row["answer_key"])
            value = answer_key.score(key, answers)
            conn.execute("INSERT INTO qualification_requests (request_id, qualification_type_id, worker_id, test, "
                         "answer, submit_time, status) VALUES (?, ?, ?, ?, ?, ?, ?)",
                         (request_id, type_id, worker_id, row["test"], answer, now, SCORED))
            if value is None:
                return {"outcome": "NotGranted", "name": row["name"]}
            self._grant(conn, type_id, worker_id, value, now)
            return {"outcome": "Granted", "value": value, "name": row["name"]}


def _check_worker_id(worker_id: str) -> None:
    if not re.fullmatch(r"A[A-Z0-9]{1,63}", worker_id or ""):
        raise WorkerError(400, f"{worker_id!r} is not a worker id (A followed by uppercase letters and digits).",
                          "InvalidWorkerId")
