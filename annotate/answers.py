"""Worker answers: MTurk's QuestionFormAnswers XML → fields (xmltodict), and the label in them.

An HTMLQuestion's form comes back as one `Answer` per form field, `QuestionIdentifier` +
`FreeText`; with `crowd-form` there is a single `taskAnswers` field holding JSON.

Everything a worker sends is untrusted input. The limits below are the one place that says how
large and how deep an answer may be; every reader of worker XML or JSON (here and in the task
types) goes through `parse_question_form_answers` and `worker_json`, which turn anything over a
limit, or anything that cannot be read, into an AnswerError: the harvest quarantines that one
assignment with the reason and goes on.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import Any
from xml.parsers import expat

import xmltodict
from xml.parsers.expat import ExpatError

ANSWER_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
# Form fields MTurk itself or our templates add, which are not answers.
SERVICE_FIELDS = {"assignmentId", "hitId", "workerId", "turkSubmitTo"}

# ---------------------------------------------------------------- limits on worker input
# The largest honest answer is a segmentation mask: a PNG of at most 4,000,000 bytes
# (semantic_segmentation.MAX_MASK_BYTES) is 5.4 MB of base64; everything else is kilobytes.
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # one QuestionFormAnswers document, UTF-8
MAX_ANSWER_DEPTH = 8  # XML elements: QuestionFormAnswers > Answer > FreeText is 3 deep
MAX_JSON_BYTES = 6 * 1024 * 1024  # one JSON value a worker sent (taskAnswers, a task type's field)
MAX_JSON_DEPTH = 32  # nested arrays/objects; crowd elements' answers nest about 5 deep
MAX_NUMBER_DIGITS = 100  # digits of one JSON integer (a float holds about 309)


class AnswerError(ValueError):
    """An answer that cannot be used; it is kept (quarantined) with this reason, never dropped."""


@dataclass(frozen=True)
class ParsedAnswer:
    fields: dict[str, str]  # field → value (repeated fields joined by '|', as MTurk lists checkboxes)
    document: dict[str, Any]  # the xmltodict parse, kept as JSON in the store


def _utf8(text: str, what: str, limit: int) -> bytes:
    """`text` as UTF-8, refused when over `limit` bytes (or not encodable: a lone surrogate)."""
    if len(text) > limit:  # over in characters is over in bytes: no need to encode it
        raise AnswerError(f"{what} is over {limit:,} bytes ({len(text):,} characters)")
    try:
        data = text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise AnswerError(f"{what} is not valid Unicode ({exc.reason} at character {exc.start})") from None
    if len(data) > limit:
        raise AnswerError(f"{what} is {len(data):,} bytes; at most {limit:,} are accepted")
    return data


def _check_xml_depth(data: bytes) -> None:
    """A pass of expat alone (C, no tree built) before xmltodict builds one: deep nesting is refused
    before anything recursive (json.dumps, str) meets it, and so is a DOCTYPE — MTurk's answers
    never carry one, and entity declarations are how XML bombs start."""
    parser = expat.ParserCreate("utf-8")
    depth = 0

    def start(name, attrs):
        nonlocal depth
        depth += 1
        if depth > MAX_ANSWER_DEPTH:
            raise AnswerError(f"the answer XML nests more than {MAX_ANSWER_DEPTH} elements deep")

    def end(name):
        nonlocal depth
        depth -= 1

    def doctype(*_):
        raise AnswerError("the answer XML has a DOCTYPE (MTurk's answers never do)")

    parser.StartElementHandler = start
    parser.EndElementHandler = end
    parser.StartDoctypeDeclHandler = doctype
    parser.Parse(data, True)


def parse_question_form_answers(xml: str) -> ParsedAnswer:
    if not isinstance(xml, str):
        raise AnswerError(f"the answer is not XML text (got {type(xml).__name__})")
    data = _utf8(xml, "the answer XML", MAX_ANSWER_BYTES)
    try:
        _check_xml_depth(data)
        doc = xmltodict.parse(data, encoding="utf-8", process_namespaces=True, namespaces={ANSWER_NS: None},
                              force_list=("Answer",))
    except ExpatError as exc:
        raise AnswerError(f"malformed QuestionFormAnswers XML: {exc}") from None
    root = doc.get("QuestionFormAnswers")
    if not isinstance(root, dict):
        raise AnswerError("not a QuestionFormAnswers document")
    fields: dict[str, list[str]] = {}
    for answer in root.get("Answer") or []:
        if not isinstance(answer, dict) or "QuestionIdentifier" not in answer:
            raise AnswerError("an Answer without a QuestionIdentifier")
        name = str(answer["QuestionIdentifier"])
        if "FreeText" in answer:
            value = answer["FreeText"] or ""
        elif "SelectionIdentifier" in answer:
            sel = answer["SelectionIdentifier"]
            value = "|".join(sel) if isinstance(sel, list) else (sel or "")
        elif "UploadedFileKey" in answer:
            value = answer["UploadedFileKey"] or ""
        else:
            value = ""
        fields.setdefault(name, []).append(str(value))
    flat = {k: "|".join(v) for k, v in fields.items() if k not in SERVICE_FIELDS}
    return ParsedAnswer(fields=flat, document=doc)


_JSON_TOKEN = re.compile(r'[\[\]{}"]')
_JSON_STRING_REST = re.compile(r'[^"\\]*(?:\\.[^"\\]*)*"', re.S)  # a string's rest after its opening quote


def check_json_depth(text: str, what: str, limit: int = MAX_JSON_DEPTH) -> None:
    """AnswerError when `text` nests arrays/objects deeper than `limit` — checked before json.loads,
    whose recursion a worker could otherwise exhaust (100,000 `[` make a RecursionError). Brackets
    inside strings do not count; the scan runs only when there are enough brackets to matter."""
    if text.count("[") + text.count("{") <= limit:
        return
    depth, pos = 0, 0
    while (token := _JSON_TOKEN.search(text, pos)) is not None:
        pos = token.end()
        char = token.group()
        if char == '"':
            rest = _JSON_STRING_REST.match(text, pos)
            if rest is None:
                return  # an unterminated string: json.loads says what is wrong
            pos = rest.end()
        elif char in "[{":
            depth += 1
            if depth > limit:
                raise AnswerError(f"{what} nests more than {limit} arrays/objects deep")
        else:
            depth -= 1


def _json_int(text: str) -> int:
    if len(text.lstrip("-")) > MAX_NUMBER_DIGITS:
        raise AnswerError(f"a number of {len(text.lstrip('-')):,} digits (at most {MAX_NUMBER_DIGITS} are accepted)")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise AnswerError(f"the number {text[:40]} is out of range")
    return value


def _json_constant(name: str) -> Any:
    raise AnswerError(f"{name} is not a JSON number")


def worker_json(text: str, what: str) -> Any:
    """JSON a worker sent, decoded within the limits above (size, depth, digits; no NaN or
    Infinity, which json.loads would otherwise accept); AnswerError naming `what` otherwise."""
    _utf8(text, what, MAX_JSON_BYTES)
    check_json_depth(text, what)
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except AnswerError:
        raise
    except json.JSONDecodeError as exc:
        raise AnswerError(f"{what} is not JSON: {exc.msg} at character {exc.pos}") from None
    except (ValueError, RecursionError) as exc:  # the limits above should leave nothing for these
        raise AnswerError(f"{what} cannot be decoded: {type(exc).__name__}: {str(exc)[:80]}") from None


def task_answers(fields: dict[str, str]) -> dict[str, Any] | None:
    """crowd-form's single `taskAnswers` field, decoded (None when the form was a plain one)."""
    raw = fields.get("taskAnswers")
    if raw is None:
        return None
    value = worker_json(raw, "taskAnswers")
    if isinstance(value, list):
        value = value[0] if value else {}
    if not isinstance(value, dict):
        raise AnswerError("taskAnswers is not a JSON object")
    return unflatten(value)


def unflatten(answer: dict[str, Any]) -> dict[str, Any]:
    """crowd-form's answer-format="flatten-objects" writes {"category.label": "Cat"}; read it as
    {"category": {"label": "Cat"}} so every layout's answers look alike. Keys that would collide
    with an existing value are left as they are."""
    if not any("." in key for key in answer):
        return answer
    out: dict[str, Any] = {k: v for k, v in answer.items() if "." not in k}
    for key, value in answer.items():
        if "." not in key:
            continue
        node, parts = out, key.split(".")
        for part in parts[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                node = None
                break
            node = child
        if node is None or parts[-1] in node:
            out[key] = value
        else:
            node[parts[-1]] = value
    return out


def extract_label(fields: dict[str, str], field: str, labels: list[str]) -> str:
    """The answer's label for a single-choice task, checked against the task's labels."""
    value: Any = fields.get(field)
    if value is None:
        crowd = task_answers(fields)
        if crowd is not None and field in crowd:
            value = crowd[field]
            if isinstance(value, dict):  # crowd-classifier style: {"label": "..."}
                value = value.get("label")
    if value is None:
        present = ", ".join(sorted(fields)) or "none"
        raise AnswerError(f"no '{field}' field in the answer (fields: {present})")
    value = str(value).strip()
    if value not in labels:
        shown = value if len(value) <= 60 else value[:57] + "..."
        raise AnswerError(f"label {shown!r} is not one of the task's labels")
    return value
