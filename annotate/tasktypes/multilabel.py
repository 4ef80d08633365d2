"""Multi-label classification (image or text): each item gets any number of the task's labels.

An answer is the set of ticked labels (checkboxes come back from MTurk joined by '|'; a JSON
list is accepted too). Consolidation votes per label: a label is in the result when a strict
majority of the answers tick it, and the workers agree when, for every label, the winning side
has at least k votes and beats the other. Exported as Ground Truth's
groundtruth/{image,text}-classification-multilabel: class indices, class-map, confidence-map.
"""

from __future__ import annotations

import json
from typing import Any

from annotate.answers import AnswerError, worker_json
from annotate.tasktypes._common import raw_field
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType


class _MultiLabel(TaskType):
    def parse(self, fields: dict[str, str], spec: TaskSpec) -> list[str]:
        try:
            value: Any = raw_field(fields, spec)
        except AnswerError:
            # Unticked checkboxes are not submitted at all: a missing field means nothing was picked.
            raise AnswerError("no labels were picked") from None
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                value = worker_json(text, "the labels answer")
            else:
                value = [part for part in text.split("|") if part.strip()]
        if isinstance(value, dict) and "labels" in value:  # crowd-classifier-multi-select style
            value = value["labels"]
        if not isinstance(value, list):
            raise AnswerError("the labels answer is not a list of labels")
        picked = set()
        for v in value:
            label = str(v).strip() if isinstance(v, (str, int)) and not isinstance(v, bool) else None
            if label is None or label not in spec.labels:
                raise AnswerError(f"label {str(v)[:40]!r} is not one of the task's labels")
            picked.add(label)
        if not picked:
            raise AnswerError("no labels were picked")
        return [label for label in spec.labels if label in picked]  # the task's order

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        n = len(answers)
        if not n:
            return Consolidation(None, 0.0, False, {"votes": {}})
        votes = {label: sum(1 for _, picked in answers if label in picked) for label in spec.labels}
        chosen = [label for label in spec.labels if votes[label] * 2 > n]
        # Each label is a yes/no question; the workers agree when every one is settled by k votes.
        agreed = all(max(v, n - v) >= spec.agree and v * 2 != n for v in votes.values())
        confidences = {label: round(votes[label] / n, 4) for label in chosen}
        # The item's confidence: the weakest per-label decision (yes or no) of the lot.
        confidence = min(max(v, n - v) / n for v in votes.values())
        # Per-label confidences ride in the value: the store keeps one confidence per item.
        return Consolidation({"labels": chosen, "confidences": confidences}, confidence, agreed, {"votes": votes})

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        attr = spec.label_attribute
        labels, per_label = _labels(value), (value.get("confidences", {}) if isinstance(value, dict) else {})
        indices = [spec.labels.index(label) for label in labels]
        return {
            attr: indices,
            f"{attr}-metadata": {
                "class-map": {str(i): spec.labels[i] for i in indices},
                "confidence-map": {str(i): round(float(per_label.get(spec.labels[i], confidence)), 2) for i in indices},
                "type": self.gt_type, **meta,
            },
        }

    def parse_gold(self, gold: str) -> list[str]:
        text = gold.strip()
        if text.startswith("["):
            return [str(v) for v in json.loads(text)]
        return [part.strip() for part in text.split(",") if part.strip()]

    def score(self, value: Any, gold: Any) -> float:
        """Jaccard similarity of the label sets (1.0 when both are empty)."""
        got, want = set(_labels(value)), set(_labels(gold))
        return 1.0 if not got and not want else len(got & want) / len(got | want)

    def csv_value(self, value: Any) -> str:
        return "|".join(_labels(value))


def _labels(value: Any) -> list[str]:
    """The labels of a parsed answer (a list) or of a consolidated value ({"labels", "confidences"})."""
    if isinstance(value, dict):
        return list(value.get("labels", []))
    return list(value or [])


class ImageMultiLabel(_MultiLabel):
    name = "image-classification-multilabel"
    gt_type = "groundtruth/image-classification-multilabel"


class TextMultiLabel(_MultiLabel):
    name = "text-classification-multilabel"
    gt_type = "groundtruth/text-classification-multilabel"
