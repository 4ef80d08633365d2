"""Bounding boxes: parsing (sizes, boxes outside the image), IoU matching and averaging, GT output."""

from __future__ import annotations

import json

import pytest

from annotate.answers import AnswerError
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.tasktypes.bounding_box import iou, match_score

SPEC = TaskSpec(batch="b", labels=["cat", "dog"], answer_field="boxes", label_attribute="pets", agree=2,
                settings={"iou": 0.6})
TT = get_task_type("bounding-box")
SIZE = {"width": 200, "height": 100}


def answer(*boxes, size=SIZE):
    return {"boxes": json.dumps({"image_size": size, "boxes": [
        {"label": b[0], "left": b[1], "top": b[2], "width": b[3], "height": b[4]} for b in boxes]})}


def value(*boxes):
    return TT.parse(answer(*boxes), SPEC)


def test_parse_good_answer_and_crowd_bounding_box_shape():
    got = value(("cat", 10, 10, 50, 40), ("dog", 100.4, 20, 30, 30))
    assert got == {"image_size": SIZE, "boxes": [
        {"label": "cat", "left": 10, "top": 10, "width": 50, "height": 40},
        {"label": "dog", "left": 100, "top": 20, "width": 30, "height": 30}]}
    crowd = {"boxes": json.dumps({"boundingBox": {"inputImageProperties": SIZE, "boundingBoxes": [
        {"label": "cat", "left": 0, "top": 0, "width": 200, "height": 100}]}})}
    assert TT.parse(crowd, SPEC)["boxes"][0]["width"] == 200


@pytest.mark.parametrize("fields, reason", [
    ({}, "no 'boxes' field"),
    ({"boxes": ""}, "empty"),
    ({"boxes": "[{"}, "not JSON"),
    (answer(), "no boxes were drawn"),
    (answer(("cat", 190, 10, 20, 20)), "outside the 200x100 image"),
    (answer(("cat", -1, 10, 20, 20)), "outside"),
    (answer(("cat", 10, 90, 20, 20)), "outside"),
    (answer(("cat", 10, 10, 0, 20)), "empty"),
    (answer(("horse", 10, 10, 20, 20)), "'horse', which is not one of the task's labels"),
    ({"boxes": json.dumps({"image_size": SIZE, "boxes": [{"label": "cat", "left": "x", "top": 1, "width": 2, "height": 2}]})},
     "left is not a number"),
    ({"boxes": json.dumps({"boxes": []})}, "image's size"),
])
def test_parse_rejects_with_a_reason(fields, reason):
    with pytest.raises(AnswerError, match=reason):
        TT.parse(fields, SPEC)


def test_iou():
    a = {"left": 0, "top": 0, "width": 10, "height": 10}
    assert iou(a, a) == 1.0
    assert iou(a, {"left": 5, "top": 0, "width": 10, "height": 10}) == pytest.approx(50 / 150)
    assert iou(a, {"left": 20, "top": 20, "width": 5, "height": 5}) == 0.0


def test_matching_boxes_are_averaged_and_agree():
    c = TT.consolidate([("w1", value(("cat", 10, 10, 50, 40), ("dog", 120, 20, 40, 40))),
                        ("w2", value(("dog", 122, 22, 40, 40), ("cat", 12, 12, 50, 40)))], SPEC)
    assert c.agreed
    boxes = [{k: b[k] for k in ("label", "left", "top", "width", "height")} for b in c.value["boxes"]]
    assert boxes == [{"label": "cat", "left": 11, "top": 11, "width": 50, "height": 40},
                     {"label": "dog", "left": 121, "top": 21, "width": 40, "height": 40}]
    assert all(0.85 < b["confidence"] <= 1 for b in c.value["boxes"])


def test_a_missed_box_disagrees_until_a_third_worker_settles_it():
    two = [("w1", value(("cat", 10, 10, 50, 40), ("dog", 120, 20, 40, 40))), ("w2", value(("cat", 10, 10, 50, 40)))]
    c = TT.consolidate(two, SPEC)
    assert not c.agreed and c.detail["agreeing"] == 1
    c = TT.consolidate(two + [("w3", value(("dog", 121, 20, 40, 40), ("cat", 11, 10, 50, 40)))], SPEC)
    assert c.agreed and [b["label"] for b in c.value["boxes"]] == ["cat", "dog"]
    dog = c.value["boxes"][1]
    assert dog["confidence"] < c.value["boxes"][0]["confidence"]  # two of three drew it


def test_boxes_under_the_iou_threshold_or_of_another_class_do_not_match():
    far = TT.consolidate([("w1", value(("cat", 10, 10, 50, 40))), ("w2", value(("cat", 40, 10, 50, 40)))], SPEC)
    assert not far.agreed and far.detail["groups"] == 2  # IoU 0.25 < 0.6
    other = TT.consolidate([("w1", value(("cat", 10, 10, 50, 40))), ("w2", value(("dog", 10, 10, 50, 40)))], SPEC)
    assert not other.agreed and other.value["boxes"] == []


def test_manifest_is_ground_truths_object_detection_shape():
    v = {"image_size": SIZE, "boxes": [{"label": "dog", "left": 1, "top": 2, "width": 3, "height": 4, "confidence": 0.876}]}
    meta = {"job-name": "labeling-job/b", "human-annotated": "yes", "creation-date": "2026-01-01T00:00:00.000000"}
    assert TT.manifest_entries(SPEC, v, 0.9, meta) == {
        "pets": {"image_size": [{"width": 200, "height": 100, "depth": 3}],
                 "annotations": [{"class_id": 1, "left": 1, "top": 2, "width": 3, "height": 4}]},
        "pets-metadata": {"objects": [{"confidence": 0.88}], "class-map": {"0": "cat", "1": "dog"},
                          "type": "groundtruth/object-detection", **meta}}


def test_score_matches_boxes_by_iou():
    gold = value(("cat", 10, 10, 50, 40))["boxes"]
    assert match_score(gold, gold) == 1.0
    assert match_score([], gold) == 0.0
    assert match_score(gold + [{"label": "dog", "left": 0, "top": 0, "width": 5, "height": 5}], gold) == 0.5
