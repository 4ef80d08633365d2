"""Helpers the structured task types share: reading a JSON answer field, numbers, vote maths."""

from __future__ import annotations

import math
from typing import Any, Callable

from annotate.answers import AnswerError, task_answers, worker_json
from annotate.tasktypes.base import TaskSpec

# Default palette for class colours (mask PNGs, box outlines). Index 0 is the background, white
# as in Ground Truth's internal-color-map; classes follow in the order of the task's labels.
BACKGROUND_HEX = "#ffffff"
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf", "#393b79", "#637939", "#8c6d31", "#843c39", "#7b4173", "#3182bd",
           "#e6550d", "#31a354", "#756bb1", "#636363"]


def class_colors(labels: list[str]) -> list[str]:
    """Hex colours by class index: 0 background, then one per label (cycling if there are many)."""
    if len(labels) > len(PALETTE):
        raise ValueError(f"at most {len(PALETTE)} classes have distinct colours ({len(labels)} given)")
    return [BACKGROUND_HEX] + PALETTE[: len(labels)]


def raw_field(fields: dict[str, str], spec: TaskSpec) -> Any:
    """The answer field's raw value: a plain form field, or the entry in crowd-form's taskAnswers."""
    value: Any = fields.get(spec.answer_field)
    if value is None:
        crowd = task_answers(fields)
        if crowd is not None and spec.answer_field in crowd:
            value = crowd[spec.answer_field]
    if value is None:
        present = ", ".join(sorted(fields)) or "none"
        raise AnswerError(f"no '{spec.answer_field}' field in the answer (fields: {present})")
    return value


def json_field(fields: dict[str, str], spec: TaskSpec, what: str) -> Any:
    value = raw_field(fields, spec)
    if isinstance(value, str):
        if not value.strip():
            raise AnswerError(f"the answer is empty: no {what}")
        value = worker_json(value, f"the {what} answer")  # within annotate.answers' size and depth limits
    return value


def number(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise AnswerError(f"{what} is not a number: {str(value)[:40]!r}")
    try:
        result = float(value)  # an int beyond a float's range raises OverflowError here
    except OverflowError:
        result = math.inf
    if not math.isfinite(result):
        raise AnswerError(f"{what} is out of range: {str(value)[:40]}")
    return result


def integer(value: Any, what: str) -> int:
    n = number(value, what)
    if n != int(n):
        raise AnswerError(f"{what} is not a whole number: {n}")
    return int(n)


def label_of(value: Any, spec: TaskSpec, what: str) -> str:
    label = str(value) if isinstance(value, (str, int)) and not isinstance(value, bool) else None
    if label is None or label not in spec.labels:
        shown = str(value)[:40]
        raise AnswerError(f"{what} has label {shown!r}, which is not one of the task's labels")
    return label


def setting(spec: TaskSpec, name: str, default: float, lo: float, hi: float) -> float:
    value = spec.settings.get(name, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not lo <= value <= hi:
        raise ValueError(f"[task] {name} must be a number between {lo} and {hi}, got {value!r}")
    return float(value)


def majority(n: int) -> int:
    """Answers needed for a strict majority of n."""
    return n // 2 + 1


def greedy_pairs(a: list, b: list, similarity: Callable[[Any, Any], float], threshold: float) -> list[tuple[int, int, float]]:
    """One-to-one pairs (i, j, similarity) of a[i] and b[j], the most similar first; pairs under
    `threshold` never match (how Ground Truth matches boxes, and we match spans)."""
    pairs = sorted(((similarity(x, y), i, j) for i, x in enumerate(a) for j, y in enumerate(b)), reverse=True)
    taken_a, taken_b, out = set(), set(), []
    for value, i, j in pairs:
        if value < threshold:
            break
        if i in taken_a or j in taken_b:
            continue
        taken_a.add(i)
        taken_b.add(j)
        out.append((i, j, value))
    return out


def same_label(similarity: Callable[[dict, dict], float]) -> Callable[[dict, dict], float]:
    """Objects of different labels never match."""
    return lambda x, y: similarity(x, y) if x["label"] == y["label"] else 0.0


def match_score(got: list[dict], want: list[dict], similarity: Callable[[dict, dict], float],
                threshold: float = 0.5) -> float:
    """How well two object sets agree, 0..1: same-label objects matched one to one (pairs under
    `threshold` do not match), summed similarity over the larger set's size."""
    if not got and not want:
        return 1.0
    matched = greedy_pairs(got, want, same_label(similarity), threshold)
    return sum(value for _, _, value in matched) / max(len(got), len(want))


def cluster_objects(answers: list[list[dict]], similarity: Callable[[dict, dict], float], threshold: float,
                    represent: Callable[[list[dict]], dict]) -> list[dict]:
    """Greedy clustering across workers' answers: each answer's objects join the clusters they best
    match one to one (similarity to the cluster's representative ≥ `threshold`); the rest start new
    clusters. A cluster is {"members": {answer index: object}, "rep": represent(members)}."""
    clusters: list[dict] = []
    for index, objects in enumerate(answers):
        matched = greedy_pairs([c["rep"] for c in clusters], objects, similarity, threshold)
        for ci, oi, _ in matched:
            clusters[ci]["members"][index] = objects[oi]
            clusters[ci]["rep"] = represent(list(clusters[ci]["members"].values()))
        taken = {oi for _, oi, _ in matched}
        clusters.extend({"members": {index: obj}, "rep": dict(obj)} for oi, obj in enumerate(objects) if oi not in taken)
    return clusters
