"""Crowd HTML Elements, offline: the marketplace's own crowd-html-elements.js, and how a crowd that
cannot run script reads and answers a crowd-element page.

A layout written for MTurk or Ground Truth loads `https://assets.crowd.aws/crowd-html-elements.js`;
the worker pages serve it with that script pointed at our implementation (`static/`), so it works
with no network. What `<crowd-form>` submits is what MTurk records: `assignmentId` and one
`taskAnswers` field holding a JSON array with one object keyed by each element's `name`.

The simulated crowds read forms with html.parser. For a crowd-element page, `parse_crowd_forms`
describes its elements as the controls of one form (a classifier as a radio group of its
categories, a bounding box as a hidden field of kind "boxes" …), the crowd fills them as it fills a
plain form, and `task_answers_fields` packs the filled fields into `taskAnswers` — the JSON the
page's script would have built.
"""

from __future__ import annotations

import base64
import json
import re
from html.parser import HTMLParser
from importlib import resources
from typing import Any

CDN_SCRIPT = re.compile(r"""(?:https?:)?//assets\.crowd\.aws/crowd-html-elements\.js""", re.IGNORECASE)
LOCAL_SCRIPT = "/crowd-html-elements.js"
MAX_LITERAL = 100_000  # attribute values the parser reads (labels lists and the like)
PALETTE = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
           "#bcbd22", "#17becf"]  # the colours the script gives labels, in order

# element → the kind of control the crowd fills, and the `annotate` kind structured crowds know
WIDGETS = {"crowd-bounding-box": "boxes", "crowd-semantic-segmentation": "mask", "crowd-entity-annotation": "spans",
           "crowd-polygon": "polygons", "crowd-keypoint": "keypoints"}


def script() -> bytes:
    """Our crowd-html-elements.js."""
    return resources.files("annotate.marketplace").joinpath("static/crowd-html-elements.js").read_bytes()


def uses_crowd_elements(html: str) -> bool:
    return CDN_SCRIPT.search(html) is not None or "<crowd-" in html.lower()


def localise(html: str) -> str:
    """The page with AWS's script replaced by ours (the page's other content untouched)."""
    return CDN_SCRIPT.sub(LOCAL_SCRIPT, html)


# ---------------------------------------------------------------------------- attribute literals
_TOKEN = re.compile(r"""\s*(?:(?P<punct>[\[\]{}:,])|(?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")|(?P<word>[A-Za-z_$][\w$-]*|-?\d+(?:\.\d+)?(?:[eE][+-]?\d+)?))""", re.S)


def parse_literal(text: str) -> Any:
    """A JavaScript literal as the reference writes attributes (`['Cat', 'Dog']`, `{ text: 'None' }`):
    JSON with single quotes and bare keys allowed. ValueError if it is not one."""
    if len(text) > MAX_LITERAL:
        raise ValueError(f"attribute value over {MAX_LITERAL} characters")
    tokens: list[tuple[str, str]] = []
    pos = 0
    while pos < len(text):
        if text[pos:].strip() == "":
            break
        m = _TOKEN.match(text, pos)
        if not m:
            raise ValueError(f"cannot read {text[pos:pos + 30]!r}")
        kind = m.lastgroup or ""
        tokens.append((kind, m.group(kind)))
        pos = m.end()
    at = 0

    def value(depth: int) -> Any:
        nonlocal at
        if depth > 20:
            raise ValueError("nested too deeply")
        if at >= len(tokens):
            raise ValueError("ends too soon")
        kind, tok = tokens[at]
        at += 1
        if tok == "[":
            out = []
            while at < len(tokens) and tokens[at][1] != "]":
                out.append(value(depth + 1))
                if at < len(tokens) and tokens[at][1] == ",":
                    at += 1
            at += 1
            return out
        if tok == "{":
            obj = {}
            while at < len(tokens) and tokens[at][1] != "}":
                key = tokens[at][1]
                key = _unquote(key) if tokens[at][0] == "str" else key
                if at + 1 >= len(tokens) or tokens[at + 1][1] != ":":
                    raise ValueError(f"no ':' after key {key!r}")
                at += 2
                obj[key] = value(depth + 1)
                if at < len(tokens) and tokens[at][1] == ",":
                    at += 1
            at += 1
            return obj
        if kind == "str":
            return _unquote(tok)
        if kind == "word":
            words = {"true": True, "false": False, "null": None}
            if tok in words:
                return words[tok]
            try:
                return json.loads(tok)
            except json.JSONDecodeError:
                return tok
        raise ValueError(f"unexpected {tok!r}")

    result = value(0)
    if at != len(tokens):
        raise ValueError("text after the value")
    return result


def _unquote(token: str) -> str:
    body = token[1:-1]
    return re.sub(r"\\(.)", lambda m: {"n": "\n", "t": "\t", "r": "\r"}.get(m.group(1), m.group(1)), body)


def label_names(value: Any) -> list[str]:
    """labels / categories attributes: strings, or objects with `label` (entity annotation)."""
    if not isinstance(value, list):
        return []
    out = []
    for v in value:
        if isinstance(v, dict):
            v = v.get("label", v.get("text"))
        if isinstance(v, (str, int, float)) and not isinstance(v, bool):
            out.append(str(v))
    return out


# ---------------------------------------------------------------------------- reading a page
class CrowdFormParser(HTMLParser):
    """A crowd-element page as one form: each named element as controls a crowd can fill."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.form: dict[str, Any] = {"action": "/mturk/externalSubmit", "method": "post", "crowd": True,
                                     "flatten": False, "controls": [{"kind": "hidden", "name": "assignmentId", "value": ""}]}
        self.seen = False
        self._group = 0
        self._in_group: str | None = None
        self._text_for: dict[str, Any] | None = None  # a button/checkbox/text area collecting its text

    def _attr(self, a: dict[str, str], name: str) -> Any:
        raw = a.get(name)
        if raw is None or not raw.strip():
            return None
        try:
            return parse_literal(raw)
        except ValueError:
            return None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: (v if v is not None else "") for k, v in attrs}
        controls = self.form["controls"]
        name = a.get("name", "")
        if tag == "input" and (a.get("type") or "").lower() == "hidden" and name and name != "assignmentId":
            # a layout's own hidden inputs: the script submits them inside taskAnswers
            controls.append({"kind": "hidden", "name": name, "value": a.get("value", ""), "crowd": "native"})
            return
        if not tag.startswith("crowd-"):
            return
        self.seen = True
        if tag == "crowd-form":
            self.form["flatten"] = a.get("answer-format") == "flatten-objects"
        elif tag in ("crowd-classifier", "crowd-image-classifier") and name:
            for category in label_names(self._attr(a, "categories")):
                controls.append({"kind": "radio", "name": name, "value": category, "checked": False, "crowd": "classifier"})
        elif tag == "crowd-classifier-multi-select" and name:
            for category in label_names(self._attr(a, "categories")):
                controls.append({"kind": "checkbox", "name": name, "value": category, "checked": False,
                                 "crowd": "multi", "annotate": "multilabel"})
        elif tag == "crowd-radio-group":
            self._group += 1
            self._in_group = f"crowd-radio-group-{self._group}"
        elif tag == "crowd-radio-button" and name:
            control = {"kind": "radio", "name": self._in_group or f"crowd-radio-{name}", "value": a.get("value") or "on",
                       "checked": "checked" in a, "crowd": "radio", "crowd_name": name}
            controls.append(control)
        elif tag == "crowd-checkbox" and name:
            controls.append({"kind": "checkbox", "name": name, "value": a.get("value") or "on",
                             "checked": "checked" in a, "crowd": "checkbox"})
        elif tag in ("crowd-input", "crowd-text-area") and name:
            control = {"kind": "text" if tag == "crowd-input" else "textarea", "name": name,
                       "value": a.get("value", ""), "crowd": "text", "annotate": "text",
                       "number": a.get("type") == "number"}
            controls.append(control)
            if tag == "crowd-text-area" and not control["value"]:
                self._text_for = control
        elif tag in WIDGETS:
            kind = WIDGETS[tag]
            control = {"kind": "hidden", "name": name or tag, "value": "", "crowd": kind, "annotate": kind,
                       "labels": label_names(self._attr(a, "labels")), "src": a.get("src", "")}
            if kind == "spans":  # the text's length, which structured crowds bound their offsets by
                controls.append({"kind": "hidden", "name": f"{control['name']}-length",
                                 "value": str(len(a.get("text", ""))), "crowd": "length"})
            controls.append(control)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if tag.startswith("crowd-"):
            self.handle_endtag(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag == "crowd-radio-group":
            self._in_group = None
        elif tag == "crowd-text-area":
            self._text_for = None

    def handle_data(self, data: str) -> None:
        if self._text_for is not None:
            self._text_for["value"] += data


def parse_crowd_forms(html: str) -> list[dict[str, Any]]:
    """[the page as one form] when it uses crowd elements, else []."""
    parser = CrowdFormParser()
    parser.feed(html)
    parser.close()
    return [parser.form] if parser.seen else []


def page_classes(form: dict[str, Any]) -> list[str]:
    """The labels a crowd-element widget on the page offers (boxes, masks, spans)."""
    for c in form["controls"]:
        if c.get("labels"):
            return list(c["labels"])
    return []


# ---------------------------------------------------------------------------- answering
def task_answers_fields(form: dict[str, Any], fields: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """What the page's script submits for these filled fields: assignmentId and taskAnswers."""
    values: dict[str, list[str]] = {}
    for name, value in fields:
        values.setdefault(name, []).append(value)
    answer: dict[str, Any] = {}
    for c in form["controls"]:
        kind, name = c.get("crowd"), c["name"]
        if kind == "classifier":
            if name in values and name not in answer:
                answer[name] = {"label": values[name][0]}
        elif kind == "multi":
            if name not in answer:
                answer[name] = {"labels": _ticked(values.get(name, []))}
        elif kind == "radio":
            answer.setdefault(c["crowd_name"], {})[c["value"]] = c["value"] in values.get(name, [])
        elif kind == "checkbox":
            answer.setdefault(name, {})[c["value"]] = c["value"] in values.get(name, [])
        elif kind == "native":
            answer[name] = values.get(name, [c["value"]])[0]
        elif kind == "text":
            text = values.get(name, [c["value"]])[0]
            answer[name] = _number_or_text(text) if c.get("number") else text
        elif kind in ("boxes", "mask", "spans", "polygons", "keypoints") and name in values:
            answer[name] = widget_value(kind, values[name][0], c)
    if form.get("flatten"):
        answer = flatten(answer)
    assignment = values.get("assignmentId", [""])[0]
    return [("assignmentId", assignment), ("taskAnswers", json.dumps([answer], separators=(",", ":")))]


def _ticked(values: list[str]) -> list[str]:
    out: list[str] = []
    for v in values:  # a structured crowd may send its ticks joined by '|'
        out.extend(p for p in v.split("|") if p and p not in out)
    return out


def _number_or_text(text: str) -> Any:
    try:
        return json.loads(text) if re.fullmatch(r"-?\d+(\.\d+)?", text.strip()) else text
    except json.JSONDecodeError:
        return text


def widget_value(kind: str, filled: str, control: dict[str, Any]) -> Any:
    """A widget's output (as the element reference documents it) from the plain-template answer a
    simulated worker produced: {"image_size", "boxes"} → {"boundingBoxes", "inputImageProperties"} …"""
    doc = json.loads(filled) if filled else {}
    size = doc.get("image_size") if isinstance(doc, dict) else None
    props = {"height": size["height"], "width": size["width"]} if isinstance(size, dict) else {}
    if kind == "boxes":
        return {"boundingBoxes": [{k: b[k] for k in ("height", "label", "left", "top", "width")} for b in doc.get("boxes", [])],
                "inputImageProperties": props}
    if kind == "mask":
        labels = control.get("labels") or []
        data = doc.get("mask", "")
        data = data.split(",", 1)[1] if data.startswith("data:") else data
        base64.b64decode(data, validate=True)  # a bug upstream should fail here, not at the requester
        return {"inputImageProperties": props, "labeledImage": {"pngImageData": data},
                "labelMappings": {label: {"color": PALETTE[i % len(PALETTE)]} for i, label in enumerate(labels)}}
    if kind == "spans":
        entities = doc.get("entities", []) if isinstance(doc, dict) else doc
        return {"entities": [{"endOffset": e["endOffset"], "label": e["label"], "startOffset": e["startOffset"]}
                             for e in entities]}
    if kind == "polygons":
        return {"inputImageProperties": props, "polygons": [
            {"label": p["label"], "vertices": [{"x": round(x), "y": round(y)} for x, y in p["points"]]}
            for p in doc.get("polygons", [])]}
    return {"inputImageProperties": props, "keypoints": doc.get("keypoints", [])}


def flatten(obj: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """crowd-form's answer-format="flatten-objects": nested objects become dotted keys."""
    out: dict[str, Any] = {}
    for key, value in obj.items():
        path = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, path + "."))
        else:
            out[path] = value
    return out
