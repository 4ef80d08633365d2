"""HIT event notifications, as MTurk sends them: UpdateNotificationSettings per HIT type,
SendTestEventNotification, and delivery of event messages to SQS queues (or SNS topics).

Recording never talks to the network: the state machine calls `record()` inside its own
transaction, which appends the event to an outbox table when the HIT's type has an active
notification specification that names the event. A `Deliverer` thread (started by the server)
sends the outbox through boto3 and retries with backoff, logging failures, so a slow or missing
queue never slows or breaks the marketplace. Delivery is at least once, as MTurk promises for SQS.
Sent events leave the outbox; events given up on stay there with state 'failed' and their last error.

A message body is MTurk's JSON event document:

    {"Events": [{"EventType": "AssignmentSubmitted", "EventTimestamp": "2026-01-31T23:59:59Z",
                 "HITId": "...", "AssignmentId": "...", "HITTypeId": "..."}],
     "EventDocId": "<40 hex>", "SourceAccount": "...", "CustomerId": "A...", "EventDocVersion": "2014-08-15"}

Several events for one destination may share a message, as on MTurk.

Endpoint: the queue URL (or topic ARN) names the region. A queue URL whose host is not AWS's (moto,
ElasticMQ, LocalStack) is reached at that host. `endpoint_url` (the serve flag
`--notification-endpoint`, env ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT) sends everything to one
endpoint instead. Credentials come from boto3's usual chain.
"""

from __future__ import annotations

import json
import logging
import os
import re
import sqlite3
import threading
import time
import uuid
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from annotate.marketplace.models import RequestError, new_id
from annotate.marketplace.outbox import ASSIGNMENT_EVENTS, enqueue, timestamp

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

log = logging.getLogger("annotate.marketplace.notifications")

ENDPOINT_ENV = "ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT"
VERSION = "2014-08-15"  # EventDocVersion of the event documents MTurk sends
# NotificationSpecification.Version: botocore's model (the current API reference) says 2006-05-05;
# code written against the legacy API sends 2014-08-15. Both are accepted, nothing else.
VERSIONS = ("2006-05-05", "2014-08-15")
# The emulator has no real requester account; these stand in for the requester's AWS account and
# MTurk customer id in every event document.
SOURCE_ACCOUNT = "123456789012"
CUSTOMER_ID = "ALOCALREQUESTER"
EVENTS_PER_MESSAGE = 10
MAX_ATTEMPTS = 8
CLAIM_SECONDS = 60

# -- the notification specification ----------------------------------------------------------

_QUEUE_PATH = re.compile(r"^/[0-9A-Za-z_-]+/[0-9A-Za-z_-]{1,80}(\.fifo)?/?$")
_SNS_ARN = re.compile(r"^arn:aws[a-z-]*:sns:([a-z0-9-]+):(\d{12}):[0-9A-Za-z_-]{1,256}$")


def _invalid(message: str) -> RequestError:
    return RequestError(message, "AWS.MechanicalTurk.InvalidParameterValue")


def check_spec(spec: dict[str, Any], allow_ping: bool) -> dict[str, Any]:
    """A Notification structure checked as MTurk checks it; returns it normalised."""
    transport, destination, version = spec["Transport"], spec["Destination"].strip(), spec["Version"]
    if version not in VERSIONS:
        raise _invalid(f"Notification Version {version!r} is not supported; the valid value is {VERSIONS[0]}.")
    events = list(dict.fromkeys(spec["EventTypes"]))  # keep order, drop repeats
    if not events:
        raise _invalid("Notification EventTypes must name at least one event type.")
    if "Ping" in events and not allow_ping:
        raise _invalid("The Ping event type is only valid for the SendTestEventNotification operation.")
    if transport == "SQS":
        parts = urlsplit(destination)
        if parts.scheme not in ("http", "https") or not parts.netloc or not _QUEUE_PATH.match(parts.path):
            raise _invalid(f"Destination {destination!r} is not an Amazon SQS queue URL "
                           f"(https://sqs.<region>.amazonaws.com/<account>/<queue name>).")
    elif transport == "SNS":
        if not _SNS_ARN.match(destination):
            raise _invalid(f"Destination {destination!r} is not an Amazon SNS topic ARN "
                           f"(arn:aws:sns:<region>:<account>:<topic>).")
    else:
        # The API reference lists SQS and SNS only; the local marketplace cannot send email.
        raise _invalid(f"Transport {transport!r} is not supported; use SQS or SNS.")
    return {"Destination": destination, "Transport": transport, "Version": version, "EventTypes": events}


def update_notification_settings(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    with m.operation("UpdateNotificationSettings") as (conn, _):
        hit_type_id = p["HITTypeId"]
        if conn.execute("SELECT 1 FROM hit_types WHERE hit_type_id = ?", (hit_type_id,)).fetchone() is None:
            raise RequestError(f"Hit type {hit_type_id} does not exist.", "AWS.MechanicalTurk.HITTypeDoesNotExist")
        spec, active = p.get("Notification"), p.get("Active")
        if spec is None and active is None:
            raise RequestError("UpdateNotificationSettings needs a Notification, an Active value, or both.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        if spec is None:
            updated = conn.execute("UPDATE notification_settings SET active = ? WHERE hit_type_id = ?",
                                   (int(active), hit_type_id)).rowcount
            if not updated:
                raise RequestError(f"HIT type {hit_type_id} has no notification specification; give one in the "
                                   f"Notification parameter to change its Active status.",
                                   "AWS.MechanicalTurk.InvalidParameterValue")
            return {}
        checked = check_spec(spec, allow_ping=False)
        # A new or replaced specification is active unless the call says otherwise.
        conn.execute("INSERT INTO notification_settings (hit_type_id, destination, transport, version, event_types, "
                     "active) VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (hit_type_id) DO UPDATE SET "
                     "destination = excluded.destination, transport = excluded.transport, "
                     "version = excluded.version, event_types = excluded.event_types, active = excluded.active",
                     (hit_type_id, checked["Destination"], checked["Transport"], checked["Version"],
                      json.dumps(checked["EventTypes"]), int(True if active is None else active)))
        return {}


def send_test_event_notification(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    """Queue one event of TestEventType for the given specification (whether or not it lists that type).

    The ids in a test event are made up, as no HIT stands behind it; Ping carries none.
    """
    with m.operation("SendTestEventNotification") as (conn, now):
        checked = check_spec(p["Notification"], allow_ping=True)
        event_type = p["TestEventType"]
        event: dict[str, Any] = {"EventType": event_type, "EventTimestamp": timestamp(now)}
        if event_type != "Ping":
            event["HITId"] = new_id()
            if event_type in ASSIGNMENT_EVENTS:
                event["AssignmentId"] = new_id()
            event["HITTypeId"] = new_id()
        enqueue(conn, checked["Transport"], checked["Destination"], checked["Version"], event, now)
        return {}


def event_document(events: list[dict[str, Any]], version: str) -> dict[str, Any]:
    return {"Events": events, "EventDocId": uuid.uuid4().hex + uuid.uuid4().hex[:8],
            "SourceAccount": SOURCE_ACCOUNT, "CustomerId": CUSTOMER_ID, "EventDocVersion": version}


# -- delivery ---------------------------------------------------------------------------------

def queue_region(url: str) -> str:
    """The region in an SQS queue URL (sqs.<region>.amazonaws.com or <region>.queue.amazonaws.com)."""
    host = urlsplit(url).hostname or ""
    match = re.match(r"^sqs\.([a-z0-9-]+)\.amazonaws\.com", host) or \
        re.match(r"^([a-z0-9-]+)\.queue\.amazonaws\.com", host)
    return match.group(1) if match else "us-east-1"


def queue_endpoint(url: str) -> str | None:
    """Where to send for a queue URL: AWS's own endpoint (None) or the local server named in it."""
    parts = urlsplit(url)
    if (parts.hostname or "").endswith(".amazonaws.com"):
        return None
    return f"{parts.scheme}://{parts.netloc}"


class Deliverer:
    """Sends the outbox in a background thread; one per server process (several may share a database)."""

    def __init__(self, db_path: str, endpoint_url: str | None = None, interval: float = 0.1,
                 clock=time.time):
        self.db_path = db_path
        self.endpoint_url = endpoint_url if endpoint_url is not None else (os.environ.get(ENDPOINT_ENV) or None)
        self.interval = interval
        self.clock = clock
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._clients: dict[tuple[str, str, str | None], Any] = {}
        self._conn: sqlite3.Connection | None = None

    # boto3 clients, one per (service, region, endpoint)
    def _client(self, service: str, region: str, endpoint: str | None):
        key = (service, region, endpoint)
        if key not in self._clients:
            import boto3
            from botocore.config import Config

            config = Config(connect_timeout=3, read_timeout=5, retries={"total_max_attempts": 2, "mode": "standard"})
            self._clients[key] = boto3.session.Session().client(service, region_name=region, endpoint_url=endpoint,
                                                                config=config)
        return self._clients[key]

    def _send(self, transport: str, destination: str, body: str) -> None:
        if transport == "SQS":
            endpoint = self.endpoint_url or queue_endpoint(destination)
            self._client("sqs", queue_region(destination), endpoint).send_message(
                QueueUrl=destination, MessageBody=body)
        elif transport == "SNS":
            region = destination.split(":")[3]
            self._client("sns", region, self.endpoint_url).publish(
                TopicArn=destination, Message=body, Subject=str(int(self.clock() * 1000)))
        else:
            raise ValueError(f"cannot deliver over {transport!r}")

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            self._conn = sqlite3.connect(self.db_path, timeout=30, isolation_level=None, check_same_thread=False)
            self._conn.row_factory = sqlite3.Row
            self._conn.execute("PRAGMA busy_timeout = 30000")
        return self._conn

    def deliver_once(self, limit: int = 200) -> int:
        """Send what is due now; returns how many events were delivered."""
        conn = self._db()
        now = float(self.clock())
        # A read first: the write lock is taken only when something is due, so an idle deliverer
        # never contends with the marketplace's own writers.
        if not conn.execute("SELECT EXISTS (SELECT 1 FROM notification_outbox WHERE state IN ('pending', 'sending') "
                            "AND next_try <= ?)", (now,)).fetchall()[0][0]:
            return 0
        conn.execute("BEGIN IMMEDIATE")
        try:
            rows = conn.execute("SELECT * FROM notification_outbox WHERE state = 'pending' AND next_try <= ? "
                                "ORDER BY seq LIMIT ?", (now, limit)).fetchall()
            if rows:
                # Claimed rows go back to pending if this process dies mid-send (at-least-once).
                conn.executemany("UPDATE notification_outbox SET state = 'sending', next_try = ? WHERE seq = ?",
                                 [(now + CLAIM_SECONDS, r["seq"]) for r in rows])
            conn.execute("UPDATE notification_outbox SET state = 'pending' WHERE state = 'sending' AND next_try <= ?",
                         (now,))
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        groups: dict[tuple[str, str, str], list[sqlite3.Row]] = {}
        for row in rows:
            groups.setdefault((row["transport"], row["destination"], row["version"]), []).append(row)
        delivered = 0
        for (transport, destination, version), members in groups.items():
            for start in range(0, len(members), EVENTS_PER_MESSAGE):
                chunk = members[start:start + EVENTS_PER_MESSAGE]
                body = json.dumps(event_document([json.loads(r["event"]) for r in chunk], version))
                try:
                    self._send(transport, destination, body)
                except Exception as exc:  # any failure of the far side: log it, retry later
                    self._failed(chunk, destination, exc)
                    continue
                # Sent events leave the outbox, so a long-running marketplace does not accumulate them.
                conn.executemany("DELETE FROM notification_outbox WHERE seq = ?", [(r["seq"],) for r in chunk])
                delivered += len(chunk)
        return delivered

    def _failed(self, rows: list[sqlite3.Row], destination: str, exc: Exception) -> None:
        now = float(self.clock())
        attempts = max(r["attempts"] for r in rows) + 1
        error = f"{type(exc).__name__}: {exc}"
        if attempts >= MAX_ATTEMPTS:
            log.error("notification to %s failed %d times, giving up on %d event(s): %s",
                      destination, attempts, len(rows), error)
            state, next_try = "failed", now
        else:
            log.warning("notification to %s failed (attempt %d of %d), will retry: %s",
                        destination, attempts, MAX_ATTEMPTS, error)
            state, next_try = "pending", now + min(2 ** attempts, 60)
        self._db().executemany("UPDATE notification_outbox SET state = ?, attempts = ?, next_try = ?, last_error = ? "
                               "WHERE seq = ?", [(state, attempts, next_try, error, r["seq"]) for r in rows])

    def start(self) -> "Deliverer":
        self._stop.clear()
        self._thread = threading.Thread(target=self._loop, name="marketplace-notifications", daemon=True)
        self._thread.start()
        return self

    def _loop(self) -> None:
        try:
            while True:
                stopping = self._stop.is_set()
                try:
                    self.deliver_once()
                except sqlite3.Error as exc:  # e.g. the database is busy past the timeout: try again
                    log.warning("notification delivery pass failed: %s", exc)
                # One last pass after stop() sends what the final requests recorded; whatever is
                # still due waits in the outbox for the next marketplace on this database.
                if stopping:
                    break
                self._stop.wait(self.interval)
        finally:
            self.close()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=15)
            self._thread = None
        else:
            self.close()

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
