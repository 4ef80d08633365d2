"""Simulated workers: they do HITs through HTTP, like people with a browser.

A worker lists the HITs (the JSON listing), accepts one, fetches the task page, parses its
`<form>` with html.parser, fills the hidden `assignmentId` input (as the page's JavaScript
would), answers, and posts the form to its action, resolved against the task page's URL.

The crowd learns an item's true label only from `gold` (RequesterAnnotation -> true answer),
never from the HIT. Each worker has an accuracy drawn from `accuracy`; spammers answer uniformly
at random. The answer field is the radio group or select whose option values include the gold
label. Multi-label checkbox groups: gold is a JSON list ('["a", "b"]') or a comma-separated
string ("a,b") of the values to tick. Free text: the first visible text input or textarea gets
the gold string, or a perturbed copy of it when the worker errs.

Workers carry what MTurk knows of them (country, adult, masters; shares configurable), sent to
the marketplace's `/worker/profile` before the first pass, so Locale / Adult / Masters
requirements are enforced on them; a worker a HIT's requirements refuse is skipped for the next.
A refused worker first looks for qualification tests (the worker site's qualification list) and
takes those it has not passed, through the test pages, answering each question right with its
accuracy (spammers at random); the AnswerKey says what is right (shown only to a request with the
marketplace's key, as RequesterAnnotations are). A marketplace refusing a retake for its
RetryDelayInSeconds is asked again only once that delay has passed.

Deterministic given the seed and the order of HITs (the listing is oldest first).

A crowd never dies of a HIT it cannot do (a page without a <form>, an unreachable ExternalURL,
any exception while doing it): the assignment is returned, as a worker on MTurk returns a HIT,
so it stays available to others; the reason is logged at once (and shown on the marketplace's
/_stats page), the crowd passes that HIT over from then on and goes on with the rest.
"""

from __future__ import annotations

import http.client
import json
import logging
import random
import re
import string
import threading
import time
import urllib.request
from html import unescape
from html.parser import HTMLParser
from typing import Any, Callable, Iterator, Mapping, TypeVar
from urllib.parse import urlencode, urljoin, urlsplit

from annotate.marketplace.crowd_elements import parse_crowd_forms, task_answers_fields
from annotate.marketplace.secret import KEY_HEADER, serving_key

log = logging.getLogger("annotate.marketplace.crowd")
PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"  # MTurk's preview value
T = TypeVar("T")
TEXT_TYPES = {"text", "email", "number", "search", "tel", "url", "date", "time", "datetime-local", "month",
              "week", "color", "range", "password"}
# The worker page around an ExternalQuestion (worker.py) frames the requester's page with this id.
_EXTERNAL_FRAME = re.compile(r'<iframe id="ExternalQuestionIFrame" src="([^"]+)"')


class FormParser(HTMLParser):
    """Collects every `<form>` of a page with its controls in document order."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.forms: list[dict[str, Any]] = []
        self._form: dict[str, Any] | None = None
        self._select: dict[str, Any] | None = None
        self._option: dict[str, Any] | None = None
        self._textarea: dict[str, Any] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        if tag == "form":
            self._form = {"action": a.get("action", ""), "method": (a.get("method") or "get").lower(),
                          "controls": []}
            self.forms.append(self._form)
            return
        if self._form is None or "disabled" in a:
            return
        controls = self._form["controls"]
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            name = a.get("name")
            if not name:
                return
            if kind in ("radio", "checkbox"):
                controls.append({"kind": kind, "name": name, "value": a.get("value", "on"), "checked": "checked" in a})
            elif kind == "hidden" or kind in TEXT_TYPES:
                controls.append({"kind": "hidden" if kind == "hidden" else "text", "name": name,
                                 "value": a.get("value", "")})
            elif kind == "submit":
                controls.append({"kind": "submit", "name": name, "value": a.get("value", "Submit")})
        elif tag == "select" and a.get("name"):
            self._select = {"kind": "select", "name": a["name"], "options": [], "multiple": "multiple" in a}
            controls.append(self._select)
        elif tag == "option" and self._select is not None:
            self._option = {"value": a.get("value"), "text": "", "selected": "selected" in a}
            self._select["options"].append(self._option)
        elif tag == "textarea" and a.get("name"):
            self._textarea = {"kind": "textarea", "name": a["name"], "value": ""}
            controls.append(self._textarea)

    def handle_endtag(self, tag: str) -> None:
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._finish_option()
            self._select = None
        elif tag == "option":
            self._finish_option()
        elif tag == "textarea":
            self._textarea = None

    def handle_data(self, data: str) -> None:
        if self._option is not None:
            self._option["text"] += data
        elif self._textarea is not None:
            self._textarea["value"] += data

    def _finish_option(self) -> None:
        if self._option is not None and self._option["value"] is None:
            self._option["value"] = self._option["text"].strip()  # an option without value submits its text
        self._option = None

    def close(self) -> None:
        super().close()
        self._finish_option()


def parse_forms(html: str) -> list[dict[str, Any]]:
    parser = FormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def choice_groups(form: dict[str, Any]) -> dict[str, list[str]]:
    """Single-choice groups (radio groups, single selects): name -> option values, in order."""
    groups: dict[str, list[str]] = {}
    for c in form["controls"]:
        if c["kind"] == "radio":
            groups.setdefault(c["name"], [])
            if c["value"] not in groups[c["name"]]:
                groups[c["name"]].append(c["value"])
        elif c["kind"] == "select" and not c["multiple"]:
            groups[c["name"]] = [o["value"] for o in c["options"]]
    return groups


def checkbox_groups(form: dict[str, Any]) -> dict[str, list[str]]:
    groups: dict[str, list[str]] = {}
    for c in form["controls"]:
        if c["kind"] == "checkbox":
            groups.setdefault(c["name"], []).append(c["value"])
    return groups


def gold_labels(gold: str) -> list[str]:
    """A multi-label gold value: a JSON list, or comma-separated."""
    text = gold.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError:
            value = None  # not JSON after all: read it as comma-separated
        if isinstance(value, list):
            return [str(v) for v in value]
    return [part.strip() for part in text.split(",") if part.strip()]


def parse_locales(spec: str) -> dict[str, float]:
    """"US=0.8,IN=0.2" -> {"US": 0.8, "IN": 0.2}: shares of simulated workers per country."""
    shares: dict[str, float] = {}
    for part in filter(None, (p.strip() for p in spec.split(","))):
        country, _, share = part.partition("=")
        country = country.strip().upper()
        if len(country) != 2 or not country.isalpha():
            raise ValueError(f"{country!r} is not a two-letter country code (in {spec!r})")
        try:
            shares[country] = float(share)
        except ValueError:
            raise ValueError(f"the share of {country} must be a number, not {share!r}") from None
    if not shares or any(v < 0 for v in shares.values()) or abs(sum(shares.values()) - 1) > 1e-9:
        raise ValueError(f"locale shares must be COUNTRY=SHARE pairs summing to 1, not {spec!r}")
    return shares


class SimulatedWorker:
    def __init__(self, worker_id: str, accuracy: float, spammer: bool, country: str = "US",
                 adult: bool = False, masters: bool = False):
        self.worker_id = worker_id
        self.accuracy = accuracy
        self.spammer = spammer
        # What MTurk knows of the worker (the Locale, Adult and Masters qualifications).
        self.country = country
        self.adult = adult
        self.masters = masters

    def __repr__(self) -> str:
        kind = "spammer" if self.spammer else f"accuracy={self.accuracy:.2f}"
        return f"SimulatedWorker({self.worker_id}, {kind})"


class HTTPCrowd:
    """What every crowd shares: a kept-alive connection to the marketplace, the paged HIT listing,
    accepting, reading the task page's form, submitting it, and a background loop.

    Subclasses implement `work(limit=None) -> int` (one pass over the HITs on offer).
    """

    thread_name = "crowd"

    def __init__(self, url: str) -> None:
        self.url = url.rstrip("/")
        split = urlsplit(self.url)
        self._netloc = split.netloc
        self._conn = http.client.HTTPConnection(split.hostname, split.port or 80, timeout=30)
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.error: Exception | None = None
        self.submissions: list[dict[str, Any]] = []
        self.returned: list[dict[str, Any]] = []  # HITs given back, with why
        self.undoable: set[str] = set()  # HIT ids this crowd gave back: passed over from then on

    # -- HTTP -------------------------------------------------------------------------------

    def _request(self, method: str, path: str, body: bytes | None = None,
                 headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        """One request on the kept-alive connection (reconnecting once if the server closed it)."""
        for attempt in (1, 2):
            try:
                self._conn.request(method, path, body=body, headers=dict(headers or {}))
                response = self._conn.getresponse()
                return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest):
                self._conn.close()
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _fetch(self, method: str, url: str, fields: list[tuple[str, str]] | None = None,
               headers: Mapping[str, str] | None = None) -> tuple[int, dict[str, str], bytes, str]:
        """GET/POST an absolute URL; ours go over the kept-alive connection. Returns the final URL too."""
        split = urlsplit(url)
        body = urlencode(fields).encode("utf-8") if fields is not None else None
        hdrs = dict(headers or {})
        if body is not None:
            hdrs["Content-Type"] = "application/x-www-form-urlencoded"
        if split.netloc == self._netloc:
            path = split.path + ("?" + split.query if split.query else "")
            status, got, data = self._request(method, path or "/", body, hdrs)
            return status, got, data, url
        request = urllib.request.Request(url, data=body, headers=hdrs, method=method)
        with urllib.request.urlopen(request, timeout=30) as response:  # an ExternalQuestion's own site
            return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read(), response.url

    # -- the worker's steps -----------------------------------------------------------------

    def listing(self, worker_id: str | None = None, page_size: int = 1000) -> Iterator[dict[str, Any]]:
        """Every HIT on offer now, oldest first, fetched a page at a time as the caller goes. It ends
        early once stop() is asked for: a pass stops after the HIT in hand, not thousands more."""
        after: str | None = None
        while True:
            params = [("format", "json"), ("limit", str(page_size))]
            params += [("after", after)] if after else []
            params += [("workerId", worker_id)] if worker_id else []
            # A simulated worker is an oracle: the marketplace's key shows it each HIT's annotation.
            key = serving_key(self._netloc)
            status, _, body = self._request("GET", "/worker/?" + urlencode(params),
                                            headers={"Accept": "application/json", **({KEY_HEADER: key} if key else {})})
            if status != 200:
                raise RuntimeError(f"HIT listing answered HTTP {status}: {body[:200]!r}")
            page = json.loads(body)
            for hit in page["hits"]:
                if self._stop.is_set():
                    return
                if hit["hitId"] not in self.undoable:
                    yield hit
            after = page.get("next")
            if not after:
                return

    def accept(self, hit_id: str, worker_id: str) -> tuple[dict[str, Any] | None, str]:
        """Accept as `worker_id`: (the accepted assignment with its task `location`, "accepted"),
        or (None, the marketplace's reason: WorkerBlocked, AlreadyWorkedOn, NoAssignmentsAvailable, ...)."""
        form_body = urlencode({"hitId": hit_id, "workerId": worker_id}).encode()
        status, _, body = self._request("POST", "/worker/accept", form_body,
                                        {"Content-Type": "application/x-www-form-urlencoded",
                                         "Accept": "application/json"})
        got = json.loads(body)
        if status != 303:
            return None, got.get("error", f"HTTP {status}")
        return got, "accepted"

    def parse_forms(self, html: str) -> list[dict[str, Any]]:
        """The page's forms (a crowd-element page as one form of its elements); a crowd that reads
        more of a form (annotated inputs) overrides this."""
        return parse_forms(html) or parse_crowd_forms(html)

    def task_form(self, location: str) -> tuple[dict[str, Any], str]:
        """The task page's answer form (the one carrying assignmentId) and the page's final URL."""
        task_url = urljoin(self.url + "/", location)
        status, headers, page, task_url = self._fetch("GET", task_url)
        while status in (301, 302, 303, 307) and "location" in headers:  # ExternalQuestion
            task_url = urljoin(task_url, headers["location"])
            status, headers, page, task_url = self._fetch("GET", task_url)
        if status != 200:
            raise RuntimeError(f"task page {task_url} answered HTTP {status}")
        frame = _EXTERNAL_FRAME.search(page.decode("utf-8", errors="replace"))
        if frame is not None:  # an ExternalQuestion: the marketplace frames the requester's page
            task_url = urljoin(task_url, unescape(frame.group(1)))
            status, headers, page, task_url = self._fetch("GET", task_url)
            if status != 200:
                raise RuntimeError(f"external question {task_url} answered HTTP {status}")
        forms = self.parse_forms(page.decode("utf-8", errors="replace"))
        if not forms:
            raise RuntimeError(f"task page {task_url} has no <form>")
        form = next((f for f in forms if any(c["name"] == "assignmentId" for c in f["controls"])), forms[0])
        if form.get("crowd") and not any(c.get("crowd") not in (None, "native", "length") for c in form["controls"]):
            raise RuntimeError(f"task page {task_url} has crowd elements but nothing to answer (none is named)")
        return form, task_url

    def preview_form(self, hit_id: str) -> tuple[dict[str, Any], str]:
        """The form a worker sees before accepting (MTurk's preview, assignmentId not available)."""
        return self.task_form("/worker/task?" + urlencode({"assignmentId": PREVIEW_ASSIGNMENT_ID, "hitId": hit_id}))

    def submit_form(self, form: dict[str, Any], fields: list[tuple[str, str]], task_url: str) -> None:
        """Send the filled form where the browser would: its action, resolved against the page."""
        if form.get("crowd"):  # what crowd-form's script sends: assignmentId + taskAnswers
            fields = task_answers_fields(form, fields)
        action = urljoin(task_url, form["action"] or task_url)
        if urlsplit(action).netloc != self._netloc and urlsplit(action).path.endswith("/mturk/externalSubmit"):
            # Pages usually aim the form at turkSubmitTo from script; we cannot run script.
            action = self.url + "/mturk/externalSubmit"
        method = "POST" if form["method"] == "post" else "GET"
        if method == "GET":
            action = action.split("?")[0] + "?" + urlencode(fields)
        status, _, body, _ = self._fetch(method, action, fields if method == "POST" else None,
                                         {"Accept": "application/json"})
        if status != 200:
            raise RuntimeError(f"submitting to {action} answered HTTP {status}: {body[:200]!r}")

    def give_back(self, hit_id: str, worker_id: str, assignment_id: str, exc: BaseException) -> None:
        """Return an assignment this crowd cannot do (so it stays available to others) and say why."""
        reason = f"{type(exc).__name__}: {exc}"
        self.undoable.add(hit_id)
        self.returned.append({"hit_id": hit_id, "worker_id": worker_id, "assignment_id": assignment_id,
                              "reason": reason})
        log.warning("the %s cannot do HIT %s (%s); returned assignment %s", self.thread_name, hit_id, reason,
                    assignment_id)
        body = urlencode({"assignmentId": assignment_id, "workerId": worker_id, "reason": reason}).encode()
        status, _, answer = self._request("POST", "/worker/return", body,
                                          {"Content-Type": "application/x-www-form-urlencoded",
                                           "Accept": "application/json"})
        if status != 200:
            # Late (the deadline passed) or already gone: the slot is free again either way.
            log.warning("returning assignment %s answered HTTP %s: %s", assignment_id, status, answer[:200])

    def attempt(self, hit_id: str, worker_id: str, assignment_id: str, do: Callable[[], T]) -> T | None:
        """do() the accepted assignment; if anything goes wrong, give it back and return None."""
        try:
            return do()
        except Exception as exc:  # whatever it was, the HIT goes back and the crowd goes on
            self.give_back(hit_id, worker_id, assignment_id, exc)
            return None

    # -- running ----------------------------------------------------------------------------

    def work(self, limit: int | None = None) -> int:
        raise NotImplementedError

    def start(self, interval: float = 0.05) -> "HTTPCrowd":
        """Keep working in a background thread until stop()."""
        self._stop.clear()

        def loop() -> None:
            while not self._stop.is_set():
                try:
                    self.work()
                except Exception as exc:
                    # Not a HIT's fault (those are given back inside work()): the marketplace is
                    # unreachable or answered nonsense. Say so, keep it for stop(), and try again.
                    log.warning("the %s's pass failed (will try again): %s: %s", self.thread_name,
                                type(exc).__name__, exc)
                    self.error = exc
                    self._stop.wait(max(interval, 1.0))
                    continue
                self._stop.wait(interval)

        self._thread = threading.Thread(target=loop, name=self.thread_name, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=10)
        if thread is None or not thread.is_alive():
            self._stop.clear()  # so that work() called directly later is not cut short
        self._conn.close()
        if self.error is not None:
            error, self.error = self.error, None
            raise RuntimeError(f"the {self.thread_name} failed: {error}") from error


class SimulatedCrowd(HTTPCrowd):
    thread_name = "simulated crowd"

    def __init__(self, url: str, gold: Mapping[str, str] | None = None, workers: int = 30,
                 accuracy: tuple[float, float] = (0.75, 0.97), spammer_share: float = 0.1, seed: int = 0,
                 locales: Mapping[str, float] | None = None, adult_share: float = 0.0, masters_share: float = 0.0,
                 fill_to: int | None = None, fill_after: float = 30.0, clock: Callable[[], float] = time.monotonic):
        """`locales`: share of workers per country (ISO code -> share, summing to 1; default all US);
        `adult_share`, `masters_share`: shares holding the Adult and Masters qualifications.

        `fill_to`: a crowd that only tops up what people leave. It takes a HIT's slots only once
        they have stood open, untouched, for `fill_after` seconds (by `clock`), and only until the
        HIT holds `fill_to` assignments (people's included, submitted or in hand). A person alone
        can then finish HITs that need two or more workers. None: take every slot at once."""
        if fill_to is not None and fill_to < 1:
            raise ValueError("fill_to must be at least 1")
        if fill_after < 0:
            raise ValueError("fill_after must not be negative")
        if workers < 1:
            raise ValueError("a crowd needs at least one worker")
        if not 0 <= spammer_share <= 1:
            raise ValueError("spammer_share must be between 0 and 1")
        super().__init__(url)
        self.gold = dict(gold or {})
        setup = random.Random(f"crowd-{seed}")
        alphabet = string.ascii_uppercase + string.digits
        spammers = set(setup.sample(range(workers), round(workers * spammer_share)))
        self.workers = [SimulatedWorker("A" + "".join(setup.choice(alphabet) for _ in range(13)),
                                        setup.uniform(*accuracy), i in spammers) for i in range(workers)]
        # Attributes come from their own generator, so adding them changes no one's answers.
        traits = random.Random(f"crowd-traits-{seed}")
        countries = list((locales or {"US": 1.0}).items())
        if any(share < 0 for _, share in countries) or abs(sum(share for _, share in countries) - 1) > 1e-9:
            raise ValueError("locales must map countries to shares that sum to 1")
        for worker in self.workers:
            worker.country = traits.choices([c for c, _ in countries], [w for _, w in countries])[0]
            worker.adult = traits.random() < adult_share
            worker.masters = traits.random() < masters_share
        self._profiles_sent = False
        self._rng = random.Random(f"crowd-answers-{seed}")
        self._next = 0
        self._done: set[tuple[str, str]] = set()
        self._blocked: set[str] = set()
        self.fill_to, self.fill_after, self._clock = fill_to, fill_after, clock
        self._open_since: dict[str, tuple[int, float]] = {}  # HIT id -> (slots open, since when)
        self.tests: list[dict[str, Any]] = []  # qualification tests taken: worker, type, score
        self._passed: set[tuple[str, str]] = set()  # (worker, type): taken, and HITs opened to them after
        self._retest_at: dict[tuple[str, str], float] = {}  # (worker, type) -> when the marketplace allows a retake
        self._look_at: dict[str, float] = {}  # worker -> when to look for tests again

    # -- choosing ---------------------------------------------------------------------------

    def _pick(self, hit_id: str) -> SimulatedWorker | None:
        """The next worker (round robin, to spread work) who has not done this HIT and is not blocked."""
        n = len(self.workers)
        for step in range(n):
            worker = self.workers[(self._next + step) % n]
            if worker.worker_id in self._blocked or (worker.worker_id, hit_id) in self._done:
                continue
            self._next = (self._next + step + 1) % n
            self._done.add((worker.worker_id, hit_id))
            return worker
        return None

    def _answer(self, worker: SimulatedWorker, options: list[str], gold: str | None) -> str:
        if gold is None or gold not in options or worker.spammer:
            return self._rng.choice(options)
        if self._rng.random() < worker.accuracy or len(options) == 1:
            return gold
        return self._rng.choice([o for o in options if o != gold])

    def _perturb(self, text: str) -> str:
        if len(text) > 1:
            i = self._rng.randrange(len(text))
            changed = text[:i] + text[i + 1:]
            if changed != text:
                return changed
        return text + "x"

    def fill(self, worker: SimulatedWorker, form: dict[str, Any], assignment_id: str,
             gold: str | None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        """The fields a person would submit, and what was answered (for the record)."""
        groups = choice_groups(form)
        target = next((name for name, values in groups.items() if gold is not None and gold in values), None)
        if target is None and gold is None and groups:
            target = next(iter(groups))
        chosen = {name: self._answer(worker, values, gold) for name, values in groups.items()
                  if name == target and values}
        record: dict[str, Any] = {"field": target, "answer": chosen.get(target) if target else None}
        # Multi-label checkboxes and free text, only when no single-choice field carries the gold.
        ticks: dict[str, set[str]] = {}
        text_answer: tuple[str, str] | None = None
        if target is None and gold is not None:
            labels = gold_labels(gold)
            for name, values in checkbox_groups(form).items():
                if labels and set(labels) <= set(values):
                    if worker.spammer:
                        picked = {v for v in values if self._rng.random() < 0.5}
                    elif self._rng.random() < worker.accuracy:
                        picked = set(labels)
                    else:
                        picked = set(labels) ^ {self._rng.choice(values)}
                    ticks[name] = picked
                    record = {"field": name, "answer": sorted(picked)}
                    break
            else:
                visible = [c for c in form["controls"] if c["kind"] in ("text", "textarea")]
                if visible:
                    correct = not worker.spammer and self._rng.random() < worker.accuracy
                    text_answer = (visible[0]["name"], gold if correct else self._perturb(gold))
                    record = {"field": visible[0]["name"], "answer": text_answer[1]}
        fields: list[tuple[str, str]] = []
        seen_assignment = False
        done_groups: set[str] = set()
        submit_sent = False
        for c in form["controls"]:
            name = c["name"]
            if c["kind"] == "hidden" and name == "assignmentId":
                fields.append((name, assignment_id))  # what the page's JavaScript does
                seen_assignment = True
            elif c["kind"] == "hidden":
                fields.append((name, c["value"]))
            elif c["kind"] in ("text", "textarea"):
                if text_answer is not None and name == text_answer[0]:
                    fields.append((name, text_answer[1]))
                    text_answer = None  # only the first control of that name
                else:
                    fields.append((name, c["value"]))
            elif c["kind"] == "radio":
                if name in done_groups:
                    continue
                if name in chosen:
                    value = chosen[name]
                else:
                    checked = [r["value"] for r in form["controls"] if r["kind"] == "radio" and r["name"] == name
                               and r["checked"]]
                    value = checked[-1] if checked else self._rng.choice(groups[name])
                fields.append((name, value))
                done_groups.add(name)
            elif c["kind"] == "select":
                if name in chosen:
                    fields.append((name, chosen[name]))
                else:
                    selected = [o["value"] for o in c["options"] if o["selected"]]
                    if not c["multiple"] and not selected and c["options"]:
                        selected = [c["options"][0]["value"]]  # a browser submits the first option
                    fields.extend((name, v) for v in selected)
            elif c["kind"] == "checkbox":
                on = c["value"] in ticks[name] if name in ticks else c["checked"]
                if on:
                    fields.append((name, c["value"]))
            elif c["kind"] == "submit" and not submit_sent:
                fields.append((name, c["value"]))
                submit_sent = True
        if not seen_assignment:
            # The page has no assignmentId input for its script to fill; MTurk needs one.
            fields.insert(0, ("assignmentId", assignment_id))
        return fields, record

    # -- doing HITs -------------------------------------------------------------------------

    def _do(self, worker: SimulatedWorker, hit: dict[str, Any]) -> str:
        """Accept, read, answer and submit one assignment. Returns "submitted", or why not."""
        accepted, outcome = self.accept(hit["hitId"], worker.worker_id)
        if accepted is None:
            return outcome
        gold = self.gold.get(hit.get("requesterAnnotation") or "")

        def do() -> dict[str, Any]:
            form, task_url = self.task_form(accepted["location"])
            fields, record = self.fill(worker, form, accepted["assignmentId"], gold)
            self.submit_form(form, fields, task_url)
            return record

        record = self.attempt(hit["hitId"], worker.worker_id, accepted["assignmentId"], do)
        if record is None:
            return "returned"
        self.submissions.append({"worker_id": worker.worker_id, "hit_id": hit["hitId"],
                                 "assignment_id": accepted["assignmentId"], "gold": gold, **record,
                                 "correct": None if gold is None else record["answer"] == gold})
        return "submitted"

    def _slots(self, hit: dict[str, Any]) -> int:
        """How many of a listed HIT's open slots to take now (all of them, without fill_to)."""
        available = hit["assignmentsAvailable"]
        if self.fill_to is None:
            return available
        now, seen = self._clock(), self._open_since.get(hit["hitId"])
        if seen is None or seen[0] != available:  # new to us, or someone took a slot: wait afresh
            self._open_since[hit["hitId"]] = (available, now)
            return 0
        if now - seen[1] < self.fill_after:
            return 0
        held = hit["maxAssignments"] - available  # submitted or in someone's hands
        return max(0, min(available, self.fill_to - held))

    # -- qualification tests -----------------------------------------------------------------

    def _post_json(self, path: str, fields: list[tuple[str, str]]) -> tuple[int, dict[str, Any]]:
        key = serving_key(self._netloc)
        status, _, body = self._request("POST", path, urlencode(fields).encode("utf-8"),
                                        {"Content-Type": "application/x-www-form-urlencoded",
                                         "Accept": "application/json", **({KEY_HEADER: key} if key else {})})
        return status, json.loads(body)

    def _fill_test(self, worker: SimulatedWorker, html: str, key_xml: str | None) -> list[tuple[str, str]]:
        """The test form as this worker fills it: each question right with its accuracy."""
        from annotate.marketplace import answer_key

        right: dict[str, str] = {}
        if key_xml:
            for q in answer_key.parse(key_xml).questions:
                best = max(q.options, key=lambda o: o[1], default=None)
                if best is not None and len(best[0]) == 1:
                    right[q.identifier] = next(iter(best[0]))
        form = parse_forms(html)[0]
        groups = choice_groups(form)
        fields = [(c["name"], c["value"]) for c in form["controls"] if c["kind"] == "hidden"]
        fields += [(name, self._answer(worker, values, right.get(name))) for name, values in groups.items() if values]
        return fields

    def take_tests(self, worker: SimulatedWorker) -> list[str]:
        """Take every qualification test on offer that this worker has not passed and may take now;
        the types whose test was taken."""
        now = time.monotonic()
        if self._look_at.get(worker.worker_id, 0.0) > now:
            return []
        status, _, body = self._request("GET", "/worker/qualifications?" + urlencode(
            {"workerId": worker.worker_id, "format": "json"}), headers={"Accept": "application/json"})
        if status != 200:
            raise RuntimeError(f"qualification list answered HTTP {status}: {body[:200]!r}")
        taken: list[str] = []
        later = now + 5.0  # new tests may be posted: look again now and then
        for t in json.loads(body)["qualificationTypes"]:
            pair = (worker.worker_id, t["qualificationTypeId"])
            if not t["hasTest"] or pair in self._passed:
                continue
            if self._retest_at.get(pair, 0.0) > now:
                later = min(later, self._retest_at[pair])
                continue
            status, got = self._post_json("/worker/qualifications/request",
                                          [("qualificationTypeId", t["qualificationTypeId"]),
                                           ("workerId", worker.worker_id)])
            if status != 200:
                wait = re.search(r"again in (\d+) seconds", got.get("message", ""))
                self._retest_at[pair] = now + int(wait.group(1)) if wait else float("inf")
                if wait:
                    later = min(later, self._retest_at[pair])
                continue
            if got.get("outcome") != "Test":
                continue
            status, outcome = self._post_json("/worker/qualifications/test",
                                              self._fill_test(worker, got["form"], got.get("answerKey")))
            if status != 200:
                raise RuntimeError(f"submitting a qualification test answered HTTP {status}: {outcome}")
            self.tests.append({"worker_id": worker.worker_id, "qualification_type_id": t["qualificationTypeId"],
                               "spammer": worker.spammer, "accuracy": worker.accuracy,
                               "outcome": outcome.get("outcome"), "score": outcome.get("value")})
            taken.append(t["qualificationTypeId"])
        self._look_at[worker.worker_id] = later
        return taken

    def send_profiles(self) -> None:
        """Tell the marketplace each worker's locale, adult and masters standing (once)."""
        for worker in self.workers:
            body = urlencode({"workerId": worker.worker_id, "country": worker.country,
                              "adult": "1" if worker.adult else "0", "masters": "1" if worker.masters else "0"})
            status, _, answer = self._request("POST", "/worker/profile", body.encode(),
                                              {"Content-Type": "application/x-www-form-urlencoded",
                                               "Accept": "application/json"})
            if status != 200:
                raise RuntimeError(f"worker profile answered HTTP {status}: {answer[:200]!r}")
        self._profiles_sent = True

    def work(self, limit: int | None = None) -> int:
        """One pass: take every assignment slot available now and submit. Returns how many."""
        with self._lock:
            # The marketplace takes a worker it has not been told about as US, not adult, not Masters.
            if not self._profiles_sent and any(w.country != "US" or w.adult or w.masters for w in self.workers):
                self.send_profiles()
            submitted = 0
            for hit in self.listing():
                for _ in range(self._slots(hit)):
                    if limit is not None and submitted >= limit:
                        return submitted
                    outcome = None
                    while True:
                        worker = self._pick(hit["hitId"])
                        if worker is None:
                            break
                        outcome = self._do(worker, hit)
                        if outcome == "QualificationRequirementNotMet":
                            taken = self.take_tests(worker)
                            if taken:
                                outcome = self._do(worker, hit)
                                if outcome != "QualificationRequirementNotMet":
                                    # The tests opened the HIT: passed, never retaken.
                                    self._passed.update((worker.worker_id, t) for t in taken)
                        if outcome == "WorkerBlocked":
                            self._blocked.add(worker.worker_id)
                            continue
                        if outcome in ("AlreadyWorkedOn", "QualificationRequirementNotMet"):
                            continue
                        break
                    if outcome == "submitted":
                        submitted += 1
                    else:
                        break  # no worker left for this HIT, or no slot left
            return submitted
