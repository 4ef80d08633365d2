"""Class colours stand out: boxes and painted masks are drawn in one colour per class, and a
worker must tell them apart from each other and from the picture under them. The rule
(README, "Class colours"): every pair of an example's class colours, and every class colour
and each dominant colour of the example's pictures, differ by at least MIN_DELTA_E in CIEDE2000."""

from __future__ import annotations

import itertools
import json
import re

import pytest
from colour import distance
from PIL import Image

from annotate.config import load_batch
from annotate.demo import available_examples
from annotate.tasktypes._common import PALETTE
from conftest import EXAMPLES, REPO

MIN_DELTA_E = 25.0  # CIEDE2000: about 2.3 is just noticeable; above 20 two colours read as different at a glance
DOMINANT_SHARE = 0.005  # a colour covering at least 0.5% of a picture's pixels
COLOURED = {"bounding-box", "semantic-segmentation"}


def template_palette(name: str) -> list[str]:
    text = (REPO / "hit_templates" / name).read_text()
    return json.loads(re.search(r"{% set colors = (\[.*?\]) %}", text).group(1))


def crowd_palette() -> list[str]:
    text = (REPO / "annotate" / "marketplace" / "static" / "crowd-html-elements.js").read_text()
    return json.loads(re.search(r"var PALETTE = (\[.*?\]);", text, re.S).group(1))


def dominant_colours(path) -> set[tuple[int, int, int]]:
    image = Image.open(path).convert("RGB")
    total = image.width * image.height
    return {rgb for count, rgb in image.getcolors(maxcolors=total) if count >= DOMINANT_SHARE * total}


def coloured_examples() -> list[str]:
    return [e for e in available_examples() if load_batch(EXAMPLES / e).task_type in COLOURED]


def test_every_layout_draws_classes_in_the_same_colours():
    """The plain templates, the crowd elements and the exported masks' colour map agree, so the
    rule below, checked on one palette, holds for every layout."""
    for palette in (template_palette("bounding-box.html.j2"), template_palette("semantic-segmentation.html.j2"),
                    crowd_palette()):
        n = min(len(palette), len(PALETTE))
        assert [c.lower() for c in palette[:n]] == [c.lower() for c in PALETTE[:n]]


@pytest.mark.parametrize("example", coloured_examples())
def test_class_colours_differ_from_each_other_and_from_the_pictures(example):
    batch = load_batch(EXAMPLES / example)
    colours = PALETTE[: len(batch.labels)]
    for (a, label_a), (b, label_b) in itertools.combinations(zip(colours, batch.labels), 2):
        assert distance(a, b) >= MIN_DELTA_E, f"{label_a} {a} and {label_b} {b}: ΔE {distance(a, b):.1f}"
    pictures = {i.data["source-ref"] for i in batch.items}
    assert pictures
    for ref in sorted(pictures):
        for rgb in dominant_colours(batch.dir / ref):
            for colour, label in zip(colours, batch.labels):
                assert distance(colour, rgb) >= MIN_DELTA_E, \
                    f"{ref}: colour {rgb} is ΔE {distance(colour, rgb):.1f} from class {label} ({colour})"


def test_the_rule_catches_the_colours_that_clashed():
    """What shapes-segmentation had: a blue triangle beside the blue circle class."""
    assert distance((60, 120, 220), PALETTE[0]) < MIN_DELTA_E
    assert distance("#000000", "#ffffff") == pytest.approx(100, abs=0.01)
