"""QuestionForm: parsing, rendering, answers; QuestionForm HITs through boto3 and the worker
pages, FileUploadAnswer with GetFileUploadURL; AnswerKey scoring."""

from __future__ import annotations

import json
import urllib.request
import uuid
import xml.etree.ElementTree as ET

import pytest
import xmltodict
from botocore.exceptions import ClientError
from conftest_marketplace import accept, hit_params, http

from annotate.marketplace import answer_key, question_form
from annotate.marketplace.crowd import SimulatedCrowd, parse_forms
from annotate.marketplace.question_form import QuestionFormError, Upload

QF_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2017-11-06/QuestionForm.xsd"
AK_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/AnswerKey.xsd"
ANSWERS_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
WORKER = "AFORMWORKER1"


def qf(*questions: str, overview: str = "<Overview><Title>A form</Title><Text>Answer all.</Text></Overview>") -> str:
    return f'<QuestionForm xmlns="{QF_NS}">{overview}{"".join(questions)}</QuestionForm>'


def question(qid: str, spec: str, required: bool = True, content: str = "<Text>Question?</Text>") -> str:
    return (f"<Question><QuestionIdentifier>{qid}</QuestionIdentifier><IsRequired>{str(required).lower()}"
            f"</IsRequired><QuestionContent>{content}</QuestionContent>"
            f"<AnswerSpecification>{spec}</AnswerSpecification></Question>")


def selection(*ids: str, style: str = "radiobutton", max_count: int | None = None, other: bool = False) -> str:
    count = f"<MaxSelectionCount>{max_count}</MaxSelectionCount>" if max_count else ""
    items = "".join(f"<Selection><SelectionIdentifier>{i}</SelectionIdentifier><Text>Choice {i}</Text></Selection>"
                    for i in ids)
    extra = "<OtherSelection/>" if other else ""
    return (f"<SelectionAnswer><MinSelectionCount>1</MinSelectionCount>{count}"
            f"<StyleSuggestion>{style}</StyleSuggestion><Selections>{items}{extra}</Selections></SelectionAnswer>")


FREE_NUMBER = ('<FreeTextAnswer><Constraints><IsNumeric minValue="1" maxValue="10"/></Constraints>'
               "</FreeTextAnswer>")
FREE_CODE = ('<FreeTextAnswer><Constraints><Length minLength="2" maxLength="5"/>'
             '<AnswerFormatRegex regex="^[a-z]+$" errorText="Lowercase letters only."/></Constraints>'
             "<DefaultText>abc</DefaultText><NumberOfLinesSuggestion>3</NumberOfLinesSuggestion></FreeTextAnswer>")
UPLOAD = "<FileUploadAnswer><MaxFileSizeInBytes>1000</MaxFileSizeInBytes><MinFileSizeInBytes>1</MinFileSizeInBytes>" \
         "</FileUploadAnswer>"
FORM = qf(question("animal", selection("cat", "dog", "bird")),
          question("tags", selection("a", "b", "c", style="checkbox", max_count=3, other=True), required=False),
          question("count", FREE_NUMBER), question("code", FREE_CODE, required=False),
          question("photo", UPLOAD, required=False))


# -- parsing and rendering ----------------------------------------------------------------------

def test_parse_and_render_every_answer_kind():
    form = question_form.parse(FORM)
    assert [q.identifier for q in form.questions] == ["animal", "tags", "count", "code", "photo"]
    html = question_form.render(form, "/submit", [("assignmentId", "X")])
    forms = parse_forms(html)
    assert len(forms) == 1 and forms[0]["action"] == "/submit"
    kinds = {(c["kind"], c["name"]) for c in forms[0]["controls"]}
    assert {("radio", "animal"), ("checkbox", "tags"), ("text", "count"), ("textarea", "code"),
            ("hidden", "assignmentId"), ("text", "tags.other")} <= kinds
    assert 'enctype="multipart/form-data"' in html and 'type="file" name="photo"' in html
    assert "<h2>A form</h2>" in html and ">abc</textarea>" in html


def test_list_style_renders_a_select():
    form = question_form.parse(qf(question("q", selection("x", "y", style="dropdown"))))
    select = [c for c in parse_forms(question_form.render(form, "/s"))[0]["controls"] if c["kind"] == "select"]
    assert [o["value"] for o in select[0]["options"]] == ["", "x", "y"]


def test_formatted_content_is_sanitized():
    content = ("<FormattedContent><![CDATA[<p onclick='x()'>Hi <b>there</b><script>alert(1)</script>"
               "<a href='javascript:x'>j</a><img src='https://e.org/i.png'></p>]]></FormattedContent>")
    html = question_form.render(question_form.parse(qf(question("q", FREE_NUMBER, content=content))), "/s")
    assert "<p>Hi <b>there</b>" in html and "script" not in html and "alert" not in html
    assert "onclick" not in html and "javascript" not in html and '<img src="https://e.org/i.png">' in html


@pytest.mark.parametrize("document, problem", [
    (f'<QuestionForm xmlns="{QF_NS}"></QuestionForm>', "at least one Question"),
    (qf(question("q", FREE_NUMBER), question("q", FREE_NUMBER)), "used twice"),
    (qf(question("q", "")), "exactly one"),
    (qf(question("q", selection("a", "a"))), "used twice"),
    (qf(question("q", selection("a", style="wheel"))), "StyleSuggestion"),
    (qf(question("q", '<FreeTextAnswer><Constraints><AnswerFormatRegex regex="("/></Constraints></FreeTextAnswer>')),
     "not a regular expression"),
    ("<QuestionForm/>", "not a QuestionForm"),
    ("<QuestionForm", "not well-formed"),
])
def test_bad_documents(document, problem):
    with pytest.raises(QuestionFormError, match=problem):
        question_form.parse(document)


def test_collect_checks_constraints_and_builds_answer_xml():
    form = question_form.parse(FORM)
    answers, errors = question_form.collect(form, [("animal", "dog"), ("tags", "a"), ("tags", "__other__"),
                                                   ("tags.other", "zebra"), ("count", "7"), ("code", "xyz")],
                                            {"photo": Upload("p.png", b"\x89PNG\x00\xff")})
    assert errors == {}
    xml = question_form.answers_xml(answers, {"photo": "KEY1"})
    parsed = xmltodict.parse(xml)["QuestionFormAnswers"]["Answer"]
    assert parsed[0] == {"QuestionIdentifier": "animal", "SelectionIdentifier": "dog"}
    assert parsed[1] == {"QuestionIdentifier": "tags", "SelectionIdentifier": "a", "OtherSelectionText": "zebra"}
    assert parsed[2] == {"QuestionIdentifier": "count", "FreeText": "7"}
    assert parsed[4] == {"QuestionIdentifier": "photo", "UploadedFileSizeInBytes": "6", "UploadedFileKey": "KEY1"}
    _, errors = question_form.collect(form, [("animal", "cow"), ("count", "11"), ("code", "ABC")])
    assert errors == {"animal": "'cow' is not one of the choices.", "count": "The answer must be at most 10.",
                      "code": "Lowercase letters only."}
    _, errors = question_form.collect(form, [("count", "x"), ("code", "a")],
                                      {"photo": Upload("big.bin", b"0" * 1001)})
    assert set(errors) == {"animal", "count", "code", "photo"}


# -- AnswerKey scoring ------------------------------------------------------------------------------

TWO = qf(question("q1", selection("a", "b", "c")), question("q2", selection("x", "y", "z", style="checkbox")))


def key(mapping: str = "", default: str = "") -> answer_key.AnswerKey:
    return answer_key.parse(
        f'<AnswerKey xmlns="{AK_NS}"><Question><QuestionIdentifier>q1</QuestionIdentifier>'
        "<AnswerOption><SelectionIdentifier>a</SelectionIdentifier><AnswerScore>3</AnswerScore></AnswerOption>"
        "<AnswerOption><SelectionIdentifier>b</SelectionIdentifier><AnswerScore>1</AnswerScore></AnswerOption>"
        f"{default}</Question><Question><QuestionIdentifier>q2</QuestionIdentifier>"
        "<AnswerOption><SelectionIdentifier>x</SelectionIdentifier><SelectionIdentifier>y</SelectionIdentifier>"
        "<AnswerScore>2</AnswerScore></AnswerOption></Question>"
        f"{mapping}</AnswerKey>", question_form.parse(TWO))


def answered(q1: list[str], q2: list[str]) -> list[dict]:
    return [{"id": "q1", "selections": q1}, {"id": "q2", "selections": q2}]


def test_summed_score_and_exact_selection_match():
    assert answer_key.score(key(), answered(["a"], ["x", "y"])) == 5
    assert answer_key.score(key(), answered(["b"], ["y", "x"])) == 3
    assert answer_key.score(key(), answered(["c"], ["x", "y", "z"])) == 0  # x, y and no others
    assert answer_key.score(key(default="<DefaultScore>-1</DefaultScore>"), answered(["c"], ["x"])) == -1


def test_mappings():
    percentage = key("<QualificationValueMapping><PercentageMapping><MaximumSummedScore>5</MaximumSummedScore>"
                     "</PercentageMapping></QualificationValueMapping>")
    assert answer_key.score(percentage, answered(["b"], ["x", "y"])) == 60
    assert answer_key.score(percentage, answered(["b"], [])) == 20
    scale = key("<QualificationValueMapping><ScaleMapping><SummedScoreMultiplier>2.5</SummedScoreMultiplier>"
                "</ScaleMapping></QualificationValueMapping>")
    assert answer_key.score(scale, answered(["a"], [])) == 8  # 7.5 rounds half up
    ranges = key("<QualificationValueMapping><RangeMapping>"
                 "<SummedScoreRange><InclusiveLowerBound>0</InclusiveLowerBound><InclusiveUpperBound>2"
                 "</InclusiveUpperBound><QualificationValue>10</QualificationValue></SummedScoreRange>"
                 "<SummedScoreRange><InclusiveLowerBound>3</InclusiveLowerBound><InclusiveUpperBound>4"
                 "</InclusiveUpperBound><QualificationValue>50</QualificationValue></SummedScoreRange>"
                 "<OutOfRangeQualificationValue>99</OutOfRangeQualificationValue>"
                 "</RangeMapping></QualificationValueMapping>")
    assert [answer_key.score(ranges, answered(q1, q2)) for q1, q2 in
            [(["c"], []), (["a"], []), (["a"], ["x", "y"])]] == [10, 50, 99]


def test_answer_keys_must_fit_their_test():
    with pytest.raises(answer_key.AnswerKeyError, match="does not have"):
        answer_key.parse(f'<AnswerKey xmlns="{AK_NS}"><Question><QuestionIdentifier>q9</QuestionIdentifier>'
                         "</Question></AnswerKey>", question_form.parse(TWO))
    with pytest.raises(answer_key.AnswerKeyError, match="whole number"):
        answer_key.parse(f'<AnswerKey xmlns="{AK_NS}"><Question><QuestionIdentifier>q1</QuestionIdentifier>'
                         "<AnswerOption><SelectionIdentifier>a</SelectionIdentifier><AnswerScore>1.5"
                         "</AnswerScore></AnswerOption></Question></AnswerKey>")


# -- QuestionForm HITs over HTTP -------------------------------------------------------------------------


def multipart(fields: list[tuple[str, str]], files: dict[str, tuple[str, bytes]]) -> tuple[bytes, str]:
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields:
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    for name, (filename, content) in files.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"; filename="{filename}"\r\n'
                     f"Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    return b"".join(parts) + f"--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


def test_create_hit_accepts_question_form_and_refuses_a_bad_one(mturk):
    hit = mturk.create_hit(**hit_params(Question=FORM))["HIT"]
    assert hit["Question"] == FORM
    with pytest.raises(ClientError) as exc:
        mturk.create_hit(**hit_params(Question=qf(question("q", ""))))
    assert exc.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.XMLParseError"


def test_question_form_hit_with_file_upload_and_get_file_upload_url(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(Question=FORM))["HIT"]["HITId"]
    status, _, preview = http("GET", srv.url + f"/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId={hit_id}")
    assert status == 200 and 'name="animal"' in preview and 'type="submit"' not in preview
    assignment_id = accept(srv.url, hit_id, WORKER)
    status, _, page = http("GET", srv.url + f"/worker/task?assignmentId={assignment_id}&hitId={hit_id}")
    form = parse_forms(page)[0]
    assert any(c["name"] == "assignmentId" and c["value"] == assignment_id for c in form["controls"])
    photo = bytes(range(256)) * 3
    body, content_type = multipart([("assignmentId", assignment_id), ("animal", "bird"), ("count", "3")],
                                   {"photo": ("photo.bin", photo)})
    status, _, answer = http("POST", srv.url + form["action"], headers={"Content-Type": content_type,
                                                                        "Accept": "application/json"}, body=body)
    assert status == 200, answer
    xml = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
    answers = {a.findtext(f"{{{ANSWERS_NS}}}QuestionIdentifier"): a for a in ET.fromstring(xml)}
    assert answers["animal"].findtext(f"{{{ANSWERS_NS}}}SelectionIdentifier") == "bird"
    assert answers["count"].findtext(f"{{{ANSWERS_NS}}}FreeText") == "3"
    assert answers["photo"].findtext(f"{{{ANSWERS_NS}}}UploadedFileSizeInBytes") == str(len(photo))
    assert answers["photo"].findtext(f"{{{ANSWERS_NS}}}UploadedFileKey")

    url = mturk.get_file_upload_url(AssignmentId=assignment_id, QuestionIdentifier="photo")["FileUploadURL"]
    assert url.startswith(srv.url)
    with urllib.request.urlopen(url) as response:
        assert response.read() == photo
        assert 'filename="photo.bin"' in response.headers["Content-Disposition"]
    srv.clock.advance(61)  # the URL lives 60 seconds
    assert http("GET", url)[0] == 403

    for qid, code in (("animal", "AWS.MechanicalTurk.FileUploadDoesNotExist"),
                      ("nothere", "AWS.MechanicalTurk.FileUploadDoesNotExist")):
        with pytest.raises(ClientError) as exc:
            mturk.get_file_upload_url(AssignmentId=assignment_id, QuestionIdentifier=qid)
        assert exc.value.response["TurkErrorCode"] == code
    with pytest.raises(ClientError) as exc:
        mturk.get_file_upload_url(AssignmentId="3NOSUCHASSIGNMENT0000000000000", QuestionIdentifier="photo")
    assert exc.value.response["TurkErrorCode"] == "AWS.MechanicalTurk.AssignmentDoesNotExist"


def test_a_refused_submission_shows_the_errors_and_submits_nothing(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(Question=FORM))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    status, _, page = http("POST", srv.url + "/worker/question-form/submit",
                           [("assignmentId", assignment_id), ("animal", "cat"), ("count", "42")])
    assert status == 400 and "The answer must be at most 10." in page and 'value="42"' in page
    assert mturk.list_assignments_for_hit(HITId=hit_id)["NumResults"] == 0
    status, _, _ = http("POST", srv.url + "/worker/question-form/submit",
                        [("assignmentId", assignment_id), ("animal", "cat"), ("count", "4")])
    assert status == 200
    assert mturk.list_assignments_for_hit(HITId=hit_id)["NumResults"] == 1


def test_simulated_crowd_works_question_form_hits(srv, mturk):
    hit_id = mturk.create_hit(**hit_params(Question=qf(question("animal", selection("cat", "dog", "bird"))),
                                           RequesterAnnotation="item-1", MaxAssignments=3))["HIT"]["HITId"]
    crowd = SimulatedCrowd(srv.url, gold={"item-1": "dog"}, workers=3, accuracy=(1.0, 1.0), spammer_share=0)
    assert crowd.work() == 3
    for a in mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]:
        assert json.loads(json.dumps(xmltodict.parse(a["Answer"])))["QuestionFormAnswers"]["Answer"] == {
            "QuestionIdentifier": "animal", "SelectionIdentifier": "dog"}
