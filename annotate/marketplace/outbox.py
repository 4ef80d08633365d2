"""The notification outbox: HIT and assignment events recorded inside the state machine's own
transaction (no network here), for notifications.py's Deliverer to send.

Kept apart from notifications.py so models.py can import it without importing the operations
(which import models.py).
"""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timezone
from typing import Any

ASSIGNMENT_EVENTS = ("AssignmentAccepted", "AssignmentAbandoned", "AssignmentReturned", "AssignmentSubmitted",
                     "AssignmentRejected", "AssignmentApproved")
HIT_EVENTS = ("HITCreated", "HITExtended", "HITDisposed", "HITReviewable", "HITExpired")

SCHEMA = """
CREATE TABLE IF NOT EXISTS notification_settings (
    hit_type_id TEXT PRIMARY KEY, destination TEXT NOT NULL, transport TEXT NOT NULL, version TEXT NOT NULL,
    event_types TEXT NOT NULL, active INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS notification_outbox (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, transport TEXT NOT NULL, destination TEXT NOT NULL,
    version TEXT NOT NULL, event TEXT NOT NULL, created REAL NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0, next_try REAL NOT NULL,
    last_error TEXT);
CREATE INDEX IF NOT EXISTS notification_outbox_due ON notification_outbox (state, next_try);
"""


def timestamp(epoch: float) -> str:
    """MTurk's EventTimestamp: UTC, whole seconds, Z."""
    return datetime.fromtimestamp(epoch, tz=timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def record(conn: sqlite3.Connection, event_type: str, hit_id: str, now: float,
           assignment_id: str | None = None) -> None:
    """Queue `event_type` for the HIT's type's active notification specification, if it names it."""
    row = conn.execute("SELECT n.*, h.hit_type_id AS type_of_hit FROM hits h JOIN notification_settings n "
                       "ON n.hit_type_id = h.hit_type_id WHERE h.hit_id = ? AND n.active = 1", (hit_id,)).fetchone()
    if row is None or event_type not in json.loads(row["event_types"]):
        return
    event: dict[str, Any] = {"EventType": event_type, "EventTimestamp": timestamp(now), "HITId": hit_id}
    if assignment_id is not None:
        event["AssignmentId"] = assignment_id
    event["HITTypeId"] = row["type_of_hit"]
    enqueue(conn, row["transport"], row["destination"], row["version"], event, now)


def enqueue(conn: sqlite3.Connection, transport: str, destination: str, version: str,
            event: dict[str, Any], now: float) -> None:
    conn.execute("INSERT INTO notification_outbox (transport, destination, version, event, created, next_try) "
                 "VALUES (?, ?, ?, ?, ?, ?)", (transport, destination, version, json.dumps(event), now, now))


