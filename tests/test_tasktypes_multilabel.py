"""Multi-label classification: parsing ticks, per-label votes, Ground Truth's multilabel output."""

from __future__ import annotations

import json

import pytest

from annotate.answers import AnswerError
from annotate.tasktypes import TaskSpec, get_task_type

SPEC = TaskSpec(batch="b", labels=["cat", "dog", "bird"], answer_field="animals", label_attribute="animals", agree=2)
TT = get_task_type("image-classification-multilabel")


def test_parse_checkbox_answer_and_json_list():
    assert TT.parse({"animals": "dog|cat"}, SPEC) == ["cat", "dog"]  # the task's order
    assert TT.parse({"animals": '["bird"]'}, SPEC) == ["bird"]
    assert TT.parse({"taskAnswers": json.dumps([{"animals": {"labels": ["dog"]}}])}, SPEC) == ["dog"]


@pytest.mark.parametrize("fields, reason", [
    ({}, "no labels were picked"),
    ({"animals": ""}, "no labels were picked"),
    ({"animals": "cat|horse"}, "'horse' is not one of the task's labels"),
    ({"animals": "[1, "}, "not JSON"),
    ({"animals": '{"x": 1}'}, "is not one of the task's labels"),
])
def test_parse_rejects_with_a_reason(fields, reason):
    with pytest.raises(AnswerError, match=reason):
        TT.parse(fields, SPEC)


def test_per_label_votes_agree_and_disagree():
    agreed = TT.consolidate([("w1", ["cat", "dog"]), ("w2", ["cat", "dog"])], SPEC)
    assert agreed.value["labels"] == ["cat", "dog"] and agreed.agreed and agreed.confidence == 1.0
    split = TT.consolidate([("w1", ["cat", "dog"]), ("w2", ["cat"])], SPEC)
    assert not split.agreed  # dog is 1:1
    settled = TT.consolidate([("w1", ["cat", "dog"]), ("w2", ["cat"]), ("w3", ["cat", "dog"])], SPEC)
    assert settled.agreed and settled.value["labels"] == ["cat", "dog"]
    assert settled.value["confidences"] == {"cat": 1.0, "dog": pytest.approx(2 / 3, abs=1e-4)}
    assert settled.confidence == pytest.approx(2 / 3)


def test_manifest_is_ground_truths_multilabel_shape():
    value = {"labels": ["cat", "bird"], "confidences": {"cat": 1.0, "bird": 0.6667}}
    meta = {"job-name": "labeling-job/b", "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000"}
    entries = TT.manifest_entries(SPEC, value, 0.66, meta)
    assert entries == {"animals": [0, 2], "animals-metadata": {
        "class-map": {"0": "cat", "2": "bird"}, "confidence-map": {"0": 1.0, "2": 0.67},
        "type": "groundtruth/image-classification-multilabel", **meta}}
    text = get_task_type("text-classification-multilabel").manifest_entries(SPEC, ["dog"], 0.9, meta)
    assert text["animals-metadata"]["type"] == "groundtruth/text-classification-multilabel"
    assert text["animals-metadata"]["confidence-map"] == {"1": 0.9}


def test_score_is_label_set_jaccard():
    assert TT.score({"labels": ["cat", "dog"]}, TT.parse_gold('["cat", "dog"]')) == 1.0
    assert TT.score(["cat"], TT.parse_gold("cat, dog")) == 0.5
    assert TT.csv_value({"labels": ["cat", "dog"]}) == "cat|dog"
