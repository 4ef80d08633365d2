"""Named-entity spans: workers select stretches of a text and give each an entity type.

An answer (the hidden JSON field the template fills; crowd-entity-annotation's shape is the same):
    {"entities": [{"label": "person", "startOffset": 0, "endOffset": 12}, ...]}
Offsets count Unicode code points (Python's str indexing), end exclusive. The template also sends
`<field>-length`, the length of the text it showed, so spans past the end are caught. Spans may
not overlap.
Consolidation clusters spans across workers by the Jaccard index of their character ranges
(`jaccard` in [task], default 0.5); a cluster a strict majority of workers marked becomes one
span (median offsets), labelled by vote. k workers agree when k of them marked exactly those
spans with those labels. Exported as groundtruth/text-span.
"""

from __future__ import annotations

import json
from collections import Counter
from statistics import median_low
from typing import Any

from annotate.answers import AnswerError, task_answers
from annotate.tasktypes._common import cluster_objects, integer, json_field, label_of, majority, setting
from annotate.tasktypes._common import match_score as _match_score
from annotate.tasktypes.base import Consolidation, TaskSpec, TaskType

MAX_SPANS = 1000
MAX_TEXT = 1_000_000  # characters: the bound on offsets when the answer does not give the text's length


def jaccard(a: dict, b: dict) -> float:
    inter = max(0, min(a["endOffset"], b["endOffset"]) - max(a["startOffset"], b["startOffset"]))
    union = (a["endOffset"] - a["startOffset"]) + (b["endOffset"] - b["startOffset"]) - inter
    return inter / union if union > 0 else 0.0


def match_score(got: list[dict], want: list[dict], threshold: float = 0.5) -> float:
    """Soft F1-like agreement of two span sets: same-label spans matched one to one by Jaccard."""
    return _match_score(got, want, jaccard, threshold)


class NamedEntity(TaskType):
    name = "named-entity-recognition"
    gt_type = "groundtruth/text-span"

    def parse(self, fields: dict[str, str], spec: TaskSpec) -> dict[str, Any]:
        doc = json_field(fields, spec, "spans")
        if isinstance(doc, list):
            doc = {"entities": doc}
        if not isinstance(doc, dict) or not isinstance(doc.get("entities"), list):
            raise AnswerError("the spans answer has no list of entities")
        length_field = f"{spec.answer_field}-length"
        crowd = task_answers(fields)
        length_text = fields.get(length_field, (crowd or {}).get(length_field))
        if length_text is None and crowd is None:
            raise AnswerError(f"the answer does not say how long the text was ('{length_field}')")
        if length_text is None:
            # crowd-entity-annotation does not report the text's length: offsets are only bounded
            length = MAX_TEXT
        else:
            try:
                length = int(str(length_text))
            except ValueError:
                raise AnswerError(f"'{length_field}' is not a number: {str(length_text)[:20]!r}") from None
        entities = doc["entities"]
        if not entities and not spec.settings.get("allow_empty", False):
            raise AnswerError("no spans were marked")
        if len(entities) > MAX_SPANS:
            raise AnswerError(f"{len(entities)} spans; at most {MAX_SPANS} are accepted")
        out = []
        for n, e in enumerate(entities, start=1):
            if not isinstance(e, dict):
                raise AnswerError(f"span {n} is not an object")
            start = integer(e.get("startOffset"), f"span {n}'s startOffset")
            end = integer(e.get("endOffset"), f"span {n}'s endOffset")
            if not 0 <= start < end <= length:
                raise AnswerError(f"span {n} ({start}..{end}) is outside the text's 0..{length} or empty")
            out.append({"label": label_of(e.get("label"), spec, f"span {n}"), "startOffset": start, "endOffset": end})
        out.sort(key=lambda e: (e["startOffset"], e["endOffset"]))
        for a, b in zip(out, out[1:]):
            if b["startOffset"] < a["endOffset"]:
                raise AnswerError(f"spans overlap: {a['startOffset']}..{a['endOffset']} ({a['label']}) and "
                                  f"{b['startOffset']}..{b['endOffset']} ({b['label']})")
        return {"entities": out}

    def consolidate(self, answers: list[tuple[str, Any]], spec: TaskSpec) -> Consolidation:
        threshold = setting(spec, "jaccard", 0.5, 0.05, 1.0)
        n = len(answers)
        if not n:
            return Consolidation(None, 0.0, False, {})
        # Spans cluster whatever their label (the label is voted on afterwards).
        clusters = cluster_objects([answer["entities"] for _, answer in answers], jaccard, threshold, _median)
        kept = []
        for c in clusters:
            if len(c["members"]) < majority(n):
                continue
            labels = Counter(s["label"] for s in c["members"].values())
            (label, votes), *_ = sorted(labels.items(), key=lambda kv: (-kv[1], spec.labels.index(kv[0])))
            span = {**_median(list(c["members"].values())), "label": label}
            overlap = sum(jaccard(span, s) for s in c["members"].values()) / len(c["members"])
            c["label"] = label
            c["span"] = {**span, "confidence": round(len(c["members"]) / n * votes / len(c["members"]) * overlap, 4)}
            kept.append(c)
        # Medians of neighbouring clusters may overlap: the more confident span keeps its place.
        kept.sort(key=lambda c: -c["span"]["confidence"])
        final: list[dict] = []
        for c in kept:
            if all(c["span"]["endOffset"] <= f["span"]["startOffset"] or c["span"]["startOffset"] >= f["span"]["endOffset"]
                   for f in final):
                final.append(c)
        final.sort(key=lambda c: c["span"]["startOffset"])
        final_ids = {id(c) for c in final}
        agreeing = 0
        for index in range(n):
            mine = [c for c in clusters if index in c["members"]]
            if {id(c) for c in mine} == final_ids and all(c["members"][index]["label"] == c["label"] for c in mine):
                agreeing += 1
        entities = [c["span"] for c in final]
        confidence = sum(e["confidence"] for e in entities) / len(entities) if entities else agreeing / n
        return Consolidation({"entities": entities}, confidence, agreeing >= spec.agree,
                             {"agreeing": agreeing, "answers": n, "clusters": len(clusters)})

    def manifest_entries(self, spec: TaskSpec, value: Any, confidence: float, meta: dict[str, Any]) -> dict[str, Any]:
        attr = spec.label_attribute
        entities = value["entities"]
        return {
            attr: {"annotations": {
                "entities": [{"label": e["label"], "startOffset": e["startOffset"], "endOffset": e["endOffset"]}
                             for e in entities],
                "labels": [{"label": label} for label in spec.labels],
            }},
            f"{attr}-metadata": {
                "entities": [{"confidence": round(float(e.get("confidence", confidence)), 2)} for e in entities],
                "type": self.gt_type, **meta,
            },
        }

    def parse_gold(self, gold: str) -> dict[str, Any]:
        doc = json.loads(gold)
        return {"entities": doc} if isinstance(doc, list) else doc

    def score(self, value: Any, gold: Any) -> float:
        return match_score(value["entities"], gold["entities"])

    def csv_value(self, value: Any) -> str:
        return json.dumps([{k: e[k] for k in ("label", "startOffset", "endOffset")} for e in value["entities"]])


def _median(spans: list[dict]) -> dict:
    start = median_low([s["startOffset"] for s in spans])
    end = median_low([s["endOffset"] for s in spans])
    if end <= start:  # medians of crossing spans: fall back to the first worker's span
        start, end = spans[0]["startOffset"], spans[0]["endOffset"]
    return {"startOffset": start, "endOffset": end}
