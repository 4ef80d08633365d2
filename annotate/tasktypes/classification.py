"""Single-label classification (image or text): one class per item, decided by the consensus
policies, exported as Ground Truth's classification output (class index + class-name)."""

from __future__ import annotations

from collections import Counter
from typing import Any

from annotate.answers import extract_label
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType


class _SingleLabel(TaskType):
    single_label = True

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> str:
        return extract_label(fields, spec.answer_field, spec.labels)

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        # Used where no policy runs (e.g. re-scoring); the policies are the real deciders.
        votes = Counter(label for _, label in answers)
        if not votes:
            return Consolidation(None, 0.0, False, {"votes": {}})
        (top, n), *rest = votes.most_common()
        agreed = n >= spec.agree and (not rest or rest[0][1] < n)
        return Consolidation(top, n / sum(votes.values()), agreed, {"votes": dict(votes)})

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        attr = spec.label_attribute
        return {
            attr: spec.labels.index(value),
            f"{attr}-metadata": {"class-name": value, "confidence": round(float(confidence), 2),
                                 "type": self.gt_type, **meta},
        }


class ImageClassification(_SingleLabel):
    name = "image-classification"
    gt_type = "groundtruth/image-classification"


class TextClassification(_SingleLabel):
    name = "text-classification"
    gt_type = "groundtruth/text-classification"
