"""NotifyWorkers, ListBonusPayments, UpdateHITTypeOfHIT, ListReviewPolicyResultsForHIT, HIT layouts and
ExternalQuestion framing: boto3 over HTTP against the embedded marketplace."""

from __future__ import annotations

import json
import re
import threading
import urllib.parse
from decimal import Decimal
from html import unescape
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from botocore.exceptions import ClientError
from click.testing import CliRunner
from conftest_marketplace import accept, client, external_question, hit_params, http, submit, work

from annotate.cli import cli
from annotate.fees import assignment_cost
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd

WORKER, OTHER, STRANGER = "AWORKERONE1234", "AWORKERTWO5678", "ANEVERSEEN0000"


def error_of(call, **kwargs) -> tuple[str, str | None, str]:
    with pytest.raises(ClientError) as caught:
        call(**kwargs)
    err = caught.value.response
    return err["Error"]["Code"], err.get("TurkErrorCode"), err["Error"]["Message"]


# -- NotifyWorkers ---------------------------------------------------------------------------

def test_notify_workers_reaches_reviewed_workers_and_reports_the_rest(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    approved = work(srv.url, hit_id, WORKER)
    rejected = work(srv.url, hit_id, OTHER)
    mturk.approve_assignment(AssignmentId=approved)
    mturk.reject_assignment(AssignmentId=rejected, RequesterFeedback="no")
    pending = work(srv.url, hit_id, "APENDING000001")  # submitted, not yet reviewed
    mturk.create_worker_block(WorkerId="ABLOCKED0000001", Reason="spam")

    got = mturk.notify_workers(Subject="Thanks <b>!", MessageText="More HITs tomorrow.\nSecond line",
                               WorkerIds=[WORKER, OTHER, WORKER, STRANGER, "APENDING000001", "ABLOCKED0000001"])
    failures = {f["WorkerId"]: f for f in got["NotifyWorkersFailureStatuses"]}
    assert set(failures) == {STRANGER, "APENDING000001", "ABLOCKED0000001"}
    assert all(f["NotifyWorkersFailureCode"] == "HardFailure" for f in failures.values())
    assert "approved or rejected" in failures[STRANGER]["NotifyWorkersFailureMessage"]
    assert "blocked" in failures["ABLOCKED0000001"]["NotifyWorkersFailureMessage"]
    assert pending

    status, _, body = http("GET", srv.url + f"/worker/messages?workerId={WORKER}&format=json")
    assert status == 200
    messages = json.loads(body)["messages"]
    assert [(m["subject"], m["message"]) for m in messages] == [("Thanks <b>!", "More HITs tomorrow.\nSecond line")]
    status, _, page = http("GET", srv.url + f"/worker/messages?workerId={WORKER}")
    assert status == 200 and "Thanks &lt;b&gt;!" in page and "<b>!" not in page
    assert json.loads(http("GET", srv.url + f"/worker/messages?workerId={STRANGER}&format=json")[2])["messages"] == []
    assert "workerId" in http("GET", srv.url + "/worker/messages")[2]  # asks for the worker id


@pytest.mark.parametrize("overrides, path", [
    ({"Subject": "x" * 201}, "Subject"),
    ({"MessageText": "x" * 4097}, "MessageText"),
    ({"Subject": "  "}, "Subject"),
    ({"WorkerIds": [f"AWORKER{i:05d}" for i in range(101)]}, "WorkerIds"),
    ({"WorkerIds": ["not-a-worker"]}, "WorkerIds.1"),
])
def test_notify_workers_limits(mturk, overrides, path):
    params = {"Subject": "s", "MessageText": "m", "WorkerIds": [WORKER], **overrides}
    code, _, message = error_of(mturk.notify_workers, **params)
    assert code == "ParameterValidationError" and f"'{path}'" in message


def test_notify_workers_at_the_limits_is_accepted(srv, mturk):
    got = mturk.notify_workers(Subject="x" * 200, MessageText="y" * 4096,
                               WorkerIds=[f"AWORKER{i:05d}" for i in range(100)])
    assert len(got["NotifyWorkersFailureStatuses"]) == 100


# -- ListBonusPayments -----------------------------------------------------------------------

def test_list_bonus_payments_by_hit_and_assignment_with_paging(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    other_hit = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    first, second = work(srv.url, hit_id, WORKER), work(srv.url, hit_id, OTHER)
    elsewhere = work(srv.url, other_hit, WORKER)
    for assignment_id in (first, second, elsewhere):
        mturk.approve_assignment(AssignmentId=assignment_id)
    mturk.send_bonus(WorkerId=WORKER, AssignmentId=first, BonusAmount="0.10", Reason="good")
    mturk.send_bonus(WorkerId=OTHER, AssignmentId=second, BonusAmount="1", Reason="great")
    mturk.send_bonus(WorkerId=WORKER, AssignmentId=first, BonusAmount="0.05", Reason="again")
    mturk.send_bonus(WorkerId=WORKER, AssignmentId=elsewhere, BonusAmount="0.50", Reason="other HIT")

    page = mturk.list_bonus_payments(HITId=hit_id, MaxResults=2)
    assert page["NumResults"] == 2 and "NextToken" in page
    rest = mturk.list_bonus_payments(HITId=hit_id, MaxResults=2, NextToken=page["NextToken"])
    payments = page["BonusPayments"] + rest["BonusPayments"]
    assert [(p["WorkerId"], p["AssignmentId"], p["BonusAmount"], p["Reason"]) for p in payments] == [
        (WORKER, first, "0.10", "good"), (OTHER, second, "1.00", "great"), (WORKER, first, "0.05", "again")]
    assert all(p["GrantTime"].year >= 2024 for p in payments)  # a timestamp botocore parsed

    only = mturk.list_bonus_payments(AssignmentId=first)["BonusPayments"]
    assert [p["BonusAmount"] for p in only] == ["0.10", "0.05"]
    assert [p["Reason"] for p in mturk.list_bonus_payments(HITId=other_hit)["BonusPayments"]] == ["other HIT"]
    paginated = [p for page in mturk.get_paginator("list_bonus_payments").paginate(HITId=hit_id,
                                                                                   PaginationConfig={"PageSize": 1})
                 for p in page["BonusPayments"]]
    assert len(paginated) == 3


def test_list_bonus_payments_errors(srv, mturk):
    assert error_of(mturk.list_bonus_payments)[1] == "AWS.MechanicalTurk.InvalidParameterValue"
    assert error_of(mturk.list_bonus_payments, HITId="3NOSUCHHIT")[1] == "AWS.MechanicalTurk.HITDoesNotExist"
    assert error_of(mturk.list_bonus_payments,
                    AssignmentId="3NOSUCHASSIGNMENT")[1] == "AWS.MechanicalTurk.AssignmentDoesNotExist"
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    assert mturk.list_bonus_payments(HITId=hit_id)["BonusPayments"] == []


# -- UpdateHITTypeOfHIT ----------------------------------------------------------------------

def hit_type(mturk, **overrides) -> str:
    params = {"Title": "Other title", "Description": "Other description", "Reward": "0.25",
              "AssignmentDurationInSeconds": 300, "AutoApprovalDelayInSeconds": 3600, "Keywords": "new"}
    params.update(overrides)
    return mturk.create_hit_type(**params)["HITTypeId"]


def test_update_hit_type_of_hit_moves_properties_and_money(srv, mturk):
    start = Decimal(mturk.get_account_balance()["AvailableBalance"])
    hit = mturk.create_hit(**hit_params(MaxAssignments=3))["HIT"]
    paid = work(srv.url, hit["HITId"], WORKER)
    mturk.approve_assignment(AssignmentId=paid)
    new_type = hit_type(mturk)

    mturk.update_hit_type_of_hit(HITId=hit["HITId"], HITTypeId=new_type)
    got = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert (got["HITTypeId"], got["HITGroupId"], got["Title"], got["Description"], got["Reward"], got["Keywords"],
            got["AssignmentDurationInSeconds"], got["AutoApprovalDelayInSeconds"]) == (
        new_type, new_type, "Other title", "Other description", "0.25", "new", 300, 3600)
    # The approved slot keeps the cost it was paid at; the two others move to the new type's cost.
    old_unit, new_unit = assignment_cost(Decimal("0.05"), 3), assignment_cost(Decimal("0.25"), 3)
    assert Decimal(mturk.get_account_balance()["AvailableBalance"]) == start - old_unit - 2 * new_unit
    # One more worker under the new type; deleting the HIT refunds the slot never used, at the new cost.
    second = work(srv.url, hit["HITId"], OTHER)
    mturk.approve_assignment(AssignmentId=second)
    mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=0)
    mturk.delete_hit(HITId=hit["HITId"])
    assert Decimal(mturk.get_account_balance()["AvailableBalance"]) == start - old_unit - new_unit


def test_update_hit_type_of_hit_to_a_cheaper_type_refunds(srv, mturk):
    hit = mturk.create_hit(**hit_params(MaxAssignments=2, Reward="1.00"))["HIT"]
    before = Decimal(mturk.get_account_balance()["AvailableBalance"])
    mturk.update_hit_type_of_hit(HITId=hit["HITId"], HITTypeId=hit_type(mturk, Reward="0.10"))
    after = Decimal(mturk.get_account_balance()["AvailableBalance"])
    assert after - before == 2 * (assignment_cost(Decimal("1.00"), 2) - assignment_cost(Decimal("0.10"), 2))
    # The same type again changes nothing.
    mturk.update_hit_type_of_hit(HITId=hit["HITId"], HITTypeId=mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITTypeId"])
    assert Decimal(mturk.get_account_balance()["AvailableBalance"]) == after


def test_update_hit_type_of_hit_errors(srv, mturk):
    hit = mturk.create_hit(**hit_params())["HIT"]
    assert error_of(mturk.update_hit_type_of_hit, HITId="3NOSUCHHIT",
                    HITTypeId=hit["HITTypeId"])[1] == "AWS.MechanicalTurk.HITDoesNotExist"
    assert error_of(mturk.update_hit_type_of_hit, HITId=hit["HITId"],
                    HITTypeId="3NOSUCHTYPE")[1] == "AWS.MechanicalTurk.HITTypeDoesNotExist"
    dear = hit_type(mturk, Reward="9999.00")
    before = mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert error_of(mturk.update_hit_type_of_hit, HITId=hit["HITId"],
                    HITTypeId=dear)[1] == "AWS.MechanicalTurk.InsufficientFunds"
    assert mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITTypeId"] == before["HITTypeId"]  # nothing half-done
    mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=0)
    mturk.delete_hit(HITId=hit["HITId"])
    assert error_of(mturk.update_hit_type_of_hit, HITId=hit["HITId"],
                    HITTypeId=hit_type(mturk))[1] == "AWS.MechanicalTurk.InvalidHITState"


# -- Review Policies ---------------------------------------------------------------------------

def test_review_policies_are_refused_and_results_are_empty(srv, mturk):
    policy = {"PolicyName": "ScoreMyKnownAnswers/2011-09-01",
              "Parameters": [{"Key": "AnswerKey", "MapEntries": [{"Key": "q1", "Values": ["a"]}]}]}
    code, turk, message = error_of(mturk.create_hit, **hit_params(AssignmentReviewPolicy=policy))
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.InvalidParameterValue")
    assert "Review Policies are not supported" in message and "ScoreMyKnownAnswers" in message
    type_id = hit_type(mturk)
    assert error_of(mturk.create_hit_with_hit_type, HITTypeId=type_id, LifetimeInSeconds=60,
                    Question=hit_params()["Question"],
                    HITReviewPolicy={"PolicyName": "SimplePlurality/2011-09-01"})[1] == \
        "AWS.MechanicalTurk.InvalidParameterValue"
    assert mturk.list_hits()["NumResults"] == 0

    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    got = mturk.list_review_policy_results_for_hit(HITId=hit_id, PolicyLevels=["Assignment", "HIT"],
                                                   RetrieveActions=True, RetrieveResults=True)
    got.pop("ResponseMetadata")
    assert got == {"HITId": hit_id}
    assert error_of(mturk.list_review_policy_results_for_hit,
                    HITId="3NOSUCHHIT")[1] == "AWS.MechanicalTurk.HITDoesNotExist"


# -- HIT layouts -------------------------------------------------------------------------------

LAYOUT = """<!DOCTYPE html><html><body>
<form method="post" action="/mturk/externalSubmit"><input type="hidden" name="assignmentId" value="">
<p>Is ${animal} in <img src="${image_url}">?</p>
<label><input type="radio" name="answer" value="yes" checked> yes</label>
<label><input type="radio" name="answer" value="no"> no ${animal}</label>
<input type="submit"></form></body></html>"""


def test_hit_layout_parameters_are_substituted(srv, mturk):
    srv.register_layout("3LAYOUTANIMAL", LAYOUT)
    params = hit_params(HITLayoutId="3LAYOUTANIMAL", HITLayoutParameters=[
        {"Name": "animal", "Value": "a cat"}, {"Name": "image_url", "Value": "https://example.com/c.png?a=1&b=2"}])
    del params["Question"]
    hit = mturk.create_hit(**params)["HIT"]
    assert hit["HITLayoutId"] == "3LAYOUTANIMAL"
    question = mturk.get_hit(HITId=hit["HITId"])["HIT"]["Question"]
    assert question.startswith("<HTMLQuestion") and "Is a cat in" in question and "no a cat" in question
    assert 'src="https://example.com/c.png?a=1&b=2"' in question and "${" not in question
    # The worker sees the filled-in page and can submit it.
    assignment_id = accept(srv.url, hit["HITId"], WORKER)
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit['HITId']}")
    assert status == 200 and "Is a cat in" in page
    assert submit(srv.url, assignment_id, [("answer", "yes")]) == 200
    # CreateHITWithHITType takes layouts too.
    type_id = mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITTypeId"]
    again = mturk.create_hit_with_hit_type(HITTypeId=type_id, LifetimeInSeconds=60, HITLayoutId="3LAYOUTANIMAL",
                                           HITLayoutParameters=[{"Name": "animal", "Value": "a dog"},
                                                                {"Name": "image_url", "Value": "d.png"}])["HIT"]
    assert "Is a dog in" in again["Question"] and again["HITLayoutId"] == "3LAYOUTANIMAL"
    assert "HITLayoutId" not in mturk.create_hit(**hit_params())["HIT"]


def test_hit_layout_errors(srv, mturk):
    srv.register_layout("3LAYOUTANIMAL", LAYOUT)
    base = hit_params()
    question = base.pop("Question")
    ok = [{"Name": "animal", "Value": "a cat"}, {"Name": "image_url", "Value": "x"}]
    cases = [
        ({"HITLayoutId": "3NOSUCHLAYOUT", "HITLayoutParameters": ok}, "AWS.MechanicalTurk.HITLayoutDoesNotExist",
         "3NOSUCHLAYOUT"),
        ({"HITLayoutId": "3LAYOUTANIMAL", "HITLayoutParameters": ok[:1]}, "AWS.MechanicalTurk.InvalidParameterValue",
         "image_url"),
        ({"HITLayoutId": "3LAYOUTANIMAL", "HITLayoutParameters": ok + [{"Name": "colour", "Value": "red"}]},
         "AWS.MechanicalTurk.InvalidParameterValue", "colour"),
        ({"HITLayoutId": "3LAYOUTANIMAL", "HITLayoutParameters": ok, "Question": question},
         "AWS.MechanicalTurk.InvalidParameterValue", "Either a Question parameter or a HITLayoutId"),
        ({}, "AWS.MechanicalTurk.InvalidParameterValue", "Either a Question parameter or a HITLayoutId"),
    ]
    for extra, turk_code, named in cases:
        code, turk, message = error_of(mturk.create_hit, **base, **extra)
        assert (code, turk) == ("RequestError", turk_code) and named in message, message
    assert mturk.list_hits()["NumResults"] == 0
    with pytest.raises(ValueError, match="uppercase"):
        srv.register_layout("lower-case", LAYOUT)


def test_serve_registers_layouts_from_files(tmp_path):
    layout = tmp_path / "animal.html"
    layout.write_text(LAYOUT, encoding="utf-8")
    runner = CliRunner()
    bad = runner.invoke(cli, ["--home", str(tmp_path / "home"), "marketplace", "serve", "--port", "0",
                              "--layout", "3LAYOUT"])
    assert bad.exit_code == 2 and "ID=FILE" in bad.output
    bad = runner.invoke(cli, ["--home", str(tmp_path / "home"), "marketplace", "serve", "--port", "0",
                              "--layout", f"bad-id={layout}"])
    assert bad.exit_code == 2 and "uppercase" in bad.output and str(layout) in bad.output
    missing = runner.invoke(cli, ["--home", str(tmp_path / "home"), "marketplace", "serve", "--port", "0",
                                  "--layout", f"3LAYOUT={tmp_path / 'nope.html'}"])
    assert missing.exit_code == 2 and "nope.html" in missing.output
    bad = runner.invoke(cli, ["--home", str(tmp_path / "home"), "marketplace", "serve", "--port", "0",
                              "--notification-endpoint", "localhost:5000"])
    assert bad.exit_code == 2 and "--notification-endpoint" in bad.output and "http(s)" in bad.output
    # The library form the serve flag uses: the file's layout, shared through the database.
    with MarketplaceServer(tmp_path / "m.db", hit_layouts={"3LAYOUTANIMAL": layout}) as server:
        pass
    with MarketplaceServer(tmp_path / "m.db") as server:
        params = hit_params(HITLayoutId="3LAYOUTANIMAL", HITLayoutParameters=[
            {"Name": "animal", "Value": "an owl"}, {"Name": "image_url", "Value": "o.png"}])
        del params["Question"]
        assert "an owl" in client(server.url).create_hit(**params)["HIT"]["Question"]


# -- ExternalQuestion --------------------------------------------------------------------------

EXTERNAL_PAGE = """<!DOCTYPE html><html><body>
<form id="mturk_form" method="post" action="{submit_to}/mturk/externalSubmit">
<input type="hidden" name="assignmentId" value="{assignment_id}">
<input type="text" name="label" value="seen {hit_id}"><input type="submit"></form></body></html>"""


class _ExternalSite(BaseHTTPRequestHandler):
    """The requester's own site: echoes the query MTurk adds into a form aimed at turkSubmitTo."""
    seen: list[dict[str, str]] = []

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(self.path).query))
        type(self).seen.append(query)
        body = EXTERNAL_PAGE.format(submit_to=query.get("turkSubmitTo", ""),
                                    assignment_id=query.get("assignmentId", ""), hit_id=query.get("hitId", "")).encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def external_site():
    _ExternalSite.seen = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _ExternalSite)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def frame_of(page: str) -> tuple[str, str]:
    match = re.search(r'<iframe id="ExternalQuestionIFrame" src="([^"]+)" style="([^"]+)"', page)
    assert match, page
    return unescape(match.group(1)), match.group(2)


def test_external_question_is_framed_with_mturks_parameters(srv, mturk, external_site):
    url = external_site + "/task?x=1"
    question = external_question(url).replace("<FrameHeight>400</FrameHeight>", "<FrameHeight>750</FrameHeight>")
    hit_id = mturk.create_hit(**hit_params(Question=question))["HIT"]["HITId"]

    status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}")
    assert status == 200
    preview_src = re.search(r'<iframe[^>]* src="([^"]+)"[^>]* style="width:100%;height:750px"', page)
    assert preview_src, page
    target = urllib.parse.urlsplit(unescape(preview_src.group(1)))
    assert dict(urllib.parse.parse_qsl(target.query)) == {"x": "1", "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE",
                                                           "hitId": hit_id}

    assignment_id = accept(srv.url, hit_id, WORKER)
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit_id}"
                                            f"&workerId={WORKER}&turkSubmitTo={urllib.parse.quote(srv.url)}")
    assert status == 200 and "Label one picture" in page
    src, style = frame_of(page)
    assert "height:750px" in style
    assert src.startswith(external_site + "/task?")
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(src).query)) == {
        "x": "1", "assignmentId": assignment_id, "hitId": hit_id, "turkSubmitTo": srv.url, "workerId": WORKER}

    # The framed page (another origin) posts to turkSubmitTo/mturk/externalSubmit.
    status, _, framed = http("GET", src)
    action = re.search(r'action="([^"]+)"', framed).group(1)
    assert action == srv.url + "/mturk/externalSubmit"
    status, _, thanks = http("POST", action, [("assignmentId", assignment_id), ("label", "cat")])
    assert status == 200 and "Thank you" in thanks
    answer = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
    assert "<QuestionIdentifier>label</QuestionIdentifier><FreeText>cat</FreeText>" in answer


def test_external_question_frame_height_zero_fills_the_window(srv, mturk, external_site):
    question = external_question(external_site + "/t").replace("<FrameHeight>400", "<FrameHeight>0")
    hit_id = mturk.create_hit(**hit_params(Question=question))["HIT"]["HITId"]
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId={hit_id}")
    src, style = frame_of(page)
    assert status == 200 and "vh" in style
    assert dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(src).query)) == {
        "assignmentId": "ASSIGNMENT_ID_NOT_AVAILABLE", "hitId": hit_id}


def test_simulated_crowd_works_a_framed_external_question(srv, mturk, external_site):
    hit_id = mturk.create_hit(**hit_params(Question=external_question(external_site + "/t")))["HIT"]["HITId"]
    crowd = SimulatedCrowd(srv.url, {}, workers=1, spammer_share=0.0, seed=1)
    assert crowd.work() == 1
    assignment = mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"][0]
    assert f"seen {hit_id}" in assignment["Answer"]


def test_returned_assignment_frees_its_slot(srv, mturk, external_site):
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=1,
                                           Question=external_question(external_site + "/t")))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsAvailable"] == 0
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit_id}")
    assert 'action="/worker/return"' in page
    status, _, body = http("POST", srv.url + "/worker/return", {"assignmentId": assignment_id},
                           {"Accept": "application/json"})
    assert status == 200 and json.loads(body)["status"] == "Returned"
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsAvailable"] == 1
    assert http("POST", srv.url + "/worker/return", {"assignmentId": assignment_id})[0] == 409
    assert submit(srv.url, assignment_id) == 410  # a returned assignment cannot be submitted
    accept(srv.url, hit_id, OTHER)
