"""Task types: what an answer is, how answers agree, and how a label is written out.

Each task type is one module with one `TaskType` subclass, named after Ground Truth's task:
single-label classification is decided by the consensus policies (annotate.consensus);
every other type consolidates its answers itself (per-label votes, boxes matched by IoU,
per-pixel votes, span clustering, normalised text) and says whether k workers agree.

    from annotate.tasktypes import get_task_type, TASK_TYPES
    tt = get_task_type("image-classification")
    value = tt.parse(fields, spec)           # an answer's value, or AnswerError (quarantined)
    result = tt.consolidate(answers, spec)   # Consolidation(value, confidence, agreed, detail)
    entries = tt.manifest_entries(spec, value, confidence, meta)   # the label attribute and its -metadata
    files = tt.write_artifacts(spec, item_id, value, out_dir)       # e.g. a mask PNG; then
    entries = tt.manifest_entries(spec, value, confidence, meta, artifacts=files)  # when files is not empty
"""

from __future__ import annotations

from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType
from annotate.tasktypes.bounding_box import BoundingBox
from annotate.tasktypes.classification import ImageClassification, TextClassification
from annotate.tasktypes.free_text import FreeText
from annotate.tasktypes.multilabel import ImageMultiLabel, TextMultiLabel
from annotate.tasktypes.named_entity import NamedEntity
from annotate.tasktypes.semantic_segmentation import SemanticSegmentation

TASK_TYPES: dict[str, type[TaskType]] = {
    cls.name: cls for cls in (ImageClassification, TextClassification, ImageMultiLabel, TextMultiLabel,
                              BoundingBox, SemanticSegmentation, NamedEntity, FreeText)
}


def register(cls: type[TaskType]) -> type[TaskType]:
    TASK_TYPES[cls.name] = cls
    return cls


def get_task_type(name: str) -> TaskType:
    try:
        return TASK_TYPES[name]()
    except KeyError:
        raise ValueError(f"unknown task type {name!r} (known: {', '.join(sorted(TASK_TYPES))})") from None


__all__ = ["Consolidation", "TASK_TYPES", "TaskSpec", "TaskType", "get_task_type", "register"]
