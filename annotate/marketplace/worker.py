"""The worker side of the marketplace, as a worker sees MTurk: HIT list, preview, accept, task,
externalSubmit. Plain HTML pages (JSON on request, for the simulated crowd).

Everything that came from a requester or a worker is HTML-escaped wherever it is shown.
"""

from __future__ import annotations

import json
import logging
import xml.etree.ElementTree as ET
from email.parser import BytesParser
from email.policy import HTTP
from html import escape
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from annotate.marketplace.models import HTML_QUESTION_NS, Marketplace, WorkerError

PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_LISTING = 1000
log = logging.getLogger("annotate.marketplace")

Response = tuple[int, dict[str, str], bytes]


def parse_form(content_type: str, body: bytes) -> list[tuple[str, str]]:
    """Form fields in order (repeated names kept), from urlencoded or multipart bodies."""
    if content_type.lower().startswith("multipart/form-data"):
        message = BytesParser(policy=HTTP).parsebytes(
            b"Content-Type: " + content_type.encode("latin-1") + b"\r\n\r\n" + body)
        fields = []
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if name is None:
                continue
            payload = part.get_payload(decode=True) or b""
            fields.append((name, payload.decode(part.get_content_charset() or "utf-8", errors="replace")))
        return fields
    return parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True)


def _page(title: str, body: str, status: int = 200) -> Response:
    html = (f"<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>{escape(title)}</title>"
            f"<style>body{{font-family:sans-serif;max-width:60em;margin:1em auto}}"
            f"table{{border-collapse:collapse}}td,th{{padding:.2em .6em;border-bottom:1px solid #ddd}}</style>"
            f"</head><body><h1>{escape(title)}</h1>{body}"
            f"<p><a href=\"/worker/\">All available HITs</a></p></body></html>")
    return status, {"Content-Type": "text/html; charset=utf-8"}, html.encode("utf-8")


def _json(obj: Any, status: int = 200, extra: Mapping[str, str] | None = None) -> Response:
    headers = {"Content-Type": "application/json"}
    headers.update(extra or {})
    return status, headers, json.dumps(obj).encode("utf-8")


def _error(exc: WorkerError, wants_json: bool) -> Response:
    if wants_json:
        return _json({"error": exc.code, "message": exc.message}, exc.http_status)
    return _page("Sorry", f"<p class=\"error\" data-code=\"{escape(exc.code)}\">{escape(exc.message)}</p>",
                 exc.http_status)


def _question_html(question: str) -> str | None:
    root = ET.fromstring(question)
    node = root.find(f"{{{HTML_QUESTION_NS}}}HTMLContent")
    return node.text if node is not None else None


def _external_url(question: str) -> str | None:
    root = ET.fromstring(question)
    for node in root:
        if node.tag.endswith("}ExternalURL"):
            return (node.text or "").strip()
    return None


def _with_params(url: str, params: Sequence[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


class WorkerSite:
    def __init__(self, backend: Marketplace):
        self.backend = backend

    def handle(self, method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]],
               headers: Mapping[str, str], base_url: str) -> Response | None:
        """Route one request; None when the path is not a worker page."""
        wants_json = "application/json" in (headers.get("Accept") or "") or dict(query).get("format") == "json"
        q = dict(query)
        try:
            if method == "GET" and path in ("/", "/worker", "/worker/"):
                return self.index(q.get("workerId"), q.get("format") == "json" or wants_json,
                                  q.get("after"), q.get("limit"))
            if method == "GET" and path == "/worker/preview":
                return self.preview(q.get("hitId", ""))
            if method == "POST" and path == "/worker/accept":
                f = dict(form)
                return self.accept(f.get("hitId", ""), f.get("workerId", ""), base_url, wants_json)
            if method == "POST" and path == "/worker/return":
                f = dict(form)
                return self.return_assignment(f.get("assignmentId", ""), f.get("workerId", ""),
                                              f.get("reason") or None, wants_json)
            if method == "GET" and path == "/worker/task":
                return self.task(query)
            if method in ("GET", "POST") and path == "/mturk/externalSubmit":
                return self.external_submit(form if method == "POST" else query, wants_json)
            if method == "GET" and path == "/_stats":
                return _json(self.backend.stats())
        except WorkerError as exc:
            return _error(exc, wants_json)
        return None

    def index(self, worker_id: str | None, as_json: bool, after: str | None = None,
              limit: str | None = None) -> Response:
        """The HITs on offer, oldest first, a page at a time (`limit`, at most 1000; `after`: the
        last HIT id of the previous page). JSON carries `next` when another page follows."""
        if limit is None:
            size = MAX_LISTING
        elif limit.isdigit() and 1 <= int(limit) <= MAX_LISTING:
            size = int(limit)
        else:
            raise WorkerError(400, f"limit must be a whole number from 1 to {MAX_LISTING}, not {limit!r}.",
                              "InvalidLimit")
        # One more than asked tells whether another page follows without a second query.
        hits = self.backend.available_hits(worker_id, size + 1, after or None)
        more = len(hits) > size
        hits = hits[:size]
        if as_json:
            page: dict[str, Any] = {"hits": hits}
            if more:
                page["next"] = hits[-1]["hitId"]
            return _json(page)
        rows = "".join(
            f"<tr><td><a href=\"/worker/preview?hitId={escape(h['hitId'])}\">{escape(h['title'])}</a></td>"
            f"<td>${escape(h['reward'])}</td><td>{h['assignmentsAvailable']}</td></tr>" for h in hits)
        body = ("<table><tr><th>Title</th><th>Reward</th><th>Assignments available</th></tr>" + rows + "</table>"
                if hits else "<p>No HITs are available right now.</p>")
        if more:
            params = [("after", hits[-1]["hitId"]), ("limit", str(size))] + ([("workerId", worker_id)] if worker_id else [])
            body += f"<p><a rel=\"next\" href=\"{escape('/worker/?' + urlencode(params))}\">More HITs</a></p>"
        return _page("Available HITs", body)

    def preview(self, hit_id: str) -> Response:
        hit = self.backend.hit_for_worker(hit_id)
        frame = escape("/worker/task?" + urlencode({"assignmentId": PREVIEW_ASSIGNMENT_ID, "hitId": hit_id}))
        body = (f"<p>{escape(hit['description'])}</p><p>Reward: ${escape(hit['reward'])} &middot; "
                f"Assignments available: {hit['assignmentsAvailable']}</p>"
                f"<form method=\"post\" action=\"/worker/accept\"><input type=\"hidden\" name=\"hitId\" "
                f"value=\"{escape(hit_id)}\"><label>Worker ID <input name=\"workerId\" required "
                f"pattern=\"A[A-Z0-9]+\"></label> <button type=\"submit\">Accept</button></form>"
                f"<iframe src=\"{frame}\" style=\"width:100%;height:600px\"></iframe>")
        return _page(hit["title"], body)

    def accept(self, hit_id: str, worker_id: str, base_url: str, wants_json: bool) -> Response:
        got = self.backend.accept(hit_id, worker_id)
        location = "/worker/task?" + urlencode({"assignmentId": got["assignmentId"], "hitId": hit_id,
                                                "workerId": worker_id, "turkSubmitTo": base_url})
        if wants_json:
            return _json({**got, "location": location}, 303, {"Location": location})
        return 303, {"Location": location, "Content-Type": "text/html; charset=utf-8"}, \
            f"<a href=\"{escape(location)}\">Continue to the task</a>".encode("utf-8")

    def return_assignment(self, assignment_id: str, worker_id: str, reason: str | None,
                          wants_json: bool) -> Response:
        """A worker returns an accepted HIT (MTurk's Return button): the slot is offered again."""
        done = self.backend.return_assignment(assignment_id, worker_id, reason[:2000] if reason else None)
        # Said at once, where `marketplace serve` prints: a HIT nobody can do should not wait for Ctrl-C.
        log.warning("assignment %s of HIT %s returned by worker %s%s", assignment_id, done["hitId"], worker_id,
                    f": {reason}" if reason else "")
        if wants_json:
            return _json(done)
        return _page("Returned", f"<p>You returned assignment {escape(assignment_id)}; the HIT is offered to "
                                 f"other workers again.</p>")

    def task(self, query: list[tuple[str, str]]) -> Response:
        q = dict(query)
        assignment_id = q.get("assignmentId", "")
        if assignment_id == PREVIEW_ASSIGNMENT_ID:
            question = self.backend.hit_for_worker(q.get("hitId", ""))["question"]
        else:
            held = self.backend.task(assignment_id)
            if q.get("hitId") and q["hitId"] != held["hitId"]:
                raise WorkerError(400, "This assignment belongs to another HIT.", "HITMismatch")
            question = held["question"]
        html = _question_html(question)
        if html is not None:
            # MTurk shows the HTMLContent in an iframe with these very query parameters; serving it
            # as the page itself keeps the task's relative form actions working.
            return 200, {"Content-Type": "text/html; charset=utf-8"}, html.encode("utf-8")
        url = _external_url(question)
        if url is None:
            raise WorkerError(500, "This HIT's question cannot be shown.", "UnsupportedQuestion")
        return 302, {"Location": _with_params(url, query), "Content-Type": "text/plain"}, b""

    def external_submit(self, fields: list[tuple[str, str]], wants_json: bool) -> Response:
        assignment_ids = [v for k, v in fields if k == "assignmentId"]
        if not assignment_ids or not assignment_ids[0] or assignment_ids[0] == PREVIEW_ASSIGNMENT_ID:
            raise WorkerError(400, "The form must carry the assignmentId of an accepted assignment "
                                   "(accept the HIT before submitting).", "MissingAssignmentId")
        answers = [(k, v) for k, v in fields if k != "assignmentId"]
        done = self.backend.submit(assignment_ids[0], answers)
        if wants_json:
            return _json({"assignmentId": done["assignmentId"], "hitId": done["hitId"], "status": "Submitted"})
        rows = "".join(f"<tr><td>{escape(k)}</td><td>{escape(v)}</td></tr>" for k, v in answers)
        return _page("Thank you", f"<p>Your work on assignment {escape(done['assignmentId'])} was submitted.</p>"
                                  f"<table><tr><th>Field</th><th>Your answer</th></tr>{rows}</table>")
