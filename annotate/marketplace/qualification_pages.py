"""Worker pages for qualifications and QuestionForms: the list of qualifications a worker can
request, requesting one, taking its test; QuestionForm HITs' task page and their submission
(with file uploads); the short-lived URLs GetFileUploadURL hands out; and the emulator's own
`POST /worker/profile`, where a (simulated) worker states the attributes MTurk keeps for them
(locale, adult, masters).

Pages are HTML, or JSON when asked (Accept: application/json or format=json), like worker.py.
"""

from __future__ import annotations

import json
from email.parser import BytesParser
from email.policy import HTTP
from html import escape
from typing import TYPE_CHECKING, Any, Mapping
from urllib.parse import urlencode

from annotate.marketplace import question_form
from annotate.marketplace.file_uploads import PATH as UPLOADS_PATH
from annotate.marketplace.models import WorkerError
from annotate.marketplace.question_form import Upload
from annotate.marketplace.secret import KEY_HEADER, key_matches
from annotate.marketplace.worker_page import page, worker_id_input

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

Response = tuple[int, dict[str, str], bytes]
SUBMIT_PATH = "/worker/question-form/submit"
PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"


def parse_body(content_type: str, body: bytes) -> tuple[list[tuple[str, str]], dict[str, Upload]]:
    """Form fields and uploaded files (multipart parts with a filename keep their bytes)."""
    if not content_type.lower().startswith("multipart/form-data"):
        from annotate.marketplace.worker import parse_form
        return parse_form(content_type, body), {}
    message = BytesParser(policy=HTTP).parsebytes(
        b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
    fields: list[tuple[str, str]] = []
    files: dict[str, Upload] = {}
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        if name is None:
            continue
        payload = part.get_payload(decode=True) or b""
        filename = part.get_param("filename", header="content-disposition")
        if filename is not None:
            files[name] = Upload(str(filename), payload)
        else:
            fields.append((name, payload.decode(part.get_content_charset() or "utf-8", errors="replace")))
    return fields, files


def _page(title: str, body: str, status: int = 200) -> Response:
    return page(title, body, status, (("/worker/", "All available HITs"), ("/worker/qualifications", "Qualifications")))


def _json(obj: Any, status: int = 200) -> Response:
    return status, {"Content-Type": "application/json"}, json.dumps(obj).encode("utf-8")


def requirement_list(described: list[dict[str, Any]], worker_id: str | None) -> str:
    """The qualifications a HIT asks for, with links to request those a worker can request."""
    items = []
    for d in described:
        values = ", ".join(str(v) for v in d["values"])
        link = ""
        if d["requestable"]:
            params = urlencode([("qualificationTypeId", d["qualificationTypeId"])] +
                               ([("workerId", worker_id)] if worker_id else []))
            link = f' <a href="/worker/qualifications?{escape(params)}">Request this qualification</a>'
        items.append(f"<li data-qualification=\"{escape(d['qualificationTypeId'])}\">{escape(d['name'])} "
                     f"{escape(d['comparator'])} {escape(values)}{link}</li>")
    return "<ul class=\"requirements\">" + "".join(items) + "</ul>"


class QualificationPages:
    def __init__(self, backend: "Marketplace", key: str | None = None):
        self.backend = backend
        self.quals = backend.qualifications
        self.key = key  # the marketplace's own simulated crowds send it: they are oracles, shown the AnswerKey

    def handle(self, method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]],
               headers: Mapping[str, str], body: bytes) -> Response | None:
        wants_json = "application/json" in (headers.get("Accept") or "") or dict(query).get("format") == "json"
        q = dict(query)
        try:
            if method == "GET" and path == "/worker/qualifications":
                return self.listing(q.get("workerId"), q.get("qualificationTypeId"), wants_json)
            if method == "POST" and path == "/worker/qualifications/request":
                f = dict(form)
                oracle = self.key is not None and key_matches(self.key, headers.get(KEY_HEADER))
                return self.request(f.get("qualificationTypeId", ""), f.get("workerId", ""), wants_json, oracle)
            if method == "POST" and path == "/worker/qualifications/test":
                fields, _ = parse_body(headers.get("Content-Type") or "", body)
                return self.submit_test(fields, wants_json)
            if method == "POST" and path == "/worker/profile":
                f = dict(form)
                got = self.quals.set_profile(f.get("workerId", ""), f.get("country", "US").upper(),
                                             f.get("subdivision") or None, f.get("adult") in ("1", "true", "on"),
                                             f.get("masters") in ("1", "true", "on"))
                return _json(got)
            if method in ("GET", "HEAD") and path.startswith(UPLOADS_PATH):
                return self.backend.file_uploads.serve(path[len(UPLOADS_PATH):])
            if method == "POST" and path == SUBMIT_PATH:
                fields, files = parse_body(headers.get("Content-Type") or "", body)
                return self.submit_question_form(fields, files, wants_json)
        except WorkerError as exc:
            if wants_json:
                return _json({"error": exc.code, "message": exc.message}, exc.http_status)
            return _page("Sorry", f"<p class=\"error\" data-code=\"{escape(exc.code)}\">{escape(exc.message)}</p>",
                         exc.http_status)
        return None

    # -- qualifications -----------------------------------------------------------------------------

    def listing(self, worker_id: str | None, only: str | None, as_json: bool) -> Response:
        types = self.quals.requestable(worker_id)
        if only:
            types = [t for t in types if t["qualificationTypeId"] == only]
        if as_json:
            return _json({"qualificationTypes": types})
        rows = []
        for t in types:
            score = "" if t.get("score") is None else f" (your score: {t['score']})"
            rows.append(
                f"<li data-qualification=\"{escape(t['qualificationTypeId'])}\"><strong>{escape(t['name'])}</strong>"
                f"{escape(score)}: {escape(t['description'] or '')}"
                f"<form method=\"post\" action=\"/worker/qualifications/request\">"
                f"<input type=\"hidden\" name=\"qualificationTypeId\" value=\"{escape(t['qualificationTypeId'])}\">"
                f"{worker_id_input(worker_id)} <button type=\"submit\">"
                f"{'Take the test' if t['hasTest'] else 'Request'}</button></form></li>")
        return _page("Qualifications", "<ul>" + "".join(rows) + "</ul>" if rows
                     else "<p>No qualifications can be requested right now.</p>")

    def _outcome(self, got: dict[str, Any], as_json: bool) -> Response:
        if as_json:
            return _json(got)
        if got["outcome"] == "Granted":
            text = f"You have been granted {got['name']} with a score of {got['value']}."
        elif got["outcome"] == "Pending":
            text = f"Your request for {got['name']} has been sent to the requester."
        else:
            text = f"Your answers did not earn {got['name']}."
        return _page(got["name"], f"<p class=\"outcome\" data-outcome=\"{escape(got['outcome'])}\">{escape(text)}</p>")

    def request(self, type_id: str, worker_id: str, as_json: bool, oracle: bool = False) -> Response:
        got = self.quals.request(type_id, worker_id)
        if got["outcome"] != "Test":
            return self._outcome(got, as_json)
        form = question_form.parse(got["test"])
        html = question_form.render(form, "/worker/qualifications/test",
                                    [("testId", got["testId"]), ("workerId", worker_id)])
        if as_json:
            shown = {"outcome": "Test", "testId": got["testId"], "deadline": got["deadline"], "form": html}
            if oracle:  # a simulated worker answers right with its accuracy, so it must know what is right
                shown["answerKey"] = got.get("answerKey")
            return _json(shown)
        return _page(f"Qualification test: {got['name']}", html)

    def submit_test(self, fields: list[tuple[str, str]], as_json: bool) -> Response:
        f = dict(fields)
        test_id, worker_id = f.get("testId", ""), f.get("workerId", "")
        test = self.quals.test_for(test_id, worker_id)
        form = question_form.parse(test["test"])
        answers, errors = question_form.collect(form, fields)
        if errors:
            return self._refused(form, "/worker/qualifications/test", [("testId", test_id), ("workerId", worker_id)],
                                 fields, errors, f"Qualification test: {test['name']}", as_json)
        return self._outcome(self.quals.submit_test(test_id, worker_id, answers), as_json)

    @staticmethod
    def _refused(form: question_form.QuestionForm, action: str, hidden: list[tuple[str, str]],
                 fields: list[tuple[str, str]], errors: dict[str, str], title: str, as_json: bool) -> Response:
        if as_json:
            return _json({"error": "InvalidAnswer", "errors": errors}, 400)
        values: dict[str, list[str]] = {}
        for k, v in fields:
            values.setdefault(k, []).append(v)
        return _page(title, question_form.render(form, action, hidden, values, errors), 400)

    # -- QuestionForm HITs ---------------------------------------------------------------------------

    @staticmethod
    def task_page(question: str, assignment_id: str, hit_id: str) -> Response:
        """A QuestionForm HIT's task page; in preview (no assignment) the form cannot be submitted."""
        form = question_form.parse(question)
        preview = assignment_id == PREVIEW_ASSIGNMENT_ID
        html = question_form.render(form, SUBMIT_PATH, [("assignmentId", assignment_id), ("hitId", hit_id)],
                                    submit_label=None if preview else "Submit")
        if preview:
            html = "<p><em>Preview: accept the HIT to answer.</em></p>" + html
        return 200, {"Content-Type": "text/html; charset=utf-8"}, (
            "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>Task</title></head><body>"
            + html + "</body></html>").encode("utf-8")

    def submit_question_form(self, fields: list[tuple[str, str]], files: dict[str, Upload],
                             as_json: bool) -> Response:
        f = dict(fields)
        assignment_id = f.get("assignmentId", "")
        held = self.backend.task(assignment_id)
        form = question_form.parse(held["question"])
        answers, errors = question_form.collect(form, fields, files)
        if errors:
            return self._refused(form, SUBMIT_PATH, [("assignmentId", assignment_id), ("hitId", held["hitId"])],
                                 fields, errors, "Task", as_json)
        uploads = self.backend.file_uploads

        def keep_files(conn, now) -> str:
            keys = {a["id"]: uploads.store(conn, assignment_id, a["id"], a["upload"], now)
                    for a in answers if "upload" in a}
            return question_form.answers_xml(answers, keys)

        done = self.backend.submit(assignment_id, [], answer_with=keep_files)
        if as_json:
            return _json({"assignmentId": done["assignmentId"], "hitId": done["hitId"], "status": "Submitted"})
        return _page("Thank you", f"<p>Your work on assignment {escape(done['assignmentId'])} was submitted.</p>")
