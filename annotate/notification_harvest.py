"""Harvest driven by MTurk's HIT event notifications (`annotate harvest --watch --notify QUEUE_URL`).

Each watched batch's HIT type is given a notification specification (UpdateNotificationSettings:
Transport SQS, Version 2006-05-05, EventTypes AssignmentSubmitted / HITReviewable / HITExpired,
Active) naming an SQS queue the requester owns. The watch then long-polls that queue and runs a
harvest pass over only the HITs the events name (Harvester(hit_ids=...)): a submitted answer is
stored and approved seconds after the worker sent it, with no ListReviewableHITs paging.

Delivery is at least once and nothing vouches for a message's content, so:
- a message is deleted only after the pass over the HITs it names has stored their answers (a
  crash in between means the message comes back after the queue's visibility timeout, and the
  harvest, being idempotent, neither approves twice nor buys an extension twice);
- a duplicate (an EventDocId seen before, or a HIT already collected) costs nothing but its delete;
- each message is parsed on its own, with bounds; one that is not MTurk's event document is
  quarantined (an event in the store, a warning in the log) and deleted, and the watch goes on;
- events can be lost (a queue policy changed, a subscription made after the HIT moved), so every
  batch is still swept with ListReviewableHITs now and then (`sweep_interval`), and once at start.

Batches without a queue in the same watch are polled at `poll_interval`, as `harvest --watch` does.

Message body (MTurk's event document; see the marketplace's notifications.py for the same):
    {"Events": [{"EventType": "AssignmentSubmitted", "EventTimestamp": "2026-01-31T23:59:59Z",
                 "HITId": "...", "AssignmentId": "...", "HITTypeId": "..."}],
     "EventDocId": "...", "SourceAccount": "...", "CustomerId": "...", "EventDocVersion": "2006-05-05"}
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections import Counter, OrderedDict
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from annotate.errors import UserError
from annotate.harvest import BatchFailure, HarvestResult, Harvester, batches_for, harvest_lock
from annotate.mturk import connect, describe
from annotate.post import resolve_target
from annotate.store import Store
from annotate.workspace import Workspace

log = logging.getLogger("annotate.notification_harvest")

EVENT_TYPES = ("AssignmentSubmitted", "HITReviewable", "HITExpired")
VERSION = "2006-05-05"  # NotificationSpecification.Version in the current API reference (botocore's model)
# Every event type MTurk may put in a document (an older specification on the same HIT type may
# still name others): known ones outside EVENT_TYPES are ignored, unknown ones make the message suspect.
KNOWN_EVENT_TYPES = {"AssignmentAccepted", "AssignmentAbandoned", "AssignmentReturned", "AssignmentSubmitted",
                     "AssignmentRejected", "AssignmentApproved", "HITCreated", "HITExtended", "HITDisposed",
                     "HITReviewable", "HITExpired", "Ping"}
MAX_BODY = 64 * 1024   # MTurk's documents hold at most 10 events (~2 KB); SQS allows 256 KB
MAX_EVENTS = 100
MAX_DEPTH = 6          # nesting in a message body; an event document needs 3
EXCERPT = 500          # characters of a quarantined body kept in the store
SEEN_DOCS = 50_000     # EventDocIds remembered, to skip duplicates cheaply
GATHER_MESSAGES = 100  # messages read (10 per call) before a pass acts on them
GATHER_SECONDS = 0.1   # ... or until this long after the first one came
PING_WARN_SECONDS = 60.0
QUARANTINE_EVENT = "notification-quarantined"
_ID = re.compile(r"^[A-Z0-9]{1,64}$")  # MTurk's HIT, assignment and HIT type ids
_AWS_QUEUE = re.compile(r"^https://(sqs\.([a-z0-9-]+)\.amazonaws\.com|([a-z0-9-]+)\.queue\.amazonaws\.com)"
                        r"/\d{12}/[A-Za-z0-9_-]{1,80}$")
_ANY_QUEUE = re.compile(r"^https?://[A-Za-z0-9.-]+(:\d{1,5})?/[A-Za-z0-9_-]{1,80}/[A-Za-z0-9_-]{1,80}(\.fifo)?$")


# ------------------------------------------------------------------------------ the queue URL
def check_queue_url(url: Any, target: str, field: str = "--notify") -> str:
    """The queue URL, checked for the target: sandbox and production need an Amazon SQS queue URL
    (https://sqs.<region>.amazonaws.com/<account>/<name>); local takes any server's (moto, ElasticMQ)."""
    if not isinstance(url, str) or not url.strip():
        raise UserError("expected an SQS queue URL (https://sqs.<region>.amazonaws.com/<account>/<queue>)", field=field)
    url = url.strip().rstrip("/")
    if url.endswith(".fifo"):
        raise UserError(f"{url!r} is a FIFO queue; MTurk sends to standard queues only (its messages carry no "
                        f"MessageGroupId)", field=field)
    if target in ("sandbox", "production"):
        if not _AWS_QUEUE.match(url):
            raise UserError(f"{url!r} is not an Amazon SQS queue URL; MTurk ({target}) delivers only to "
                            f"https://sqs.<region>.amazonaws.com/<12-digit account>/<queue name>", field=field)
    elif not _ANY_QUEUE.match(url):
        raise UserError(f"{url!r} is not an SQS queue URL (http(s)://<host>/<account>/<queue name>)", field=field)
    return url


def queue_region(url: str) -> str:
    match = _AWS_QUEUE.match(url)
    return (match.group(2) or match.group(3)) if match else "us-east-1"


def queue_endpoint(url: str) -> str | None:
    """None for AWS's own SQS; else the server named in the URL (moto, ElasticMQ on the local target)."""
    parts = urlsplit(url)
    return None if (parts.hostname or "").endswith(".amazonaws.com") else f"{parts.scheme}://{parts.netloc}"


def notification_spec(queue_url: str) -> dict:
    return {"Destination": queue_url, "Transport": "SQS", "Version": VERSION, "EventTypes": list(EVENT_TYPES)}


# ------------------------------------------------------------------------------ messages
class Malformed(ValueError):
    """A message that is not MTurk's event document."""


@dataclass
class Document:
    doc_id: str | None
    named: dict[str, str] = field(default_factory=dict)  # HIT id -> the last event type naming it
    pings: int = 0
    ignored: int = 0  # events of types the watch does not act on


def _depth(value: Any, limit: int, level: int = 0) -> None:
    if level > limit:
        raise Malformed(f"nested deeper than {limit} levels")
    if isinstance(value, dict):
        for v in value.values():
            _depth(v, limit, level + 1)
    elif isinstance(value, list):
        for v in value:
            _depth(v, limit, level + 1)


def read_document(body: Any) -> Document:
    """One message body as MTurk's event document, checked; raises Malformed with the reason."""
    if not isinstance(body, str):
        raise Malformed("no text body")
    if len(body) > MAX_BODY:
        raise Malformed(f"{len(body)} characters, over the {MAX_BODY} an event document can need")
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError) as exc:
        raise Malformed(f"not JSON ({type(exc).__name__}: {str(exc)[:100]})") from None
    _depth(doc, MAX_DEPTH)
    if not isinstance(doc, dict) or not isinstance(doc.get("Events"), list):
        raise Malformed("no Events list")
    events = doc["Events"]
    if not 0 < len(events) <= MAX_EVENTS:
        raise Malformed(f"{len(events)} events (an event document holds 1 to {MAX_EVENTS})")
    doc_id = doc.get("EventDocId")
    if doc_id is not None and (not isinstance(doc_id, str) or not re.fullmatch(r"[A-Za-z0-9-]{1,128}", doc_id)):
        raise Malformed("EventDocId is not an id")
    out = Document(doc_id)
    for i, event in enumerate(events):
        if not isinstance(event, dict):
            raise Malformed(f"event {i} is not an object")
        kind = event.get("EventType")
        if kind not in KNOWN_EVENT_TYPES:
            raise Malformed(f"event {i} has EventType {str(kind)[:40]!r}, not one of MTurk's")
        if kind == "Ping":
            out.pings += 1
            continue
        hit_id = event.get("HITId")
        if not isinstance(hit_id, str) or not _ID.match(hit_id):
            raise Malformed(f"event {i} ({kind}) has no valid HITId")
        if kind in EVENT_TYPES:
            out.named[hit_id] = kind
        else:
            out.ignored += 1
    return out


# ------------------------------------------------------------------------------ the queue
class NotificationQueue:
    """The SQS queue MTurk writes a project's events to: long-poll reads, batched deletes."""

    def __init__(self, url: str, client=None):
        self.url = url
        self.calls: Counter[str] = Counter()
        if client is None:
            config = botocore.config.Config(connect_timeout=5, read_timeout=40,
                                            retries={"total_max_attempts": 3, "mode": "standard"})
            kwargs: dict[str, Any] = {"region_name": queue_region(url), "config": config}
            endpoint = queue_endpoint(url)
            session = boto3.session.Session()
            if endpoint is not None:
                kwargs["endpoint_url"] = endpoint
                if session.get_credentials() is None:
                    # A local SQS server (moto, ElasticMQ) takes any keys; never send real ones there.
                    kwargs.update(aws_access_key_id="annotate-local", aws_secret_access_key="annotate-local")
            client = session.client("sqs", **kwargs)
        self.client = client
        client.meta.events.register("before-call.sqs.*", self._count)

    def _count(self, model, **_: Any) -> None:
        self.calls[model.name] += 1

    def check(self) -> None:
        """The queue exists and these credentials can read it (else a user error, before anything is set)."""
        try:
            self.client.get_queue_attributes(QueueUrl=self.url, AttributeNames=["QueueArn"])
        except botocore.exceptions.ClientError as exc:
            raise UserError(f"cannot read SQS queue {self.url}: {describe(exc)}", field="--notify") from None
        except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError) as exc:
            raise UserError(f"AWS credentials for SQS: {describe(exc)}", field="--notify") from None
        except (botocore.exceptions.ConnectionError, botocore.exceptions.HTTPClientError) as exc:
            raise UserError(f"SQS at {self.url} did not answer ({describe(exc)})", field="--notify") from None

    def receive(self, wait: float) -> list[dict]:
        """Up to GATHER_MESSAGES messages: a long poll of up to `wait` s for the first, then what is
        already there (up to GATHER_SECONDS more), so one pass acts on a burst of events at once."""
        got = self._receive(max(0, min(20, int(wait))))
        if not got:
            return []
        until = time.monotonic() + GATHER_SECONDS
        while len(got) < GATHER_MESSAGES and time.monotonic() < until:
            more = self._receive(0)
            if not more:
                break
            got.extend(more)
        return got

    def _receive(self, wait: int) -> list[dict]:
        return self.client.receive_message(QueueUrl=self.url, MaxNumberOfMessages=10, WaitTimeSeconds=wait,
                                           AttributeNames=["ApproximateReceiveCount"]).get("Messages", [])

    def delete(self, receipts: Iterable[str]) -> int:
        """Delete by receipt handle, 10 per call. One that fails comes back later: harmless, as
        messages are idempotent. Returns how many were deleted."""
        receipts = list(receipts)
        deleted = 0
        for start in range(0, len(receipts), 10):
            chunk = receipts[start:start + 10]
            try:
                answer = self.client.delete_message_batch(QueueUrl=self.url, Entries=[
                    {"Id": str(i), "ReceiptHandle": r} for i, r in enumerate(chunk)])
            except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                log.warning("could not delete %d message(s) from %s (they will come back): %s",
                            len(chunk), self.url, describe(exc))
                continue
            deleted += len(answer.get("Successful", []))
            for failed in answer.get("Failed", []):
                log.warning("could not delete a message from %s (it will come back): %s", self.url,
                            failed.get("Message") or failed.get("Code"))
        return deleted


# ------------------------------------------------------------------------------ the watch
@dataclass
class WatchReport:
    """What a notification-driven watch did: per batch, the sum of its passes (states are the latest)."""

    results: list[HarvestResult]
    passes: int = 0
    sweeps: int = 0
    messages: int = 0
    events: int = 0
    duplicates: int = 0
    quarantined: int = 0
    foreign: int = 0
    pings: int = 0
    sqs_calls: dict[str, int] = field(default_factory=dict)
    timed_out: bool = False


@dataclass
class _Watched:
    name: str
    batch: dict
    mturk: Any
    queue: NotificationQueue | None
    interval: float
    due: float = 0.0
    last: HarvestResult | None = None
    total: HarvestResult | None = None


def configured_queue(batch: dict) -> str | None:
    """`[hit] notify_queue` of a posted batch, if any."""
    return ((batch.get("config") or {}).get("hit") or {}).get("notify_queue")


def wants_notifications(ws: Workspace, batch_names: list[str] | None, target: str | None,
                        queue_url: str | None) -> bool:
    """Whether a watch over these batches reads a queue (the flag, or some batch's notify_queue)."""
    if queue_url:
        return True
    store = Store(ws.ensure().store_path)
    for name in batch_names or batches_for(store, target):
        batch = store.get_batch(name)
        if batch is not None and configured_queue(batch):
            return True
    return False


def watch(
    ws: Workspace,
    batch_names: list[str] | None = None,
    *,
    queue_url: str | None = None,
    target: str | None = None,
    endpoint_url: str | None = None,
    sweep_interval: float = 300.0,
    poll_interval: float = 30.0,
    sweep_at_start: bool = True,
    timeout: float | None = None,
    wait_for_lock: bool = False,
    concurrency: int | None = None,
    confirm: Callable[[str], bool] | None = None,
    on_pass: Callable[[list[HarvestResult]], None] | None = None,
    before_delete: Callable[[list[dict]], None] | None = None,
) -> WatchReport:
    """Harvest the batches until every item is decided (or `timeout` s), driven by notifications.

    `queue_url` (the --notify flag) serves every batch; without it a batch's `[hit] notify_queue`
    does, and a batch with neither is polled every `poll_interval` s. `before_delete` sees the
    messages about to be deleted (receipt, message_id, hits, doc_id), after their answers are stored."""
    store = Store(ws.ensure().store_path)
    names = batch_names or batches_for(store, target)
    report = WatchReport(results=[])
    seen: OrderedDict[str, None] = OrderedDict()
    with harvest_lock(ws, wait=wait_for_lock), ExitStack() as stack:
        watched, queues = _prepare(ws, store, names, stack, queue_url=queue_url, target=target,
                                   endpoint_url=endpoint_url, sweep_interval=sweep_interval,
                                   poll_interval=poll_interval, concurrency=concurrency, confirm=confirm)
        by_name = {w.name: w for w in watched}
        started = pinged = time.monotonic()
        if not sweep_at_start:  # only when the queue is known to hold every event since the last harvest
            for w in watched:
                w.due = started + w.interval
        ping_warned = not queues
        while True:
            now = time.monotonic()
            # Sweeps (and polls): every batch at start, then each at its interval.
            swept = []
            for w in watched:
                if w.due <= now:
                    swept.append(_pass(store, w, None, concurrency))
                    w.due = time.monotonic() + w.interval
                    report.sweeps += 1
            if swept:
                report.passes += 1
                if on_pass:
                    on_pass(swept)
            if all(w.last is not None and (w.last.done or _hopeless(w.last)) for w in watched):
                break
            if timeout is not None and time.monotonic() - started > timeout:
                report.timed_out = True
                break
            wait = min(w.due for w in watched) - time.monotonic()
            if timeout is not None:
                wait = min(wait, started + timeout - time.monotonic())
            if not queues:
                time.sleep(max(0.0, wait))
                continue
            # Several queues share the wait; one (the usual case) long-polls for all of it.
            per_queue = max(0.0, wait) / len(queues)
            for queue in queues.values():
                try:
                    messages = queue.receive(per_queue)
                except (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError) as exc:
                    log.warning("reading %s failed (will try again): %s", queue.url, describe(exc))
                    time.sleep(min(5.0, max(0.5, per_queue)))
                    continue
                if messages:
                    results = _act(store, queue, messages, by_name, seen, report, concurrency, before_delete)
                    if results:
                        report.passes += 1
                        if on_pass:
                            on_pass(results)
            if not ping_warned and report.pings == 0 and time.monotonic() - pinged > PING_WARN_SECONDS:
                ping_warned = True
                log.warning("no test event reached the queue in %.0f s: check that its access policy lets "
                            "mturk-requester.amazonaws.com call sqs:SendMessage (events are swept meanwhile)",
                            PING_WARN_SECONDS)
        report.results = [w.total if w.last is not None and w.last.failure is None else (w.last or HarvestResult(w.name))
                          for w in watched]
        calls: Counter[str] = Counter()
        for queue in queues.values():
            calls.update(queue.calls)
        report.sqs_calls = dict(calls)
    return report


def _hopeless(r: HarvestResult) -> bool:
    """Waiting cannot help a batch whose failure is the user's (an unknown name, a bad option)."""
    return r.failure is not None and r.failure.kind == "user"


def _prepare(ws, store, names, stack, *, queue_url, target, endpoint_url, sweep_interval, poll_interval,
             concurrency, confirm) -> tuple[list[_Watched], dict[str, NotificationQueue]]:
    """Check every batch and queue, connect, and subscribe each HIT type, before any pass: a user
    error here leaves nothing half-set."""
    plans = []
    for name in names:
        batch = store.get_batch(name)
        if batch is None:
            raise UserError(f"no batch named {name!r} in {ws.store_path} (post it first)")
        if not batch.get("hit_type_id"):
            continue
        batch_target = resolve_target(batch, target, name)
        url = queue_url or configured_queue(batch)
        if url is not None:
            url = check_queue_url(url, batch_target, "--notify" if queue_url else "hit.notify_queue")
        endpoint = endpoint_url or batch.get("endpoint_url")
        if url is not None and batch_target == "local" and not endpoint:
            raise UserError("notifications on the local target need a running marketplace to send them: "
                            "`annotate marketplace serve`, then --endpoint-url", field="--endpoint-url")
        plans.append((name, batch, batch_target, endpoint, url))
    for name, _, batch_target, _, _ in plans:
        if batch_target == "production" and confirm is not None and not confirm(
                f"Watch {name!r} on PRODUCTION (approves assignments, may buy more)?"):
            raise UserError("not confirmed; nothing was done")
    queues: dict[str, NotificationQueue] = {}
    for *_, url in plans:
        if url is not None and url not in queues:
            queues[url] = NotificationQueue(url)
            queues[url].check()
    connections: dict[tuple, Any] = {}
    watched = []
    subscribed: dict[str, set[str]] = {}
    for name, batch, batch_target, endpoint, url in plans:
        key = (batch_target, endpoint)
        if key not in connections:
            connections[key] = stack.enter_context(connect(ws, batch_target, endpoint or None))
        mturk = connections[key]
        if url is not None and batch["hit_type_id"] not in subscribed.setdefault(url, set()):
            mturk.call("UpdateNotificationSettings", HITTypeId=batch["hit_type_id"],
                       Notification=notification_spec(url), Active=True)
            subscribed[url].add(batch["hit_type_id"])
            store.event(name, "notifications-on", queue=url, hit_type=batch["hit_type_id"])
        watched.append(_Watched(name, batch, mturk, queues.get(url) if url else None,
                                sweep_interval if url else poll_interval))
    # One test event per queue: when it arrives the queue's policy is known to let MTurk in.
    for url, queue in queues.items():
        mturk = next(w.mturk for w in watched if w.queue is queue)
        mturk.call("SendTestEventNotification", Notification={**notification_spec(url), "EventTypes": ["Ping"]},
                   TestEventType="Ping")
    for w in watched:
        store.add_api_calls(w.name, w.mturk.take_calls())
    return watched, queues


def _pass(store: Store, w: _Watched, hit_ids: set[str] | None, concurrency: int | None) -> HarvestResult:
    """One pass over one batch (every Reviewable HIT, or only `hit_ids`); its failure is its own."""
    harvester = None
    try:
        # A batch read through a queue leaves decided HITs Reviewable: events, not listings, say what
        # to read, and a rare sweep pages over them (1 call per 100 HITs) instead of 1 call per HIT.
        harvester = Harvester(store, store.get_batch(w.name), w.mturk, concurrency, hit_ids=hit_ids,
                              to_reviewing=w.queue is None)
        result = harvester.run()
    except Exception as exc:  # noqa: BLE001 — one batch's failure, whatever it is, is that batch's alone
        result = harvester.result if harvester is not None else HarvestResult(batch=w.name)
        result.failure = BatchFailure.from_exception(w.name, exc)
        log.warning("harvest of %s failed (will try again): %s", w.name, result.failure.reason)
    w.last = result
    if result.failure is None:
        w.total = result if w.total is None else w.total.then(result)
    return result


def _act(store: Store, queue: NotificationQueue, messages: list[dict], by_name: dict[str, _Watched],
         seen: OrderedDict, report: WatchReport, concurrency: int | None,
         before_delete: Callable[[list[dict]], None] | None) -> list[HarvestResult]:
    """Parse each message on its own, run one pass per batch over the HITs named, then delete the
    messages whose batches' passes succeeded (and the ones with nothing to act on)."""
    report.messages += len(messages)
    done_now: list[dict] = []      # messages to delete whatever the passes do
    waiting: list[tuple[dict, set[str], str | None]] = []  # (message, batches to succeed first, EventDocId)
    wanted: dict[str, set[str]] = {}  # batch -> HIT ids
    batch_of: dict[str, str | None] = {}
    for message in messages:
        receipt = message.get("ReceiptHandle")
        if not isinstance(receipt, str):
            continue
        try:
            doc = read_document(message.get("Body"))
        except Malformed as exc:
            report.quarantined += 1
            body = message.get("Body") if isinstance(message.get("Body"), str) else repr(message.get("Body"))
            log.warning("quarantined a message from %s that is not MTurk's event document (%s)", queue.url, exc)
            store.event(None, QUARANTINE_EVENT, queue=queue.url, message_id=str(message.get("MessageId"))[:100],
                        reason=str(exc)[:300], excerpt=body[:EXCERPT], length=len(body))
            done_now.append({"receipt": receipt, "message_id": message.get("MessageId"), "hits": []})
            continue
        report.pings += doc.pings
        report.events += len(doc.named) + doc.ignored + doc.pings
        if doc.doc_id is not None and doc.doc_id in seen:
            report.duplicates += 1
            done_now.append({"receipt": receipt, "message_id": message.get("MessageId"), "hits": []})
            continue
        needs: set[str] = set()
        for hit_id in doc.named:
            if hit_id not in batch_of:
                row = store.hit(hit_id)
                batch_of[hit_id] = row["batch"] if row else None
            name = batch_of[hit_id]
            if name in by_name:
                wanted.setdefault(name, set()).add(hit_id)
                needs.add(name)
            else:
                report.foreign += 1  # another project's HIT, or a batch not watched (its sweep finds it)
        entry = {"receipt": receipt, "message_id": message.get("MessageId"), "hits": sorted(doc.named),
                 "doc_id": doc.doc_id}
        if needs:
            waiting.append((entry, needs, doc.doc_id))
        else:
            done_now.append(entry)
            _remember(seen, doc.doc_id)
    started = time.monotonic()
    results = [_pass(store, by_name[name], hit_ids, concurrency) for name, hit_ids in wanted.items()]
    log.debug("%d message(s): a pass over %d HIT(s) in %.2f s", len(messages),
              sum(len(h) for h in wanted.values()), time.monotonic() - started)
    failed = {r.batch for r in results if r.failure is not None}
    deletable = list(done_now)
    for entry, needs, doc_id in waiting:
        if not needs & failed:  # stored: safe to let go
            deletable.append(entry)
            _remember(seen, doc_id)
    if before_delete is not None:
        before_delete(deletable)
    queue.delete(entry["receipt"] for entry in deletable)
    return results


def _remember(seen: OrderedDict, doc_id: str | None) -> None:
    if doc_id is None:
        return
    seen[doc_id] = None
    while len(seen) > SEEN_DOCS:
        seen.popitem(last=False)
