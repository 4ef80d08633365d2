"""Harvest driven by MTurk's notifications: the local marketplace (over HTTP) delivers HIT events to
an SQS queue served by moto in server mode, exactly as MTurk does; a simulated crowd works the
HITs; `annotate harvest --watch --notify` (annotate.notification_harvest.watch) reads the events."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import time

import boto3
import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import load_batch
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.notification_harvest import (QUARANTINE_EVENT, Malformed, check_queue_url, read_document, watch)
from annotate.post import post_batch
from annotate.store import Store
from conftest import make_batch
from processes import free_port, stop

from moto_sqs import aws_credentials, aws_url, sqs  # noqa: F401  (fixtures)


@pytest.fixture
def queue_url(sqs, request):
    # A short visibility timeout: a message read and not deleted comes back in a second.
    name = "q-" + "".join(c if c.isalnum() else "-" for c in request.node.name)[:60]
    return sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "1"})["QueueUrl"]


@pytest.fixture
def market(tmp_path):
    with MarketplaceServer(tmp_path / "market.db") as server:
        yield server


def posted(ws, market, tmp_path, *, items=8, extra_toml="", **overrides):
    batch_dir = make_batch(tmp_path, items=items, extra_toml=extra_toml, consensus__max_assignments="4", **overrides)
    post_batch(ws, batch_dir, endpoint_url=market.url)
    return load_batch(batch_dir)


def crowd_for(market, batch, seed=3):
    return SimulatedCrowd(market.url, batch.gold_annotations(), workers=8, seed=seed, spammer_share=0.0,
                          accuracy=(0.7, 0.9))


def calls(market) -> dict:
    return market.backend.stats()["api_calls"]


def queued(sqs, url) -> int:
    attrs = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=[
        "ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"])["Attributes"]
    return int(attrs["ApproximateNumberOfMessages"]) + int(attrs["ApproximateNumberOfMessagesNotVisible"])


def visible(sqs, url) -> int:
    return int(sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages"])[
        "Attributes"]["ApproximateNumberOfMessages"])


def delivered(market) -> bool:
    """The marketplace's outbox is empty: every event so far is in the queue."""
    import sqlite3

    with sqlite3.connect(market.backend.db_path) as conn:
        return conn.execute("select count(*) from notification_outbox").fetchone()[0] == 0


def wait_for(predicate, timeout=20.0, what="the condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def assert_settled(ws, market, name):
    """Every answer stored once, approved once; every extension bought once; the store and MTurk agree."""
    store = Store(ws.store_path)
    stats = market.backend.stats()
    submitted = sum(stats["assignments"].values())
    rows = list(store.db.query("select assignment_id, status from assignments where batch = ?", [name]))
    assert len(rows) == submitted and {r["status"] for r in rows} == {"Approved"}
    assert stats["api_calls"].get("ApproveAssignment", 0) == submitted  # never twice
    extensions = list(store.db.query("select hit_id, state from extensions where batch = ?", [name]))
    assert {e["state"] for e in extensions} <= {"done"}
    assert stats["api_calls"].get("CreateAdditionalAssignmentsForHIT", 0) == len(extensions)  # never twice
    mturk = boto3.client("mturk", endpoint_url=market.url, region_name="us-east-1")
    for hit in store.db.query("select hit_id, max_assignments from hits where batch = ?", [name]):
        assert mturk.get_hit(HITId=hit["hit_id"])["HIT"]["MaxAssignments"] == hit["max_assignments"]


# ------------------------------------------------------------------------------ events drive the harvest
def test_events_drive_the_harvest_from_batch_toml(ws, market, tmp_path, sqs, queue_url):
    """`[hit] notify_queue` + `harvest --watch`: the HIT type is subscribed, a test event arrives,
    every answer after the first sweep comes by events (one ListReviewableHITs in all), and the
    queue is left empty."""
    batch = posted(ws, market, tmp_path, extra_toml="", hit__notify_queue=json.dumps(queue_url))
    crowd = crowd_for(market, batch).start(interval=0.05)
    try:
        result = CliRunner().invoke(cli, ["--home", str(ws.home), "harvest", batch.name, "--watch", "--timeout", "60",
                                          "--sweep-interval", "3600", "--json"], catch_exceptions=False)
    finally:
        crowd.stop()
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    [row] = summary["batches"]
    assert row["done"] and row["decided"] == 8 and row["failure"] is None
    notes = summary["notifications"]
    assert notes["pings"] == 1 and notes["messages"] >= 2 and notes["quarantined"] == 0 and not notes["timed_out"]
    assert notes["sqs_calls"]["ReceiveMessage"] >= 1 and notes["sqs_calls"]["DeleteMessageBatch"] >= 1
    made = calls(market)
    assert made["UpdateNotificationSettings"] == 1 and made["SendTestEventNotification"] == 1
    assert made["ListReviewableHITs"] == 1  # the sweep at start; the rest came by events
    # Decided HITs stay Reviewable: with events saying what to read, moving them costs a call each for nothing.
    assert made.get("UpdateHITReviewStatus", 0) == 0
    assert_settled(ws, market, batch.name)
    assert row["approved"] == sum(market.backend.stats()["assignments"].values())
    # What the last passes read was deleted; events after the end (none expected) would wait.
    assert queued(sqs, queue_url) == 0
    assert Store(ws.store_path).events(batch.name, ("notifications-on",))[0]["queue"] == queue_url


def test_message_is_deleted_only_after_its_answers_are_stored(ws, market, tmp_path, sqs, queue_url):
    """Before any delete the answers of every HIT a message names are in the store. A harvest
    killed (SIGKILL) between storing and deleting: the messages come back, and the next watch
    approves nothing twice and buys no extension twice."""
    batch = posted(ws, market, tmp_path)
    store = Store(ws.store_path)
    seen_before_delete = []

    def check(messages):
        for m in messages:
            seen_before_delete.append(m["message_id"])
            for hit_id in m["hits"]:
                marketplace_ids = {a["AssignmentId"] for a in boto3.client(
                    "mturk", endpoint_url=market.url, region_name="us-east-1").list_assignments_for_hit(
                    HITId=hit_id)["Assignments"]}
                stored = {r["assignment_id"] for r in store.db.query(
                    "select assignment_id from assignments where hit_id = ?", [hit_id])}
                assert marketplace_ids <= stored

    # Subscribe (and sweep once) with nothing to do yet; then the crowd answers the first slots.
    first = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, timeout=0)
    assert first.timed_out
    crowd = crowd_for(market, batch)
    assert crowd.work() == 16
    wait_for(lambda: delivered(market), what="every event sent")

    # A harvest in its own process, killed right before its first delete.
    script = textwrap.dedent(f"""
        import os, signal, sys
        from pathlib import Path
        from annotate.notification_harvest import watch
        from annotate.workspace import Workspace
        def kill(messages):
            if any(m["hits"] for m in messages):
                print("KILLING", ",".join(m["message_id"] for m in messages if m["hits"]), flush=True)
                os.kill(os.getpid(), signal.SIGKILL)
        watch(Workspace(Path({str(ws.home)!r})), [{batch.name!r}], queue_url={queue_url!r}, endpoint_url={market.url!r},
              sweep_interval=3600, sweep_at_start=False, timeout=60, before_delete=kill)
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=os.environ.copy())
    try:
        out, errors = proc.communicate(timeout=90)
    finally:
        stop(proc)
    assert proc.returncode == -9, errors[-2000:]
    killed = out.split("KILLING ", 1)[1].split()[0].split(",")
    assert killed and store.db.execute("select count(*) from assignments").fetchone()[0] >= 2  # stored, then killed
    assert calls(market).get("ListReviewableHITs", 0) == 1  # the first watch's: the events did the storing

    # Not deleted: once the visibility timeout passes, they are back in the queue.
    wait_for(lambda: visible(sqs, queue_url) >= len(killed), what="the messages to come back")
    crowd.start(interval=0.05)
    try:
        report = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, sweep_interval=3600,
                       sweep_at_start=False, timeout=60, before_delete=check)
    finally:
        crowd.stop()
    assert report.results[0].done and not report.timed_out
    assert set(killed) <= set(seen_before_delete)  # re-delivered, then deleted
    assert_settled(ws, market, batch.name)


def test_lost_events_are_caught_by_the_sweep(ws, market, tmp_path, sqs, queue_url):
    batch = posted(ws, market, tmp_path)
    watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, timeout=0)
    crowd = crowd_for(market, batch)
    crowd.work()
    wait_for(lambda: delivered(market), what="every event sent")
    sqs.purge_queue(QueueUrl=queue_url)  # every event so far is lost
    before = calls(market).get("ListReviewableHITs", 0)
    crowd.start(interval=0.05)
    try:
        # No sweep at start: only the one due after 0.5 s can find the answers whose events were lost.
        report = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, sweep_interval=0.5,
                       sweep_at_start=False, timeout=60)
    finally:
        crowd.stop()
    assert report.results[0].done
    assert report.sweeps >= 1 and calls(market)["ListReviewableHITs"] - before == report.sweeps
    assert_settled(ws, market, batch.name)


HOSTILE = [
    "not json at all",
    "{" * 5000,                                             # nesting to blow the parser's stack
    json.dumps({"Events": "AssignmentSubmitted"}),
    json.dumps({"Events": []}),
    json.dumps({"Events": [{"EventType": "DropTables", "HITId": "3ABC"}]}),
    json.dumps({"Events": [{"EventType": "HITReviewable", "HITId": "../../etc/passwd"}]}),
    json.dumps({"Events": [{"EventType": "HITReviewable", "HITId": "3ABC"}] * 101}),
    json.dumps({"Events": [{"EventType": "HITReviewable", "HITId": "3ABC", "x": [[[[[[[1]]]]]]]}]}),
    json.dumps({"Events": [{"EventType": "HITReviewable", "HITId": "3ABC"}], "pad": "x" * 70_000}),
    json.dumps([1, 2, 3]),
]


def test_hostile_messages_are_quarantined_and_the_watch_goes_on(ws, market, tmp_path, sqs, queue_url, caplog):
    batch = posted(ws, market, tmp_path)
    watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, timeout=0)
    for body in HOSTILE:
        sqs.send_message(QueueUrl=queue_url, MessageBody=body)
    # A well-formed document about a HIT that is not ours: deleted, not acted on.
    sqs.send_message(QueueUrl=queue_url, MessageBody=json.dumps({"Events": [
        {"EventType": "AssignmentSubmitted", "HITId": "3NOTOURS0000000000000", "AssignmentId": "3X"}],
        "EventDocId": "a" * 40}))
    crowd = crowd_for(market, batch).start(interval=0.05)
    try:
        report = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, sweep_interval=3600,
                       timeout=60)
    finally:
        crowd.stop()
    assert report.results[0].done and report.quarantined == len(HOSTILE) and report.foreign == 1
    kept = Store(ws.store_path).db.query("select detail from events where kind = ?", [QUARANTINE_EVENT])
    details = [json.loads(r["detail"]) for r in kept]
    assert len(details) == len(HOSTILE) and all(len(d["excerpt"]) <= 500 and d["reason"] for d in details)
    assert "quarantined a message" in caplog.text
    assert calls(market)["ListReviewableHITs"] == 2  # the two sweeps at start: events did the rest
    assert_settled(ws, market, batch.name)
    # Every message the watch read is gone. Under load the marketplace may still deliver an event
    # about one of our HITs after the watch stopped: that is the next watch's, never a hostile one.
    time.sleep(1.5)  # past the 1 s visibility timeout: anything read and not deleted is visible again
    late = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get("Messages", [])
    assert not {m["Body"] for m in late} & {*HOSTILE}
    ours = {h["hit_id"] for h in Store(ws.store_path).hits(batch.name, created=True)}
    for m in late:
        assert {e["HITId"] for e in json.loads(m["Body"])["Events"]} <= ours, m["Body"][:200]


def test_duplicates_are_skipped(ws, market, tmp_path, sqs, queue_url):
    """A document seen (and acted on) before is deleted without a pass; the batch still finishes."""
    batch = posted(ws, market, tmp_path)
    watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, timeout=0)
    crowd = crowd_for(market, batch)
    crowd.work()
    wait_for(lambda: delivered(market), what="every event sent")
    copied = []

    def resend(messages):
        # MTurk's rare double delivery: the same EventDocId again, after the first was acted on.
        for m in messages:
            if m["hits"] and not copied:
                copied.append(m["doc_id"])
                copy = json.dumps({"Events": [{"EventType": "HITReviewable", "HITId": h} for h in m["hits"]],
                                   "EventDocId": m["doc_id"]})
                for _ in range(2):
                    sqs.send_message(QueueUrl=queue_url, MessageBody=copy)

    # The crowd rests: the watch reads the first answers' events, then the copies, then times out.
    # (15 s, not less: on a loaded machine acting on the first events alone took over 4 s, and the
    # copies came after the watch had stopped.)
    report = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, sweep_interval=3600,
                   sweep_at_start=False, timeout=15, before_delete=resend)
    assert copied and report.duplicates == 2 and report.timed_out
    crowd.start(interval=0.05)
    try:
        report = watch(ws, [batch.name], queue_url=queue_url, endpoint_url=market.url, sweep_interval=3600,
                       timeout=60)
    finally:
        crowd.stop()
    assert report.results[0].done
    assert_settled(ws, market, batch.name)


# ------------------------------------------------------------------------------ messages, one by one
def test_read_document_takes_mturks_format():
    doc = read_document(json.dumps({
        "Events": [{"EventType": "AssignmentSubmitted", "EventTimestamp": "2026-01-31T23:59:59Z", "HITId": "3HIT1",
                    "AssignmentId": "3A1", "HITTypeId": "3T"},
                   {"EventType": "HITReviewable", "EventTimestamp": "2026-01-31T23:59:59Z", "HITId": "3HIT1",
                    "HITTypeId": "3T"},
                   {"EventType": "AssignmentAccepted", "EventTimestamp": "2026-01-31T23:59:59Z", "HITId": "3HIT2",
                    "AssignmentId": "3A2", "HITTypeId": "3T"},
                   {"EventType": "Ping", "EventTimestamp": "2026-01-31T23:59:59Z"}],
        "EventDocId": "0123456789abcdef0123456789abcdef01234567", "SourceAccount": "123456789012",
        "CustomerId": "A1CUSTOMER", "EventDocVersion": "2006-05-05"}))
    assert doc.named == {"3HIT1": "HITReviewable"} and doc.ignored == 1 and doc.pings == 1
    for body in HOSTILE + [None, 42]:
        with pytest.raises(Malformed):
            read_document(body)


# ------------------------------------------------------------------------------ queue URLs
@pytest.mark.parametrize("target", ["sandbox", "production"])
@pytest.mark.parametrize("url", ["http://127.0.0.1:4566/123456789012/q", "https://example.com/123456789012/q",
                                 "https://sqs.us-east-1.amazonaws.com/q", "arn:aws:sqs:us-east-1:123456789012:q",
                                 "https://sqs.us-east-1.amazonaws.com/123456789012/q.fifo"])
def test_sandbox_and_production_refuse_a_queue_url_that_is_not_sqs(ws, market, tmp_path, target, url):
    batch = posted(ws, market, tmp_path, items=2)
    store = Store(ws.store_path)
    store.db["batches"].update(batch.name, {"target": target})  # as if posted there
    before = calls(market)
    args = ["--home", str(ws.home), "harvest", batch.name, "--watch", "--notify", url, "--timeout", "1", "--yes",
            "--target", target, "--json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 2, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert "--notify" in summary["failures"][0]["reason"] and summary["exit_code"] == 2
    assert calls(market) == before  # refused before anything was set
    good = "https://sqs.eu-west-1.amazonaws.com/123456789012/annotate-events"
    assert check_queue_url(good, target) == good


def test_notify_needs_watch_and_batch_toml_checks_the_queue(ws, market, tmp_path):
    batch = posted(ws, market, tmp_path, items=2)
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "harvest", batch.name, "--notify",
                                      "http://127.0.0.1:1/123456789012/q"], catch_exceptions=False)
    assert result.exit_code == 2 and "--watch" in result.output
    bad = make_batch(tmp_path / "bad", hit__notify_queue='"ftp://nowhere"')
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(bad), "--endpoint-url", market.url],
                                catch_exceptions=False)
    assert result.exit_code == 2 and "hit.notify_queue" in result.output


def test_local_notifications_need_a_running_marketplace(ws, tmp_path, queue_url):
    batch_dir = make_batch(tmp_path, items=2)
    post_batch(ws, batch_dir)  # the embedded marketplace, gone when the command ends
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "harvest", "--watch", "--notify", queue_url, "--json"],
                                catch_exceptions=False)
    assert result.exit_code == 2 and "--endpoint-url" in result.output
