"""The HIT templates in a real browser: Playwright drives Debian's Chromium against the local
marketplace's worker page, does each task as a person would (ticks labels, drags boxes, paints a
mask, selects spans, types), submits, and checks that `annotate harvest` stored exactly that answer.

Skipped (with the reason) only when Playwright or a Chromium binary is missing; scripts/test
installs both (apt-get install chromium chromium-driver; pip install .[test]).
"""

from __future__ import annotations

import json
import os
import shutil
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlencode

import numpy as np
import pytest

from annotate.harvest import harvest
from annotate.post import post_batch
from annotate.store import Store
from annotate.tasktypes.semantic_segmentation import decode_mask
from conftest import EXAMPLES

pytestmark = pytest.mark.browser

SHOTS = os.environ.get("ANNOTATE_BROWSER_SHOTS")  # a folder: keep a screenshot of each finished task


class Task:
    """One item of an example posted to the embedded marketplace, accepted by a worker, open in a page."""

    def __init__(self, ws, server, browser, tmp_path: Path, example: str, item: int = 0):
        self.ws, self.server = ws, server
        src = EXAMPLES / example
        self.dir = tmp_path / example
        shutil.copytree(src, self.dir)
        lines = (src / "items.jsonl").read_text().splitlines()
        (self.dir / "items.jsonl").write_text(lines[item] + "\n")
        # One assignment, so the HIT is Reviewable (and harvested) as soon as this worker submits.
        toml = (self.dir / "batch.toml").read_text().replace("[consensus]\n", "[consensus]\ninitial_assignments = 1\n")
        (self.dir / "batch.toml").write_text(toml)
        self.name = example
        post_batch(ws, self.dir, target="local", endpoint_url=server.url, remember_endpoint=False)
        [hit] = Store(ws.store_path).hits(example, created=True)
        location = self._accept(hit["hit_id"])
        self.page = browser.new_page(viewport={"width": 1100, "height": 900})
        self.page.goto(server.url + location, wait_until="load")

    def _accept(self, hit_id: str) -> str:
        class NoRedirect(urllib.request.HTTPRedirectHandler):
            def redirect_request(self, *args, **kwargs):
                return None

        request = urllib.request.Request(self.server.url + "/worker/accept", headers={"Accept": "application/json"},
                                         data=urlencode({"hitId": hit_id, "workerId": "ABROWSERWORKER1"}).encode())
        try:
            body = urllib.request.build_opener(NoRedirect).open(request).read()
        except urllib.error.HTTPError as exc:  # the 303 to the task page, with JSON
            body = exc.read()
        return json.loads(body)["location"]

    def answer_field(self) -> str:
        return self.page.input_value("#answer")

    def submit(self) -> None:
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            self.page.screenshot(path=str(Path(SHOTS) / f"{self.name}.png"), full_page=True)
        with self.page.expect_navigation():
            self.page.click("#submitButton")
        assert "submitted" in self.page.content()

    def harvested(self) -> dict:
        [result] = harvest(self.ws, [self.name], endpoint_url=self.server.url)
        assert result.new_answers == 1 and result.quarantined == 0
        [row] = Store(self.ws.store_path).db.query(
            "select value, quarantine from assignments where batch = ?", [self.name])
        return json.loads(row["value"])

    def canvas_point(self, selector: str, x: float, y: float) -> tuple[float, float]:
        """Page coordinates of image pixel (x, y) on a canvas shown at another size."""
        box = self.page.locator(selector).bounding_box()
        width, height = self.page.evaluate(f"[document.querySelector('{selector}').width, "
                                           f"document.querySelector('{selector}').height]")
        inner = self.page.evaluate(f"(() => {{ const c = document.querySelector('{selector}'); "
                                   f"return [c.clientLeft, c.clientTop, c.clientWidth, c.clientHeight]; }})()")
        left, top, cw, ch = inner
        return box["x"] + left + x * cw / width, box["y"] + top + y * ch / height

    def drag(self, selector: str, start: tuple[float, float], end: tuple[float, float], steps: int = 8) -> None:
        mouse = self.page.mouse
        mouse.move(*self.canvas_point(selector, *start))
        mouse.down()
        mouse.move(*self.canvas_point(selector, *end), steps=steps)
        mouse.up()


@pytest.fixture
def task(ws, marketplace, browser, tmp_path):
    opened = []

    def open_task(example: str, item: int = 0) -> Task:
        t = Task(ws, marketplace, browser, tmp_path, example, item)
        opened.append(t)
        return t

    yield open_task
    for t in opened:
        t.page.close()


def test_multilabel_ticks_by_click_and_keyboard(task):
    t = task("shapes-multilabel")
    t.page.click("#submitButton")  # nothing ticked: the page refuses
    assert "Tick at least one label" in t.page.text_content("#form-error")
    t.page.click(".choices label:has-text('circle')")
    t.page.keyboard.press("3")  # toggles triangle
    t.page.keyboard.press("2")
    t.page.keyboard.press("2")  # square on and off again
    t.submit()
    assert t.harvested() == ["circle", "triangle"]


def test_text_multilabel(task):
    t = task("reviews-multilabel")
    t.page.click(".choices label:has-text('delivery')")
    t.page.click(".choices label:has-text('quality')")
    t.submit()
    assert t.harvested() == ["quality", "delivery"]


def test_boxes_draw_move_resize_delete(task):
    t = task("shapes-boxes")
    t.page.wait_for_function("document.getElementById('canvas').width > 0")
    t.page.click("#submitButton")
    assert "Draw at least one box" in t.page.text_content("#form-error")
    t.drag("#canvas", (20, 30), (80, 90))  # a circle box (the first class is picked); it is selected
    t.page.keyboard.press("2")  # picking a class relabels the selected box: square
    t.page.keyboard.press("Escape")  # deselect, so the next class pick relabels nothing
    t.drag("#canvas", (150, 100), (200, 160))  # a square box
    t.page.keyboard.press("Escape")
    t.page.keyboard.press("3")
    t.drag("#canvas", (250, 20), (300, 60))  # a triangle box, removed with the keyboard
    t.page.keyboard.press("Delete")
    t.drag("#canvas", (50, 60), (60, 70))  # drag the first box by (10, 10)
    t.page.mouse.click(*t.canvas_point("#canvas", 175, 130))  # select the second box ...
    t.drag("#canvas", (200, 160), (210, 180))  # ... and pull its bottom-right corner
    shown = json.loads(t.answer_field())
    boxes = shown["boxes"]
    assert shown["image_size"] == {"width": 320, "height": 240}
    assert [b["label"] for b in boxes] == ["square", "square"]
    first, second = boxes
    assert (first["left"], first["top"], first["width"], first["height"]) == pytest.approx((30, 40, 60, 60), abs=1)
    assert (second["left"], second["top"], second["width"], second["height"]) == pytest.approx((150, 100, 60, 80), abs=1)
    t.page.keyboard.press("Shift+Tab")  # keyboard: from the second box back to the first, move it right by 10
    t.page.keyboard.press("Shift+ArrowRight")
    moved = json.loads(t.answer_field())["boxes"]
    assert moved[0]["left"] == first["left"] + 10
    t.page.keyboard.press("Tab")  # to the second box; Tab again leaves the picture: no keyboard trap
    t.page.keyboard.press("Tab")
    assert t.page.evaluate("document.activeElement.id") != "canvas"
    t.submit()
    assert t.harvested() == {"image_size": {"width": 320, "height": 240}, "boxes": moved}


def test_segmentation_brush_and_polygon(task):
    t = task("shapes-segmentation")
    t.page.wait_for_function("document.getElementById('paint').width > 0")
    t.page.click("#submitButton")
    assert "Paint at least one object" in t.page.text_content("#form-error")
    t.page.keyboard.press("1")
    t.drag("#paint", (20, 20), (60, 20), steps=12)  # a brush stroke of class 1
    t.page.keyboard.press("p")
    t.page.keyboard.press("3")
    for x, y in [(100, 80), (160, 80), (160, 130), (100, 130)]:
        t.page.mouse.click(*t.canvas_point("#paint", x, y))
    t.page.keyboard.press("Enter")  # close and fill the polygon with class 3
    shown = json.loads(t.answer_field())
    mask = decode_mask(shown["mask"], ["circle", "square", "triangle"])
    assert mask.shape == (150, 200)
    assert mask[20, 40] == 1 and mask[105, 130] == 3 and mask[140, 10] == 0
    assert abs(int((mask == 3).sum()) - 60 * 50) < 200  # the polygon's area, give or take its edges
    t.submit()
    stored = t.harvested()
    assert stored["image_size"] == {"width": 200, "height": 150}
    assert np.array_equal(decode_mask(stored["mask"], ["circle", "square", "triangle"]), mask)


def _select_text(t: Task, start: int, end: int) -> None:
    """Drag the mouse over characters start..end of the text, as a person selects words."""
    rect = t.page.evaluate("""([a, b]) => {
        const at = (offset) => {  // the text node and offset of a character, across marked spans
            const walker = document.createTreeWalker(document.getElementById('text'), NodeFilter.SHOW_TEXT);
            let node, seen = 0;
            while ((node = walker.nextNode())) {
                if (seen + node.length > offset) { return [node, offset - seen]; }
                seen += node.length;
            }
        };
        const [n1, o1] = at(a), [n2, o2] = at(b - 1);
        const r1 = document.createRange(); r1.setStart(n1, o1); r1.setEnd(n1, o1 + 1);
        const r2 = document.createRange(); r2.setStart(n2, o2); r2.setEnd(n2, o2 + 1);
        const p = r1.getBoundingClientRect(), q = r2.getBoundingClientRect();
        return [p.left + 1, p.top + p.height / 2, q.right - 1, q.top + q.height / 2];
    }""", [start, end])
    t.page.mouse.move(rect[0], rect[1])
    t.page.mouse.down()
    t.page.mouse.move(rect[2], rect[3], steps=6)
    t.page.mouse.up()


def test_spans_by_mouse_and_keyboard(task):
    t = task("news-entities")  # "Maria Lopez joined Acme Robotics in Lisbon last spring."
    t.page.click("#submitButton")
    assert "Mark at least one span" in t.page.text_content("#form-error")
    _select_text(t, 0, 11)  # "Maria Lopez", type person (the first)
    t.page.wait_for_function("document.getElementById('answer').value.includes('person')")
    t.page.keyboard.press("3")
    # "Lisbon" as a location, by keyboard: caret before it (via a script, as a click would), Shift+arrows, Enter
    t.page.evaluate("""() => {
        const box = document.getElementById('text'); box.focus();
        const walker = document.createTreeWalker(box, NodeFilter.SHOW_TEXT);
        let node, at = 0;
        while ((node = walker.nextNode())) {
            if (at + node.length > 36) { const r = document.createRange(); r.setStart(node, 36 - at); r.collapse(true);
                const s = getSelection(); s.removeAllRanges(); s.addRange(r); return; }
            at += node.length;
        }
    }""")
    for _ in range(6):
        t.page.keyboard.press("Shift+ArrowRight")
    t.page.keyboard.press("Enter")
    t.page.wait_for_function("document.getElementById('answer').value.includes('location')")
    t.page.keyboard.press("2")
    _select_text(t, 19, 32)  # "Acme Robotics", organization
    t.page.wait_for_function("JSON.parse(document.getElementById('answer').value).entities.length === 3")
    expected = {"entities": [{"label": "person", "startOffset": 0, "endOffset": 11},
                             {"label": "organization", "startOffset": 19, "endOffset": 32},
                             {"label": "location", "startOffset": 36, "endOffset": 42}]}
    assert json.loads(t.answer_field()) == expected
    assert t.page.text_content("#text") == "Maria Lopez joined Acme Robotics in Lisbon last spring."  # nothing edited
    t.submit()
    assert t.harvested() == expected


def test_free_text_is_typed_submitted_with_enter_and_kept_verbatim(task):
    t = task("words-text")
    t.page.click("#answer")
    t.page.keyboard.press("Enter")  # empty: blocked
    assert "Type your answer" in t.page.text_content("#form-error")
    typed = "Harbour <img src=x onerror=alert(1)>"
    t.page.fill("#answer", typed)
    with t.page.expect_navigation():
        t.page.keyboard.press("Enter")
    # The thank-you page shows the answer escaped: no element was made from it.
    assert t.page.locator("img").count() == 0 and "onerror=alert(1)" in t.page.text_content("body")
    assert t.harvested() == typed
