"""Simulated workers for structured tasks: boxes, masks, spans, multi-label ticks and free text.

They work like SimulatedCrowd (over HTTP, through the worker pages, parsing the form with
html.parser) and find the answer control by its `data-annotate-type` attribute
(boxes | mask | spans | multilabel | text), which the templates in hit_templates/ put on it.
What a page's JavaScript would compute (the JSON of the boxes, the mask PNG) they compute
themselves, from the hidden gold (RequesterAnnotation -> gold text, JSON for structured types)
plus noise that grows as the worker's accuracy falls:

    boxes       each edge jittered by a few pixels; now and then a box missed, mislabelled or added
    mask        the gold polygons' corners jittered (noisy edges), now and then a shape missed
    spans       offsets shifted by a character or two, now and then a span missed or mislabelled
    multilabel  each label flipped now and then (never an empty answer: the page blocks that)
    text        typos (a dropped, doubled or swapped letter), or harmless case and space changes

Spammers answer with garbage of the right shape (random boxes, blobs, spans, ticks, letters).
Deterministic given the seed and the order of HITs.
"""

from __future__ import annotations

import base64
import io
import json
import math
import string
from typing import Any, Mapping

import numpy as np
from PIL import Image

from annotate.marketplace.crowd_elements import page_classes, parse_crowd_forms
from annotate.marketplace.crowd import FormParser, SimulatedCrowd, SimulatedWorker, checkbox_groups, gold_labels
from annotate.tasktypes._common import class_colors
from annotate.tasktypes.semantic_segmentation import rasterize

ANNOTATE_TYPES = ("boxes", "mask", "spans", "multilabel", "text")


class AnnotatedFormParser(FormParser):
    """FormParser that also keeps each control's data-annotate-type (as "annotate")."""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        controls = self._form["controls"] if self._form is not None else None
        before = len(controls) if controls is not None else 0
        super().handle_starttag(tag, attrs)
        kind = dict(attrs).get("data-annotate-type")
        if controls is not None and kind and len(controls) > before:
            controls[-1]["annotate"] = kind


def parse_annotated_forms(html: str) -> list[dict[str, Any]]:
    parser = AnnotatedFormParser()
    parser.feed(html)
    parser.close()
    return parser.forms


def mask_png(mask: np.ndarray, labels: list[str]) -> str:
    """A class-index mask as the template sends it: an opaque RGB PNG in class colours."""
    colors = np.array([[int(c[i:i + 2], 16) for i in (1, 3, 5)] for c in class_colors(labels)], dtype=np.uint8)
    buffer = io.BytesIO()
    Image.fromarray(colors[mask], mode="RGB").save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


class StructuredCrowd(SimulatedCrowd):
    thread_name = "structured crowd"

    def __init__(self, url: str, gold: Mapping[str, str] | None = None, labels: list[str] | None = None, **kwargs):
        super().__init__(url, gold, **kwargs)
        # The task's labels in order: mask colours are by class index, which the page knows from
        # its class buttons; the crowd reads them there too, falling back to these.
        self.labels = list(labels or [])

    def parse_forms(self, html: str) -> list[dict[str, Any]]:
        return parse_annotated_forms(html) or parse_crowd_forms(html)  # also reads data-annotate-type

    # -- answering --------------------------------------------------------------------------

    def fill(self, worker: SimulatedWorker, form: dict[str, Any], assignment_id: str,
             gold: str | None) -> tuple[list[tuple[str, str]], dict[str, Any]]:
        annotated = [c for c in form["controls"] if c.get("annotate") in ANNOTATE_TYPES]
        if not annotated or gold is None:
            return super().fill(worker, form, assignment_id, gold)
        kind, name = annotated[0]["annotate"], annotated[0]["name"]
        classes = self._page_classes(form, kind)
        values = {c["name"]: c["value"] for c in form["controls"] if c["kind"] == "hidden"}
        ticks: set[str] = set()
        if kind == "boxes":
            answer = json.dumps(self._boxes(worker, json.loads(gold), classes))
        elif kind == "mask":
            answer = json.dumps(self._mask(worker, json.loads(gold), classes))
        elif kind == "spans":
            length = int(values.get(f"{name}-length") or 0)
            answer = json.dumps(self._spans(worker, json.loads(gold), classes, length))
        elif kind == "multilabel":
            ticks = self._ticks(worker, gold_labels(gold), checkbox_groups(form).get(name, []))
            answer = "|".join(sorted(ticks))
        else:
            answer = self._text(worker, gold)
        fields: list[tuple[str, str]] = []
        radios_done: set[str] = set()
        for c in form["controls"]:
            if c["name"] == "assignmentId":
                fields.append(("assignmentId", assignment_id))  # what the page's JavaScript does
            elif c["name"] == name and c["kind"] in ("hidden", "text", "textarea"):
                fields.append((name, answer))
            elif c["kind"] in ("hidden", "text", "textarea"):
                fields.append((c["name"], c["value"]))
            elif c["kind"] == "checkbox":
                if (c["value"] in ticks) if c["name"] == name else c["checked"]:
                    fields.append((c["name"], c["value"]))
            elif c["kind"] == "radio" and c["name"] not in radios_done:
                checked = [r["value"] for r in form["controls"] if r["kind"] == "radio" and r["name"] == c["name"]
                           and r["checked"]]
                if checked:  # a browser sends the ticked one of a group, nothing if none is
                    fields.append((c["name"], checked[-1]))
                radios_done.add(c["name"])
        if not any(n == "assignmentId" for n, _ in fields):
            fields.insert(0, ("assignmentId", assignment_id))
        return fields, {"field": name, "answer": answer}

    def _page_classes(self, form: dict[str, Any], kind: str) -> list[str]:
        """The task's classes: as given, else the page's class buttons (boxes, spans name them)."""
        if self.labels:
            return self.labels
        if form.get("crowd"):  # the widget's own labels attribute
            return page_classes(form)
        named = [c["value"] for c in form["controls"] if c["kind"] == "radio" and c["name"] in
                 ("annotate-class", "annotate-type") and not c["value"].isdigit()]
        if kind == "mask" and not named:
            raise RuntimeError("a mask answer needs the task's labels in order (StructuredCrowd(labels=...))")
        return named

    def _err(self, worker: SimulatedWorker, scale: float) -> bool:
        """A slip, more likely the less accurate the worker (scale: how often, relatively)."""
        return self._rng.random() < (1 - worker.accuracy) * scale

    def _boxes(self, worker: SimulatedWorker, gold: dict, classes: list[str]) -> dict:
        size = gold["image_size"]
        width, height = size["width"], size["height"]
        labels = classes or sorted({b["label"] for b in gold["boxes"]})
        if worker.spammer:
            boxes = [self._random_box(width, height, labels) for _ in range(self._rng.randint(1, 3))]
        else:
            sigma = 0.6 + (1 - worker.accuracy) * 8  # pixels of jitter per edge
            boxes = []
            for b in gold["boxes"]:
                if self._err(worker, 0.4):
                    continue  # missed it
                x1 = b["left"] + self._rng.gauss(0, sigma)
                y1 = b["top"] + self._rng.gauss(0, sigma)
                x2 = b["left"] + b["width"] + self._rng.gauss(0, sigma)
                y2 = b["top"] + b["height"] + self._rng.gauss(0, sigma)
                x1, x2 = sorted((min(max(round(x1), 0), width), min(max(round(x2), 0), width)))
                y1, y2 = sorted((min(max(round(y1), 0), height), min(max(round(y2), 0), height)))
                if x2 - x1 < 1 or y2 - y1 < 1:
                    continue
                label = self._rng.choice(labels) if self._err(worker, 0.3) else b["label"]
                boxes.append({"label": label, "left": x1, "top": y1, "width": x2 - x1, "height": y2 - y1})
            if self._err(worker, 0.3):
                boxes.append(self._random_box(width, height, labels))
            if not boxes:  # the page does not submit without a box
                boxes.append(self._random_box(width, height, labels))
        return {"image_size": {"width": width, "height": height}, "boxes": boxes}

    def _random_box(self, width: int, height: int, labels: list[str]) -> dict:
        w, h = self._rng.randint(5, max(6, width // 3)), self._rng.randint(5, max(6, height // 3))
        return {"label": self._rng.choice(labels), "left": self._rng.randint(0, width - w),
                "top": self._rng.randint(0, height - h), "width": w, "height": h}

    def _mask(self, worker: SimulatedWorker, gold: dict, classes: list[str]) -> dict:
        size = gold["image_size"]
        width, height = size["width"], size["height"]
        labels = classes or sorted({p["label"] for p in gold["polygons"]})
        if worker.spammer:
            polygons = []
            for _ in range(self._rng.randint(1, 3)):  # random blobs of random classes
                cx, cy = self._rng.uniform(0, width), self._rng.uniform(0, height)
                r = self._rng.uniform(5, min(width, height) / 3)
                polygons.append({"label": self._rng.choice(labels), "points": [
                    [cx + r * math.cos(a) * self._rng.uniform(0.6, 1.2), cy + r * math.sin(a) * self._rng.uniform(0.6, 1.2)]
                    for a in np.linspace(0, 2 * math.pi, 9)[:-1]]})
        else:
            sigma = 0.4 + (1 - worker.accuracy) * 5  # pixels of jitter per corner: noisy edges
            polygons = []
            for p in gold["polygons"]:
                if self._err(worker, 0.25):
                    continue
                label = self._rng.choice(labels) if self._err(worker, 0.2) else p["label"]
                polygons.append({"label": label, "points": [[x + self._rng.gauss(0, sigma), y + self._rng.gauss(0, sigma)]
                                                            for x, y in p["points"]]})
            if not polygons:  # the page does not submit an empty mask
                polygons = [dict(gold["polygons"][0])]
        mask = rasterize(width, height, polygons, labels)
        return {"image_size": {"width": width, "height": height}, "mask": mask_png(mask, labels)}

    def _spans(self, worker: SimulatedWorker, gold: Any, classes: list[str], length: int) -> dict:
        entities = gold["entities"] if isinstance(gold, dict) else gold
        labels = classes or sorted({e["label"] for e in entities})
        length = length or max(e["endOffset"] for e in entities)
        spans = []
        if worker.spammer:
            for _ in range(self._rng.randint(1, 3)):
                start = self._rng.randrange(0, max(1, length - 1))
                spans.append({"label": self._rng.choice(labels), "startOffset": start,
                              "endOffset": min(length, start + self._rng.randint(1, 15))})
        else:
            for e in entities:
                if self._err(worker, 0.4):
                    continue
                start, end = e["startOffset"], e["endOffset"]
                if self._err(worker, 1.0):  # a sloppy selection: an edge off by a character or two
                    start += self._rng.choice([-2, -1, 1])
                if self._err(worker, 1.0):
                    end += self._rng.choice([-1, 1, 2])
                start, end = max(0, start), min(length, end)
                if end <= start:
                    start, end = e["startOffset"], e["endOffset"]
                label = self._rng.choice(labels) if self._err(worker, 0.3) else e["label"]
                spans.append({"label": label, "startOffset": start, "endOffset": end})
            if not spans:
                spans.append(dict(entities[0]))
        spans.sort(key=lambda s: (s["startOffset"], s["endOffset"]))
        kept: list[dict] = []
        for s in spans:  # the page refuses an overlapping selection
            if not kept or s["startOffset"] >= kept[-1]["endOffset"]:
                kept.append(s)
        return {"entities": kept}

    def _ticks(self, worker: SimulatedWorker, gold: list[str], values: list[str]) -> set[str]:
        if not values:
            return set(gold)
        if worker.spammer:
            picked = {v for v in values if self._rng.random() < 0.5}
        else:
            picked = {v for v in values if (v in gold) != self._err(worker, 0.5)}  # each label may flip
        return picked or {self._rng.choice(values)}

    def _text(self, worker: SimulatedWorker, gold: str) -> str:
        if worker.spammer:
            return "".join(self._rng.choice(string.ascii_lowercase) for _ in range(self._rng.randint(3, 9)))
        text = gold
        if self._err(worker, 1.5):
            i = self._rng.randrange(len(text))
            slip = self._rng.choice(("drop", "double", "swap", "other"))
            if slip == "drop" and len(text) > 1:
                text = text[:i] + text[i + 1:]
            elif slip == "double":
                text = text[:i] + text[i] + text[i:]
            elif slip == "swap" and i + 1 < len(text) and text[i] != text[i + 1]:
                text = text[:i] + text[i + 1] + text[i] + text[i + 2:]
            else:
                text = text[:i] + self._rng.choice([c for c in string.ascii_lowercase if c != text[i]]) + text[i + 1:]
        if self._rng.random() < 0.2:  # harmless differences that normalising removes
            text = self._rng.choice((text.capitalize(), text.upper(), f" {text} ", text + "."))
        return text
