"""Helpers shared by the marketplace tests (imported by them; pytest does not load this by itself)."""

from __future__ import annotations

import json
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from typing import Any

import boto3
from botocore.config import Config

HTML_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2011-11-11/HTMLQuestion.xsd"
EXTERNAL_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2006-07-14/ExternalQuestion.xsd"

RADIO_FORM = """<!DOCTYPE html>
<html><body>
<form name="mturk_form" method="post" id="mturk_form" action="/mturk/externalSubmit">
  <input type="hidden" value="" name="assignmentId" id="assignmentId">
  <p>Is this a cat, a dog or a bird?</p>
  <label><input type="radio" name="label" value="cat"> cat</label>
  <label><input type="radio" name="label" value="dog"> dog</label>
  <label><input type="radio" name="label" value="bird"> bird</label>
  <input type="submit" id="submitButton" value="Submit">
</form>
</body></html>"""


def html_question(html: str = RADIO_FORM, frame_height: int = 600) -> str:
    return (f'<HTMLQuestion xmlns="{HTML_NS}"><HTMLContent><![CDATA[{html}]]></HTMLContent>'
            f"<FrameHeight>{frame_height}</FrameHeight></HTMLQuestion>")


def external_question(url: str) -> str:
    return (f'<ExternalQuestion xmlns="{EXTERNAL_NS}"><ExternalURL>{url}</ExternalURL>'
            f"<FrameHeight>400</FrameHeight></ExternalQuestion>")


class FakeClock:
    """Epoch seconds that tests move forward; starts at the real time so datetimes look sane."""

    def __init__(self) -> None:
        self.now = time.time()
        self._lock = threading.Lock()

    def __call__(self) -> float:
        with self._lock:
            return self.now

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.now += seconds


def client(url: str, retries: bool = True):
    config = Config(retries={"total_max_attempts": 1 if not retries else 3, "mode": "standard"})
    return boto3.client("mturk", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", config=config)


def hit_params(**overrides: Any) -> dict[str, Any]:
    params = {"Title": "Label one picture", "Description": "Say what the picture shows.", "Reward": "0.05",
              "AssignmentDurationInSeconds": 600, "LifetimeInSeconds": 3600, "MaxAssignments": 3,
              "AutoApprovalDelayInSeconds": 86400, "Question": html_question()}
    params.update(overrides)
    return params


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


_opener = urllib.request.build_opener(NoRedirect)


def http(method: str, url: str, fields: list[tuple[str, str]] | dict | None = None,
         headers: dict[str, str] | None = None, body: bytes | None = None) -> tuple[int, dict[str, str], str]:
    """One request, redirects not followed; returns status, headers, text."""
    data = body
    hdrs = dict(headers or {})
    if fields is not None:
        data = urllib.parse.urlencode(fields).encode()
        hdrs.setdefault("Content-Type", "application/x-www-form-urlencoded")
    request = urllib.request.Request(url, data=data, headers=hdrs, method=method)
    try:
        with _opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode("utf-8")
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read().decode("utf-8")


def accept(url: str, hit_id: str, worker_id: str) -> str:
    """Accept as a worker; returns the assignment id."""
    status, headers, body = http("POST", url + "/worker/accept", {"hitId": hit_id, "workerId": worker_id},
                                 {"Accept": "application/json"})
    assert status == 303, body
    return json.loads(body)["assignmentId"]


def submit(url: str, assignment_id: str, fields: list[tuple[str, str]] | None = None) -> int:
    status, _, body = http("POST", url + "/mturk/externalSubmit",
                           [("assignmentId", assignment_id)] + list(fields or [("label", "cat")]))
    return status


def work(url: str, hit_id: str, worker_id: str, answer: str = "cat") -> str:
    """Accept and submit one assignment; returns its id."""
    assignment_id = accept(url, hit_id, worker_id)
    assert submit(url, assignment_id, [("label", answer)]) == 200
    return assignment_id


def signed(url: str, operation: str, body: bytes = b"{}", region: str = "us-east-1",
           service: str = "mturk-requester") -> dict[str, str]:
    """Headers of a requester call signed with SigV4 as boto3 signs it (for raw protocol checks)."""
    from botocore.auth import SigV4Auth
    from botocore.awsrequest import AWSRequest
    from botocore.credentials import Credentials

    request = AWSRequest("POST", url.rstrip("/") + "/", data=body,
                         headers={"X-Amz-Target": f"MTurkRequesterServiceV20170117.{operation}",
                                  "Content-Type": "application/x-amz-json-1.1"})
    SigV4Auth(Credentials("x", "x"), service, region).add_auth(request)
    return dict(request.headers.items())
