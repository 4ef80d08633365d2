"""The marketplace contract, through boto3 over HTTP.

Every test runs against the embedded marketplace; with ANNOTATE_SANDBOX_TESTS=1 and AWS
credentials the same tests run against the real MTurk sandbox, so the emulator's fidelity is a
checked fact. Tests that need the worker side or time travel are local-only.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import boto3
import pytest
from botocore.exceptions import ClientError
from conftest_marketplace import FakeClock, accept, client, hit_params, html_question, http, signed, submit, work

from annotate.fees import assignment_cost
from annotate.marketplace import MarketplaceServer

SANDBOX = "https://mturk-requester-sandbox.us-east-1.amazonaws.com"
WORKER = "A1B2C3D4E5F6G7H"
HIT_ID_IN_MESSAGE = re.compile(r'HIT with ID "([A-Z0-9]+)"')


@dataclass
class Target:
    name: str
    mturk: object
    server: MarketplaceServer | None = None
    clock: FakeClock | None = None
    created: list[str] = field(default_factory=list)

    def local_only(self, why: str) -> None:
        if self.server is None:
            pytest.skip(f"local-only: {why}")

    def create_hit(self, **overrides) -> dict:
        hit = self.mturk.create_hit(**hit_params(**overrides))["HIT"]
        self.created.append(hit["HITId"])
        return hit

    def balance(self) -> Decimal:
        return Decimal(self.mturk.get_account_balance()["AvailableBalance"])


def sandbox_skip_reason() -> str | None:
    if not os.environ.get("ANNOTATE_SANDBOX_TESTS"):
        return "set ANNOTATE_SANDBOX_TESTS=1 (and AWS credentials) to run the contract against the MTurk sandbox"
    if boto3.Session().get_credentials() is None:
        return "no AWS credentials: cannot reach the MTurk sandbox"
    return None


@pytest.fixture(params=["local", pytest.param("sandbox", marks=pytest.mark.aws)])
def mt(request, tmp_path):
    if request.param == "sandbox":
        reason = sandbox_skip_reason()
        if reason:
            pytest.skip(reason)
        target = Target("sandbox", boto3.client("mturk", region_name="us-east-1", endpoint_url=SANDBOX))
        yield target
        for hit_id in target.created:
            # Best-effort tidying of the sandbox: a HIT that cannot be deleted yet simply expires.
            with contextlib.suppress(ClientError):
                target.mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=datetime(2015, 1, 1))
                target.mturk.delete_hit(HITId=hit_id)
        return
    clock = FakeClock()
    with MarketplaceServer(tmp_path / "marketplace.db", clock=clock) as srv:
        yield Target("local", client(srv.url, retries=False), srv, clock)


def error_of(excinfo) -> tuple[str, str | None, str]:
    response = excinfo.value.response
    return response["Error"]["Code"], response.get("TurkErrorCode"), response["Error"]["Message"]


# -- account, HIT types, HITs -----------------------------------------------------------------

def test_balance_is_money_string(mt):
    balance = mt.mturk.get_account_balance()["AvailableBalance"]
    assert re.fullmatch(r"\d+\.\d\d", balance)
    if mt.server is not None:
        assert balance == "10000.00"  # like the sandbox


def test_create_hit_type_reuses_id_for_identical_properties(mt):
    props = dict(Title="Same type", Description="d", Reward="0.10", AssignmentDurationInSeconds=300,
                 AutoApprovalDelayInSeconds=3600, Keywords="a, b")
    first = mt.mturk.create_hit_type(**props)["HITTypeId"]
    assert re.fullmatch(r"[A-Z0-9]+", first)
    assert mt.mturk.create_hit_type(**props)["HITTypeId"] == first
    assert mt.mturk.create_hit_type(**{**props, "Reward": "0.11"})["HITTypeId"] != first


def test_create_hit_shape(mt):
    hit = mt.create_hit(Reward="0.5", MaxAssignments=3, RequesterAnnotation="batch/item-1")
    assert re.fullmatch(r"[A-Z0-9]{30}", hit["HITId"])
    assert hit["HITStatus"] == "Assignable"
    assert hit["HITReviewStatus"] == "NotReviewed"
    assert hit["Reward"] == "0.50"
    assert hit["MaxAssignments"] == 3
    assert (hit["NumberOfAssignmentsAvailable"], hit["NumberOfAssignmentsPending"],
            hit["NumberOfAssignmentsCompleted"]) == (3, 0, 0)
    assert hit["RequesterAnnotation"] == "batch/item-1"
    assert isinstance(hit["CreationTime"], datetime) and isinstance(hit["Expiration"], datetime)
    assert timedelta(minutes=59) < hit["Expiration"] - hit["CreationTime"] <= timedelta(hours=1, seconds=1)
    assert hit["AssignmentDurationInSeconds"] == 600 and hit["AutoApprovalDelayInSeconds"] == 86400
    got = mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert got["HITId"] == hit["HITId"] and got["Question"] == hit["Question"]


def test_create_hit_with_hit_type(mt):
    type_id = mt.mturk.create_hit_type(Title="Typed", Description="d", Reward="0.02",
                                       AssignmentDurationInSeconds=120)["HITTypeId"]
    hit = mt.mturk.create_hit_with_hit_type(HITTypeId=type_id, MaxAssignments=2, LifetimeInSeconds=600,
                                            Question=html_question())["HIT"]
    mt.created.append(hit["HITId"])
    assert hit["HITTypeId"] == type_id and hit["Title"] == "Typed" and hit["Reward"] == "0.02"


def test_unique_request_token_repeat_names_the_existing_hit(mt):
    token = f"contract-{time.time_ns()}"
    hit = mt.create_hit(UniqueRequestToken=token)
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(UniqueRequestToken=token)
    code, turk, message = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.HitAlreadyExists")
    assert HIT_ID_IN_MESSAGE.search(message).group(1) == hit["HITId"]


def test_unique_request_token_expires_after_a_day(mt):
    mt.local_only("needs time travel")
    first = mt.create_hit(UniqueRequestToken="day-old")
    mt.clock.advance(24 * 3600 + 1)
    second = mt.create_hit(UniqueRequestToken="day-old")
    assert second["HITId"] != first["HITId"]


def test_unique_request_token_longer_than_64_is_invalid(mt):
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(UniqueRequestToken="x" * 65)
    assert error_of(excinfo)[0] == "ParameterValidationError"


@pytest.mark.parametrize("reward", ["0.051", "-1", "1,00", "$1", "abc"])
def test_bad_reward_is_a_validation_error(mt, reward):
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(Reward=reward)
    assert error_of(excinfo)[0] == "ParameterValidationError"


@pytest.mark.parametrize("name,value", [
    ("AssignmentDurationInSeconds", 29), ("AssignmentDurationInSeconds", 31536001),
    ("LifetimeInSeconds", 29), ("LifetimeInSeconds", 31536001),
    ("AutoApprovalDelayInSeconds", -1), ("AutoApprovalDelayInSeconds", 2592001),
    ("MaxAssignments", 0), ("MaxAssignments", 1000001),
])
def test_out_of_range_parameters(mt, name, value):
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(**{name: value})
    assert error_of(excinfo)[0] == "ParameterValidationError"


@pytest.mark.parametrize("name,value", [("AssignmentDurationInSeconds", 30), ("LifetimeInSeconds", 31536000),
                                        ("AutoApprovalDelayInSeconds", 0), ("MaxAssignments", 1)])
def test_range_edges_are_accepted(mt, name, value):
    assert mt.create_hit(**{name: value})["HITStatus"] == "Assignable"


def test_max_results_over_100_is_invalid(mt):
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.list_hits(MaxResults=101)
    assert error_of(excinfo)[0] == "ParameterValidationError"


@pytest.mark.parametrize("question", [
    "<HTMLQuestion><unclosed>",
    "not xml at all",
    '<HTMLQuestion xmlns="http://example.com/wrong"><HTMLContent>x</HTMLContent><FrameHeight>1</FrameHeight>'
    "</HTMLQuestion>",
])
def test_bad_question_xml(mt, question):
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(Question=question)
    code, turk, message = error_of(excinfo)
    assert code == "RequestError"
    assert turk == "AWS.MechanicalTurk.XMLParseError"


def test_question_larger_than_64k_is_refused(mt):
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(Question=html_question("<p>" + "x" * 65536 + "</p>"))
    assert error_of(excinfo)[0] == "RequestError"


def test_unknown_hit(mt):
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.get_hit(HITId="3" + "Z" * 29)
    code, turk, _ = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.HITDoesNotExist")


def test_unknown_assignment(mt):
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.approve_assignment(AssignmentId="3" + "Z" * 29)
    code, turk, _ = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.AssignmentDoesNotExist")


# -- paging -----------------------------------------------------------------------------------

def test_list_hits_pages_with_next_token(mt):
    mine = {mt.create_hit(RequesterAnnotation=f"page/{i}")["HITId"] for i in range(5)}
    seen: list[str] = []
    token = None
    while True:
        page = mt.mturk.list_hits(MaxResults=2, **({"NextToken": token} if token else {}))
        assert page["NumResults"] == len(page["HITs"]) <= 2
        seen += [h["HITId"] for h in page["HITs"]]
        token = page.get("NextToken")
        if not token:
            break
    assert len(seen) == len(set(seen))
    assert mine <= set(seen)


def test_list_hits_default_page_and_paginator(mt):
    mt.local_only("the sandbox account may hold any number of HITs")
    for i in range(12):
        mt.create_hit(RequesterAnnotation=f"p/{i}")
    assert len(mt.mturk.list_hits()["HITs"]) == 10  # the default MaxResults
    pages = list(mt.mturk.get_paginator("list_hits").paginate(PaginationConfig={"PageSize": 5}))
    # As on MTurk, the last page with results still carries a NextToken; the page after it is empty.
    assert [len(p["HITs"]) for p in pages] == [5, 5, 2, 0]
    assert all("NextToken" in p for p in pages[:-1]) and "NextToken" not in pages[-1]


def test_bad_next_token(mt):
    mt.local_only("the sandbox's answer to a forged token is not part of the contract")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.list_hits(NextToken="forged")
    assert error_of(excinfo)[0] == "ParameterValidationError"


# -- worker blocks ----------------------------------------------------------------------------

def test_worker_blocks(mt):
    worker = "A" + str(time.time_ns())[-12:]
    mt.mturk.create_worker_block(WorkerId=worker, Reason="testing blocks")
    listed = {}
    for page in mt.mturk.get_paginator("list_worker_blocks").paginate(PaginationConfig={"PageSize": 2}):
        listed.update({b["WorkerId"]: b["Reason"] for b in page["WorkerBlocks"]})
    assert listed[worker] == "testing blocks"
    mt.mturk.delete_worker_block(WorkerId=worker, Reason="done")
    after = [b["WorkerId"] for p in mt.mturk.get_paginator("list_worker_blocks").paginate()
             for b in p["WorkerBlocks"]]
    assert worker not in after


def test_blocked_worker_cannot_accept(mt):
    mt.local_only("needs the worker side")
    hit = mt.create_hit()
    mt.mturk.create_worker_block(WorkerId=WORKER, Reason="spam")
    status, _, body = http("POST", mt.server.url + "/worker/accept", {"hitId": hit["HITId"], "workerId": WORKER},
                           {"Accept": "application/json"})
    assert status == 403 and json.loads(body)["error"] == "WorkerBlocked"
    mt.mturk.delete_worker_block(WorkerId=WORKER, Reason="forgiven")
    assert accept(mt.server.url, hit["HITId"], WORKER)


# -- expiry and deletion ----------------------------------------------------------------------

def test_expire_then_delete_unused_hit(mt):
    hit = mt.create_hit()
    mt.mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1, tzinfo=timezone.utc))
    got = mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert got["Expiration"] <= datetime.now(timezone.utc) + timedelta(seconds=5)
    mt.mturk.delete_hit(HITId=hit["HITId"])
    if mt.server is not None:
        assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Disposed"
        assert hit["HITId"] not in [h["HITId"] for h in mt.mturk.list_hits(MaxResults=100)["HITs"]]


def test_delete_assignable_hit_is_refused(mt):
    hit = mt.create_hit()
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.delete_hit(HITId=hit["HITId"])
    assert error_of(excinfo)[0] == "RequestError"
    if mt.server is not None:
        assert error_of(excinfo)[1] == "AWS.MechanicalTurk.InvalidHITState"


def test_expired_hit_can_be_revived(mt):
    mt.local_only("needs the worker side")
    hit = mt.create_hit(MaxAssignments=2)
    mt.mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1))
    status, _, body = http("POST", mt.server.url + "/worker/accept", {"hitId": hit["HITId"], "workerId": WORKER},
                           {"Accept": "application/json"})
    assert status == 410
    mt.mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime.now(timezone.utc) + timedelta(hours=1))
    assert accept(mt.server.url, hit["HITId"], WORKER)


# -- additional assignments -------------------------------------------------------------------

def test_extending_below_ten_to_ten_or_more_is_refused(mt):
    hit = mt.create_hit(MaxAssignments=5)
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=5)
    code, turk, _ = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")
    mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=4)
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["MaxAssignments"] == 9


def test_extension_token_is_not_applied_twice(mt):
    hit = mt.create_hit(MaxAssignments=2)
    token = f"extend-{time.time_ns()}"
    mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=1,
                                                   UniqueRequestToken=token)
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=1,
                                                       UniqueRequestToken=token)
    assert error_of(excinfo)[0] == "RequestError"
    if mt.server is not None:
        assert error_of(excinfo)[1] == "AWS.MechanicalTurk.UniqueRequestTokenRequestAlreadyProcessed"
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["MaxAssignments"] == 3


# -- local-only: fees, lifecycle, time --------------------------------------------------------

def test_fees_are_debited(mt):
    mt.local_only("the sandbox balance never moves")
    start = mt.balance()
    mt.create_hit(Reward="0.05", MaxAssignments=3)  # 20%, but at least $0.01
    assert start - mt.balance() == 3 * Decimal("0.06")
    start = mt.balance()
    hit = mt.create_hit(Reward="0.50", MaxAssignments=10)  # 40% from 10 assignments
    assert start - mt.balance() == 10 * Decimal("0.70") == 10 * assignment_cost(Decimal("0.50"), 10)
    start = mt.balance()
    mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=2)
    assert start - mt.balance() == 2 * Decimal("0.70")


def test_insufficient_funds(mt):
    mt.local_only("the sandbox has endless play money")
    with pytest.raises(ClientError) as excinfo:
        mt.create_hit(Reward="5000.00", MaxAssignments=2)
    code, turk, _ = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.InsufficientFunds")
    assert mt.balance() == Decimal("10000.00")  # nothing half-done


def test_full_lifecycle(mt):
    mt.local_only("needs the worker side")
    url = mt.server.url
    start = mt.balance()
    hit = mt.create_hit(MaxAssignments=3, Reward="0.10")
    hit_id = hit["HITId"]
    ids = [accept(url, hit_id, f"AWORKER{i}") for i in range(3)]
    got = mt.mturk.get_hit(HITId=hit_id)["HIT"]
    assert got["HITStatus"] == "Unassignable"
    assert (got["NumberOfAssignmentsPending"], got["NumberOfAssignmentsAvailable"]) == (3, 0)
    assert mt.mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"] == []  # nothing submitted yet
    for assignment_id in ids:
        assert submit(url, assignment_id) == 200
    got = mt.mturk.get_hit(HITId=hit_id)["HIT"]
    assert got["HITStatus"] == "Reviewable" and got["NumberOfAssignmentsPending"] == 0
    assert hit_id in [h["HITId"] for h in mt.mturk.list_reviewable_hits()["HITs"]]
    assert hit_id in [h["HITId"] for h in mt.mturk.list_reviewable_hits(HITTypeId=hit["HITTypeId"])["HITs"]]

    mt.mturk.update_hit_review_status(HITId=hit_id, Revert=False)
    assert mt.mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewing"
    assert [h["HITId"] for h in mt.mturk.list_reviewable_hits(Status="Reviewing")["HITs"]] == [hit_id]
    assert hit_id not in [h["HITId"] for h in mt.mturk.list_reviewable_hits()["HITs"]]
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.update_hit_review_status(HITId=hit_id, Revert=False)
    assert error_of(excinfo)[1] == "AWS.MechanicalTurk.InvalidHITState"
    mt.mturk.update_hit_review_status(HITId=hit_id, Revert=True)
    assert mt.mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Reviewable"

    with pytest.raises(ClientError) as excinfo:
        mt.mturk.delete_hit(HITId=hit_id)  # submitted assignments not yet reviewed
    assert error_of(excinfo)[1] == "AWS.MechanicalTurk.InvalidHITState"

    listed = mt.mturk.list_assignments_for_hit(HITId=hit_id, AssignmentStatuses=["Submitted"])["Assignments"]
    assert sorted(a["AssignmentId"] for a in listed) == sorted(ids)
    assert all(a["AssignmentStatus"] == "Submitted" and "<FreeText>cat</FreeText>" in a["Answer"] for a in listed)
    first, second, third = ids
    mt.mturk.approve_assignment(AssignmentId=first, RequesterFeedback="thanks")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.approve_assignment(AssignmentId=first)
    code, turk, message = error_of(excinfo)
    assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.InvalidAssignmentState")
    assert "Submitted" in message
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.reject_assignment(AssignmentId=first, RequesterFeedback="no")
    assert error_of(excinfo)[1] == "AWS.MechanicalTurk.InvalidAssignmentState"

    mt.mturk.reject_assignment(AssignmentId=second, RequesterFeedback="wrong")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.approve_assignment(AssignmentId=second)
    assert error_of(excinfo)[1] == "AWS.MechanicalTurk.InvalidAssignmentState"
    mt.mturk.approve_assignment(AssignmentId=second, OverrideRejection=True)
    mt.mturk.reject_assignment(AssignmentId=third, RequesterFeedback="wrong")

    got = mt.mturk.get_assignment(AssignmentId=first)
    assert got["Assignment"]["AssignmentStatus"] == "Approved" and got["Assignment"]["RequesterFeedback"] == "thanks"
    assert got["HIT"]["HITId"] == hit_id and got["HIT"]["NumberOfAssignmentsCompleted"] == 3
    statuses = {a["AssignmentId"]: a["AssignmentStatus"] for a in
                mt.mturk.list_assignments_for_hit(HITId=hit_id, AssignmentStatuses=["Approved", "Rejected"])[
                    "Assignments"]}
    assert statuses == {first: "Approved", second: "Approved", third: "Rejected"}

    mt.mturk.delete_hit(HITId=hit_id)
    assert mt.mturk.get_hit(HITId=hit_id)["HIT"]["HITStatus"] == "Disposed"
    # Two approved assignments paid out; the rejected slot is refunded at deletion.
    assert start - mt.balance() == 2 * assignment_cost(Decimal("0.10"), 3)


def test_additional_assignments_reopen_a_reviewable_hit(mt):
    mt.local_only("needs the worker side")
    hit = mt.create_hit(MaxAssignments=1)
    work(mt.server.url, hit["HITId"], WORKER)
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"
    mt.mturk.update_hit_review_status(HITId=hit["HITId"])
    mt.mturk.create_additional_assignments_for_hit(HITId=hit["HITId"], NumberOfAdditionalAssignments=1)
    got = mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"], got["MaxAssignments"]) == ("Assignable", 1, 2)


def test_auto_approval(mt):
    mt.local_only("needs time travel")
    hit = mt.create_hit(AutoApprovalDelayInSeconds=3600)
    assignment_id = work(mt.server.url, hit["HITId"], WORKER)
    got = mt.mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]
    assert got["AssignmentStatus"] == "Submitted"
    assert got["AutoApprovalTime"] - got["SubmitTime"] == timedelta(seconds=3600)
    mt.clock.advance(3601)
    got = mt.mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]
    assert got["AssignmentStatus"] == "Approved" and got["ApprovalTime"] == got["AutoApprovalTime"]


def test_abandoned_assignment_frees_its_slot(mt):
    mt.local_only("needs time travel")
    hit = mt.create_hit(MaxAssignments=1, AssignmentDurationInSeconds=60)
    late = accept(mt.server.url, hit["HITId"], WORKER)
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Unassignable"
    mt.clock.advance(61)
    got = mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]
    assert (got["HITStatus"], got["NumberOfAssignmentsAvailable"], got["NumberOfAssignmentsPending"]) == \
        ("Assignable", 1, 0)
    assert submit(mt.server.url, late) == 410
    work(mt.server.url, hit["HITId"], "AOTHERWORKER1")
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"


def test_expiry_with_submissions_makes_hit_reviewable(mt):
    mt.local_only("needs the worker side")
    hit = mt.create_hit(MaxAssignments=3)
    work(mt.server.url, hit["HITId"], WORKER)
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Assignable"
    mt.mturk.update_expiration_for_hit(HITId=hit["HITId"], ExpireAt=datetime(2015, 1, 1))
    assert mt.mturk.get_hit(HITId=hit["HITId"])["HIT"]["HITStatus"] == "Reviewable"


def test_natural_expiry(mt):
    mt.local_only("needs time travel")
    hit = mt.create_hit(MaxAssignments=2, LifetimeInSeconds=60)
    work(mt.server.url, hit["HITId"], WORKER)
    mt.clock.advance(61)
    assert [h["HITId"] for h in mt.mturk.list_reviewable_hits()["HITs"]] == [hit["HITId"]]


def test_send_bonus(mt):
    mt.local_only("needs the worker side")
    hit = mt.create_hit(MaxAssignments=1)
    assignment_id = work(mt.server.url, hit["HITId"], WORKER)
    start = mt.balance()
    mt.mturk.send_bonus(WorkerId=WORKER, AssignmentId=assignment_id, BonusAmount="1.00", Reason="great",
                        UniqueRequestToken="bonus-1")
    assert start - mt.balance() == Decimal("1.20")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.send_bonus(WorkerId=WORKER, AssignmentId=assignment_id, BonusAmount="1.00", Reason="great",
                            UniqueRequestToken="bonus-1")
    assert error_of(excinfo)[0] == "RequestError"
    assert start - mt.balance() == Decimal("1.20")


def test_injected_faults_have_mturk_shapes(mt):
    mt.local_only("faults are injected into the emulator")
    mt.server.inject_fault("GetAccountBalance", "ServiceFault")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.get_account_balance()
    assert error_of(excinfo)[0] == "ServiceFault"
    assert excinfo.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    mt.server.inject_fault(None, "ThrottlingException")
    with pytest.raises(ClientError) as excinfo:
        mt.mturk.list_hits()
    assert error_of(excinfo)[:1] == ("ThrottlingException",)
    assert error_of(excinfo)[2] == "Rate exceeded"
    assert mt.mturk.get_account_balance()["AvailableBalance"] == "10000.00"


def test_retrying_client_rides_over_a_throttle(mt):
    mt.local_only("faults are injected into the emulator")
    mt.server.inject_fault("GetAccountBalance", "ThrottlingException")
    retrying = client(mt.server.url, retries=True)
    response = retrying.get_account_balance()
    assert response["ResponseMetadata"]["RetryAttempts"] == 1


def test_calls_are_counted(mt):
    mt.local_only("the /_stats page is the emulator's")
    mt.mturk.get_account_balance()
    mt.mturk.get_account_balance()
    with pytest.raises(ClientError):
        mt.mturk.get_hit(HITId="3NOSUCHHIT")
    status, _, body = http("GET", mt.server.url + "/_stats")
    calls = json.loads(body)["api_calls"]
    assert calls["GetAccountBalance"] == 2 and calls["GetHIT"] == 1


def test_unknown_operation_and_bad_json(mt):
    mt.local_only("raw protocol checks")
    status, _, body = http("POST", mt.server.url + "/", body=b"{}",
                           headers=signed(mt.server.url, "NoSuchThing"))
    assert status == 400 and json.loads(body)["__type"] == "UnknownOperationException"
    status, _, body = http("POST", mt.server.url + "/", body=b"{not json",
                           headers=signed(mt.server.url, "ListHITs", b"{not json"))
    assert status == 400 and json.loads(body)["__type"] == "SerializationException"
    status, _, body = http("POST", mt.server.url + "/", body=b'{"HITId": 5}',
                           headers=signed(mt.server.url, "GetHIT", b'{"HITId": 5}'))
    assert status == 400 and json.loads(body)["__type"] == "ParameterValidationError"


def test_two_processes_share_one_database(mt, tmp_path):
    """Two servers on one file (as post and a cron harvest would be) write safely side by side."""
    mt.local_only("concerns the emulator's storage")
    with MarketplaceServer(mt.server.backend.db_path) as other:
        clients = [mt.mturk, client(other.url, retries=False)]
        errors: list[BaseException] = []

        def post(c, n):
            try:
                for i in range(n):
                    c.create_hit(**hit_params(MaxAssignments=1, Reward="0.10"))
            except BaseException as exc:  # re-raised below, in the test's thread
                errors.append(exc)

        threads = [threading.Thread(target=post, args=(clients[i % 2], 20)) for i in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert not errors
        total = sum(len(p["HITs"]) for p in clients[1].get_paginator("list_hits").paginate())
        assert total == 80
        assert Decimal(clients[1].get_account_balance()["AvailableBalance"]) == \
            Decimal("10000.00") - 80 * Decimal("0.12")
