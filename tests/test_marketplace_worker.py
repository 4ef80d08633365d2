"""The worker side: listing, preview, accept, task, externalSubmit, and escaping."""

from __future__ import annotations

import html
import json
import re
import urllib.parse

import pytest
from conftest_marketplace import (accept, client, external_question, hit_params, html_question, http,
                                  submit)
from processes import stop

from annotate.marketplace.models import answers_xml

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
WORKER = "AWORKERONE1234"


def test_submit_round_trip_gives_exact_answer_xml(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    fields = [("label", "cat"), ("note", 'a <b> & "c" \'d\''), ("tag", "x"), ("tag", "y"), ("city", "Zürich ☃"),
              ("empty", "")]
    assert submit(srv.url, assignment_id, fields) == 200
    answer = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
    assert answer == (
        '<?xml version="1.0" encoding="ASCII"?>'
        f'<QuestionFormAnswers xmlns="{NS}">'
        "<Answer><QuestionIdentifier>label</QuestionIdentifier><FreeText>cat</FreeText></Answer>"
        "<Answer><QuestionIdentifier>note</QuestionIdentifier>"
        "<FreeText>a &lt;b&gt; &amp; \"c\" 'd'</FreeText></Answer>"
        "<Answer><QuestionIdentifier>tag</QuestionIdentifier><FreeText>x</FreeText></Answer>"
        "<Answer><QuestionIdentifier>tag</QuestionIdentifier><FreeText>y</FreeText></Answer>"
        "<Answer><QuestionIdentifier>city</QuestionIdentifier><FreeText>Z&#252;rich &#9731;</FreeText></Answer>"
        "<Answer><QuestionIdentifier>empty</QuestionIdentifier><FreeText></FreeText></Answer>"
        "</QuestionFormAnswers>")
    answer.encode("ascii")  # as declared


def test_answer_xml_parses_back():
    import xmltodict

    parsed = xmltodict.parse(answers_xml([("q", "naïve <x>")]))
    assert parsed["QuestionFormAnswers"]["Answer"] == {"QuestionIdentifier": "q", "FreeText": "naïve <x>"}


def test_multipart_submission(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    boundary = "xyzBOUNDARY"
    parts = [("assignmentId", assignment_id), ("label", "dög")]
    body = "".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n{v}\r\n' for k, v in parts)
    body += f"--{boundary}--\r\n"
    status, _, _ = http("POST", srv.url + "/mturk/externalSubmit", body=body.encode("utf-8"),
                        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    assert status == 200
    answer = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
    assert "<QuestionIdentifier>label</QuestionIdentifier><FreeText>d&#246;g</FreeText>" in answer


def test_listing_html_and_json(srv, mturk):
    hit = mturk.create_hit(**hit_params(Title="<b>Bold</b> & co", RequesterAnnotation="b/1", MaxAssignments=2))["HIT"]
    for path in ("/", "/worker/", "/worker"):
        status, headers, page = http("GET", srv.url + path)
        assert status == 200 and headers["Content-Type"].startswith("text/html")
        assert "&lt;b&gt;Bold&lt;/b&gt; &amp; co" in page and "<b>Bold</b>" not in page
        assert f"/worker/preview?hitId={hit['HITId']}" in page and "$0.05" in page
    status, _, body = http("GET", srv.url + "/worker/?format=json")
    (listed,) = json.loads(body)["hits"]
    assert (listed["hitId"], listed["assignmentsAvailable"], listed["reward"]) == (hit["HITId"], 2, "0.05")
    assert "requesterAnnotation" not in listed  # the requester's own, never a worker's to see
    accept(srv.url, hit["HITId"], WORKER)
    _, _, body = http("GET", srv.url + f"/worker/?format=json&workerId={WORKER}")
    assert json.loads(body)["hits"] == []  # nothing left that this worker may take
    _, _, body = http("GET", srv.url + "/worker/?format=json")
    assert json.loads(body)["hits"][0]["assignmentsAvailable"] == 1


def test_listing_pages(srv, mturk):
    hit_ids = [mturk.create_hit(**hit_params(MaxAssignments=1))["HIT"]["HITId"] for _ in range(25)]
    pages, after = [], None
    while True:
        query = "format=json&limit=10" + (f"&after={after}" if after else "")
        status, _, body = http("GET", srv.url + "/worker/?" + query)
        assert status == 200
        page = json.loads(body)
        pages.append([h["hitId"] for h in page["hits"]])
        if len(pages) == 1:
            # Taking HITs of later pages while paging does not shift the pages (keyset, not offset).
            work_id = accept(srv.url, hit_ids[12], WORKER)
            assert submit(srv.url, work_id) == 200
        after = page.get("next")
        if after is None:
            break
    assert pages == [hit_ids[:10], hit_ids[10:12] + hit_ids[13:21], hit_ids[21:]]
    _, _, body = http("GET", srv.url + f"/worker/?format=json&limit=5&workerId={WORKER}")
    assert [h["hitId"] for h in json.loads(body)["hits"]] == hit_ids[:5]
    # people page through HIT groups instead (tests/test_worker_site.py): these 25 HITs are one group
    status, _, page = http("GET", srv.url + "/worker/?limit=10")
    assert status == 200 and page.count("<tr data-hit-type=") == 1 and 'rel="next"' not in page
    for bad in ("limit=0", "limit=1001", "limit=ten", "after=3NOSUCHHIT"):
        status, _, body = http("GET", srv.url + f"/worker/?format=json&{bad}")
        assert status == 400, bad
        assert json.loads(body)["error"] in ("InvalidLimit", "HITNotFound")


def test_preview_and_preview_task(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    status, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}")
    assert status == 200
    assert 'action="/worker/accept"' in page and "ASSIGNMENT_ID_NOT_AVAILABLE" in page and "Accept" in page
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId={hit_id}")
    assert status == 200 and 'name="label" value="dog"' in page
    status, _, page = http("GET", srv.url + "/worker/preview?hitId=3NOPE")
    assert status == 404


def test_accept_redirects_to_task_with_mturk_parameters(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    status, headers, _ = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": WORKER})
    assert status == 303
    location = urllib.parse.urlsplit(headers["Location"])
    params = dict(urllib.parse.parse_qsl(location.query))
    assert location.path == "/worker/task"
    assert params["hitId"] == hit_id and params["workerId"] == WORKER and params["turkSubmitTo"] == srv.url
    assert len(params["assignmentId"]) == 30
    status, headers, page = http("GET", srv.url + headers["Location"])
    assert status == 200 and page.startswith("<!DOCTYPE html>") and 'action="/mturk/externalSubmit"' in page
    got = mturk.get_hit(HITId=hit_id)["HIT"]
    assert (got["NumberOfAssignmentsPending"], got["NumberOfAssignmentsAvailable"]) == (1, 2)


@pytest.mark.parametrize("as_json", [True, False])
def test_accept_refusals(srv, mturk, as_json):
    headers = {"Accept": "application/json"} if as_json else {}
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=1))["HIT"]["HITId"]

    def try_accept(worker):
        return http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": worker}, headers)

    assert try_accept("not-a-worker")[0] == 400
    accept(srv.url, hit_id, WORKER)
    status, _, body = try_accept(WORKER)  # MTurk never gives one worker two assignments of a HIT
    assert status == 409
    status, _, body = try_accept("ASECONDWORKER1")
    assert status == 410
    if as_json:
        assert json.loads(body)["error"] == "NoAssignmentsAvailable"
    else:
        assert "no more assignments" in body
    mturk.create_worker_block(WorkerId="ABLOCKED123", Reason="x")
    assert try_accept("ABLOCKED123")[0] == 403


def test_submit_refusals(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(AssignmentDurationInSeconds=60))["HIT"]["HITId"]
    status, _, page = http("POST", srv.url + "/mturk/externalSubmit", [("label", "cat")])
    assert status == 400
    assert http("POST", srv.url + "/mturk/externalSubmit",
                [("assignmentId", "ASSIGNMENT_ID_NOT_AVAILABLE"), ("label", "cat")])[0] == 400
    assert submit(srv.url, "3NOSUCHASSIGNMENT") == 404
    assignment_id = accept(srv.url, hit_id, WORKER)
    assert submit(srv.url, assignment_id) == 200
    assert submit(srv.url, assignment_id) == 409
    late = accept(srv.url, hit_id, "ALATEWORKER1")
    srv.clock.advance(61)
    assert submit(srv.url, late) == 410


def test_thank_you_page_escapes_what_the_worker_sent(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    status, _, page = http("POST", srv.url + "/mturk/externalSubmit",
                           [("assignmentId", assignment_id), ("<i>field</i>", "<script>alert(1)</script>")])
    assert status == 200 and "Thank you" in page and 'href="/worker/"' in page
    assert "<script>alert(1)</script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "<i>field</i>" not in page


def test_external_question_is_framed_with_parameters(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(Question=external_question("https://example.com/task?x=1")))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    status, headers, page = http("GET", srv.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit_id}"
                                                  f"&workerId={WORKER}&turkSubmitTo=http%3A%2F%2Fh")
    assert status == 200
    src = re.search(r'<iframe id="ExternalQuestionIFrame" src="([^"]+)" style="width:100%;height:400px', page)
    target = urllib.parse.urlsplit(html.unescape(src.group(1)))
    assert target.netloc == "example.com"
    assert dict(urllib.parse.parse_qsl(target.query)) == {"x": "1", "assignmentId": assignment_id, "hitId": hit_id,
                                                           "workerId": WORKER, "turkSubmitTo": "http://h"}


def test_get_submission_and_stats(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(Question=html_question("<form></form>")))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    query = urllib.parse.urlencode({"assignmentId": assignment_id, "answer": "yes"})
    assert http("GET", srv.url + "/mturk/externalSubmit?" + query)[0] == 200
    assert "<FreeText>yes</FreeText>" in mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
    stats = json.loads(http("GET", srv.url + "/_stats")[2])
    assert stats["api_calls"]["CreateHIT"] == 1 and stats["assignments"] == {"Submitted": 1}
    assert http("GET", srv.url + "/nowhere")[0] == 404


def test_cli_serve_prints_urls_and_serves(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    proc = subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(tmp_path), "marketplace", "serve",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        first = proc.stdout.readline()
        assert first.startswith("requester endpoint: http://127.0.0.1:"), first + proc.stderr.read()
        url = first.split(": ", 1)[1].strip()
        assert proc.stdout.readline().strip() == f"worker pages:       {url}/worker/"
        assert client(url).get_account_balance()["AvailableBalance"] == "10000.00"
        assert (tmp_path / "marketplace.db").exists()
    finally:
        code = stop(proc, signal.SIGINT, timeout=10)  # by pid, escalating to SIGKILL
    assert code == 0


def test_cli_gold_needs_simulated_crowd(tmp_path):
    from click.testing import CliRunner

    from annotate.cli import cli

    result = CliRunner().invoke(cli, ["--home", str(tmp_path), "marketplace", "serve", "--gold-from", str(tmp_path)])
    assert result.exit_code == 2 and "--gold-from needs --crowd simulated" in result.output
