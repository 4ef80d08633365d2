"""Conformance of the embedded marketplace to botocore's model of MTurk, operation by operation.

The operations come from `boto3.client("mturk").meta.service_model.operation_names`, so an
operation added to the model (a newer botocore) or missing from the marketplace fails here. For
each: a happy-path call through boto3 over HTTP whose raw JSON answer is checked key by key
against the operation's output shape (every key is a member, types match, required members are
present) and whose parsed answer is checked again as boto3 hands it out; then its documented
errors: RequestError (with a TurkErrorCode) where the API reference names a cause, and
ServiceFault for every operation (the model lists both for each).
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import Any, Callable

import boto3
import pytest
from botocore import xform_name
from botocore.exceptions import ClientError
from conftest_marketplace import FakeClock, client, hit_params, http, signed, work

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import parse_forms
from annotate.marketplace.responses import OPERATIONS

MODEL = boto3.client("mturk", region_name="us-east-1", aws_access_key_id="x",
                     aws_secret_access_key="x").meta.service_model
OPERATION_NAMES = sorted(MODEL.operation_names)

# Implemented by the other engineers of issue 12; delete this set once their branches are merged.
WORKER = "A1CONFORMANCE0001"
OTHER_WORKER = "A2CONFORMANCE0002"
QUALIFICATION_TEST = """<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd">
<Question><QuestionIdentifier>q1</QuestionIdentifier><IsRequired>true</IsRequired>
<QuestionContent><Text>2 + 2?</Text></QuestionContent>
<AnswerSpecification><FreeTextAnswer/></AnswerSpecification></Question></QuestionForm>"""
FILE_UPLOAD_FORM = """<QuestionForm xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd">
<Question><QuestionIdentifier>photo</QuestionIdentifier><IsRequired>true</IsRequired>
<QuestionContent><Text>Upload a photo of a cat.</Text></QuestionContent>
<AnswerSpecification><FileUploadAnswer><MaxFileSizeInBytes>100000</MaxFileSizeInBytes>
<MinFileSizeInBytes>1</MinFileSizeInBytes></FileUploadAnswer></AnswerSpecification></Question></QuestionForm>"""


# ------------------------------------------------------------------------------ the shape checker
def shape_problems(shape, value: Any, path: str = "", raw: bool = True) -> list[str]:
    """Where `value` departs from a botocore shape. `raw`: the JSON on the wire (timestamps are
    epoch numbers, blobs base64 text); otherwise the value as boto3 parsed it (datetimes, bytes)."""
    kind = shape.type_name
    here = path or "<output>"
    if kind == "structure":
        if not isinstance(value, dict):
            return [f"{here}: a structure, got {type(value).__name__}"]
        problems = [f"{here}.{k}: not a member of {shape.name}" for k in value
                    if k not in shape.members and not (not raw and k == "ResponseMetadata" and not path)]
        problems += [f"{here}.{k}: required member missing" for k in shape.required_members if k not in value]
        for name, member in shape.members.items():
            if name in value:
                problems += shape_problems(member, value[name], f"{path}.{name}" if path else name, raw)
        return problems
    if kind == "list":
        if not isinstance(value, list):
            return [f"{here}: a list, got {type(value).__name__}"]
        return [p for i, item in enumerate(value) for p in shape_problems(shape.member, item, f"{here}[{i}]", raw)]
    if kind == "map":
        if not isinstance(value, dict):
            return [f"{here}: a map, got {type(value).__name__}"]
        return [p for k, v in value.items() for p in shape_problems(shape.key, k, f"{here}<key>", raw)
                + shape_problems(shape.value, v, f"{here}[{k!r}]", raw)]
    if kind == "string":
        if not isinstance(value, str):
            return [f"{here}: a string, got {type(value).__name__} {value!r:.60}"]
        if shape.enum and value not in shape.enum:
            return [f"{here}: {value!r} is not one of {shape.enum}"]
        return []
    if kind in ("integer", "long"):
        ok = isinstance(value, int) and not isinstance(value, bool)
        return [] if ok else [f"{here}: an integer, got {value!r:.60}"]
    if kind in ("double", "float"):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return [] if ok else [f"{here}: a number, got {value!r:.60}"]
    if kind == "boolean":
        return [] if isinstance(value, bool) else [f"{here}: a boolean, got {value!r:.60}"]
    if kind == "timestamp":
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool)) if raw else isinstance(value, datetime)
        return [] if ok else [f"{here}: a timestamp, got {value!r:.60}"]
    if kind == "blob":
        ok = isinstance(value, str) if raw else isinstance(value, (bytes, bytearray))
        return [] if ok else [f"{here}: a blob, got {type(value).__name__}"]
    return [f"{here}: unchecked shape type {kind}"]


def test_shape_checker_finds_what_is_wrong():
    output = MODEL.operation_model("GetHIT").output_shape
    good = {"HIT": {"HITId": "3X", "HITStatus": "Assignable", "MaxAssignments": 3, "CreationTime": 1.7e9,
                    "QualificationRequirements": [{"QualificationTypeId": "Q", "Comparator": "Exists"}]}}
    assert shape_problems(output, good) == []
    bad = {"HIT": {"HITId": 5, "HITStatus": "Sleeping", "MaxAssignments": True, "CreationTime": "today",
                   "Colour": "red", "QualificationRequirements": [{"Comparator": "Exists"}]}, "Extra": 1}
    problems = "\n".join(shape_problems(output, bad))
    for expected in ["Extra: not a member", "HIT.Colour: not a member", "HIT.HITId: a string",
                     "'Sleeping' is not one of", "HIT.MaxAssignments: an integer", "HIT.CreationTime: a timestamp",
                     "QualificationRequirements[0].QualificationTypeId: required member missing"]:
        assert expected in problems
    assert shape_problems(output, {"HIT": {"CreationTime": datetime.now(timezone.utc)}}, raw=False) == []


# ------------------------------------------------------------------------------ the world the cases run in
@dataclass
class World:
    server: MarketplaceServer
    clock: FakeClock
    mturk: Any
    raw: dict[str, Any] = field(default_factory=dict)  # operation -> the last raw JSON answer
    _lock: threading.Lock = field(default_factory=threading.Lock)

    @property
    def url(self) -> str:
        return self.server.url

    def hit(self, **overrides) -> dict:
        return self.mturk.create_hit(**hit_params(**overrides))["HIT"]

    def submitted(self, hit: dict | None = None, worker: str = WORKER) -> tuple[dict, str]:
        """A HIT with one submitted assignment: (HIT, assignment id)."""
        hit = hit or self.hit(MaxAssignments=1)
        return hit, work(self.url, hit["HITId"], worker)

    def hit_type(self) -> str:
        params = {k: v for k, v in hit_params().items()
                  if k in ("Title", "Description", "Reward", "AssignmentDurationInSeconds")}
        return self.mturk.create_hit_type(**params)["HITTypeId"]

    def qualification_type(self, name: str = "Conformance skill", **extra) -> str:
        return self.mturk.create_qualification_type(
            Name=name, Description="Whether a worker has the skill.", QualificationTypeStatus="Active",
            **extra)["QualificationType"]["QualificationTypeId"]

    def qualification_request(self) -> str:
        """A worker's request for a qualification with a test, made on the worker pages."""
        self.tests_made = getattr(self, "tests_made", 0) + 1  # type names are unique per requester
        qid = self.qualification_type(f"Conformance test {self.tests_made}", Test=QUALIFICATION_TEST,
                                      TestDurationInSeconds=300)
        # On the worker pages: ask for the qualification (the test comes back), then take it. A test
        # without an AnswerKey leaves the request pending for the requester.
        status, _, body = http("POST", self.url + "/worker/qualifications/request",
                               {"qualificationTypeId": qid, "workerId": WORKER}, {"Accept": "application/json"})
        assert status == 200 and json.loads(body)["outcome"] == "Test", body
        status, _, body = http("POST", self.url + "/worker/qualifications/test",
                               [("testId", json.loads(body)["testId"]), ("workerId", WORKER), ("q1", "4")],
                               {"Accept": "application/json"})
        assert status == 200, body
        requests = self.mturk.list_qualification_requests(QualificationTypeId=qid)["QualificationRequests"]
        assert requests, "the worker's request did not reach the requester"
        return requests[0]["QualificationRequestId"]


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    clock = FakeClock()
    with MarketplaceServer(tmp_path_factory.mktemp("conformance") / "marketplace.db", clock=clock,
                           mode="production", faults="") as srv:
        mturk = client(srv.url, retries=False)
        w = World(srv, clock, mturk)

        def keep_raw(http_response, model, **_):
            with w._lock:
                w.raw[model.name] = (http_response.status_code, http_response.content)

        mturk.meta.events.register("after-call.mturk", keep_raw)
        yield w


# ------------------------------------------------------------------------------ the cases
# operation -> (happy: world -> params of a call that succeeds,
#               errors: world -> [(params, TurkErrorCode or None)] of calls the reference says fail)
Case = tuple[Callable[[World], dict], Callable[[World], list[tuple[dict, str | None]]]]
NO_ERRORS: Callable[[World], list] = lambda w: []  # noqa: E731 - only ServiceFault is reachable


def _approved(w: World) -> str:
    _, assignment_id = w.submitted()
    w.mturk.approve_assignment(AssignmentId=assignment_id)
    return assignment_id


def _reviewable_done(w: World) -> dict:
    hit, assignment_id = w.submitted()
    w.mturk.approve_assignment(AssignmentId=assignment_id)
    return {"HITId": hit["HITId"]}


CASES: dict[str, Case] = {
    # -- HITs and HIT types ---------------------------------------------------------------------
    "GetAccountBalance": (lambda w: {}, NO_ERRORS),
    "CreateHITType": (lambda w: {k: v for k, v in hit_params().items()
                                 if k in ("Title", "Description", "Reward", "AssignmentDurationInSeconds")},
                      NO_ERRORS),
    "CreateHIT": (lambda w: hit_params(UniqueRequestToken="conformance-create-hit"),
                  lambda w: [(hit_params(UniqueRequestToken="conformance-create-hit"),
                              "AWS.MechanicalTurk.HitAlreadyExists")]),
    "CreateHITWithHITType": (
        lambda w: {"HITTypeId": w.hit_type(), "LifetimeInSeconds": 3600, "MaxAssignments": 1,
                   "Question": hit_params()["Question"]},
        lambda w: [({"HITTypeId": "3NOSUCHHITTYPE000000000000000", "LifetimeInSeconds": 3600,
                     "Question": hit_params()["Question"]}, None)]),
    "GetHIT": (lambda w: {"HITId": w.hit()["HITId"]},
               lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000"}, "AWS.MechanicalTurk.HITDoesNotExist")]),
    "ListHITs": (lambda w: (w.hit(), {"MaxResults": 5})[1], NO_ERRORS),
    "ListReviewableHITs": (lambda w: (w.submitted(), {"MaxResults": 5})[1], NO_ERRORS),
    "UpdateHITReviewStatus": (lambda w: {"HITId": w.submitted()[0]["HITId"]},
                              lambda w: [({"HITId": w.hit()["HITId"]}, "AWS.MechanicalTurk.InvalidHITState")]),
    "UpdateExpirationForHIT": (
        lambda w: {"HITId": w.hit()["HITId"], "ExpireAt": datetime.now(timezone.utc) + timedelta(hours=2)},
        lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000", "ExpireAt": datetime(2015, 1, 1)},
                    "AWS.MechanicalTurk.HITDoesNotExist")]),
    "DeleteHIT": (_reviewable_done,
                  lambda w: [({"HITId": w.hit()["HITId"]}, "AWS.MechanicalTurk.InvalidHITState")]),
    "UpdateHITTypeOfHIT": (lambda w: {"HITId": w.hit()["HITId"], "HITTypeId": w.hit_type()},
                           lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000", "HITTypeId": w.hit_type()},
                                       None)]),
    "ListReviewPolicyResultsForHIT": (lambda w: {"HITId": w.hit()["HITId"]},
                                      lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000"}, None)]),
    # -- assignments ----------------------------------------------------------------------------
    "ListAssignmentsForHIT": (lambda w: {"HITId": w.submitted()[0]["HITId"]},
                              lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000"},
                                          "AWS.MechanicalTurk.HITDoesNotExist")]),
    "GetAssignment": (lambda w: {"AssignmentId": w.submitted()[1]},
                      lambda w: [({"AssignmentId": "3NOSUCHASSIGNMENT0000000000000"},
                                  "AWS.MechanicalTurk.AssignmentDoesNotExist")]),
    "ApproveAssignment": (lambda w: {"AssignmentId": w.submitted()[1], "RequesterFeedback": "Thanks"},
                          lambda w: [({"AssignmentId": _approved(w)}, "AWS.MechanicalTurk.InvalidAssignmentState")]),
    "RejectAssignment": (lambda w: {"AssignmentId": w.submitted()[1], "RequesterFeedback": "Off topic"},
                         lambda w: [({"AssignmentId": _approved(w), "RequesterFeedback": "No"},
                                     "AWS.MechanicalTurk.InvalidAssignmentState")]),
    "CreateAdditionalAssignmentsForHIT": (
        lambda w: {"HITId": w.hit(MaxAssignments=2)["HITId"], "NumberOfAdditionalAssignments": 1},
        lambda w: [({"HITId": w.hit(MaxAssignments=3)["HITId"], "NumberOfAdditionalAssignments": 7},
                    "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")]),
    "GetFileUploadURL": (
        lambda w: _file_upload(w),
        lambda w: [({"AssignmentId": "3NOSUCHASSIGNMENT0000000000000", "QuestionIdentifier": "photo"}, None)]),
    # -- workers and money ----------------------------------------------------------------------
    "CreateWorkerBlock": (lambda w: {"WorkerId": "A9BLOCKED", "Reason": "Spam"}, NO_ERRORS),
    "DeleteWorkerBlock": (lambda w: (w.mturk.create_worker_block(WorkerId="A9UNBLOCK", Reason="Spam"),
                                     {"WorkerId": "A9UNBLOCK", "Reason": "A mistake"})[1], NO_ERRORS),
    "ListWorkerBlocks": (lambda w: (w.mturk.create_worker_block(WorkerId="A9LISTED", Reason="Spam"),
                                    {"MaxResults": 5})[1], NO_ERRORS),
    "SendBonus": (lambda w: _bonus_params(w, "conformance-bonus"),
                  lambda w: [(_bonus_params(w, None) | {"WorkerId": OTHER_WORKER}, None)]),
    "ListBonusPayments": (lambda w: {"HITId": _bonus_hit(w)},
                          lambda w: [({"HITId": "3NOSUCHHIT00000000000000000000"}, None)]),
    "NotifyWorkers": (lambda w: {"Subject": "New HITs", "MessageText": "There are more HITs of ours.",
                                 "WorkerIds": [WORKER]}, NO_ERRORS),
    # -- notifications (delivered to SQS: moto stands in for it) ----------------------------------
    "UpdateNotificationSettings": (
        lambda w: {"HITTypeId": w.hit_type(), "Active": False,
                   "Notification": _notification(["AssignmentSubmitted"])},
        lambda w: [({"HITTypeId": "3NOSUCHHITTYPE000000000000000", "Notification":
                     _notification(["AssignmentSubmitted"])}, None)]),
    "SendTestEventNotification": (
        lambda w: {"Notification": _notification(["AssignmentSubmitted"]), "TestEventType": "AssignmentSubmitted"},
        NO_ERRORS),
    # -- qualifications -------------------------------------------------------------------------
    "CreateQualificationType": (
        lambda w: {"Name": "Conformance created", "Description": "A custom qualification.",
                   "QualificationTypeStatus": "Active", "AutoGranted": True, "AutoGrantedValue": 1},
        lambda w: [({"Name": "Conformance created", "Description": "The same name again.",
                     "QualificationTypeStatus": "Active"}, None)]),
    "GetQualificationType": (lambda w: {"QualificationTypeId": w.qualification_type("Conformance get")},
                             lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000"}, None)]),
    "UpdateQualificationType": (
        lambda w: {"QualificationTypeId": w.qualification_type("Conformance update"), "Description": "Changed."},
        lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000", "Description": "x"}, None)]),
    "DeleteQualificationType": (lambda w: {"QualificationTypeId": w.qualification_type("Conformance delete")},
                                lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000"}, None)]),
    "ListQualificationTypes": (lambda w: (w.qualification_type("Conformance list"),
                                          {"MustBeRequestable": False, "MustBeOwnedByCaller": True})[1], NO_ERRORS),
    "AssociateQualificationWithWorker": (
        lambda w: {"QualificationTypeId": w.qualification_type("Conformance associate"), "WorkerId": WORKER,
                   "IntegerValue": 90, "SendNotification": False},
        lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000", "WorkerId": WORKER}, None)]),
    "DisassociateQualificationFromWorker": (
        lambda w: {"QualificationTypeId": _granted(w, "Conformance disassociate"), "WorkerId": WORKER,
                   "Reason": "No longer needed"},
        lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000", "WorkerId": WORKER}, None)]),
    "GetQualificationScore": (
        lambda w: {"QualificationTypeId": _granted(w, "Conformance score"), "WorkerId": WORKER},
        lambda w: [({"QualificationTypeId": w.qualification_type("Conformance not granted"),
                     "WorkerId": OTHER_WORKER}, None)]),
    "ListWorkersWithQualificationType": (
        lambda w: {"QualificationTypeId": _granted(w, "Conformance workers"), "Status": "Granted"},
        lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000"}, None)]),
    "ListQualificationRequests": (lambda w: {"MaxResults": 10}, NO_ERRORS),
    "AcceptQualificationRequest": (lambda w: {"QualificationRequestId": w.qualification_request(), "IntegerValue": 1},
                                   lambda w: [({"QualificationRequestId": "3NOSUCHREQUEST"}, None)]),
    "RejectQualificationRequest": (lambda w: {"QualificationRequestId": w.qualification_request(), "Reason": "No"},
                                   lambda w: [({"QualificationRequestId": "3NOSUCHREQUEST"}, None)]),
    "ListHITsForQualificationType": (
        lambda w: {"QualificationTypeId": _required_by_a_hit(w)},
        lambda w: [({"QualificationTypeId": "3NOSUCHQUALIFICATION0000000000"}, None)]),
}


def _bonus_params(w: World, token: str | None) -> dict:
    _, assignment_id = w.submitted()
    w.mturk.approve_assignment(AssignmentId=assignment_id)
    params = {"WorkerId": WORKER, "AssignmentId": assignment_id, "BonusAmount": "0.25", "Reason": "Careful work"}
    return params | ({"UniqueRequestToken": token} if token else {})


def _bonus_hit(w: World) -> str:
    hit, assignment_id = w.submitted()
    w.mturk.approve_assignment(AssignmentId=assignment_id)
    w.mturk.send_bonus(WorkerId=WORKER, AssignmentId=assignment_id, BonusAmount="0.10", Reason="Thanks")
    return hit["HITId"]


def _granted(w: World, name: str) -> str:
    qid = w.qualification_type(name)
    w.mturk.associate_qualification_with_worker(QualificationTypeId=qid, WorkerId=WORKER, IntegerValue=1,
                                                SendNotification=False)
    return qid


def _required_by_a_hit(w: World) -> str:
    qid = w.qualification_type("Conformance required")
    w.hit(QualificationRequirements=[{"QualificationTypeId": qid, "Comparator": "Exists"}])
    return qid


def _notification(events: list[str]) -> dict:
    return {"Destination": "https://sqs.us-east-1.amazonaws.com/123456789012/annotate-conformance",
            "Transport": "SQS", "Version": "2006-05-05", "EventTypes": events}


def _file_upload(w: World) -> dict:
    """A submitted assignment whose answer is an uploaded file (a QuestionForm's FileUploadAnswer)."""
    hit = w.hit(MaxAssignments=1, Question=FILE_UPLOAD_FORM)
    status, _, body = http("POST", w.url + "/worker/accept", {"hitId": hit["HITId"], "workerId": WORKER},
                           {"Accept": "application/json"})
    assert status == 303, body
    assignment_id = json.loads(body)["assignmentId"]
    boundary = "conformance"
    payload = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"assignmentId\"\r\n\r\n{assignment_id}\r\n"
               f"--{boundary}\r\nContent-Disposition: form-data; name=\"photo\"; filename=\"cat.png\"\r\n"
               f"Content-Type: image/png\r\n\r\nnot really a png\r\n--{boundary}--\r\n").encode()
    # Posted where the task page's form posts (a QuestionForm's page is the marketplace's own).
    status, _, page = http("GET", w.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit['HITId']}")
    assert status == 200, page
    action = parse_forms(page)[0]["action"]
    status, _, body = http("POST", w.url + action, body=payload,
                           headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200, body
    return {"AssignmentId": assignment_id, "QuestionIdentifier": "photo"}


# ------------------------------------------------------------------------------ the suite
def _snake(op: str) -> str:
    return xform_name(op)


def _moto_sqs():
    """SQS for the notification operations: moto, in this process (the marketplace delivers there)."""
    from moto import mock_aws

    mock = mock_aws()
    mock.start()
    boto3.client("sqs", region_name="us-east-1").create_queue(QueueName="annotate-conformance")
    return mock


@pytest.mark.parametrize("operation", OPERATION_NAMES)
def test_operation(world: World, operation: str):
    assert operation in CASES, f"{operation} is in botocore's model of MTurk but has no conformance case here"
    happy, errors = CASES[operation]
    mock = _moto_sqs() if operation in ("UpdateNotificationSettings", "SendTestEventNotification") else None
    try:
        method = getattr(world.mturk, _snake(operation))
        params = happy(world)
        parsed = method(**params)
        status, content = world.raw[operation]
        assert status == 200
        output = MODEL.operation_model(operation).output_shape
        assert shape_problems(output, json.loads(content or b"{}")) == []
        assert shape_problems(output, parsed, raw=False) == []

        documented = {shape.name for shape in MODEL.operation_model(operation).error_shapes}
        assert documented == {"RequestError", "ServiceFault"}
        for bad, turk_code in errors(world):
            with pytest.raises(ClientError) as info:
                method(**bad)
            response = info.value.response
            assert response["Error"]["Code"] == "RequestError", (bad, response["Error"])
            assert response["ResponseMetadata"]["HTTPStatusCode"] == 400
            got = json.loads(world.raw[operation][1])
            assert got["TurkErrorCode"].startswith("AWS.MechanicalTurk."), got
            if turk_code:
                assert got["TurkErrorCode"] == turk_code
        # The happy call's own parameters: the injected fault answers before any state is read, and
        # building fresh ones (a new qualification type of the same name, …) could fail on its own.
        world.server.inject_fault(operation, "ServiceFault")
        with pytest.raises(ClientError) as info:
            method(**params)
        assert info.value.response["Error"]["Code"] == "ServiceFault"
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 500
    finally:
        if mock is not None:
            mock.stop()


def test_every_case_is_an_operation_of_the_model():
    assert set(CASES) - set(OPERATION_NAMES) == set()


def test_the_marketplace_dispatches_exactly_the_models_operations():
    """Every operation of botocore's mturk model, and nothing else: a new one fails the suite."""
    assert set(OPERATIONS) == set(OPERATION_NAMES)


# ------------------------------------------------------------------------------ the protocol's own errors
def test_unknown_operation_is_a_well_formed_json_1_1_error(world: World):
    """An unknown target: HTTP 400 UnknownOperationException, as AWS JSON 1.1 services answer."""
    status, headers, body = http("POST", world.url + "/", body=b"{}", headers=signed(world.url, "NoSuchOperation"))
    assert status == 400
    assert headers["Content-Type"] == "application/x-amz-json-1.1" and headers.get("x-amzn-RequestId")
    got = json.loads(body)
    assert got["__type"] == "UnknownOperationException" and "NoSuchOperation" in got["Message"]
    assert "TurkErrorCode" not in got


def test_unsigned_request_is_refused_as_aws_does(world: World):
    status, _, body = http("POST", world.url + "/", body=b"{}",
                           headers={"X-Amz-Target": "MTurkRequesterServiceV20170117.GetAccountBalance",
                                    "Content-Type": "application/x-amz-json-1.1"})
    assert status == 400 and json.loads(body)["__type"] == "MissingAuthenticationTokenException"
    headers = signed(world.url, "GetAccountBalance")
    headers["Authorization"] = "AWS4-HMAC-SHA256 Signature=abc"
    status, _, body = http("POST", world.url + "/", body=b"{}", headers=headers)
    assert status == 400 and json.loads(body)["__type"] == "IncompleteSignatureException"


def test_a_region_other_than_us_east_1_is_refused(world: World):
    for region in ("us-west-2", "eu-west-1"):
        elsewhere = boto3.client("mturk", endpoint_url=world.url, region_name=region, aws_access_key_id="x",
                                 aws_secret_access_key="x")
        with pytest.raises(ClientError) as info:
            elsewhere.get_account_balance()
        error = info.value.response["Error"]
        assert error["Code"] == "InvalidSignatureException"
        assert error["Message"] == f"Credential should be scoped to a valid region, not '{region}'. "
        assert info.value.response["ResponseMetadata"]["HTTPStatusCode"] == 400
    status, _, body = http("POST", world.url + "/", body=b"{}",
                           headers=signed(world.url, "GetAccountBalance", service="s3"))
    assert status == 400 and json.loads(body)["__type"] == "InvalidSignatureException"
    # Any keys sign: the emulator knows no secrets.
    assert client(world.url).get_account_balance()["AvailableBalance"]
