"""Named-entity spans: parsing (out of range, overlapping, unknown labels), Jaccard clustering, GT text-span."""

from __future__ import annotations

import json

import pytest

from annotate.answers import AnswerError
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.tasktypes.named_entity import jaccard

SPEC = TaskSpec(batch="b", labels=["person", "location"], answer_field="ents", label_attribute="ents", agree=2)
TT = get_task_type("named-entity-recognition")
TEXT = "Maria Lopez flew to Lisbon."  # 27 characters


def answer(*spans, length=len(TEXT)):
    return {"ents": json.dumps({"entities": [{"label": s[0], "startOffset": s[1], "endOffset": s[2]} for s in spans]}),
            "ents-length": str(length)}


def value(*spans):
    return TT.parse(answer(*spans), SPEC)


def test_parse_sorts_spans():
    assert value(("location", 20, 26), ("person", 0, 11)) == {"entities": [
        {"label": "person", "startOffset": 0, "endOffset": 11}, {"label": "location", "startOffset": 20, "endOffset": 26}]}


@pytest.mark.parametrize("fields, reason", [
    (answer(), "no spans were marked"),
    (answer(("person", 0, 28)), r"outside the text's 0..27"),
    (answer(("person", -1, 3)), "outside"),
    (answer(("person", 5, 5)), "or empty"),
    (answer(("person", 0, 11), ("location", 6, 14)), "spans overlap: 0..11 .person. and 6..14 .location."),
    (answer(("animal", 0, 5)), "'animal', which is not one of the task's labels"),
    (answer(("person", 0.5, 5)), "not a whole number"),
    ({"ents": '{"entities": []}'}, "how long the text was"),
    ({"ents": "nope", "ents-length": "27"}, "not JSON"),
])
def test_parse_rejects_with_a_reason(fields, reason):
    with pytest.raises(AnswerError, match=reason):
        TT.parse(fields, SPEC)


def test_jaccard_of_offsets():
    a = {"startOffset": 0, "endOffset": 10}
    assert jaccard(a, a) == 1.0
    assert jaccard(a, {"startOffset": 5, "endOffset": 15}) == pytest.approx(5 / 15)
    assert jaccard(a, {"startOffset": 10, "endOffset": 12}) == 0.0


def test_shifted_spans_cluster_and_labels_are_voted():
    c = TT.consolidate([("w1", value(("person", 0, 11), ("location", 20, 26))),
                        ("w2", value(("person", 0, 11), ("location", 20, 26))),
                        ("w3", value(("person", 0, 12), ("person", 20, 26)))], SPEC)
    assert c.agreed and c.detail["agreeing"] == 2
    assert [(e["label"], e["startOffset"], e["endOffset"]) for e in c.value["entities"]] == [
        ("person", 0, 11), ("location", 20, 26)]
    assert c.value["entities"][1]["confidence"] == pytest.approx(2 / 3, abs=0.01)


def test_different_labels_or_missing_spans_disagree():
    c = TT.consolidate([("w1", value(("person", 0, 11))), ("w2", value(("location", 0, 11)))], SPEC)
    assert not c.agreed
    c = TT.consolidate([("w1", value(("person", 0, 11), ("location", 20, 26))), ("w2", value(("person", 0, 11)))], SPEC)
    assert not c.agreed and [e["label"] for e in c.value["entities"]] == ["person"]


def test_manifest_is_ground_truths_text_span_shape():
    v = {"entities": [{"label": "location", "startOffset": 20, "endOffset": 26, "confidence": 0.666}]}
    meta = {"job-name": "j", "human-annotated": "yes", "creation-date": "d"}
    assert TT.manifest_entries(SPEC, v, 0.7, meta) == {
        "ents": {"annotations": {"entities": [{"label": "location", "startOffset": 20, "endOffset": 26}],
                                 "labels": [{"label": "person"}, {"label": "location"}]}},
        "ents-metadata": {"entities": [{"confidence": 0.67}], "type": "groundtruth/text-span", **meta}}


def test_score():
    gold = TT.parse_gold('[{"label": "person", "startOffset": 0, "endOffset": 11}]')
    assert TT.score({"entities": gold["entities"]}, gold) == 1.0
    assert TT.score({"entities": [{"label": "person", "startOffset": 0, "endOffset": 10}]}, gold) == pytest.approx(10 / 11)
    assert TT.score({"entities": [{"label": "location", "startOffset": 0, "endOffset": 11}]}, gold) == 0.0
