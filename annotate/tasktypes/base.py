"""The task-type interface."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate.answers import AnswerError  # noqa: F401  (re-exported for task type modules)


@dataclass(frozen=True)
class TaskSpec:
    """What a task type needs to know of its batch (from batch.toml and the store)."""

    batch: str
    labels: list[str]
    answer_field: str
    label_attribute: str
    agree: int = 2  # how many workers must agree
    settings: dict[str, Any] = field(default_factory=dict)  # the type's own [task] settings

    @classmethod
    def from_batch_row(cls, row: dict) -> "TaskSpec":
        config = row["config"]
        task = dict(config.get("task", {}))
        consensus = config.get("consensus", {})
        return cls(batch=row["name"], labels=list(row["labels"]), answer_field=row["answer_field"],
                   label_attribute=row["label_attribute"], agree=int(consensus.get("agree", 2)),
                   settings={k: v for k, v in task.items() if k not in ("labels", "field", "instructions")})


@dataclass(frozen=True)
class Consolidation:
    value: Any  # the consolidated answer (JSON-serialisable)
    confidence: float  # 0..1
    agreed: bool  # whether enough workers agree to stop buying answers
    detail: dict[str, Any] = field(default_factory=dict)  # per-object confidences, votes, …


class TaskType:
    name = ""  # batch.toml's task_type
    gt_type = ""  # Ground Truth's `type` in the manifest metadata
    single_label = False  # True: the consensus policies decide (worker skill, adaptive buying)

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> Any:
        """The answer's value from the submitted form fields; AnswerError if unusable."""
        raise NotImplementedError

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        """(worker, value) answers of one item → one consolidated value, and whether they agree."""
        raise NotImplementedError

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        """The label attribute and its `-metadata` for one item of an augmented manifest.
        `meta` holds job-name, creation-date and human-annotated, shared by every type."""
        raise NotImplementedError

    def write_artifacts(self, spec: TaskSpec, item_id: str, value: Any, out_dir: Path) -> dict[str, str]:
        """Files one item's label needs beside the manifest (a segmentation mask PNG), written under
        `out_dir`. Returns {} (nothing to write) or names → paths, handed to manifest_entries as
        `artifacts=`; only types that write files take that argument."""
        return {}

    def score(self, value: Any, gold: Any) -> float:
        """How right a consolidated value is against a gold one, 0..1 (the demo's accuracy)."""
        return float(value == gold)

    def parse_gold(self, gold: str) -> Any:
        """The gold column's text as a value comparable with consolidated ones."""
        return gold

    def csv_value(self, value: Any) -> str:
        """How the consolidated value appears in the CSV export's `label` column."""
        import json

        return value if isinstance(value, str) else json.dumps(value, sort_keys=True)
