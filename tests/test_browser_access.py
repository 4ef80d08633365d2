"""Every HIT template, plain and crowd-element layout, in headless Chromium: each key a page hints
picks the option it is shown beside; every control a person can reach has an accessible name and
every picture a text alternative (as Chromium's own accessibility tree computes them); and the task
can be done with the keyboard alone — Tab, Space, Enter, arrows and the hinted keys — then submitted."""

from __future__ import annotations

import json

import pytest
from test_browser_crowd_elements import CrowdTask

from annotate.demo import available_examples
from conftest import EXAMPLES

pytestmark = pytest.mark.browser

LAYOUTS = [(example, layout) for example in available_examples() for layout in ("plain", "crowd")]
IDS = [f"{e}-{layout}" for e, layout in LAYOUTS]
# Roles a person operates; each needs a name a screen reader can say.
CONTROLS = {"button", "checkbox", "radio", "textbox", "searchbox", "slider", "spinbutton", "combobox",
            "listbox", "link", "switch", "tab", "menuitem", "application"}
IMAGES = {"image", "img", "graphics-document", "Canvas"}


@pytest.fixture
def open_task(ws, marketplace, browser, tmp_path):
    opened = []

    def opener(example: str, layout: str) -> CrowdTask:
        t = CrowdTask(ws, marketplace, browser, tmp_path / layout, example, layout=layout)
        opened.append(t)
        return t

    yield opener
    for t in opened:
        t.page.close()


# Every element a hint is shown in: the key, and the option (radio or checkbox) it stands beside.
HINTS_JS = """() => {
  const found = [], roots = [document];
  for (let i = 0; i < roots.length; i++) {
    roots[i].querySelectorAll('*').forEach(el => { if (el.shadowRoot) { roots.push(el.shadowRoot); } });
  }
  window.__hinted = [];
  roots.forEach(root => root.querySelectorAll('.key, .crowd-key').forEach(hint => {
    const label = hint.closest('label');
    const input = label && label.querySelector('input[type=radio], input[type=checkbox]');
    if (input) { window.__hinted.push(input); found.push([hint.textContent.trim(), input.type, input.value, label.textContent.replace(hint.textContent, '').trim()]); }
  }));
  return found;
}"""


def focus_for_keys(t: CrowdTask) -> None:
    """Where a person's keys go: the picture (crowd image annotators listen there), else the page."""
    if t.page.locator(".crowd-stage").count():
        t.page.locator(".crowd-stage").focus()
    else:
        t.page.evaluate("() => { if (document.activeElement) { document.activeElement.blur(); } }")


@pytest.mark.parametrize("example, layout", LAYOUTS, ids=IDS)
def test_each_hinted_key_picks_its_option(open_task, example, layout):
    t = open_task(example, layout)
    hints = t.page.evaluate(HINTS_JS)
    if example == "words-text":  # free text: no shortcuts
        assert hints == []
        return
    if example == "news-entities" and layout == "crowd":
        assert hints == []
        entity_keys_mark_their_type(t)
        return
    labels = load_labels(example)
    assert {text for *_, text in hints if text in labels} == set(labels), hints
    # last first, so that every press changes which option is picked
    for index in reversed(range(len(hints))):
        key, kind, value, _ = hints[index]
        before = t.page.evaluate(f"() => window.__hinted[{index}].checked")
        focus_for_keys(t)
        t.page.keyboard.press(key)
        after = t.page.evaluate(f"() => window.__hinted[{index}].checked")
        if kind == "radio":
            assert after, f"key {key!r} did not pick {value!r}"
        else:
            assert after != before, f"key {key!r} did not toggle {value!r}"
        if kind == "radio" and example == "digits":
            assert key == value  # a digit's key is the digit


def entity_keys_mark_their_type(t: CrowdTask) -> None:
    """crowd-entity-annotation names each type's key on its button ("person (1)"): select the first
    word by keyboard, press the key, and the word is marked with that type."""
    buttons = t.page.evaluate("""() => [...document.querySelector('crowd-entity-annotation').shadowRoot
                                          .querySelectorAll('button[data-label]')].map(b => [b.textContent, b.dataset.label])""")
    hinted = [(text.rsplit("(", 1)[1].rstrip(")"), label) for text, label in buttons if text.endswith(")")]
    assert [label for _, label in hinted] == load_labels("news-entities")
    for key, label in reversed(hinted):
        t.page.evaluate("() => document.querySelector('crowd-entity-annotation').shadowRoot.querySelector('.crowd-text').focus()")
        t.page.keyboard.press("Home")
        for _ in range(5):
            t.page.keyboard.press("Shift+ArrowRight")
        t.page.keyboard.press(key)
        entities = t.page.evaluate("() => document.querySelector('crowd-entity-annotation').value.entities")
        assert [(e["startOffset"], e["endOffset"], e["label"]) for e in entities] == [(0, 5, label)], (key, entities)


def load_labels(example: str) -> list[str]:
    from annotate.config import load_batch

    return load_batch(EXAMPLES / example).labels


@pytest.mark.parametrize("example, layout", LAYOUTS, ids=IDS)
def test_every_control_has_a_name_and_every_picture_a_text(open_task, example, layout):
    t = open_task(example, layout)
    session = t.page.context.new_cdp_session(t.page)
    nodes = session.send("Accessibility.getFullAXTree")["nodes"]
    nameless = []
    for node in nodes:
        if node.get("ignored"):
            continue
        role = node.get("role", {}).get("value", "")
        name = (node.get("name") or {}).get("value", "").strip()
        focusable = any(p["name"] == "focusable" and p["value"].get("value") for p in node.get("properties", []))
        if role in ("RootWebArea", "WebArea", "Iframe"):
            continue
        if (role in CONTROLS or role in IMAGES or focusable) and not name:
            nameless.append((role, node.get("backendDOMNodeId")))
    described = []
    for role, backend in nameless:
        html = session.send("DOM.resolveNode", {"backendNodeId": backend})
        object_id = html["object"]["objectId"]
        outer = session.send("Runtime.callFunctionOn", {"objectId": object_id, "returnByValue": True,
                                                         "functionDeclaration": "function () { return this.outerHTML.slice(0, 160); }"})
        described.append(f"{role}: {outer['result']['value']}")
    assert not described, "\n".join(described)
    # every <img> says what it shows, or is marked decorative and hidden from the tree
    missing = t.page.evaluate("""() => {
      const roots = [document], out = [];
      for (let i = 0; i < roots.length; i++) {
        roots[i].querySelectorAll('*').forEach(el => { if (el.shadowRoot) { roots.push(el.shadowRoot); } });
      }
      roots.forEach(r => r.querySelectorAll('img').forEach(img => {
        const shown = img.offsetParent !== null;
        if (!img.hasAttribute('alt') || (shown && !img.alt.trim() && img.getAttribute('role') !== 'presentation')) {
          out.push(img.outerHTML.slice(0, 120));
        }
      }));
      return out;
    }""")
    assert not missing, missing


def tab_to(t: CrowdTask, test: str, limit: int = 40) -> None:
    """Press Tab until the focused element passes `test` (a JS expression over `el`)."""
    for _ in range(limit):
        t.page.keyboard.press("Tab")
        if t.page.evaluate(f"""() => {{ let el = document.activeElement;
                                   while (el && el.shadowRoot && el.shadowRoot.activeElement) {{ el = el.shadowRoot.activeElement; }}
                                   return !!el && ({test}); }}"""):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


def submit_by_keyboard(t: CrowdTask) -> None:
    tab_to(t, "(el.tagName === 'BUTTON' || el.type === 'submit') && /submit/i.test(el.textContent + (el.value || ''))")
    with t.page.expect_navigation():
        t.page.keyboard.press("Enter")
    assert "submitted" in t.page.content()
    assert not t.errors, t.errors


def first_item(example: str) -> dict:
    path = EXAMPLES / example / "items.jsonl"
    return json.loads(path.read_text().splitlines()[0]) if path.exists() else {}


@pytest.mark.parametrize("example, layout", LAYOUTS, ids=IDS)
def test_the_task_can_be_done_with_the_keyboard_alone(open_task, example, layout):
    from annotate.config import load_batch

    batch = load_batch(EXAMPLES / example)
    t = open_task(example, layout)
    kind = batch.task_type
    if kind in ("image-classification", "text-classification"):
        tab_to(t, "el.type === 'radio'")
        t.page.keyboard.press("ArrowRight")  # the next option, picked as the focus moves
        t.page.keyboard.press("ArrowLeft")
        t.page.keyboard.press("Space")
        submit_by_keyboard(t)
        assert t.harvested() == batch.labels[0]
    elif kind.endswith("multilabel"):
        tab_to(t, "el.type === 'checkbox'")
        t.page.keyboard.press("Space")
        submit_by_keyboard(t)
        assert t.harvested() == [batch.labels[0]]
    elif kind == "free-text":
        tab_to(t, "el.tagName === 'INPUT' && el.type === 'text'")
        t.page.keyboard.type("harbour")
        with t.page.expect_navigation():
            t.page.keyboard.press("Enter")
        assert t.harvested() == "harbour"
    elif kind == "named-entity-recognition":
        tab_to(t, "el.isContentEditable || el.getAttribute('role') === 'textbox' || el.classList.contains('crowd-text')")
        t.page.keyboard.press("Home")
        for _ in range(5):
            t.page.keyboard.press("Shift+ArrowRight")  # "Maria"
        t.page.keyboard.press("Enter" if layout == "plain" else "1")
        submit_by_keyboard(t)
        [entity] = t.harvested()["entities"]
        assert (entity["startOffset"], entity["endOffset"]) == (0, 5) and entity["label"] == batch.labels[0]
    elif kind == "bounding-box":
        tab_to(t, "el.tagName === 'CANVAS' || el.classList.contains('crowd-stage')")
        t.page.keyboard.press("2")
        t.page.keyboard.press("n")  # a new box of the picked class, selected
        t.page.keyboard.press("Shift+ArrowRight")
        t.page.keyboard.press("Alt+ArrowDown")
        submit_by_keyboard(t)
        [box] = t.harvested()["boxes"]
        assert box["label"] == batch.labels[1] and box["width"] > 0 and box["height"] > 0
    elif kind == "semantic-segmentation":
        tab_to(t, "el.tagName === 'CANVAS' || el.classList.contains('crowd-stage')")
        t.page.keyboard.press("3")
        if layout == "plain":
            t.page.keyboard.press("p")
        # the keyboard cursor starts in the middle; Space drops a corner, Enter fills the polygon
        for move in ("", "Shift+ArrowRight", "Shift+ArrowDown", "Shift+ArrowLeft"):
            if move:
                t.page.keyboard.press(move)
            t.page.keyboard.press("Space")
        t.page.keyboard.press("Enter")
        submit_by_keyboard(t)
        from annotate.tasktypes.semantic_segmentation import decode_mask

        mask = decode_mask(t.harvested()["mask"], batch.labels)
        assert set(int(v) for v in set(mask.flatten().tolist())) == {0, 3} and (mask == 3).sum() > 20
    else:
        raise AssertionError(f"no keyboard path for {kind}")
