"""A crowd never dies of a HIT it cannot do: it returns the assignment (the HIT stays available to
others), says so at once (log and /_stats), and goes on with the rest."""

from __future__ import annotations

import json
import logging
import re
import time

import pytest
from conftest_marketplace import client, external_question, hit_params, html_question, http

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.marketplace.structured_crowd import StructuredCrowd

NO_FORM = "<!DOCTYPE html><html><body><p>There is nothing to answer here.</p></body></html>"
# A crowd-element page the crowds cannot read: an element without the name its answer is keyed by.
CROWD_FORM = ('<script src="https://assets.crowd.aws/crowd-html-elements.js"></script>'
              '<crowd-form><crowd-classifier categories="[\'cat\', \'dog\']"></crowd-classifier>'
              '</crowd-form>')


@pytest.fixture
def srv(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="") as server:
        yield server


def wait_for(predicate, seconds: float = 60.0) -> None:
    deadline = time.monotonic() + seconds
    while not predicate():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.1)


@pytest.mark.parametrize("crowd_class", [SimulatedCrowd, StructuredCrowd])
def test_undoable_hits_are_returned_and_the_rest_get_done(srv, caplog, crowd_class):
    mturk = client(srv.url)
    undoable = {
        "no form": mturk.create_hit(**hit_params(MaxAssignments=2, Question=html_question(NO_FORM)))["HIT"]["HITId"],
        "crowd-form": mturk.create_hit(**hit_params(MaxAssignments=2,
                                                    Question=html_question(CROWD_FORM)))["HIT"]["HITId"],
        "unreachable": mturk.create_hit(**hit_params(
            MaxAssignments=2, Question=external_question("http://127.0.0.1:9/nothing-listens-here")))["HIT"]["HITId"],
    }
    normal = [mturk.create_hit(**hit_params(MaxAssignments=2, RequesterAnnotation=f"n/{i}"))["HIT"]["HITId"]
              for i in range(6)]
    crowd = crowd_class(srv.url, {f"n/{i}": "cat" for i in range(6)}, workers=5, seed=1)
    with caplog.at_level(logging.WARNING):
        crowd.start()
        try:
            wait_for(lambda: all(mturk.get_hit(HITId=h)["HIT"]["HITStatus"] == "Reviewable" for h in normal))
            # Said at once, while the crowd still runs: not at Ctrl-C.
            wait_for(lambda: len({r["hit_id"] for r in crowd.returned}) == 3, 10)
            logged = caplog.text
        finally:
            crowd.stop()  # nothing to raise: the crowd never failed
    for hit_id in normal:
        assert len(mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]) == 2
    for why, hit_id in undoable.items():
        hit = mturk.get_hit(HITId=hit_id)["HIT"]
        # Returned: still there for others, every slot open again.
        assert (hit["HITStatus"], hit["NumberOfAssignmentsAvailable"], hit["NumberOfAssignmentsPending"]) == \
            ("Assignable", 2, 0), why
        assert hit_id in logged
    reasons = {r["hit_id"]: r["reason"] for r in crowd.returned}
    assert "has no <form>" in reasons[undoable["no form"]]
    assert "nothing to answer" in reasons[undoable["crowd-form"]]
    assert "URLError" in reasons[undoable["unreachable"]] or "refused" in reasons[undoable["unreachable"]]
    assert len(crowd.returned) == 3  # each given back once, then passed over
    _, _, body = http("GET", srv.url + "/_stats")
    stats = json.loads(body)
    assert stats["returned"]["count"] == 3
    assert {r["hitId"] for r in stats["returned"]["recent"]} == set(undoable.values())
    assert all(r["reason"] for r in stats["returned"]["recent"])
    assert stats["assignments"]["Returned"] == 3


def test_a_worker_returns_a_hit_on_the_worker_pages(srv):
    mturk = client(srv.url)
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=1))["HIT"]["HITId"]
    status, _, body = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": "A1RETURNER"},
                           {"Accept": "application/json"})
    assignment_id = json.loads(body)["assignmentId"]
    assert mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Unassignable"
    status, _, body = http("POST", srv.url + "/worker/return", {"assignmentId": assignment_id, "workerId": "A2OTHER"},
                           {"Accept": "application/json"})
    assert status == 403 and json.loads(body)["error"] == "NotYourAssignment"
    status, _, body = http("POST", srv.url + "/worker/return", {"assignmentId": assignment_id, "workerId": "A1RETURNER"},
                           {"Accept": "application/json"})
    assert status == 200 and json.loads(body)["status"] == "Returned"
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsAvailable"] == 1
    # A returned assignment cannot be submitted, nor returned twice; the worker may take the HIT again.
    status, _, _ = http("POST", srv.url + "/mturk/externalSubmit", {"assignmentId": assignment_id, "label": "cat"})
    assert status == 410
    status, _, _ = http("POST", srv.url + "/worker/return", {"assignmentId": assignment_id, "workerId": "A1RETURNER"})
    assert status == 409
    status, _, _ = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": "A1RETURNER"},
                        {"Accept": "application/json"})
    assert status == 303


def test_serve_says_at_once_which_hit_its_crowd_returned(tmp_path):
    from test_marketplace_standalone import serve  # runs `annotate marketplace serve` in its own process

    with serve(tmp_path, "--crowd", "simulated", "--workers", "3") as url:
        mturk = client(url)
        bad = mturk.create_hit(**hit_params(MaxAssignments=1, Question=html_question(NO_FORM)))["HIT"]["HITId"]
        good = mturk.create_hit(**hit_params(MaxAssignments=1))["HIT"]["HITId"]
        output = tmp_path / f"serve-{url.rsplit(':', 1)[1]}.log"
        wait_for(lambda: bad in output.read_text() and mturk.get_hit(HITId=good)["HIT"]["HITStatus"] == "Reviewable")
        said = output.read_text()
        assert re.search(rf"returned.*{bad}|{bad}.*returned", said) and "has no <form>" in said
        _, _, body = http("GET", url + "/_stats")
        assert [r["hitId"] for r in json.loads(body)["returned"]["recent"]] == [bad]
        assert mturk.get_hit(HITId=bad)["HIT"]["NumberOfAssignmentsAvailable"] == 1
