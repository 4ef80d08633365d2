"""The worker side of the marketplace, as a worker sees MTurk: HIT list, preview, accept, task,
externalSubmit, return, and the requester's messages (NotifyWorkers). Plain HTML pages (JSON on
request, for the simulated crowd).

Everything that came from a requester or a worker is HTML-escaped wherever it is shown. Workers
never see what is the requester's own (the RequesterAnnotation); worker ids are what MTurk issues.
"""

from __future__ import annotations

import json
import logging
import re
import unicodedata
import xml.etree.ElementTree as ET
from email.parser import BytesParser
from email.policy import HTTP
from html import escape
from typing import Any, Mapping, Sequence
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from annotate.marketplace import crowd_elements, worker_messages
from annotate.marketplace.models import HTML_QUESTION_NS, Marketplace, WorkerError, parse_question
from annotate.marketplace.origin import origin_of
from annotate.marketplace.qualification_pages import QualificationPages, requirement_list
from annotate.marketplace.question_form import is_question_form
from annotate.marketplace.secret import KEY_HEADER, key_matches
from annotate.marketplace.worker_page import favicon_response, worker_id_input
from annotate.marketplace.worker_page import page as _page

PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
MAX_LISTING = 1000
GROUPS_PER_PAGE = 20  # HIT groups per page of the HTML index
SUBMIT_PATH = "/mturk/externalSubmit"
# MTurk's own rule for a WorkerId (the botocore model's CustomerId: ^A[A-Z0-9]+$, at most 64).
# ASCII only: a Cyrillic or fullwidth look-alike is another worker to the eye of no one.
WORKER_ID = re.compile(r"A[A-Z0-9]{1,63}")


def check_worker_id(worker_id: str) -> str:
    """The worker id, or WorkerError 400 saying what is wrong with it."""
    if WORKER_ID.fullmatch(worker_id):
        return worker_id
    foreign = next((c for c in worker_id if not c.isascii() or not c.isprintable()), None)
    why = ""
    if foreign is not None:
        why = f" It contains U+{ord(foreign):04X} {unicodedata.name(foreign, 'a control character')}."
    raise WorkerError(400, f"{ascii(worker_id)} is not a worker id: MTurk's are A followed by 1 to 63 ASCII "
                           f"capital letters and digits, like A1B2C3D4E5F6G7.{why}", "InvalidWorkerId")
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


def _external(question: str) -> dict[str, Any] | None:
    """An ExternalQuestion's url and frame_height; None for other questions."""
    parsed = parse_question(question)
    return parsed if parsed["kind"] == "ExternalQuestion" else None


def _frame_height(pixels: int) -> str:
    # FrameHeight 0: MTurk sizes the frame to the worker's window.
    return f"{pixels}px" if pixels > 0 else "85vh"


def _with_params(url: str, params: Sequence[tuple[str, str]]) -> str:
    parts = urlsplit(url)
    query = parts.query + ("&" if parts.query else "") + urlencode(params)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, parts.fragment))


def time_allotted(seconds: int) -> str:
    """An assignment's duration as the worker site words it: "30 minutes", "1 hour 30 minutes"."""
    parts = []
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60), ("second", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count} {unit}{'' if count == 1 else 's'}")
    return " ".join(parts[:2]) or "0 seconds"


class WorkerSite:
    def __init__(self, backend: Marketplace, key: str | None = None):
        self.backend = backend
        self.key = key  # the marketplace's own crowds send it to learn each HIT's RequesterAnnotation
        self.qualification_pages = QualificationPages(backend, key)

    def handle(self, method: str, path: str, query: list[tuple[str, str]], form: list[tuple[str, str]],
               headers: Mapping[str, str], base_url: str, body: bytes = b"") -> Response | None:
        """Route one request; None when the path is not a worker page."""
        wants_json = "application/json" in (headers.get("Accept") or "") or dict(query).get("format") == "json"
        q = dict(query)
        answer = self.qualification_pages.handle(method, path, query, form, headers, body)
        if answer is not None:
            return answer
        try:
            if method == "GET" and path in ("/", "/worker", "/worker/"):
                requester = self.key is not None and key_matches(self.key, headers.get(KEY_HEADER))
                return self.index(q.get("workerId"), q.get("format") == "json" or wants_json,
                                  q.get("after"), q.get("limit"), requester=requester,
                                  page_number=q.get("page"))
            if method == "GET" and path == "/favicon.ico":
                return favicon_response()
            if method == "GET" and path == "/worker/preview":
                return self.preview(q.get("hitId", ""), q.get("workerId") or None)
            if method == "POST" and path == "/worker/accept":
                f = dict(form)
                return self.accept(f.get("hitId", ""), check_worker_id(f.get("workerId", "")), base_url, wants_json)
            if method == "POST" and path == "/worker/return":
                f = dict(form)
                return self.return_assignment(f.get("assignmentId", ""), f.get("workerId", ""),
                                              f.get("reason") or None, wants_json)
            if method == "GET" and path == "/worker/task":
                return self.task(query, base_url)
            if method == "GET" and path == "/worker/messages":
                return self.messages(q.get("workerId", ""), wants_json)
            if method in ("GET", "POST") and path == SUBMIT_PATH:
                return self.external_submit(form if method == "POST" else query, wants_json)
            if method == "GET" and path == crowd_elements.LOCAL_SCRIPT:
                return 200, {"Content-Type": "text/javascript; charset=utf-8",
                             "Cache-Control": "max-age=3600"}, crowd_elements.script()
            if method == "GET" and path == "/_stats":
                return _json(self.backend.stats())
        except WorkerError as exc:
            return _error(exc, wants_json)
        return None

    def refused(self, why: str, headers: Mapping[str, str], query: list[tuple[str, str]]) -> Response:
        """403 for a state-changing request from another site's page."""
        wants_json = "application/json" in (headers.get("Accept") or "") or dict(query).get("format") == "json"
        return _error(WorkerError(403, f"Refused: {why}. Use the marketplace's own pages.", "CrossOriginRequest"),
                      wants_json)

    def from_external_site(self, fields: list[tuple[str, str]], headers: Mapping[str, str]) -> bool:
        """Whether a cross-origin submission comes from the site of its HIT's ExternalQuestion (the
        page MTurk sent the worker to, which posts back to externalSubmit as MTurk's docs say)."""
        sender = origin_of(headers.get("Origin") or "") or origin_of(headers.get("Referer") or "")
        assignment_id = next((v for k, v in fields if k == "assignmentId"), "")
        if sender is None or not assignment_id or assignment_id == PREVIEW_ASSIGNMENT_ID:
            return False
        try:
            question = self.backend.task(assignment_id)["question"]
        except WorkerError:
            return False
        external = _external(question)
        return external is not None and origin_of(external["url"]) == sender

    def index(self, worker_id: str | None, as_json: bool, after: str | None = None,
              limit: str | None = None, requester: bool = False, page_number: str | None = None) -> Response:
        """The HITs on offer, oldest first. JSON (for crowds): one HIT a row, a page at a time
        (`limit`, at most 1000; `after`: the last HIT id of the previous page), with `next` when
        another page follows; each HIT's RequesterAnnotation only for the `requester` (a request
        with the marketplace's key). HTML (for people): one row per HIT type, as on MTurk's worker
        site, GROUPS_PER_PAGE to a page (`page_number`, from 1)."""
        if worker_id:
            check_worker_id(worker_id)
        if not as_json:
            return self._grouped_index(worker_id, page_number)
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
        if not requester:
            hits = [{k: v for k, v in h.items() if k != "requesterAnnotation"} for h in hits]
        listing: dict[str, Any] = {"hits": hits}
        if more:
            listing["next"] = hits[-1]["hitId"]
        return _json(listing)

    def hit_groups(self, worker_id: str | None) -> list[dict[str, Any]]:
        """The HITs on offer gathered by HIT type (MTurk's "HIT groups"), in the order their first
        HIT was posted; each with the oldest HIT a worker would take next."""
        groups: dict[str, dict[str, Any]] = {}
        after = None
        while True:
            hits = self.backend.available_hits(worker_id, MAX_LISTING, after)
            for h in hits:
                group = groups.setdefault(h["hitTypeId"], {
                    "hitTypeId": h["hitTypeId"], "title": h["title"], "description": h["description"],
                    "reward": h["reward"], "assignmentDurationInSeconds": h["assignmentDurationInSeconds"],
                    "nextHitId": h["hitId"], "hits": 0, "assignmentsAvailable": 0})
                group["hits"] += 1
                group["assignmentsAvailable"] += h["assignmentsAvailable"]
            if len(hits) < MAX_LISTING:
                return list(groups.values())
            after = hits[-1]["hitId"]

    def _grouped_index(self, worker_id: str | None, page_number: str | None) -> Response:
        if page_number is None or page_number == "":
            number = 1
        elif page_number.isdigit() and int(page_number) >= 1:
            number = int(page_number)
        else:
            raise WorkerError(400, f"page must be a whole number from 1, not {page_number!r}.", "InvalidPage")
        groups = self.hit_groups(worker_id)
        pages = max(1, -(-len(groups) // GROUPS_PER_PAGE))
        shown = groups[(number - 1) * GROUPS_PER_PAGE:number * GROUPS_PER_PAGE]
        who = [("workerId", worker_id)] if worker_id else []
        body = (f"<form method=\"get\" action=\"/worker/\" class=\"worker\">"
                f"{worker_id_input(worker_id, required=False)} "
                f"<button type=\"submit\">Show the HITs I can do</button></form>")
        if not groups:
            return _page("Available HITs", body + "<p>No HITs are available right now.</p>")
        rows = []
        for g in shown:
            preview = escape("/worker/preview?" + urlencode([("hitId", g["nextHitId"])] + who))
            action = f"<a class=\"button secondary\" href=\"{preview}\">Preview</a>"
            if worker_id:  # MTurk's "Accept & Work": take the group's next HIT straight away
                action += (f" <form class=\"inline\" method=\"post\" action=\"/worker/accept\">"
                           f"<input type=\"hidden\" name=\"hitId\" value=\"{escape(g['nextHitId'])}\">"
                           f"<input type=\"hidden\" name=\"workerId\" value=\"{escape(worker_id)}\">"
                           f"<button type=\"submit\">Accept &amp; Work</button></form>")
            rows.append(
                f"<tr data-hit-type=\"{escape(g['hitTypeId'])}\"><td><a href=\"{preview}\">{escape(g['title'])}</a>"
                f"<div class=\"desc\">{escape(g['description'] or '')}</div></td>"
                f"<td class=\"num\">${escape(g['reward'])}</td><td class=\"num\">{g['hits']}</td>"
                f"<td>{escape(time_allotted(g['assignmentDurationInSeconds']))}</td><td>{action}</td></tr>")
        first = (number - 1) * GROUPS_PER_PAGE + 1
        summary = (f"<p class=\"summary\">HIT groups {first}&ndash;{first + len(shown) - 1} of {len(groups)} "
                   f"({sum(g['hits'] for g in groups)} HITs)</p>" if shown else
                   f"<p>There is no page {number}; there are {pages}.</p>")
        links = []
        if number > 1:
            href = escape("/worker/?" + urlencode([("page", str(min(number - 1, pages)))] + who))
            links.append(f"<a rel=\"prev\" href=\"{href}\">&larr; Previous</a>")
        if pages > 1:
            links.append(f"<span>Page {number} of {pages}</span>")
        if number < pages:
            href = escape("/worker/?" + urlencode([("page", str(number + 1))] + who))
            links.append(f"<a rel=\"next\" href=\"{href}\">Next &rarr;</a>")
        table = ("<table><thead><tr><th>HIT group</th><th class=\"num\">Reward</th>"
                 "<th class=\"num\">HITs available</th>"
                 "<th>Time allotted</th><th></th></tr></thead><tbody>" + "".join(rows) + "</tbody></table>"
                 if shown else "")
        nav = f"<nav class=\"pages\">{''.join(links)}</nav>" if links else ""
        return _page("Available HITs", body + summary + table + nav)

    def preview(self, hit_id: str, worker_id: str | None = None) -> Response:
        hit = self.backend.hit_for_worker(hit_id, worker_id)
        # ActionsGuarded: a worker who may not preview sees why, not the HIT; one who may preview
        # but not accept sees it without the accept button (as on MTurk).
        actions = set(hit.get("actions", ("Discover", "Preview", "Accept")))
        if "Preview" not in actions:
            raise WorkerError(403, "You do not meet the Qualification requirements to preview this HIT.",
                              "QualificationRequirementNotMet")
        preview_params = [("assignmentId", PREVIEW_ASSIGNMENT_ID), ("hitId", hit_id)]
        question = parse_question(hit["question"])
        # MTurk frames the task FrameHeight pixels high (0: as high as the window), whatever its kind.
        height = _frame_height(question.get("frame_height", 0))
        if question["kind"] == "ExternalQuestion":  # MTurk frames the ExternalURL itself
            frame = escape(_with_params(question["url"], preview_params))
        else:
            frame = escape("/worker/task?" + urlencode(preview_params + ([("workerId", worker_id)] if worker_id else [])))
        accept = (f"<form method=\"post\" action=\"/worker/accept\"><input type=\"hidden\" name=\"hitId\" "
                  f"value=\"{escape(hit_id)}\">{worker_id_input(worker_id)} "
                  f"<button type=\"submit\">Accept</button></form>")
        if "Accept" not in actions:
            accept = ("<p class=\"error\" data-code=\"QualificationRequirementNotMet\">You do not meet these "
                      "Qualification requirements, so you cannot accept this HIT:</p>"
                      + requirement_list(hit["unmet"], worker_id))
        elif hit["requirements"]:
            accept = "<p>Qualifications required:</p>" + requirement_list(hit["requirements"], worker_id) + accept
        body = (f"<p>{escape(hit['description'])}</p><p>Reward: ${escape(hit['reward'])} &middot; "
                f"Assignments available: {hit['assignmentsAvailable']}</p>{accept}"
                f"<iframe id=\"TaskFrame\" title=\"The task\" src=\"{frame}\" "
                f"style=\"width:100%;height:{height}\"></iframe>")
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

    def task(self, query: list[tuple[str, str]], base_url: str = "") -> Response:
        q = dict(query)
        assignment_id = q.get("assignmentId", "")
        held = None
        if assignment_id == PREVIEW_ASSIGNMENT_ID:
            hit = self.backend.hit_for_worker(q.get("hitId", ""), q.get("workerId") or None)
            if "Preview" not in hit.get("actions", ("Preview",)):
                raise WorkerError(403, "You do not meet the Qualification requirements to preview this HIT.",
                                  "QualificationRequirementNotMet")
            question = hit["question"]
        else:
            held = self.backend.task(assignment_id)
            if q.get("hitId") and q["hitId"] != held["hitId"]:
                raise WorkerError(400, "This assignment belongs to another HIT.", "HITMismatch")
            question = held["question"]
        html = _question_html(question)
        if html is not None:
            # MTurk shows the HTMLContent in an iframe with these very query parameters; serving it
            # as the page itself keeps the task's relative form actions working. Crowd HTML Elements
            # load from AWS's CDN on MTurk; here from the marketplace itself, so they work offline.
            return 200, {"Content-Type": "text/html; charset=utf-8"}, crowd_elements.localise(html).encode("utf-8")
        external = _external(question)
        if external is None and is_question_form(question):
            return self.qualification_pages.task_page(question, assignment_id, q.get("hitId", ""))
        if external is None:
            raise WorkerError(500, "This HIT's question cannot be shown.", "UnsupportedQuestion")
        return self._external_frame(external, q.get("hitId", "") if held is None else held, q, base_url)

    def _external_frame(self, external: dict[str, Any], held: dict[str, Any] | str, q: Mapping[str, str],
                        base_url: str) -> Response:
        """The page around an ExternalQuestion: the URL in an iframe FrameHeight pixels high, with the
        query parameters MTurk adds (in preview only assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE and hitId)."""
        if isinstance(held, str):
            hit = self.backend.hit_for_worker(held)
            params = [("assignmentId", PREVIEW_ASSIGNMENT_ID), ("hitId", held)]
            footer = ""
        else:
            hit = self.backend.hit_for_worker(held["hitId"])
            params = [("assignmentId", held["assignmentId"]), ("hitId", held["hitId"]),
                      ("turkSubmitTo", q.get("turkSubmitTo") or base_url), ("workerId", held["workerId"])]
            footer = (f"<form method=\"post\" action=\"/worker/return\"><input type=\"hidden\" name=\"assignmentId\" "
                      f"value=\"{escape(held['assignmentId'])}\"><button type=\"submit\">Return this HIT</button></form>")
        src = _with_params(external["url"], params)
        body = (f"<p>{escape(hit['description'])}</p>"
                f"<iframe id=\"ExternalQuestionIFrame\" src=\"{escape(src)}\" "
                f"style=\"width:100%;height:{_frame_height(external['frame_height'])};border:1px solid #ccc\"></iframe>"
                + footer)
        return _page(hit["title"], body)

    def messages(self, worker_id: str, wants_json: bool) -> Response:
        """What requesters sent this worker with NotifyWorkers (MTurk emails them), newest first."""
        if not worker_id:
            return _page("Messages", f"<form method=\"get\" action=\"/worker/messages\">{worker_id_input()} "
                                     "<button type=\"submit\">Show messages</button></form>")
        got = worker_messages.messages_for(self.backend, worker_id)
        if wants_json:
            return _json({"workerId": worker_id, "messages": got})
        rows = "".join(f"<div class=\"message\"><h2>{escape(m['subject'])}</h2>"
                       f"<p style=\"white-space:pre-wrap\">{escape(m['message'])}</p></div>" for m in got)
        return _page(f"Messages for {worker_id}", rows or "<p>No messages.</p>")

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
