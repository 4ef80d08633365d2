"""Semantic segmentation: PNG masks (wrong size, not a PNG, foreign colours), per-pixel vote, mean IoU
agreement, the -ref mask file and internal-color-map."""

from __future__ import annotations

import base64
import io
import json

import numpy as np
import pytest
from PIL import Image

from annotate.answers import AnswerError
from annotate.marketplace.structured_crowd import mask_png
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.tasktypes._common import PALETTE
from annotate.tasktypes.semantic_segmentation import decode_mask, mean_iou, rasterize

LABELS = ["cat", "dog"]
SPEC = TaskSpec(batch="b", labels=LABELS, answer_field="mask", label_attribute="pets", agree=2, settings={"iou": 0.8})
TT = get_task_type("semantic-segmentation")


def square(left, top, side, cls=1, size=(40, 30)):
    m = np.zeros((size[1], size[0]), dtype=np.uint8)
    m[top:top + side, left:left + side] = cls
    return m


def answer(mask, size=(40, 30), data=None):
    return {"mask": json.dumps({"image_size": {"width": size[0], "height": size[1]},
                                "mask": data if data is not None else mask_png(mask, LABELS)})}


def value(mask):
    return TT.parse(answer(mask), SPEC)


def test_parse_reads_class_colours_back():
    m = square(5, 5, 10)
    m[20:25, 30:35] = 2
    got = TT.parse(answer(m), SPEC)
    assert got["image_size"] == {"width": 40, "height": 30}
    assert (decode_mask(got["mask"], LABELS) == m).all()


def test_transparent_pixels_are_background():
    rgba = np.zeros((30, 40, 4), dtype=np.uint8)
    rgba[0:5, 0:5] = [0x1F, 0x77, 0xB4, 255]
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, "PNG")
    data = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    assert decode_mask(TT.parse(answer(None, data=data), SPEC)["mask"], LABELS).sum() == 25


def _png(array, mode="RGB", fmt="PNG"):
    buffer = io.BytesIO()
    Image.fromarray(array, mode).save(buffer, fmt)
    return base64.b64encode(buffer.getvalue()).decode()


@pytest.mark.parametrize("data, size, reason", [
    (None, (41, 30), "the mask is 40x30 but the image is 41x30"),
    ("data:image/jpeg;base64," + _png(np.zeros((30, 40, 3), np.uint8), fmt="JPEG"), (40, 30), "not a PNG"),
    (_png(np.zeros((30, 40, 3), np.uint8), fmt="JPEG"), (40, 30), "not a PNG image"),
    ("data:image/png;base64,@@@", (40, 30), "not valid base64"),
    ("data:image/png;base64," + _png(np.full((30, 40, 3), 7, np.uint8)), (40, 30), "colours that belong to no class .e.g. #070707"),
    (mask_png(np.zeros((30, 40), np.uint8), LABELS), (40, 30), "nothing was painted"),
    ("", (40, 30), "holds no mask"),
])
def test_parse_rejects_with_a_reason(data, size, reason):
    with pytest.raises(AnswerError, match=reason):
        TT.parse(answer(square(5, 5, 10), size=size, data=data), SPEC)


def test_per_pixel_vote_and_mean_iou_agreement():
    a, b, c = square(5, 5, 10), square(6, 5, 10), square(20, 10, 10, cls=2)
    agreed = TT.consolidate([("w1", value(a)), ("w2", value(b))], SPEC)
    voted = decode_mask(agreed.value["mask"], LABELS)
    assert (voted == np.logical_and(a, b)).all()  # a 1:1 tie goes to the background
    assert agreed.agreed and min(agreed.detail["ious"]) >= 0.8
    split = TT.consolidate([("w1", value(a)), ("w2", value(c))], SPEC)
    assert not split.agreed
    three = TT.consolidate([("w1", value(a)), ("w2", value(c)), ("w3", value(a))], SPEC)
    assert three.agreed and (decode_mask(three.value["mask"], LABELS) == a).all()
    # cat's pixels won 2 votes of 3; dog is absent from the vote and from 2 of the 3 masks
    assert three.value["confidences"]["1"] == pytest.approx(2 / 3, abs=1e-3)
    assert three.value["confidences"]["2"] == pytest.approx(2 / 3, abs=1e-3)


def test_mask_file_and_manifest(tmp_path):
    c = TT.consolidate([("w1", value(square(5, 5, 10))), ("w2", value(square(5, 5, 10)))], SPEC)
    files = TT.write_artifacts(SPEC, "item-1", c.value, tmp_path)
    written = np.asarray(Image.open(files["ref"]).convert("RGB"))
    assert written.shape == (30, 40, 3) and tuple(written[7, 7]) == (0x1F, 0x77, 0xB4) and tuple(written[0, 0]) == (255,) * 3
    meta = {"job-name": "j", "human-annotated": "yes", "creation-date": "d"}
    entries = TT.manifest_entries(SPEC, c.value, c.confidence, meta, artifacts=files)
    assert entries["pets-ref"] == files["ref"]
    assert entries["pets-ref-metadata"] == {
        "internal-color-map": {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 1.0},
                               "1": {"class-name": "cat", "hex-color": PALETTE[0], "confidence": 1.0},
                               "2": {"class-name": "dog", "hex-color": PALETTE[1], "confidence": 1.0}},
        "type": "groundtruth/semantic-segmentation", **meta}
    with pytest.raises(ValueError, match="write_artifacts"):
        TT.manifest_entries(SPEC, c.value, c.confidence, meta)


def test_score_against_polygon_gold():
    gold = {"image_size": {"width": 40, "height": 30}, "polygons": [{"label": "cat", "points": [[5, 5], [14, 5], [14, 14], [5, 14]]}]}
    assert (rasterize(40, 30, gold["polygons"], LABELS) == square(5, 5, 10)).all()
    c = TT.consolidate([("w1", value(square(5, 5, 10))), ("w2", value(square(5, 5, 10)))], SPEC)
    assert TT.score(c.value, TT.parse_gold(json.dumps(gold))) == 1.0
    assert mean_iou(square(5, 5, 10), square(6, 5, 10)) < 1.0


def test_the_templates_palette_is_the_tasktypes():
    from annotate.templates import templates_dir

    text = (templates_dir() / "semantic-segmentation.html.j2").read_text()
    assert json.dumps(PALETTE) in text.replace("'", '"')
