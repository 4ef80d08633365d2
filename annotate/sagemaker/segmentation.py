"""Ground Truth semantic-segmentation output → the built-in algorithm's channel layout.

Ground Truth names each consolidated mask after the item index and a timestamp
(`0_2022-02-10T17:41:04.724225.png`); the algorithm pairs image and mask by name. So each
mask is copied as `<image stem>.png` into train_annotation/ or validation_annotation/,
beside its image in train/ or validation/, with a seeded 80/20 split, and label_map/
holds train_label_map.json (and validation_label_map.json) — the walkthrough of seeds/001.
"""

from __future__ import annotations

import json
import random
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from annotate.errors import UserError
from annotate.sagemaker.data import read_manifest

CHANNELS = ("train", "train_annotation", "validation", "validation_annotation", "label_map")


@dataclass
class SegmentationChannels:
    out_dir: Path
    train: list[str] = field(default_factory=list)  # image stems
    validation: list[str] = field(default_factory=list)
    classes: dict[int, str] = field(default_factory=dict)

    def channel(self, name: str) -> Path:
        return self.out_dir / name


def _local_resolver(manifest: Path) -> Callable[[str], Path]:
    """Local paths as written, relative ones from the manifest's folder; s3:// needs a resolver."""
    def resolve(ref: str) -> Path:
        if ref.startswith("s3://"):
            raise UserError(f"{ref} is in S3: download the labelling job's output first "
                            "(aws s3 cp --recursive) or pass a resolver", file=str(manifest), field="source-ref")
        path = Path(ref)
        return path if path.is_absolute() else manifest.parent / path
    return resolve


def _attribute(record: dict, label_attribute: str | None, manifest: Path, line: int) -> str:
    if label_attribute:
        key = label_attribute if label_attribute.endswith("-ref") else f"{label_attribute}-ref"
        if key not in record:
            raise UserError(f"label attribute '{key}' is missing", file=str(manifest), line=line, field=key)
        return key
    keys = [k for k in record if k.endswith("-ref") and k != "source-ref" and not k.endswith("-metadata")]
    if len(keys) != 1:
        raise UserError(f"cannot tell the mask attribute (candidates: {', '.join(keys) or 'none'}); "
                        "pass label_attribute", file=str(manifest), line=line)
    return keys[0]


def segmentation_channels(manifest: Path, out_dir: Path, *, label_attribute: str | None = None,
                          split: float = 0.8, seed: int = 0,
                          resolve: Callable[[str], Path] | None = None) -> SegmentationChannels:
    """Write train/, train_annotation/, validation/, validation_annotation/, label_map/ under out_dir."""
    manifest = Path(manifest)
    out_dir = Path(out_dir)
    if not 0.0 < split <= 1.0:
        raise UserError("split must be in (0, 1]", field="split")
    resolve = resolve or _local_resolver(manifest)
    items, classes, seen = [], {}, {}
    for line, record in read_manifest(manifest):
        if "source-ref" not in record:
            raise UserError("no 'source-ref'", file=str(manifest), line=line, field="source-ref")
        key = _attribute(record, label_attribute, manifest, line)
        image, mask = resolve(record["source-ref"]), resolve(record[key])
        for path in (image, mask):
            if not path.exists():
                raise UserError(f"file not found: {path}", file=str(manifest), line=line)
        stem = image.stem
        if stem in seen:  # two images with one stem would share one mask name
            raise UserError(f"image name '{stem}' also on line {seen[stem]}: masks are matched by name",
                            file=str(manifest), line=line, field="source-ref")
        seen[stem] = line
        color_map = (record.get(f"{key}-metadata") or {}).get("internal-color-map", {})
        for index, entry in color_map.items():
            classes[int(index)] = entry.get("class-name", str(index))
        colors = {entry["hex-color"].lower(): int(index) for index, entry in color_map.items() if "hex-color" in entry}
        items.append((stem, image, mask, colors, line))
    if not items:
        raise UserError("no labelled items in the manifest", file=str(manifest))
    if out_dir.exists() and any((out_dir / c).exists() for c in CHANNELS):
        raise UserError(f"{out_dir} already holds channel folders: choose an empty directory", field="out_dir")

    order = sorted(items, key=lambda item: item[0])
    random.Random(seed).shuffle(order)
    cut = max(1, int(round(len(order) * split))) if split < 1.0 else len(order)
    if split < 1.0 and cut == len(order) and len(order) > 1:
        cut -= 1  # the validation channel is required: keep at least one item in it
    result = SegmentationChannels(out_dir, classes=dict(sorted(classes.items())))
    for channel, part in (("train", order[:cut]), ("validation", order[cut:])):
        (out_dir / channel).mkdir(parents=True, exist_ok=True)
        (out_dir / f"{channel}_annotation").mkdir(parents=True, exist_ok=True)
        for stem, image, mask, colors, line in part:
            shutil.copy2(image, out_dir / channel / image.name)
            write_annotation(mask, out_dir / f"{channel}_annotation" / f"{stem}.png", colors, manifest, line)
            getattr(result, channel).append(stem)

    # The algorithm's label map: {"scale": 1, "map": {...}} would remap values; masks from Ground
    # Truth already hold class indices, so the map is the identity over the known classes.
    label_map = {"scale": 1, "map": {str(i): i for i in result.classes}} if result.classes else {"scale": 1}
    (out_dir / "label_map").mkdir(parents=True, exist_ok=True)
    for channel in ("train", "validation"):
        (out_dir / "label_map" / f"{channel}_label_map.json").write_text(json.dumps(label_map, indent=2),
                                                                        encoding="utf-8")
    (out_dir / "classes.json").write_text(json.dumps({str(k): v for k, v in result.classes.items()}, indent=2),
                                          encoding="utf-8")
    return result


def write_annotation(mask: Path, target: Path, colors: dict[str, int], manifest: Path, line: int) -> None:
    """The mask as the algorithm reads it: one 8-bit channel of class indices.

    Palette or greyscale PNGs already hold indices and are copied untouched; colour masks
    are mapped back to indices through the manifest's internal-color-map.
    """
    import numpy as np
    from PIL import Image

    with Image.open(mask) as image:
        if image.mode in ("P", "L"):
            shutil.copy2(mask, target)
            return
        rgb = np.asarray(image.convert("RGB"))
    if not colors:
        raise UserError(f"{mask.name} is a colour mask but the manifest has no internal-color-map",
                        file=str(manifest), line=line)
    packed = (rgb[..., 0].astype(np.uint32) << 16) | (rgb[..., 1].astype(np.uint32) << 8) | rgb[..., 2]
    indices = np.zeros(packed.shape, dtype=np.uint8)
    known = np.zeros(packed.shape, dtype=bool)
    for hex_color, index in colors.items():
        hit = packed == int(hex_color.lstrip("#"), 16)
        indices[hit] = index
        known |= hit
    if not known.all():
        stray = {f"#{int(v):06x}" for v in np.unique(packed[~known])[:5]}
        raise UserError(f"{mask.name} has colours outside the color map: {', '.join(sorted(stray))}",
                        file=str(manifest), line=line)
    Image.fromarray(indices).save(target)  # uint8 2-D: mode L
