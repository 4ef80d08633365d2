"""MTurk's AnswerKey: how a qualification test is scored.

Each `Question` of the key has `AnswerOption`s (one or more SelectionIdentifiers and an
AnswerScore): the worker earns the score when they picked exactly those selections, no others;
otherwise the question's `DefaultScore` (0 when absent). The summed score becomes the
qualification value directly, or through the `QualificationValueMapping`:
PercentageMapping (sum / MaximumSummedScore x 100), ScaleMapping (sum x SummedScoreMultiplier),
or RangeMapping (the QualificationValue of the SummedScoreRange holding the sum, else
OutOfRangeQualificationValue). Fractions are rounded to the nearest whole number.
"""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Sequence

from annotate.marketplace.question_form import QuestionForm, SelectionAnswer


class AnswerKeyError(ValueError):
    """The AnswerKey document is not one MTurk would accept."""


@dataclass
class KeyQuestion:
    identifier: str
    options: list[tuple[frozenset[str], Decimal]]
    default: Decimal = Decimal(0)


@dataclass
class AnswerKey:
    questions: list[KeyQuestion] = field(default_factory=list)
    mapping: tuple[str, object] | None = None  # ("percentage", max) | ("scale", mult) | ("range", (ranges, out))


def _local(tag: str) -> str:
    return tag.rsplit("}", 1)[-1]


def _kids(node: ET.Element, name: str) -> list[ET.Element]:
    return [c for c in node if _local(c.tag) == name]


def _number(node: ET.Element | None, what: str, whole: bool = False) -> Decimal:
    text = "".join(node.itertext()).strip() if node is not None else ""
    if not text:
        raise AnswerKeyError(f"{what} is missing.")
    if whole and not re.fullmatch(r"-?\d+", text):
        raise AnswerKeyError(f"{what} must be a whole number, not {text!r}.")
    try:
        return Decimal(text)
    except InvalidOperation:
        raise AnswerKeyError(f"{what} must be a number, not {text!r}.") from None


def _one(node: ET.Element, name: str) -> ET.Element | None:
    found = _kids(node, name)
    return found[0] if found else None


def parse(xml: str, test: QuestionForm | None = None) -> AnswerKey:
    """An AnswerKey, checked against the test's questions when given."""
    try:
        root = ET.fromstring(xml)
    except ET.ParseError as exc:
        raise AnswerKeyError(f"the AnswerKey is not well-formed XML: {exc}") from None
    if _local(root.tag) != "AnswerKey":
        raise AnswerKeyError(f"the root element {root.tag!r} is not an AnswerKey.")
    key = AnswerKey()
    for q in _kids(root, "Question"):
        qid = "".join(_one(q, "QuestionIdentifier").itertext()).strip() if _one(q, "QuestionIdentifier") is not None \
            else ""
        if not qid:
            raise AnswerKeyError("a Question of the AnswerKey has no QuestionIdentifier.")
        options = []
        for o in _kids(q, "AnswerOption"):
            ids = frozenset("".join(s.itertext()).strip() for s in _kids(o, "SelectionIdentifier"))
            if not ids:
                raise AnswerKeyError(f"question {qid}: an AnswerOption has no SelectionIdentifier.")
            options.append((ids, _number(_one(o, "AnswerScore"), f"question {qid}: AnswerScore", whole=True)))
        default = _one(q, "DefaultScore")
        key.questions.append(KeyQuestion(qid, options, _number(default, "DefaultScore", True)
                                         if default is not None else Decimal(0)))
    mapping = _one(root, "QualificationValueMapping")
    if mapping is not None:
        kind = list(mapping)
        if len(kind) != 1:
            raise AnswerKeyError("QualificationValueMapping must hold exactly one mapping.")
        name = _local(kind[0].tag)
        if name == "PercentageMapping":
            most = _number(_one(kind[0], "MaximumSummedScore"), "MaximumSummedScore", True)
            if most <= 0:
                raise AnswerKeyError("MaximumSummedScore must be positive.")
            key.mapping = ("percentage", most)
        elif name == "ScaleMapping":
            key.mapping = ("scale", _number(_one(kind[0], "SummedScoreMultiplier"), "SummedScoreMultiplier"))
        elif name == "RangeMapping":
            ranges = []
            for r in _kids(kind[0], "SummedScoreRange"):
                low = _number(_one(r, "InclusiveLowerBound"), "InclusiveLowerBound", True)
                high = _number(_one(r, "InclusiveUpperBound"), "InclusiveUpperBound", True)
                if high < low:
                    raise AnswerKeyError(f"SummedScoreRange {low}..{high} is empty.")
                ranges.append((low, high, int(_number(_one(r, "QualificationValue"), "QualificationValue", True))))
            out = _one(kind[0], "OutOfRangeQualificationValue")
            key.mapping = ("range", (ranges, int(_number(out, "OutOfRangeQualificationValue", True))
                                     if out is not None else None))
        else:
            raise AnswerKeyError(f"unknown QualificationValueMapping {name}.")
    if test is not None:
        questions = {q.identifier: q for q in test.questions}
        for kq in key.questions:
            q = questions.get(kq.identifier)
            if q is None:
                raise AnswerKeyError(f"the AnswerKey scores question {kq.identifier!r}, which the Test does not have.")
            if not isinstance(q.answer, SelectionAnswer):
                raise AnswerKeyError(f"question {kq.identifier!r} is not a multiple-choice question; an AnswerKey "
                                     f"can score only SelectionAnswer questions.")
            known = {s.identifier for s in q.answer.selections}
            for ids, _ in kq.options:
                if not ids <= known:
                    raise AnswerKeyError(f"question {kq.identifier!r}: AnswerOption names selection(s) "
                                         f"{sorted(ids - known)} the Test does not have.")
    return key


def _round(value: Decimal) -> int:
    return int(value.quantize(Decimal(1), rounding=ROUND_HALF_UP))


def score(key: AnswerKey, answers: Sequence[dict]) -> int | None:
    """The qualification value the answers earn (`answers` as question_form.collect gives them).

    None when a RangeMapping has no range for the sum and no OutOfRangeQualificationValue.
    """
    picked = {a["id"]: frozenset(a.get("selections", ())) for a in answers}
    total = Decimal(0)
    for kq in key.questions:
        chosen = picked.get(kq.identifier)
        earned = next((points for ids, points in kq.options if chosen == ids), None)
        total += kq.default if earned is None else earned
    if key.mapping is None:
        return _round(total)
    kind, how = key.mapping
    if kind == "percentage":
        return _round(total / how * 100)
    if kind == "scale":
        return _round(total * how)
    ranges, out = how
    for low, high, value in ranges:
        if low <= total <= high:
            return value
    return out
