"""Free text: a worker types an answer (a transcription, a caption, a short name).

The answer is kept exactly as typed (HTML or script in it is data: every page that shows it
escapes it). Workers agree when k answers are equal after normalising: Unicode NFKC, case folded,
whitespace collapsed, surrounding punctuation stripped. The consolidated text is the most common
spelling within the winning group. Ground Truth has no built-in free-text type; the manifest
uses its custom-workflow shape: the text under the label attribute and
`type: groundtruth/custom` with a confidence in the metadata.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from typing import Any

from annotate.answers import AnswerError
from annotate.tasktypes._common import raw_field
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType

MAX_LENGTH = 5000
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_PUNCT_EDGES = re.compile(r"^[\W_]+|[\W_]+$")


def normalise(text: str) -> str:
    text = unicodedata.normalize("NFKC", text).casefold()
    text = " ".join(text.split())
    return _PUNCT_EDGES.sub("", text)


class FreeText(TaskType):
    name = "free-text"
    gt_type = "groundtruth/custom"

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> str:
        value = raw_field(fields, spec)
        if not isinstance(value, str):
            raise AnswerError("the text answer is not a string")
        limit = int(spec.settings.get("max_length", MAX_LENGTH))
        if _CONTROL.search(value):
            raise AnswerError("the text holds control characters")
        text = value.strip()
        if not text:
            raise AnswerError("the text answer is empty")
        if len(text) > limit:
            raise AnswerError(f"the text answer is {len(text)} characters; at most {limit} are accepted")
        return text

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        if not answers:
            return Consolidation(None, 0.0, False, {})
        groups: dict[str, list[str]] = {}
        for _, text in answers:
            groups.setdefault(normalise(text), []).append(text)
        ranked = sorted(groups.items(), key=lambda kv: -len(kv[1]))
        (key, spellings), *rest = ranked
        top = len(spellings)
        agreed = top >= spec.agree and (not rest or len(rest[0][1]) < top)
        # The group's most common spelling; on a tie, one without stray edge punctuation or case.
        counts = Counter(spellings)
        value = min(counts, key=lambda t: (-counts[t], _PUNCT_EDGES.sub("", t) != t, t.lower() != t, t))
        return Consolidation(value, top / len(answers), agreed, {"groups": {k: len(v) for k, v in groups.items()}})

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        attr = spec.label_attribute
        return {attr: value,
                f"{attr}-metadata": {"confidence": round(float(confidence), 2), "type": self.gt_type, **meta}}

    def score(self, value: Any, gold: Any) -> float:
        return float(normalise(value) == normalise(gold))
