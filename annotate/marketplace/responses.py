"""MTurk's requester wire protocol: JSON 1.1 over `POST /`.

The request names its operation in `X-Amz-Target: MTurkRequesterServiceV20170117.<Operation>`.
Input is checked against botocore's own model of the service (required members, types, lengths,
patterns, enums) plus the ranges MTurk documents, so a bad call fails here as it would there.
Errors use MTurk's JSON shapes, so botocore raises the same ClientError codes:
RequestError / ServiceFault with a TurkErrorCode, ThrottlingException ("Rate exceeded"),
ParameterValidationError for malformed parameters.

Requests must be signed with AWS Signature Version 4 for us-east-1, as MTurk requires; the keys
are not checked (any key signs), but an unsigned request, or one scoped to another region or
service, gets the error AWS gives (see `authenticate`).

An operation the model does not have is answered as every AWS JSON 1.1 service answers an
unknown target: HTTP 400, `__type` UnknownOperationException. botocore has no modelled shape
for it (no AWS model lists it), so clients see a ClientError with that code, as with the real
service.
"""

from __future__ import annotations

import json
import re
import threading
import uuid
from datetime import datetime
from typing import Any, Callable

import botocore.session

from annotate.marketplace import bonuses, hit_types, notifications, review_policies, worker_messages
from annotate.marketplace.models import (Marketplace, MarketplaceError, ParameterValidationError, RequestError,
                                         ServiceFault, ThrottlingException)

TARGET_PREFIX = "MTurkRequesterServiceV20170117."
CONTENT_TYPE = "application/x-amz-json-1.1"
REGION = "us-east-1"
SIGNING_NAME = "mturk-requester"  # the service name in the credential scope (botocore's signingName)
_CREDENTIAL = re.compile(r"Credential=([^/,\s]+)/(\d{8})/([^/,\s]+)/([^/,\s]+)/aws4_request")

# Ranges MTurk documents but botocore's model does not carry.
RANGES = {
    "AssignmentDurationInSeconds": (30, 31536000),
    "LifetimeInSeconds": (30, 31536000),
    "AutoApprovalDelayInSeconds": (0, 2592000),
    "MaxAssignments": (1, 1000000),
    "NumberOfAdditionalAssignments": (1, 1000000),
    "MaxResults": (1, 100),
}
MAX_LENGTHS = {"Title": 128, "Description": 2000, "Keywords": 1000, "RequesterAnnotation": 255,
               "RequesterFeedback": 1024, "UniqueRequestToken": 64}
REQUIRED_NONEMPTY = ("Title", "Description")

_model_lock = threading.Lock()
_model = None


def service_model():
    """botocore's model of MTurk, loaded once."""
    global _model
    with _model_lock:
        if _model is None:
            _model = botocore.session.get_session().get_service_model("mturk")
        return _model


def _constraint(value: Any, path: str, text: str) -> ParameterValidationError:
    shown = value if isinstance(value, (int, float)) else repr(value)[:200]
    return ParameterValidationError(
        f"1 validation error detected: Value {shown} at '{path}' failed to satisfy constraint: {text}")


def _validate(shape, value: Any, path: str) -> None:
    kind = shape.type_name
    meta = shape.metadata
    if kind == "structure":
        if not isinstance(value, dict):
            raise _constraint(value, path, "Member must be a structure")
        for name in shape.required_members:
            if value.get(name) is None:
                raise ParameterValidationError(f"1 validation error detected: Value null at "
                                               f"'{path + '.' if path else ''}{name}' failed to satisfy "
                                               f"constraint: Member must not be null")
        for name, member in value.items():
            if name in shape.members and member is not None:
                _validate(shape.members[name], member, f"{path + '.' if path else ''}{name}")
    elif kind == "list":
        if not isinstance(value, list):
            raise _constraint(value, path, "Member must be a list")
        for i, item in enumerate(value):
            _validate(shape.member, item, f"{path}.{i + 1}")
    elif kind == "string":
        if not isinstance(value, str):
            raise _constraint(value, path, "Member must be a string")
        if "min" in meta and len(value) < meta["min"]:
            raise _constraint(value, path, f"Member must have length greater than or equal to {meta['min']}")
        if "max" in meta and len(value) > meta["max"]:
            raise _constraint(value, path, f"Member must have length less than or equal to {meta['max']}")
        if "pattern" in meta and not re.search(meta["pattern"], value):
            raise _constraint(value, path, f"Member must satisfy regular expression pattern: {meta['pattern']}")
        if shape.enum and value not in shape.enum:
            raise _constraint(value, path, f"Member must satisfy enum value set: [{', '.join(shape.enum)}]")
    elif kind in ("integer", "long"):
        if isinstance(value, bool) or not isinstance(value, int):
            raise _constraint(value, path, "Member must be an integer")
        if "min" in meta and value < meta["min"]:
            raise _constraint(value, path, f"Member must have value greater than or equal to {meta['min']}")
    elif kind == "boolean":
        if not isinstance(value, bool):
            raise _constraint(value, path, "Member must be a boolean")
    elif kind == "timestamp":
        if isinstance(value, bool) or not isinstance(value, (int, float, str)):
            raise _constraint(value, path, "Member must be a timestamp")


def _check_ranges(params: dict[str, Any]) -> None:
    for name, (low, high) in RANGES.items():
        if name in params and not low <= params[name] <= high:
            raise _constraint(params[name], name, f"Member must be between {low} and {high}")
    for name, most in MAX_LENGTHS.items():
        if isinstance(params.get(name), str) and len(params[name]) > most:
            raise _constraint(params[name], name, f"Member must have length less than or equal to {most}")
    for name in REQUIRED_NONEMPTY:
        if name in params and not params[name].strip():
            raise _constraint(params[name], name, "Member must not be empty")


def authenticate(headers: Any) -> MarketplaceError | None:
    """The error AWS answers a request whose SigV4 signature is missing or scoped wrongly; None if fine.

    The signature itself is not verified (the emulator knows no secret keys). As AWS:
    no Authorization header -> MissingAuthenticationTokenException; a header that is not a whole
    SigV4 one -> IncompleteSignatureException; a scope for another region or service ->
    InvalidSignatureException ("Credential should be scoped to a valid region, not 'eu-west-1'. ").
    All HTTP 400, as AWS JSON services answer them.
    """
    authorization = headers.get("Authorization")
    if not authorization:
        return AuthError("MissingAuthenticationTokenException", "Missing Authentication Token")
    if not authorization.startswith("AWS4-HMAC-SHA256 "):
        return AuthError("IncompleteSignatureException",
                         f"Unsupported Authorization scheme {authorization.split(' ')[0][:40]!r}: MTurk requires "
                         f"Signature Version 4 (AWS4-HMAC-SHA256).")
    found = _CREDENTIAL.search(authorization)
    missing = [part for part in ("Credential=", "SignedHeaders=", "Signature=") if part not in authorization]
    if found is None or missing:
        return AuthError("IncompleteSignatureException",
                         f"Authorization header requires {', '.join(missing) or 'a well-formed Credential'} "
                         f"parameter. Authorization=AWS4-HMAC-SHA256 ...")
    if not (headers.get("X-Amz-Date") or headers.get("Date")):
        return AuthError("IncompleteSignatureException",
                         "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.")
    _, _, region, service = found.groups()
    if region != REGION:
        return AuthError("InvalidSignatureException",
                         f"Credential should be scoped to a valid region, not '{region}'. ")
    if service != SIGNING_NAME:
        return AuthError("InvalidSignatureException",
                         f"Credential should be scoped to correct service: '{SIGNING_NAME}'. ")
    return None


class AuthError(MarketplaceError):
    """An AWS authentication error (not MTurk's own RequestError): HTTP 400 with its own __type."""

    def __init__(self, error_type: str, message: str):
        super().__init__(message)
        self.error_type = error_type


def _timestamp(value: Any) -> float:
    if isinstance(value, (int, float)):
        return float(value)
    try:
        return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()
    except ValueError:
        raise _constraint(value, "ExpireAt", "Member must be a timestamp") from None


OPERATIONS: dict[str, Callable[[Marketplace, dict[str, Any]], dict[str, Any]]] = {
    "GetAccountBalance": lambda m, p: m.get_account_balance(),
    "CreateHITType": lambda m, p: m.create_hit_type(p),
    "CreateHIT": lambda m, p: m.create_hit(p),
    "CreateHITWithHITType": lambda m, p: m.create_hit_with_hit_type(p),
    "GetHIT": lambda m, p: m.get_hit(p["HITId"]),
    "ListHITs": lambda m, p: m.list_hits(p.get("NextToken"), p.get("MaxResults", 10)),
    "ListReviewableHITs": lambda m, p: m.list_reviewable_hits(p.get("HITTypeId"), p.get("Status"),
                                                              p.get("NextToken"), p.get("MaxResults", 10)),
    "UpdateHITReviewStatus": lambda m, p: m.update_hit_review_status(p["HITId"], bool(p.get("Revert", False))),
    "ListAssignmentsForHIT": lambda m, p: m.list_assignments_for_hit(p["HITId"], p.get("AssignmentStatuses"),
                                                                     p.get("NextToken"), p.get("MaxResults", 10)),
    "GetAssignment": lambda m, p: m.get_assignment(p["AssignmentId"]),
    "ApproveAssignment": lambda m, p: m.approve_assignment(p["AssignmentId"], p.get("RequesterFeedback"),
                                                           bool(p.get("OverrideRejection", False))),
    "RejectAssignment": lambda m, p: m.reject_assignment(p["AssignmentId"], p["RequesterFeedback"]),
    "CreateAdditionalAssignmentsForHIT": lambda m, p: m.create_additional_assignments_for_hit(
        p["HITId"], p["NumberOfAdditionalAssignments"], p.get("UniqueRequestToken")),
    "UpdateExpirationForHIT": lambda m, p: m.update_expiration_for_hit(p["HITId"], _timestamp(p["ExpireAt"])),
    "DeleteHIT": lambda m, p: m.delete_hit(p["HITId"]),
    "CreateWorkerBlock": lambda m, p: m.create_worker_block(p["WorkerId"], p["Reason"]),
    "DeleteWorkerBlock": lambda m, p: m.delete_worker_block(p["WorkerId"], p.get("Reason")),
    "ListWorkerBlocks": lambda m, p: m.list_worker_blocks(p.get("NextToken"), p.get("MaxResults", 10)),
    "SendBonus": lambda m, p: m.send_bonus(p["WorkerId"], p["AssignmentId"], p["BonusAmount"], p["Reason"],
                                           p.get("UniqueRequestToken")),
    # Operations whose logic lives in a module of its own (see each module's docstring).
    "NotifyWorkers": lambda m, p: worker_messages.notify_workers(m, p),
    "ListBonusPayments": lambda m, p: bonuses.list_bonus_payments(m, p),
    "UpdateNotificationSettings": lambda m, p: notifications.update_notification_settings(m, p),
    "SendTestEventNotification": lambda m, p: notifications.send_test_event_notification(m, p),
    "UpdateHITTypeOfHIT": lambda m, p: hit_types.update_hit_type_of_hit(m, p),
    "ListReviewPolicyResultsForHIT": lambda m, p: review_policies.list_review_policy_results_for_hit(m, p),
    # Qualifications (qualifications.py) and uploaded files (file_uploads.py).
    "CreateQualificationType": lambda m, p: m.qualifications.create_qualification_type(p),
    "GetQualificationType": lambda m, p: m.qualifications.get_qualification_type(p["QualificationTypeId"]),
    "UpdateQualificationType": lambda m, p: m.qualifications.update_qualification_type(p),
    "DeleteQualificationType": lambda m, p: m.qualifications.delete_qualification_type(p["QualificationTypeId"]),
    "ListQualificationTypes": lambda m, p: m.qualifications.list_qualification_types(p),
    "AssociateQualificationWithWorker": lambda m, p: m.qualifications.associate_qualification_with_worker(p),
    "DisassociateQualificationFromWorker": lambda m, p: m.qualifications.disassociate_qualification_from_worker(p),
    "GetQualificationScore": lambda m, p: m.qualifications.get_qualification_score(p["QualificationTypeId"],
                                                                                   p["WorkerId"]),
    "ListWorkersWithQualificationType": lambda m, p: m.qualifications.list_workers_with_qualification_type(p),
    "ListQualificationRequests": lambda m, p: m.qualifications.list_qualification_requests(p),
    "AcceptQualificationRequest": lambda m, p: m.qualifications.accept_qualification_request(
        p["QualificationRequestId"], p.get("IntegerValue")),
    "RejectQualificationRequest": lambda m, p: m.qualifications.reject_qualification_request(
        p["QualificationRequestId"], p.get("Reason")),
    "ListHITsForQualificationType": lambda m, p: m.qualifications.list_hits_for_qualification_type(p),
    "GetFileUploadURL": lambda m, p: m.file_uploads.get_file_upload_url(p["AssignmentId"], p["QuestionIdentifier"]),
}


class MTurkResponses:
    """Turns one HTTP request into one backend call and its JSON answer."""

    def __init__(self, backend: Marketplace):
        self.backend = backend
        self._faults: list[tuple[str | None, str, int]] = []
        self._faults_lock = threading.Lock()

    def inject_fault(self, operation: str | None = None, error: str = "ServiceFault", times: int = 1) -> None:
        """Make the next `times` calls (of `operation`, or any) fail with ServiceFault or ThrottlingException."""
        if error not in ("ServiceFault", "ThrottlingException"):
            raise ValueError(f"cannot inject {error!r}")
        with self._faults_lock:
            self._faults.append((operation, error, times))

    def _injected(self, operation: str) -> MarketplaceError | None:
        with self._faults_lock:
            for i, (op, error, times) in enumerate(self._faults):
                if op in (None, operation):
                    if times <= 1:
                        del self._faults[i]
                    else:
                        self._faults[i] = (op, error, times - 1)
                    if error == "ThrottlingException":
                        return ThrottlingException()
                    return ServiceFault("Amazon Mechanical Turk is temporarily unable to process your request. "
                                        "Try your call again.", "AWS.MechanicalTurk.ServiceFault")
        return None

    def refuse_unsigned(self, headers: Any) -> tuple[int, dict[str, str], bytes] | None:
        """The error answer for a request not signed as MTurk requires, or None."""
        refused = authenticate(headers)
        if refused is None:
            return None
        return self._error_body(refused.http_status, refused.error_type, refused.message, None)

    def dispatch(self, target: str | None, body: bytes) -> tuple[int, dict[str, str], bytes]:
        operation = (target or "")[len(TARGET_PREFIX):] if (target or "").startswith(TARGET_PREFIX) else None
        if operation not in OPERATIONS:
            # What AWS JSON 1.1 services answer for a target they do not know; botocore reads
            # the code from __type (no model lists this error, so it stays a plain ClientError).
            return self._error_body(400, "UnknownOperationException", f"Unknown operation {target!r}", None)
        try:
            params = json.loads(body.decode("utf-8") or "{}") if body else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            return self._error_body(400, "SerializationException", f"Request body is not JSON: {exc}", None)
        try:
            injected = self._injected(operation)
            if injected is not None:
                raise injected
            _validate(service_model().operation_model(operation).input_shape, params, "")
            _check_ranges(params)
            result = OPERATIONS[operation](self.backend, params)
        except MarketplaceError as exc:
            self.backend.count_call(operation)
            message = exc.message
            if isinstance(exc, (RequestError, ServiceFault)):
                # MTurk appends the server time in milliseconds to its messages.
                message = f"{message} ({int(self.backend.now() * 1000)})"
            return self._error_body(exc.http_status, exc.error_type, message, exc.turk_error_code)
        return 200, self._headers(), json.dumps(result).encode("utf-8")

    @staticmethod
    def _headers() -> dict[str, str]:
        return {"Content-Type": CONTENT_TYPE, "x-amzn-RequestId": str(uuid.uuid4())}

    def error(self, status: int, error_type: str, message: str,
              turk_error_code: str | None) -> tuple[int, dict[str, str], bytes]:
        """An error answer in MTurk's JSON shape (also for faults the server injects)."""
        if turk_error_code:
            message = f"{message} ({int(self.backend.now() * 1000)})"
        return self._error_body(status, error_type, message, turk_error_code)

    def _error_body(self, status: int, error_type: str, message: str,
                    turk_error_code: str | None) -> tuple[int, dict[str, str], bytes]:
        body: dict[str, Any] = {"__type": error_type, "Message": message}
        if turk_error_code:
            body["TurkErrorCode"] = turk_error_code
        return status, self._headers(), json.dumps(body).encode("utf-8")
