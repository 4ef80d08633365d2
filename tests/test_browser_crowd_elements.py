"""The Crowd HTML Elements layouts in a real browser: Playwright drives Debian's Chromium through the
local marketplace, which serves its own crowd-html-elements.js in place of AWS's CDN script. Each
test does one HIT of a crowd-element task type by keyboard and mouse as a person would, submits
through <crowd-form>, and checks what `annotate harvest` stored."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from annotate.demo import use_crowd_template
from annotate.harvest import harvest
from annotate.post import post_batch
from annotate.store import Store
from annotate.tasktypes.semantic_segmentation import decode_mask
from conftest import EXAMPLES

pytestmark = pytest.mark.browser


class CrowdTask:
    """One item of an example, posted with its crowd-element layout (or, with layout="plain", its
    own HTML form), accepted, open in a page."""

    def __init__(self, ws, server, browser, tmp_path: Path, example: str, item: int = 0, layout: str = "crowd"):
        self.ws, self.server, self.name, self.layout = ws, server, example, layout
        self.dir = tmp_path / example
        shutil.copytree(EXAMPLES / example, self.dir)
        for items in ("items.jsonl", "items.csv"):
            path = self.dir / items
            if path.exists():
                lines = path.read_text().splitlines()
                keep = lines[:1] + [lines[1 + item]] if items.endswith(".csv") else [lines[item]]
                path.write_text("\n".join(keep) + "\n")
        if layout == "crowd":
            use_crowd_template(self.dir)
        toml = (self.dir / "batch.toml").read_text().replace("[consensus]\n", "[consensus]\ninitial_assignments = 1\n")
        (self.dir / "batch.toml").write_text(toml)
        post_batch(ws, self.dir, target="local", endpoint_url=server.url, remember_endpoint=False)
        [hit] = Store(ws.store_path).hits(example, created=True)
        from test_browser_templates import Task

        location = Task._accept(self, hit["hit_id"])
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        self.errors: list[str] = []
        self.page.on("pageerror", lambda exc: self.errors.append(str(exc)))
        self.page.goto(server.url + location, wait_until="load")
        self.page.wait_for_selector("crowd-form form, crowd-entity-annotation" if layout == "crowd" else "#mturk_form")

    def submit(self) -> None:
        with self.page.expect_navigation():
            self.page.get_by_role("button", name="Submit").click()
        assert "submitted" in self.page.content()
        assert not self.errors, self.errors

    def harvested(self) -> dict:
        [result] = harvest(self.ws, [self.name], endpoint_url=self.server.url)
        [row] = Store(self.ws.store_path).db.query(
            "select value, quarantine, answer_xml from assignments where batch = ?", [self.name])
        assert row["quarantine"] is None and result.quarantined == 0, row["quarantine"]
        assert ("taskAnswers" in row["answer_xml"]) == (self.layout == "crowd")
        return json.loads(row["value"])

    def image_point(self, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of image pixel (x, y), whatever size the picture is shown at."""
        stage = self.page.locator(".crowd-stage").first
        box = stage.bounding_box()
        width, height = self.page.evaluate("(() => { const i = document.querySelector('.crowd-stage img'); "
                                           "return [i.naturalWidth, i.naturalHeight]; })()")
        return box["x"] + x * box["width"] / width, box["y"] + y * box["height"] / height


def gold(example: str, item: int = 0):
    line = (EXAMPLES / example / "items.jsonl").read_text().splitlines()[item]
    return json.loads(line)


def test_image_classifier_by_keyboard(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "digits")
    digit = (EXAMPLES / "digits" / "items.csv").read_text().splitlines()[1].rsplit(",", 1)[1]
    # Submitting with nothing chosen is refused, with a message.
    task.page.get_by_role("button", name="Submit").click()
    assert "choose a category" in task.page.locator(".crowd-error").inner_text().lower()
    task.page.locator("body").click(position={"x": 5, "y": 5})
    task.page.keyboard.press(digit)  # a digit's own key picks it (not the label in that position)
    assert task.page.get_by_role("radio", name=digit, exact=True).is_checked()
    task.submit()
    assert task.harvested() == digit


def test_classifier_by_mouse(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "iris")
    assert task.page.locator("classification-target").inner_text().count("cm") == 0  # the item's columns
    task.page.get_by_text("versicolor", exact=True).click()
    task.submit()
    assert task.harvested() == "versicolor"


def test_multi_select(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "reviews-multilabel")
    task.page.get_by_text("price", exact=True).click()
    task.page.locator("body").click(position={"x": 5, "y": 5})
    task.page.keyboard.press("4")  # service
    task.submit()
    assert task.harvested() == ["price", "service"]


def test_bounding_box_by_mouse_and_keys(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "shapes-boxes")
    want = gold("shapes-boxes")["boxes"]["boxes"][0]
    labels = ["circle", "square", "triangle"]
    task.page.locator(".crowd-stage").focus()
    task.page.keyboard.press(str(labels.index(want["label"]) + 1))
    mouse = task.page.mouse
    mouse.move(*task.image_point(want["left"], want["top"]))
    mouse.down()
    mouse.move(*task.image_point(want["left"] + want["width"], want["top"] + want["height"]), steps=6)
    mouse.up()
    # A stray box, then removed by keyboard: selected on click, Delete removes it.
    mouse.move(*task.image_point(1, 1))
    mouse.down()
    mouse.move(*task.image_point(6, 6), steps=3)
    mouse.up()
    assert task.page.locator("rect.crowd-box").count() == 2
    task.page.keyboard.press("Delete")
    assert task.page.locator("rect.crowd-box").count() == 1
    task.submit()
    [box] = task.harvested()["boxes"]
    assert box["label"] == want["label"]
    for key in ("left", "top", "width", "height"):
        assert abs(box[key] - want[key]) <= 2, (box, want)


def test_semantic_segmentation_polygon(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "shapes-segmentation")
    truth = gold("shapes-segmentation")["mask"]
    polygon = truth["polygons"][0]
    labels = ["circle", "square", "triangle"]
    task.page.get_by_text("polygon", exact=True).click()
    task.page.locator(".crowd-stage").focus()
    task.page.keyboard.press(str(labels.index(polygon["label"]) + 1))
    for x, y in polygon["points"]:
        task.page.mouse.click(*task.image_point(x, y))
    task.page.keyboard.press("Enter")
    task.submit()
    value = task.harvested()
    mask = decode_mask(value["mask"], labels)
    assert mask.shape == (truth["image_size"]["height"], truth["image_size"]["width"])
    assert set(np.unique(mask)) == {0, labels.index(polygon["label"]) + 1}
    assert mask.any()


def test_entity_annotation_by_selection(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "news-entities")
    item = gold("news-entities")
    entity = item["entities"][0]
    labels = ["person", "organization", "location"]
    # Select the entity's characters with the mouse, as a person drags over words.
    start, end = task.page.evaluate(
        """([s, e]) => {
             const body = document.querySelector('crowd-entity-annotation').shadowRoot.querySelector('.crowd-text');
             const node = body.firstChild, range = document.createRange();
             const at = (i) => { range.setStart(node, i); range.setEnd(node, i + 1); const r = range.getBoundingClientRect();
                                 return [r.left + 1, r.top + r.height / 2]; };
             const a = at(s), b = at(e - 1);
             return [a, [b[0] + (range.getBoundingClientRect().width - 2), b[1]]];
           }""", [entity["startOffset"], entity["endOffset"]])
    task.page.mouse.move(*start)
    task.page.mouse.down()
    task.page.mouse.move(*end, steps=5)
    task.page.mouse.up()
    task.page.keyboard.press(str(labels.index(entity["label"]) + 1))
    task.submit()
    assert task.harvested() == {"entities": [entity]}


def test_free_text_with_enter(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "words-text")
    word = gold("words-text")["word"]
    task.page.get_by_label("Your answer").fill(word)
    with task.page.expect_navigation():
        task.page.get_by_label("Your answer").press("Enter")
    assert task.harvested() == word


def test_preview_cannot_submit(ws, marketplace, browser, tmp_path):
    task = CrowdTask(ws, marketplace, browser, tmp_path, "iris")
    [hit] = Store(ws.store_path).hits("iris", created=True)
    task.page.goto(f"{marketplace.url}/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId={hit['hit_id']}")
    task.page.wait_for_selector("crowd-form form")
    assert task.page.locator(".crowd-preview").is_visible()
    task.page.get_by_text("setosa", exact=True).click()
    task.page.get_by_role("button", name="Submit").click()
    assert "accept the hit" in task.page.locator(".crowd-error").inner_text().lower()
