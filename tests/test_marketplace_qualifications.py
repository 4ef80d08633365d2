"""Qualifications through boto3 over HTTP against the embedded marketplace: the 13 operations
(happy path and documented errors, output keys checked against botocore's output shapes), the
system types, QualificationRequirements validated and enforced with ActionsGuarded on the worker
pages, simulated workers' locales, and a qualification-test flow written from the API reference."""

from __future__ import annotations

import json
import re
from collections import Counter

import pytest
from botocore.exceptions import ClientError
from conftest_marketplace import accept, hit_params, http, work

from annotate.marketplace.crowd import SimulatedCrowd, parse_forms
from annotate.marketplace.responses import service_model

QF_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd"
AK_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"
LOCALE, ADULT = "00000000000000000071", "00000000000000000060"
NUMBER_APPROVED, PERCENT_APPROVED = "00000000000000000040", "000000000000000000L0"
MASTERS_SANDBOX, MASTERS_PRODUCTION = "2ARFPLSP75KLA8M8DH1HTEQVJT3SY6", "2F1QJWKUDD8XADTFD2Q0G6UTO95ALH"
GOOD, BAD = "AGOODWORKER1", "ABADWORKER22"

# The API reference's example: a two-question multiple-choice test and its answer key.
TEST = f"""<QuestionForm xmlns="{QF_NS}">
  <Overview><Title>Game 01523, "X" to play</Title><Text>You are helping to decide the next move.</Text></Overview>
  <Question>
    <QuestionIdentifier>nextmove</QuestionIdentifier><DisplayName>The Next Move</DisplayName>
    <IsRequired>true</IsRequired>
    <QuestionContent><Text>What are the coordinates of the best move for player "X" in this game?</Text></QuestionContent>
    <AnswerSpecification><SelectionAnswer><StyleSuggestion>radiobutton</StyleSuggestion><Selections>
      <Selection><SelectionIdentifier>C1</SelectionIdentifier><Text>C1</Text></Selection>
      <Selection><SelectionIdentifier>B2</SelectionIdentifier><Text>B2</Text></Selection>
      <Selection><SelectionIdentifier>A3</SelectionIdentifier><Text>A3</Text></Selection>
    </Selections></SelectionAnswer></AnswerSpecification>
  </Question>
  <Question>
    <QuestionIdentifier>likelytowin</QuestionIdentifier><IsRequired>true</IsRequired>
    <QuestionContent><Text>How likely is it that player "X" will win this game?</Text></QuestionContent>
    <AnswerSpecification><SelectionAnswer><StyleSuggestion>radiobutton</StyleSuggestion><Selections>
      <Selection><SelectionIdentifier>notlikely</SelectionIdentifier><Text>Not likely</Text></Selection>
      <Selection><SelectionIdentifier>unsure</SelectionIdentifier><Text>It could go either way</Text></Selection>
      <Selection><SelectionIdentifier>likely</SelectionIdentifier><Text>Likely</Text></Selection>
    </Selections></SelectionAnswer></AnswerSpecification>
  </Question>
</QuestionForm>"""
ANSWER_KEY = f"""<AnswerKey xmlns="{AK_NS}">
  <Question><QuestionIdentifier>nextmove</QuestionIdentifier>
    <AnswerOption><SelectionIdentifier>C1</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption>
  </Question>
  <Question><QuestionIdentifier>likelytowin</QuestionIdentifier>
    <AnswerOption><SelectionIdentifier>notlikely</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption>
  </Question>
  <QualificationValueMapping><PercentageMapping><MaximumSummedScore>2</MaximumSummedScore></PercentageMapping>
  </QualificationValueMapping>
</AnswerKey>"""


def check_shape(operation: str, response: dict) -> None:
    """Every key of the answer is a member of the operation's output shape, recursively."""
    def walk(shape, value, path):
        if shape.type_name == "structure":
            assert isinstance(value, dict), path
            for key, item in value.items():
                assert key in shape.members, f"{path}.{key} is not in {shape.name}"
                walk(shape.members[key], item, f"{path}.{key}")
        elif shape.type_name == "list":
            assert isinstance(value, list), path
            for i, item in enumerate(value):
                walk(shape.member, item, f"{path}[{i}]")
    body = {k: v for k, v in response.items() if k != "ResponseMetadata"}
    walk(service_model().operation_model(operation).output_shape, body, operation)


def error(exc_info) -> tuple[str, str]:
    err = exc_info.value.response
    return err["Error"]["Code"], err.get("TurkErrorCode", "")


def new_type(mturk, **overrides):
    params = {"Name": "Tic-tac-toe", "Description": "Knows the game.", "QualificationTypeStatus": "Active"}
    params.update(overrides)
    got = mturk.create_qualification_type(**params)
    check_shape("CreateQualificationType", got)
    return got["QualificationType"]


def profile(srv, worker_id: str, country: str = "US", **flags: str) -> None:
    status, _, body = http("POST", srv.url + "/worker/profile", {"workerId": worker_id, "country": country, **flags})
    assert status == 200, body


def listing(srv, worker_id: str) -> list[str]:
    status, _, body = http("GET", srv.url + f"/worker/?format=json&workerId={worker_id}")
    assert status == 200
    return [h["hitId"] for h in json.loads(body)["hits"]]


def try_accept(srv, hit_id: str, worker_id: str) -> tuple[int, dict]:
    status, _, body = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": worker_id},
                           {"Accept": "application/json"})
    return status, json.loads(body)


# -- system types ----------------------------------------------------------------------------------

def test_system_types_have_their_real_ids(mturk):
    got = mturk.list_qualification_types(MustBeRequestable=False, MustBeOwnedByCaller=False, MaxResults=100)
    check_shape("ListQualificationTypes", got)
    ids = {t["QualificationTypeId"]: t for t in got["QualificationTypes"]}
    for type_id in (LOCALE, ADULT, NUMBER_APPROVED, PERCENT_APPROVED, MASTERS_SANDBOX, MASTERS_PRODUCTION):
        assert type_id in ids and ids[type_id]["IsRequestable"] is False
    assert ids[LOCALE]["Name"] == "Worker_Locale"
    # Neither requestable nor the caller's own.
    assert mturk.list_qualification_types(MustBeRequestable=True)["QualificationTypes"] == []
    assert mturk.list_qualification_types(MustBeRequestable=False, MustBeOwnedByCaller=True)["NumResults"] == 0
    assert mturk.get_qualification_type(QualificationTypeId=ADULT)["QualificationType"]["Name"] == "Worker_Adult"


def test_system_types_cannot_be_assigned_or_changed(mturk):
    for call in (lambda: mturk.associate_qualification_with_worker(QualificationTypeId=LOCALE, WorkerId=GOOD),
                 lambda: mturk.update_qualification_type(QualificationTypeId=ADULT, Description="x"),
                 lambda: mturk.delete_qualification_type(QualificationTypeId=MASTERS_SANDBOX)):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == ("RequestError", "AWS.MechanicalTurk.InvalidQualificationType")


# -- custom types ------------------------------------------------------------------------------------

def test_create_get_update_list_delete(srv, mturk):
    created = new_type(mturk, Keywords="games, strategy", RetryDelayInSeconds=60, AutoGranted=True,
                       AutoGrantedValue=7)
    type_id = created["QualificationTypeId"]
    assert re.fullmatch(r"[A-Z0-9]{30}", type_id)
    assert created["IsRequestable"] is True and created["AutoGranted"] is True and created["AutoGrantedValue"] == 7
    got = mturk.get_qualification_type(QualificationTypeId=type_id)
    check_shape("GetQualificationType", got)
    assert got["QualificationType"]["Name"] == "Tic-tac-toe"
    updated = mturk.update_qualification_type(QualificationTypeId=type_id, Description="Plays well.",
                                              QualificationTypeStatus="Inactive")
    check_shape("UpdateQualificationType", updated)
    assert updated["QualificationType"]["Description"] == "Plays well."
    assert updated["QualificationType"]["QualificationTypeStatus"] == "Inactive"
    found = mturk.list_qualification_types(MustBeRequestable=True, Query="strategy")
    assert [t["QualificationTypeId"] for t in found["QualificationTypes"]] == [type_id]
    assert mturk.list_qualification_types(MustBeRequestable=True, Query="chess")["NumResults"] == 0
    check_shape("DeleteQualificationType", mturk.delete_qualification_type(QualificationTypeId=type_id))
    with pytest.raises(ClientError) as exc:
        mturk.get_qualification_type(QualificationTypeId=type_id)
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
    new_type(mturk)  # the name is free again once no HIT uses the type


def test_list_qualification_types_pages(mturk):
    made = [new_type(mturk, Name=f"Type {i}")["QualificationTypeId"] for i in range(5)]
    seen, token = [], None
    while True:
        page = mturk.list_qualification_types(MustBeRequestable=True, MaxResults=2,
                                              **({"NextToken": token} if token else {}))
        seen += [t["QualificationTypeId"] for t in page["QualificationTypes"]]
        token = page.get("NextToken")
        if not token or not page["QualificationTypes"]:
            break
    assert seen == made


@pytest.mark.parametrize("params, code", [
    ({"Test": TEST}, "AWS.MechanicalTurk.InvalidParameterValue"),  # no TestDurationInSeconds
    ({"Test": TEST, "TestDurationInSeconds": 600, "AutoGranted": True}, "AWS.MechanicalTurk.InvalidParameterValue"),
    ({"AnswerKey": ANSWER_KEY}, "AWS.MechanicalTurk.InvalidParameterValue"),  # a key with no test
    ({"Test": TEST.replace("</Overview>", "<Text>" + "x" * 65535 + "</Text></Overview>"),
      "TestDurationInSeconds": 600}, "AWS.MechanicalTurk.InvalidParameterValue"),  # over 65,535 bytes
    ({"Test": "<QuestionForm>not ours</QuestionForm>", "TestDurationInSeconds": 600}, "AWS.MechanicalTurk.XMLParseError"),
    ({"Test": TEST, "TestDurationInSeconds": 600, "AnswerKey": ANSWER_KEY.replace(">C1<", ">Z9<")},
     "AWS.MechanicalTurk.XMLParseError"),  # the key names a selection the test lacks
])
def test_create_refuses_inconsistent_tests(mturk, params, code):
    with pytest.raises(ClientError) as exc:
        new_type(mturk, **params)
    assert error(exc) == ("RequestError", code)


def test_names_are_unique_and_required_members_checked(mturk):
    new_type(mturk)
    with pytest.raises(ClientError) as exc:
        new_type(mturk)
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeAlreadyExists")
    with pytest.raises(ClientError) as exc:
        mturk.update_qualification_type(QualificationTypeId="3NOSUCHTYPE000000000000000000X", Description="x")
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")


def test_associate_score_disassociate_and_list_workers(mturk):
    type_id = new_type(mturk)["QualificationTypeId"]
    check_shape("AssociateQualificationWithWorker",
                mturk.associate_qualification_with_worker(QualificationTypeId=type_id, WorkerId=GOOD, IntegerValue=85,
                                                          SendNotification=False))
    mturk.associate_qualification_with_worker(QualificationTypeId=type_id, WorkerId=BAD)
    score = mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=GOOD)
    check_shape("GetQualificationScore", score)
    assert score["Qualification"]["IntegerValue"] == 85 and score["Qualification"]["Status"] == "Granted"
    assert mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=BAD)["Qualification"]["IntegerValue"] == 1
    check_shape("DisassociateQualificationFromWorker",
                mturk.disassociate_qualification_from_worker(QualificationTypeId=type_id, WorkerId=BAD,
                                                             Reason="Left the project"))
    listed = mturk.list_workers_with_qualification_type(QualificationTypeId=type_id)
    check_shape("ListWorkersWithQualificationType", listed)
    assert {q["WorkerId"]: q["Status"] for q in listed["Qualifications"]} == {GOOD: "Granted", BAD: "Revoked"}
    granted = mturk.list_workers_with_qualification_type(QualificationTypeId=type_id, Status="Granted")
    assert [q["WorkerId"] for q in granted["Qualifications"]] == [GOOD]
    with pytest.raises(ClientError) as exc:
        mturk.disassociate_qualification_from_worker(QualificationTypeId=type_id, WorkerId=BAD)
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationDoesNotExist")
    with pytest.raises(ClientError) as exc:
        mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId="ANEVERSEEN9")
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationDoesNotExist")
    with pytest.raises(ClientError) as exc:
        mturk.list_workers_with_qualification_type(QualificationTypeId="3NOSUCHTYPE000000000000000000X")
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")


# -- requirements on HITs ------------------------------------------------------------------------------

@pytest.mark.parametrize("requirement, code", [
    ({"QualificationTypeId": "3NOSUCHTYPE000000000000000000X", "Comparator": "Exists"},
     "AWS.MechanicalTurk.QualificationTypeDoesNotExist"),
    ({"QualificationTypeId": "$QUALIFICATION_TYPE_ID", "Comparator": "Exists"},
     "AWS.MechanicalTurk.QualificationTypeDoesNotExist"),
])
def test_unknown_qualification_types_are_refused(mturk, requirement, code):
    for call in (mturk.create_hit, mturk.create_hit_type):
        params = hit_params(QualificationRequirements=[requirement])
        if call == mturk.create_hit_type:
            params = {k: v for k, v in params.items() if k not in ("Question", "LifetimeInSeconds", "MaxAssignments")}
        with pytest.raises(ClientError) as exc:
            call(**params)
        assert error(exc) == ("RequestError", code)
    assert mturk.list_hits()["NumResults"] == 0


@pytest.mark.parametrize("requirement", [
    {"QualificationTypeId": LOCALE, "Comparator": "EqualTo", "IntegerValues": [1]},
    {"QualificationTypeId": LOCALE, "Comparator": "GreaterThan", "LocaleValues": [{"Country": "US"}]},
    {"QualificationTypeId": ADULT, "Comparator": "EqualTo", "LocaleValues": [{"Country": "US"}]},
    {"QualificationTypeId": PERCENT_APPROVED, "Comparator": "GreaterThan", "IntegerValues": [90, 95]},
    {"QualificationTypeId": PERCENT_APPROVED, "Comparator": "GreaterThan"},
    {"QualificationTypeId": MASTERS_SANDBOX, "Comparator": "Exists", "IntegerValues": [1]},
    {"QualificationTypeId": LOCALE, "Comparator": "In", "LocaleValues": []},
    {"QualificationTypeId": LOCALE, "Comparator": "EqualTo", "LocaleValues": [{"Country": "US"}],
     "ActionsGuarded": "Accept", "RequiredToPreview": True},
])
def test_comparator_and_values_must_fit(mturk, requirement):
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_params(QualificationRequirements=[requirement]))
    assert error(exc)[0] == "ParameterValidationError"


def test_inactive_types_cannot_guard_new_hits(mturk):
    type_id = new_type(mturk, QualificationTypeStatus="Inactive")["QualificationTypeId"]
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_params(QualificationRequirements=[{"QualificationTypeId": type_id,
                                                                   "Comparator": "Exists"}]))
    assert error(exc)[0] == "RequestError"


US_ONLY = {"QualificationTypeId": LOCALE, "Comparator": "EqualTo", "LocaleValues": [{"Country": "US"}]}


def test_default_guard_is_accept_preview_shown_without_accept_button(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(QualificationRequirements=[US_ONLY]))["HIT"]["HITId"]
    profile(srv, "AINDIA1", "IN")
    assert hit_id in listing(srv, "AINDIA1")  # Discover is not guarded
    status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}&workerId=AINDIA1")
    assert status == 200 and 'action="/worker/accept"' not in page and "QualificationRequirementNotMet" in page
    assert try_accept(srv, hit_id, "AINDIA1") == (403, {"error": "QualificationRequirementNotMet",
                                                        "message": "You do not meet the Qualification requirements "
                                                                   "of this HIT."})
    status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}&workerId=AUSWORKER1")
    assert status == 200 and 'action="/worker/accept"' in page
    accept(srv.url, hit_id, "AUSWORKER1")  # a worker never seen counts as US, as our default profile


def test_preview_and_discover_guards(srv, mturk):
    preview = mturk.create_hit(**hit_params(QualificationRequirements=[{**US_ONLY, "ActionsGuarded":
                                                                        "PreviewAndAccept"}]))["HIT"]["HITId"]
    hidden = mturk.create_hit(**hit_params(QualificationRequirements=[{**US_ONLY, "ActionsGuarded":
                                                                       "DiscoverPreviewAndAccept"}]))["HIT"]["HITId"]
    legacy = mturk.create_hit(**hit_params(QualificationRequirements=[{**US_ONLY, "RequiredToPreview": True}])
                              )["HIT"]["HITId"]
    profile(srv, "AGERMAN1", "DE")
    seen = listing(srv, "AGERMAN1")
    assert preview in seen and legacy in seen and hidden not in seen
    for hit_id in (preview, hidden, legacy):
        status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}&workerId=AGERMAN1")
        assert status == 403 and "QualificationRequirementNotMet" in page
        assert try_accept(srv, hit_id, "AGERMAN1")[0] == 403
        status, _, page = http("GET", srv.url + "/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE"
                                                f"&hitId={hit_id}&workerId=AGERMAN1")
        assert status == 403 and "QualificationRequirementNotMet" in page
    profile(srv, "AUSWORKER2", "US", subdivision="CA")
    assert {preview, hidden, legacy} <= set(listing(srv, "AUSWORKER2"))
    accept(srv.url, hidden, "AUSWORKER2")


def test_subdivisions_and_in(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(QualificationRequirements=[{
        "QualificationTypeId": LOCALE, "Comparator": "In",
        "LocaleValues": [{"Country": "US", "Subdivision": "NY"}, {"Country": "CA"}]}]))["HIT"]["HITId"]
    profile(srv, "ANEWYORK1", "US", subdivision="NY")
    profile(srv, "ATEXAS1", "US", subdivision="TX")
    profile(srv, "ACANADA1", "CA", subdivision="ON")
    assert try_accept(srv, hit_id, "ATEXAS1")[0] == 403
    accept(srv.url, hit_id, "ANEWYORK1")
    accept(srv.url, hit_id, "ACANADA1")


def test_masters_adult_and_approval_history(srv, mturk):
    requirement = lambda type_id, comparator, *values: {  # noqa: E731
        "QualificationTypeId": type_id, "Comparator": comparator, **({"IntegerValues": list(values)} if values else {})}
    masters = mturk.create_hit(**hit_params(QualificationRequirements=[requirement(MASTERS_SANDBOX, "Exists")]))
    adult = mturk.create_hit(**hit_params(QualificationRequirements=[requirement(ADULT, "EqualTo", 1)]))
    history = mturk.create_hit(**hit_params(QualificationRequirements=[
        requirement(NUMBER_APPROVED, "GreaterThanOrEqualTo", 2), requirement(PERCENT_APPROVED, "GreaterThan", 60)]))
    profile(srv, "AMASTER1", "US", masters="1", adult="1")
    for hit in (masters, adult):
        assert try_accept(srv, hit["HIT"]["HITId"], "ANOVICE1")[0] == 403
        accept(srv.url, hit["HIT"]["HITId"], "AMASTER1")
    # ANOVICE1 earns two approvals and one rejection: 2 approved, 66%.
    done = [work(srv.url, mturk.create_hit(**hit_params())["HIT"]["HITId"], "ANOVICE1") for _ in range(3)]
    assert try_accept(srv, history["HIT"]["HITId"], "ANOVICE1")[0] == 403
    mturk.approve_assignment(AssignmentId=done[0])
    mturk.approve_assignment(AssignmentId=done[1])
    mturk.reject_assignment(AssignmentId=done[2], RequesterFeedback="Wrong")
    accept(srv.url, history["HIT"]["HITId"], "ANOVICE1")


def test_list_hits_for_qualification_type(mturk):
    type_id = new_type(mturk)["QualificationTypeId"]
    guarded = [mturk.create_hit(**hit_params(QualificationRequirements=[
        {"QualificationTypeId": type_id, "Comparator": "GreaterThan", "IntegerValues": [50]}]))["HIT"]["HITId"]
        for _ in range(3)]
    mturk.create_hit(**hit_params())
    got = mturk.list_hits_for_qualification_type(QualificationTypeId=type_id, MaxResults=2)
    check_shape("ListHITsForQualificationType", got)
    rest = mturk.list_hits_for_qualification_type(QualificationTypeId=type_id, NextToken=got["NextToken"])
    assert [h["HITId"] for h in got["HITs"] + rest["HITs"]] == guarded
    with pytest.raises(ClientError) as exc:
        mturk.list_hits_for_qualification_type(QualificationTypeId="3NOSUCHTYPE000000000000000000X")
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")


def test_deleting_a_type_rejects_pending_requests_and_waits_for_its_hits(srv, mturk):
    type_id = new_type(mturk)["QualificationTypeId"]
    hit_id = mturk.create_hit(**hit_params(QualificationRequirements=[{"QualificationTypeId": type_id,
                                                                        "Comparator": "Exists"}]))["HIT"]["HITId"]
    hit_type_id = mturk.get_hit(HITId=hit_id)["HIT"]["HITTypeId"]
    request_qualification(srv, type_id, GOOD)
    assert mturk.list_qualification_requests(QualificationTypeId=type_id)["NumResults"] == 1
    mturk.delete_qualification_type(QualificationTypeId=type_id)
    with pytest.raises(ClientError) as exc:
        mturk.create_hit_with_hit_type(HITTypeId=hit_type_id, LifetimeInSeconds=600, Question=hit_params()["Question"])
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
    assert mturk.list_qualification_requests()["NumResults"] == 0
    # Still there (Inactive) while a HIT uses it, but unusable and not listed.
    assert mturk.get_qualification_type(QualificationTypeId=type_id)["QualificationType"][
        "QualificationTypeStatus"] == "Inactive"
    assert mturk.list_qualification_types(MustBeRequestable=True)["NumResults"] == 0
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_params(QualificationRequirements=[{"QualificationTypeId": type_id,
                                                                   "Comparator": "Exists"}]))
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
    with pytest.raises(ClientError):
        new_type(mturk)  # the name is not free yet
    mturk.update_expiration_for_hit(HITId=hit_id, ExpireAt=0)
    mturk.delete_hit(HITId=hit_id)
    with pytest.raises(ClientError) as exc:
        mturk.get_qualification_type(QualificationTypeId=type_id)
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationTypeDoesNotExist")
    new_type(mturk)


# -- worker requests -------------------------------------------------------------------------------------

def request_qualification(srv, type_id: str, worker_id: str) -> tuple[int, dict]:
    status, _, body = http("POST", srv.url + "/worker/qualifications/request",
                           {"qualificationTypeId": type_id, "workerId": worker_id}, {"Accept": "application/json"})
    return status, json.loads(body)


def take_test(srv, type_id: str, worker_id: str, answers: list[tuple[str, str]]) -> dict:
    status, got = request_qualification(srv, type_id, worker_id)
    assert status == 200 and got["outcome"] == "Test", got
    assert 'name="nextmove"' in got["form"] and 'value="C1"' in got["form"]
    status, _, body = http("POST", srv.url + "/worker/qualifications/test",
                           [("testId", got["testId"]), ("workerId", worker_id)] + answers,
                           {"Accept": "application/json"})
    assert status == 200, body
    return json.loads(body)


def test_requests_without_a_test_wait_for_the_requester(srv, mturk):
    type_id = new_type(mturk, RetryDelayInSeconds=0)["QualificationTypeId"]
    assert request_qualification(srv, type_id, GOOD)[1]["outcome"] == "Pending"
    assert request_qualification(srv, type_id, GOOD) == (409, {"error": "RequestPending", "message": (
        "Your request for this Qualification is waiting for the requester.")})
    request_qualification(srv, type_id, BAD)
    listed = mturk.list_qualification_requests(QualificationTypeId=type_id)
    check_shape("ListQualificationRequests", listed)
    by_worker = {r["WorkerId"]: r["QualificationRequestId"] for r in listed["QualificationRequests"]}
    assert set(by_worker) == {GOOD, BAD}
    check_shape("AcceptQualificationRequest",
                mturk.accept_qualification_request(QualificationRequestId=by_worker[GOOD], IntegerValue=90))
    check_shape("RejectQualificationRequest",
                mturk.reject_qualification_request(QualificationRequestId=by_worker[BAD], Reason="No."))
    assert mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=GOOD)["Qualification"][
        "IntegerValue"] == 90
    with pytest.raises(ClientError):
        mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=BAD)
    assert mturk.list_qualification_requests()["NumResults"] == 0
    for call in (lambda: mturk.accept_qualification_request(QualificationRequestId=by_worker[BAD]),
                 lambda: mturk.reject_qualification_request(QualificationRequestId=by_worker[GOOD])):
        with pytest.raises(ClientError) as exc:
            call()
        assert error(exc) == ("RequestError", "AWS.MechanicalTurk.InvalidQualificationRequestState")
    with pytest.raises(ClientError) as exc:
        mturk.accept_qualification_request(QualificationRequestId="3NOSUCHREQUEST00000000000000XX")
    assert error(exc) == ("RequestError", "AWS.MechanicalTurk.QualificationRequestDoesNotExist")


def test_auto_granted_and_no_retry(srv, mturk):
    type_id = new_type(mturk, AutoGranted=True, AutoGrantedValue=3)["QualificationTypeId"]
    assert request_qualification(srv, type_id, GOOD)[1]["outcome"] == "Granted"
    assert mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=GOOD)["Qualification"][
        "IntegerValue"] == 3
    assert mturk.list_qualification_requests()["NumResults"] == 0  # granted at once, never pending
    # No RetryDelayInSeconds: a type can be requested only once.
    assert request_qualification(srv, type_id, GOOD)[1]["error"] == "RetryNotAllowed"


def test_inactive_types_cannot_be_requested(srv, mturk):
    type_id = new_type(mturk, QualificationTypeStatus="Inactive")["QualificationTypeId"]
    assert request_qualification(srv, type_id, GOOD) == (409, {"error": "QualificationTypeInactive", "message": (
        "This Qualification type is not accepting requests right now.")})
    status, _, body = http("GET", srv.url + "/worker/qualifications?format=json")
    assert json.loads(body) == {"qualificationTypes": []}


def test_qualification_test_flow_from_the_api_reference(srv, mturk):
    """CreateQualificationType with a Test and AnswerKey; workers take the test on the worker
    pages and are scored at once; a HIT requiring a score of at least 75 is hidden from the
    worker who failed and worked by the one who passed; a retake waits RetryDelayInSeconds."""
    qtype = new_type(mturk, Test=TEST, AnswerKey=ANSWER_KEY, TestDurationInSeconds=300, RetryDelayInSeconds=600)
    type_id = qtype["QualificationTypeId"]
    assert qtype["Test"] == TEST and qtype["AnswerKey"] == ANSWER_KEY and qtype["TestDurationInSeconds"] == 300
    hit = mturk.create_hit(**hit_params(QualificationRequirements=[{
        "QualificationTypeId": type_id, "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [75],
        "ActionsGuarded": "DiscoverPreviewAndAccept"}]))["HIT"]
    assert hit["QualificationRequirements"][0]["QualificationTypeId"] == type_id

    # The HTML pages: the type is listed with a button to take the test; the test renders as a form.
    status, _, page = http("GET", srv.url + f"/worker/qualifications?workerId={GOOD}")
    assert status == 200 and "Take the test" in page and type_id in page
    assert take_test(srv, type_id, GOOD, [("nextmove", "C1"), ("likelytowin", "notlikely")]) == {
        "outcome": "Granted", "value": 100, "name": "Tic-tac-toe"}
    assert take_test(srv, type_id, BAD, [("nextmove", "B2"), ("likelytowin", "notlikely")])["value"] == 50
    assert mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=BAD)["Qualification"][
        "IntegerValue"] == 50
    assert mturk.list_qualification_requests(QualificationTypeId=type_id)["NumResults"] == 0  # scored by the key

    assert hit["HITId"] in listing(srv, GOOD) and hit["HITId"] not in listing(srv, BAD)
    assert try_accept(srv, hit["HITId"], BAD)[0] == 403
    work(srv.url, hit["HITId"], GOOD)

    # A retake before RetryDelayInSeconds is refused; after it, the better score stands.
    status, got = request_qualification(srv, type_id, BAD)
    assert status == 409 and got["error"] == "RetryDelayNotElapsed"
    srv.clock.advance(601)
    assert take_test(srv, type_id, BAD, [("nextmove", "C1"), ("likelytowin", "notlikely")])["value"] == 100
    assert hit["HITId"] in listing(srv, BAD)
    work(srv.url, hit["HITId"], BAD)


def test_a_test_must_be_finished_in_time_and_answered_in_full(srv, mturk):
    type_id = new_type(mturk, Test=TEST, AnswerKey=ANSWER_KEY, TestDurationInSeconds=60)["QualificationTypeId"]
    status, got = request_qualification(srv, type_id, GOOD)
    fields = [("testId", got["testId"]), ("workerId", GOOD)]
    status, _, body = http("POST", srv.url + "/worker/qualifications/test", fields + [("nextmove", "C1")])
    assert status == 400 and "This question needs an answer." in body  # likelytowin is required
    srv.clock.advance(61)
    status, _, body = http("POST", srv.url + "/worker/qualifications/test",
                           fields + [("nextmove", "C1"), ("likelytowin", "notlikely")])
    assert status == 410 and "TestExpired" in body
    with pytest.raises(ClientError):
        mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=GOOD)


def test_test_without_answer_key_is_left_for_the_requester(srv, mturk):
    type_id = new_type(mturk, Test=TEST, TestDurationInSeconds=300)["QualificationTypeId"]
    assert take_test(srv, type_id, GOOD, [("nextmove", "A3"), ("likelytowin", "likely")])["outcome"] == "Pending"
    request = mturk.list_qualification_requests(QualificationTypeId=type_id)["QualificationRequests"][0]
    assert request["Test"] == TEST
    assert "<SelectionIdentifier>A3</SelectionIdentifier>" in request["Answer"]
    mturk.accept_qualification_request(QualificationRequestId=request["QualificationRequestId"], IntegerValue=10)
    assert mturk.get_qualification_score(QualificationTypeId=type_id, WorkerId=GOOD)["Qualification"][
        "IntegerValue"] == 10


# -- the simulated crowd ------------------------------------------------------------------------------------

def test_simulated_non_us_workers_never_work_a_us_locale_hit(srv, mturk):
    us_hit = mturk.create_hit(**hit_params(MaxAssignments=6, QualificationRequirements=[US_ONLY]))["HIT"]["HITId"]
    open_hit = mturk.create_hit(**hit_params(MaxAssignments=6))["HIT"]["HITId"]
    crowd = SimulatedCrowd(srv.url, workers=12, seed=3, locales={"US": 0.5, "IN": 0.3, "GB": 0.2})
    countries = {w.worker_id: w.country for w in crowd.workers}
    assert set(countries.values()) == {"US", "IN", "GB"}
    assert crowd.work() == 12
    worked = {hit: Counter(countries[a["WorkerId"]] for a in mturk.list_assignments_for_hit(
        HITId=hit, MaxResults=100)["Assignments"]) for hit in (us_hit, open_hit)}
    assert worked[us_hit] == Counter({"US": 6})
    assert set(worked[open_hit]) - {"US"}  # the open HIT was worked by non-US workers too


def test_crowd_traits_do_not_change_answers(srv):
    plain = SimulatedCrowd(srv.url, workers=5, seed=1)
    mixed = SimulatedCrowd(srv.url, workers=5, seed=1, locales={"US": 0.5, "DE": 0.5}, adult_share=0.5)
    assert [(w.worker_id, w.accuracy) for w in plain.workers] == [(w.worker_id, w.accuracy) for w in mixed.workers]
    with pytest.raises(ValueError):
        SimulatedCrowd(srv.url, locales={"US": 0.5})


def test_html_pages_for_a_person(srv, mturk):
    type_id = new_type(mturk, Test=TEST, AnswerKey=ANSWER_KEY, TestDurationInSeconds=300)["QualificationTypeId"]
    status, _, page = http("POST", srv.url + "/worker/qualifications/request",
                           {"qualificationTypeId": type_id, "workerId": GOOD})
    assert status == 200 and "<h1>Qualification test: Tic-tac-toe</h1>" in page
    form = [f for f in parse_forms(page)
            if f["action"] == "/worker/qualifications/test"][0]
    test_id = next(c["value"] for c in form["controls"] if c["name"] == "testId")
    status, _, page = http("POST", srv.url + "/worker/qualifications/test",
                           [("testId", test_id), ("workerId", GOOD), ("nextmove", "C1"), ("likelytowin", "likely")])
    assert status == 200 and 'data-outcome="Granted"' in page and "a score of 50" in page
    hit_id = mturk.create_hit(**hit_params(QualificationRequirements=[{
        "QualificationTypeId": type_id, "Comparator": "GreaterThan", "IntegerValues": [60]}]))["HIT"]["HITId"]
    status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}&workerId={GOOD}")
    assert "Tic-tac-toe GreaterThan 60" in page and "Request this qualification" in page


def test_replayed_workers_without_the_qualification_are_skipped(srv, mturk):
    from annotate.marketplace.replay import ReplayCrowd

    type_id = new_type(mturk)["QualificationTypeId"]
    mturk.associate_qualification_with_worker(QualificationTypeId=type_id, WorkerId="AREPLAYONE")
    mturk.create_hit(**hit_params(MaxAssignments=2, RequesterAnnotation="b/1", QualificationRequirements=[
        {"QualificationTypeId": type_id, "Comparator": "Exists"}]))
    crowd = ReplayCrowd(srv.url, {"b/1": [("AREPLAYTWO", "cat"), ("AREPLAYONE", "dog")]}, seed=0)
    assert crowd.work() == 1  # before: RuntimeError, the replay died on the refusal
    assert [(s["worker_id"], s["why"]) for s in crowd.skipped] == [("AREPLAYTWO", "QualificationRequirementNotMet")]
    assert [s["worker_id"] for s in crowd.submissions] == ["AREPLAYONE"]


def test_locales_option(tmp_path):
    from click.testing import CliRunner

    from annotate.cli import cli
    from annotate.marketplace.crowd import parse_locales

    assert parse_locales("US=0.8, in=0.2") == {"US": 0.8, "IN": 0.2}
    for bad in ("US=0.5", "USA=1", "US=x", ""):
        with pytest.raises(ValueError):
            parse_locales(bad)
    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "marketplace", "serve", "--crowd", "simulated",
                                      "--locales", "US=0.5,IN=0.2", "--port", "0"])
    assert result.exit_code == 2 and "--locales" in result.output and "summing to 1" in result.output
