"""NotifyWorkers: messages from the requester, kept per worker and shown on the worker pages
(`/worker/messages?workerId=...`) where MTurk would send an email.

As the API reference says, a message reaches only a worker whose work the requester has approved
or rejected; any other worker (and a worker the requester blocked) is reported in
NotifyWorkersFailureStatuses with a HardFailure, and the call itself succeeds.
"""

from __future__ import annotations

import sqlite3
from typing import TYPE_CHECKING, Any

from annotate.marketplace.models import APPROVED, REJECTED, ParameterValidationError

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

MAX_WORKERS = 100
MAX_SUBJECT = 200
MAX_MESSAGE = 4096

SCHEMA = ("CREATE TABLE IF NOT EXISTS worker_messages (seq INTEGER PRIMARY KEY AUTOINCREMENT, "
          "worker_id TEXT NOT NULL, subject TEXT NOT NULL, message TEXT NOT NULL, sent REAL NOT NULL)")


def _invalid(value: Any, path: str, text: str) -> ParameterValidationError:
    shown = value if isinstance(value, int) else repr(value)[:200]
    return ParameterValidationError(f"1 validation error detected: Value {shown} at '{path}' failed to satisfy "
                                    f"constraint: {text}")


def notify_workers(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    subject, text, worker_ids = p["Subject"], p["MessageText"], p["WorkerIds"]
    if not subject.strip():
        raise _invalid(subject, "Subject", "Member must not be empty")
    if len(subject) > MAX_SUBJECT:
        raise _invalid(subject, "Subject", f"Member must have length less than or equal to {MAX_SUBJECT}")
    if not text.strip():
        raise _invalid(text, "MessageText", "Member must not be empty")
    if len(text) > MAX_MESSAGE:
        raise _invalid(text, "MessageText", f"Member must have length less than or equal to {MAX_MESSAGE}")
    if not 1 <= len(worker_ids) <= MAX_WORKERS:
        raise _invalid(len(worker_ids), "WorkerIds", f"Member must have between 1 and {MAX_WORKERS} items")
    with m.operation("NotifyWorkers") as (conn, now):
        conn.execute(SCHEMA)
        failures = []
        for worker_id in dict.fromkeys(worker_ids):  # a worker named twice gets one message
            reason = _why_not(conn, worker_id)
            if reason is not None:
                failures.append({"NotifyWorkersFailureCode": "HardFailure", "NotifyWorkersFailureMessage": reason,
                                 "WorkerId": worker_id})
                continue
            conn.execute("INSERT INTO worker_messages (worker_id, subject, message, sent) VALUES (?, ?, ?, ?)",
                         (worker_id, subject, text, now))
        return {"NotifyWorkersFailureStatuses": failures}


def _why_not(conn: sqlite3.Connection, worker_id: str) -> str | None:
    if conn.execute("SELECT 1 FROM worker_blocks WHERE worker_id = ?", (worker_id,)).fetchone():
        return f"Cannot send a message to worker {worker_id}: you have blocked this worker."
    if conn.execute("SELECT 1 FROM assignments WHERE worker_id = ? AND status IN (?, ?) LIMIT 1",
                    (worker_id, APPROVED, REJECTED)).fetchone() is None:
        return (f"Cannot send a message to worker {worker_id}: the worker must have had work approved or rejected "
                f"by you.")
    return None


def messages_for(m: "Marketplace", worker_id: str) -> list[dict[str, Any]]:
    """A worker's messages, newest first."""
    with m.operation() as (conn, _):
        conn.execute(SCHEMA)
        return [{"subject": r["subject"], "message": r["message"], "sent": r["sent"]} for r in conn.execute(
            "SELECT * FROM worker_messages WHERE worker_id = ? ORDER BY seq DESC", (worker_id,))]
