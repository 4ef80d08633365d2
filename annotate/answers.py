"""Worker answers: MTurk's QuestionFormAnswers XML → fields (xmltodict), and the label in them.

An HTMLQuestion's form comes back as one `Answer` per form field, `QuestionIdentifier` +
`FreeText`; with `crowd-form` there is a single `taskAnswers` field holding JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

import xmltodict
from xml.parsers.expat import ExpatError

ANSWER_NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"
# Form fields MTurk itself or our templates add, which are not answers.
SERVICE_FIELDS = {"assignmentId", "hitId", "workerId", "turkSubmitTo"}


class AnswerError(ValueError):
    """An answer that cannot be used; it is kept (quarantined) with this reason, never dropped."""


@dataclass(frozen=True)
class ParsedAnswer:
    fields: dict[str, str]  # field → value (repeated fields joined by '|', as MTurk lists checkboxes)
    document: dict[str, Any]  # the xmltodict parse, kept as JSON in the store


def parse_question_form_answers(xml: str) -> ParsedAnswer:
    try:
        doc = xmltodict.parse(xml, process_namespaces=True, namespaces={ANSWER_NS: None}, force_list=("Answer",))
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


def task_answers(fields: dict[str, str]) -> dict[str, Any] | None:
    """crowd-form's single `taskAnswers` field, decoded (None when the form was a plain one)."""
    raw = fields.get("taskAnswers")
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except json.JSONDecodeError as exc:
        raise AnswerError(f"taskAnswers is not JSON: {exc.msg}") from None
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
