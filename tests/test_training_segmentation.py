"""Ground Truth semantic-segmentation output → the built-in algorithm's channel layout."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from annotate.errors import UserError
from annotate.sagemaker import segmentation_channels

COLOR_MAP = {"0": {"class-name": "BACKGROUND", "hex-color": "#ffffff", "confidence": 0.26},
             "1": {"class-name": "Turtle", "hex-color": "#2ca02c", "confidence": 0.26}}


def ground_truth_output(root, n=10, colour=True):
    """Images Image_<i>.jpg and masks named as Ground Truth names them (<index>_<time>.png)."""
    (root / "annotations").mkdir(parents=True)
    lines = []
    for i in range(n):
        Image.new("RGB", (8, 8), (i, i, i)).save(root / f"Image_{i}.jpg")
        mask = np.zeros((8, 8), dtype=np.uint8)
        mask[: i % 8 + 1, :4] = 1
        if colour:
            rgb = np.where(mask[..., None] == 1, [0x2c, 0xa0, 0x2c], [255, 255, 255]).astype(np.uint8)
            Image.fromarray(rgb).save(root / "annotations" / f"{i}_2022-02-10T17:41:0{i}.png")
        else:
            Image.fromarray(mask).save(root / "annotations" / f"{i}_2022-02-10T17:41:0{i}.png")
        lines.append({"source-ref": str(root / f"Image_{i}.jpg"),
                      "labelturtles-ref": f"annotations/{i}_2022-02-10T17:41:0{i}.png",
                      "labelturtles-ref-metadata": {"internal-color-map": COLOR_MAP,
                                                    "type": "groundtruth/semantic-segmentation",
                                                    "human-annotated": "yes", "job-name": "labeling-job/labelturtles"}})
    manifest = root / "output.manifest"
    manifest.write_text("".join(json.dumps(line) + "\n" for line in lines))
    return manifest


def test_channel_layout_masks_renamed_and_split(tmp_path):
    manifest = ground_truth_output(tmp_path / "gt")
    out = tmp_path / "channels"
    result = segmentation_channels(manifest, out, seed=7)

    assert sorted(p.name for p in out.iterdir()) == ["classes.json", "label_map", "train", "train_annotation",
                                                     "validation", "validation_annotation"]
    assert (len(result.train), len(result.validation)) == (8, 2)
    assert not set(result.train) & set(result.validation)
    for channel, stems in (("train", result.train), ("validation", result.validation)):
        assert sorted(p.stem for p in (out / channel).iterdir()) == sorted(stems)
        assert sorted(p.name for p in (out / f"{channel}_annotation").iterdir()) == sorted(f"{s}.png" for s in stems)
    # Colour masks become one channel of class indices, matched to their own image.
    stem = result.train[0]
    i = int(stem.split("_")[1])
    mask = np.asarray(Image.open(out / "train_annotation" / f"{stem}.png"))
    assert mask.ndim == 2 and mask.dtype == np.uint8
    assert int(mask.sum()) == (i % 8 + 1) * 4
    assert json.loads((out / "label_map" / "train_label_map.json").read_text()) == {"scale": 1,
                                                                                      "map": {"0": 0, "1": 1}}
    assert result.classes == {0: "BACKGROUND", 1: "Turtle"}
    # Seeded: the same seed gives the same split.
    again = segmentation_channels(manifest, tmp_path / "again", seed=7)
    assert again.validation == result.validation


def test_index_masks_are_copied_untouched(tmp_path):
    manifest = ground_truth_output(tmp_path / "gt", n=3, colour=False)
    result = segmentation_channels(manifest, tmp_path / "out", label_attribute="labelturtles")
    stem = result.train[0]
    i = int(stem.split("_")[1])
    source = tmp_path / "gt" / "annotations" / f"{i}_2022-02-10T17:41:0{i}.png"
    assert (tmp_path / "out" / "train_annotation" / f"{stem}.png").read_bytes() == source.read_bytes()


def test_bad_manifests(tmp_path):
    manifest = ground_truth_output(tmp_path / "gt", n=2)
    with pytest.raises(UserError, match="'fish-ref' is missing") as info:
        segmentation_channels(manifest, tmp_path / "out", label_attribute="fish")
    assert info.value.line == 1
    (tmp_path / "gt" / "annotations" / "1_2022-02-10T17:41:01.png").unlink()
    with pytest.raises(UserError, match="file not found") as info:
        segmentation_channels(manifest, tmp_path / "out2")
    assert info.value.line == 2
    assert not (tmp_path / "out2").exists()  # nothing half-written
