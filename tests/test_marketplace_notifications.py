"""HIT event notifications end to end: UpdateNotificationSettings / SendTestEventNotification through
boto3 over HTTP, messages received from moto's SQS (and SNS) in server mode."""

from __future__ import annotations

import json
import logging
import re
import time

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest_marketplace import accept, client, hit_params, http, work

from annotate.marketplace import MarketplaceServer

from processes import free_port
from moto_sqs import aws_credentials, aws_url, sqs  # noqa: F401  (fixtures)

WORKER, OTHER, THIRD = "AWORKERONE1234", "AWORKERTWO5678", "AWORKERTHREE90"
ALL_EVENTS = ["AssignmentAccepted", "AssignmentAbandoned", "AssignmentReturned", "AssignmentSubmitted",
              "AssignmentRejected", "AssignmentApproved", "HITCreated", "HITExtended", "HITDisposed",
              "HITReviewable", "HITExpired"]
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def queue_url(sqs, request):
    return sqs.create_queue(QueueName=re.sub(r"[^A-Za-z0-9_-]", "-", request.node.name)[:70])["QueueUrl"]


def receive(sqs, queue_url: str, count: int, timeout: float = 15) -> list[dict]:
    """Event documents from the queue until `count` events arrived (or the time is up)."""
    documents, events = [], 0
    deadline = time.monotonic() + timeout
    while events < count and time.monotonic() < deadline:
        got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in got.get("Messages", []):
            document = json.loads(message["Body"])
            documents.append(document)
            events += len(document["Events"])
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=message["ReceiptHandle"])
    return documents


def events_of(documents: list[dict]) -> list[dict]:
    return [event for document in documents for event in document["Events"]]


def spec(destination: str, events=None, transport: str = "SQS") -> dict:
    return {"Destination": destination, "Transport": transport, "Version": "2014-08-15",
            "EventTypes": events or ALL_EVENTS}


def new_hit_type(mturk, **overrides) -> str:
    params = {"Title": "Label one picture", "Description": "Say what it shows.", "Reward": "0.05",
              "AssignmentDurationInSeconds": 600, "AutoApprovalDelayInSeconds": 86400}
    params.update(overrides)
    return mturk.create_hit_type(**params)["HITTypeId"]


def test_a_hits_whole_life_reaches_the_queue(srv, mturk, sqs, queue_url):
    type_id = new_hit_type(mturk)
    mturk.update_notification_settings(HITTypeId=type_id, Notification=spec(queue_url), Active=True)
    hit_id = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=3600, MaxAssignments=2,
                                            Question=hit_params()["Question"])["HIT"]["HITId"]
    submitted = work(srv.url, hit_id, WORKER)                      # Accepted, Submitted
    returned = accept(srv.url, hit_id, OTHER)                      # Accepted
    assert http("POST", srv.url + "/worker/return", {"assignmentId": returned})[0] == 200  # Returned
    abandoned = accept(srv.url, hit_id, OTHER)                     # Accepted
    srv.clock.advance(601)
    mturk.get_hit(HITId=hit_id)                                    # Abandoned (time settles on the next call)
    second = work(srv.url, hit_id, THIRD)                          # Accepted, Submitted, HITReviewable
    mturk.approve_assignment(AssignmentId=submitted)               # Approved
    mturk.reject_assignment(AssignmentId=second, RequesterFeedback="no")  # Rejected
    mturk.create_additional_assignments_for_hit(HITId=hit_id, NumberOfAdditionalAssignments=1)  # Extended
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)      # Expired; Reviewable again
    mturk.delete_hit(HITId=hit_id)                                 # Disposed

    expected = [("HITCreated", None), ("AssignmentAccepted", submitted), ("AssignmentSubmitted", submitted),
                ("AssignmentAccepted", returned), ("AssignmentReturned", returned), ("AssignmentAccepted", abandoned),
                ("AssignmentAbandoned", abandoned), ("AssignmentAccepted", second), ("AssignmentSubmitted", second),
                ("HITReviewable", None), ("AssignmentApproved", submitted), ("AssignmentRejected", second),
                ("HITExtended", None), ("HITExpired", None), ("HITReviewable", None), ("HITDisposed", None)]
    documents = receive(sqs, queue_url, len(expected))
    events = events_of(documents)
    # Events keep their order within a message, and messages go out in order.
    assert [(e["EventType"], e.get("AssignmentId")) for e in events] == expected
    for document in documents:
        assert set(document) == {"Events", "EventDocId", "SourceAccount", "CustomerId", "EventDocVersion"}
        assert document["EventDocVersion"] == "2014-08-15" and re.fullmatch(r"[0-9a-f]{40}", document["EventDocId"])
        assert re.fullmatch(r"\d{12}", document["SourceAccount"]) and re.fullmatch(r"A[A-Z0-9]+",
                                                                                   document["CustomerId"])
    assert len({d["EventDocId"] for d in documents}) == len(documents)
    for event in events:
        assert event["HITId"] == hit_id and event["HITTypeId"] == type_id
        assert TIMESTAMP.match(event["EventTimestamp"])
        keys = {"EventType", "EventTimestamp", "HITId", "HITTypeId"}
        assert set(event) == (keys | {"AssignmentId"} if event["EventType"].startswith("Assignment") else keys)
    stats = json.loads(http("GET", srv.url + "/_stats")[2])
    assert stats["api_calls"]["UpdateNotificationSettings"] == 1


def test_only_named_events_of_active_specifications_are_sent(srv, mturk, sqs, queue_url):
    type_id = new_hit_type(mturk)
    quiet_type = new_hit_type(mturk, Title="No notifications here")
    mturk.update_notification_settings(HITTypeId=type_id, Notification=spec(queue_url, ["AssignmentSubmitted"]))
    hit_id = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=3600, MaxAssignments=5,
                                            Question=hit_params()["Question"])["HIT"]["HITId"]
    quiet_hit = mturk.create_hit_with_hit_type(HITTypeId=quiet_type, LifetimeInSeconds=3600,
                                               Question=hit_params()["Question"])["HIT"]["HITId"]
    first = work(srv.url, hit_id, WORKER)
    work(srv.url, quiet_hit, WORKER)
    mturk.update_notification_settings(HITTypeId=type_id, Active=False)  # keeps the specification
    work(srv.url, hit_id, OTHER)
    mturk.update_notification_settings(HITTypeId=type_id, Active=True)
    last = work(srv.url, hit_id, THIRD)
    events = events_of(receive(sqs, queue_url, 2))
    assert [(e["EventType"], e["AssignmentId"]) for e in events] == [("AssignmentSubmitted", first),
                                                                    ("AssignmentSubmitted", last)]
    time.sleep(0.5)  # nothing else follows
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []) == []


def test_send_test_event_notification(mturk, sqs, queue_url):
    mturk.send_test_event_notification(Notification=spec(queue_url, ["Ping"]), TestEventType="Ping")
    # The test event is sent even when the specification does not name its type.
    mturk.send_test_event_notification(Notification=spec(queue_url, ["HITCreated"]),
                                       TestEventType="AssignmentSubmitted")
    events = events_of(receive(sqs, queue_url, 2))
    assert set(events[0]) == {"EventType", "EventTimestamp"} and events[0]["EventType"] == "Ping"
    assert events[1]["EventType"] == "AssignmentSubmitted"
    assert {"HITId", "AssignmentId", "HITTypeId"} <= set(events[1])


@pytest.mark.parametrize("notification, active, code, says", [
    (spec("https://sqs.us-east-1.amazonaws.com/123456789012/q", ["Ping"]), None,
     "AWS.MechanicalTurk.InvalidParameterValue", "Ping"),
    ({**spec("https://sqs.us-east-1.amazonaws.com/123456789012/q"), "Version": "2011-01-01"}, None,
     "AWS.MechanicalTurk.InvalidParameterValue", "2006-05-05"),
    (spec("not a queue url"), None, "AWS.MechanicalTurk.InvalidParameterValue", "queue URL"),
    (spec("arn:aws:sqs:us-east-1:123456789012:q", transport="SNS"), None,
     "AWS.MechanicalTurk.InvalidParameterValue", "topic ARN"),
    (spec("someone@example.com", transport="Email"), None, "AWS.MechanicalTurk.InvalidParameterValue", "Email"),
    ({**spec("https://sqs.us-east-1.amazonaws.com/123456789012/q"), "EventTypes": []}, None,
     "AWS.MechanicalTurk.InvalidParameterValue", "at least one"),
    (None, None, "AWS.MechanicalTurk.InvalidParameterValue", "Notification"),
    (None, True, "AWS.MechanicalTurk.InvalidParameterValue", "no notification specification"),
])
def test_update_notification_settings_errors(mturk, notification, active, code, says):
    type_id = new_hit_type(mturk)
    params = {"HITTypeId": type_id}
    if notification is not None:
        params["Notification"] = notification
    if active is not None:
        params["Active"] = active
    with pytest.raises(ClientError) as caught:
        mturk.update_notification_settings(**params)
    response = caught.value.response
    assert response["Error"]["Code"] == "RequestError" and response["TurkErrorCode"] == code
    assert says in response["Error"]["Message"]


def test_unknown_hit_type_and_malformed_specification(mturk):
    with pytest.raises(ClientError) as caught:
        mturk.update_notification_settings(HITTypeId="3NOSUCHTYPE", Active=True)
    assert caught.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.HITTypeDoesNotExist"
    with pytest.raises(ClientError) as caught:
        mturk.send_test_event_notification(Notification=spec("https://sqs.us-east-1.amazonaws.com/1/q"),
                                           TestEventType="Nope")
    assert caught.value.response["Error"]["Code"] in ("ParameterValidationError", "ValidationException")


def test_an_unreachable_queue_never_slows_or_breaks_the_marketplace(srv, mturk, caplog):
    dead = f"http://127.0.0.1:{free_port()}/123456789012/nobody-listens"
    type_id = new_hit_type(mturk)
    mturk.update_notification_settings(HITTypeId=type_id, Notification=spec(dead))
    caplog.set_level(logging.WARNING, logger="annotate.marketplace.notifications")
    started = time.monotonic()
    hit_id = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=3600, MaxAssignments=3,
                                            Question=hit_params()["Question"])["HIT"]["HITId"]
    for worker in (WORKER, OTHER, THIRD):
        work(srv.url, hit_id, worker)
    assert time.monotonic() - started < 3
    assert mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any("nobody-listens" in r.getMessage() for r in caplog.records):
        time.sleep(0.1)
    failure = next(r for r in caplog.records if "nobody-listens" in r.getMessage())
    assert failure.levelno == logging.WARNING and "will retry" in failure.getMessage()


def test_failed_deliveries_are_retried_until_the_queue_exists(srv, mturk, sqs, aws_url, caplog):
    url = f"{aws_url}/123456789012/created-later"
    caplog.set_level(logging.WARNING, logger="annotate.marketplace.notifications")
    type_id = new_hit_type(mturk)
    mturk.update_notification_settings(HITTypeId=type_id, Notification=spec(url, ["HITCreated"]))
    hit_id = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=3600,
                                            Question=hit_params()["Question"])["HIT"]["HITId"]
    # The first attempt fails (no such queue yet). Wait for it to have failed rather than guess how
    # long it takes: a fixed 0.5 s once let it fail after the clock moved below, and the retry it
    # scheduled from there never came due (a fresh-venv run on an idle machine).
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and not any("created-later" in r.getMessage() for r in caplog.records):
        time.sleep(0.05)
    assert any("created-later" in r.getMessage() and "will retry" in r.getMessage() for r in caplog.records)
    sqs.create_queue(QueueName="created-later")
    srv.clock.advance(5)  # past the retry backoff
    events = events_of(receive(sqs, url, 1))
    assert [(e["EventType"], e["HITId"]) for e in events] == [("HITCreated", hit_id)]


def test_notification_endpoint_reaches_aws_style_queue_urls(tmp_path, aws_url, sqs):
    local_url = sqs.create_queue(QueueName="aws-style")["QueueUrl"]
    aws_style = "https://sqs.us-east-1.amazonaws.com/123456789012/aws-style"
    with MarketplaceServer(tmp_path / "m.db", notification_endpoint=aws_url) as server:
        mturk = client(server.url)
        mturk.send_test_event_notification(Notification=spec(aws_style, ["Ping"]), TestEventType="Ping")
        assert [e["EventType"] for e in events_of(receive(sqs, local_url, 1))] == ["Ping"]


def test_sns_topics_receive_the_same_document(tmp_path, aws_url, sqs, monkeypatch):
    sns = boto3.client("sns", endpoint_url=aws_url, region_name="us-east-1")
    topic = sns.create_topic(Name="mturk-events")["TopicArn"]
    queue = sqs.create_queue(QueueName="from-sns")["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    monkeypatch.setenv("ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT", aws_url)
    with MarketplaceServer(tmp_path / "m.db") as server:
        mturk = client(server.url)
        mturk.send_test_event_notification(Notification=spec(topic, ["Ping"], transport="SNS"),
                                           TestEventType="HITExpired")
        deadline = time.monotonic() + 15
        messages = []
        while not messages and time.monotonic() < deadline:
            messages = sqs.receive_message(QueueUrl=queue, WaitTimeSeconds=1).get("Messages", [])
    envelope = json.loads(messages[0]["Body"])
    document = json.loads(envelope["Message"])
    assert document["EventDocVersion"] == "2014-08-15"
    assert [e["EventType"] for e in document["Events"]] == ["HITExpired"]


def test_cli_serve_with_layouts_and_a_notification_endpoint(tmp_path, aws_url, sqs):
    import os
    import signal
    import subprocess
    import sys

    layout = tmp_path / "ask.html"
    layout.write_text('<form action="/mturk/externalSubmit"><p>${question}</p><input name="a"></form>',
                      encoding="utf-8")
    sqs.create_queue(QueueName="cli-events")
    proc = subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(tmp_path), "marketplace", "serve",
                             "--port", "0", "--layout", f"3ASK={layout}", "--notification-endpoint", aws_url],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        assert first.startswith("requester endpoint: http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split(": ", 1)[1].strip()
        lines = [proc.stdout.readline().strip() for _ in range(5)]  # worker pages, database, mode, layout, notifications
        assert f"HIT layout:         3ASK <- {layout}" in lines
        assert f"notifications to:   {aws_url}" in lines
        mturk = client(url)
        type_id = new_hit_type(mturk)
        # An AWS-style queue URL: the endpoint flag sends it to the local SQS.
        mturk.update_notification_settings(
            HITTypeId=type_id, Notification=spec("https://sqs.us-east-1.amazonaws.com/123456789012/cli-events",
                                                 ["HITCreated"]))
        hit = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=60, HITLayoutId="3ASK",
                                             HITLayoutParameters=[{"Name": "question", "Value": "Why?"}])["HIT"]
        assert "<p>Why?</p>" in hit["Question"]
        local_url = sqs.get_queue_url(QueueName="cli-events")["QueueUrl"]
        assert [(e["EventType"], e["HITId"]) for e in events_of(receive(sqs, local_url, 1))] == [
            ("HITCreated", hit["HITId"])]
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=20)
    assert proc.returncode == 0


def test_events_of_the_last_requests_are_sent_on_stop_or_by_the_next_server(tmp_path, sqs, queue_url, monkeypatch):
    from annotate.marketplace import notifications

    with MarketplaceServer(tmp_path / "m.db") as server:
        mturk = client(server.url)
        type_id = new_hit_type(mturk)
        mturk.update_notification_settings(HITTypeId=type_id, Notification=spec(queue_url, ["HITCreated"]))
        first = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=60,
                                               Question=hit_params()["Question"])["HIT"]["HITId"]
    # stop() returned: the event is already in the queue.
    got = sqs.receive_message(QueueUrl=queue_url, MaxNumberOfMessages=10).get("Messages", [])
    assert [e["HITId"] for m in got for e in json.loads(m["Body"])["Events"]] == [first]

    # A marketplace whose deliverer never ran leaves its events in the database's outbox ...
    with monkeypatch.context() as patch:
        patch.setattr(notifications.Deliverer, "start", lambda self: self)
        server = MarketplaceServer(tmp_path / "m.db").start()
        second = client(server.url).create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=60,
                                                             Question=hit_params()["Question"])["HIT"]["HITId"]
        server.stop()
    assert sqs.receive_message(QueueUrl=queue_url, WaitTimeSeconds=1).get("Messages", []) == []
    # ... for the next marketplace on the same database to send.
    with MarketplaceServer(tmp_path / "m.db"):
        assert [e["HITId"] for e in events_of(receive(sqs, queue_url, 1))] == [second]
