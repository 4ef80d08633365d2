"""Crowd HTML Elements, offline: the script is served in place of AWS's CDN, crowd-element pages
are answered by the simulated crowds as MTurk records them (one `taskAnswers` field), and the
harvest reads those answers for every task type."""

from __future__ import annotations

import json
import shutil
import urllib.request

import pytest
import xmltodict
from conftest import EXAMPLES, make_batch, run_until_done
from conftest_marketplace import accept, client, hit_params, html_question

from annotate.answers import extract_label, parse_question_form_answers, task_answers
from annotate.config import load_batch
from annotate.demo import CROWD_TEMPLATES, available_examples, run_demo, use_crowd_template
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.marketplace.crowd_elements import (CDN_SCRIPT, LOCAL_SCRIPT, localise, parse_crowd_forms,
                                                 parse_literal, task_answers_fields)
from annotate.post import post_batch
from annotate.store import Store
from annotate.tasktypes import TaskSpec, get_task_type

CDN = "https://assets.crowd.aws/crowd-html-elements.js"

# The AWS getting-started layout: a crowd-form around one text area.
GETTING_STARTED = f"""<script src="{CDN}"></script>
<crowd-form answer-format="flatten-objects">
  <p>What is shown here? Describe it in one word.</p>
  <crowd-text-area name="answer" placeholder="Your answer"></crowd-text-area>
</crowd-form>"""

# crowd-image-classifier, written from the element reference.
IMAGE_CLASSIFIER = f"""<script src="{CDN}"></script>
<crowd-form>
  <crowd-image-classifier src="https://example.com/cat.jpg" categories="['cat', 'dog', 'bird']"
      header="Choose the correct category for the image" name="category">
    <short-instructions><p>Read the task carefully and inspect the image.</p></short-instructions>
    <full-instructions header="Classification Instructions"><p>Pick the best label.</p></full-instructions>
  </crowd-image-classifier>
</crowd-form>"""


@pytest.fixture
def srv(tmp_path):
    with MarketplaceServer(tmp_path / "m.db") as server:
        yield server


def test_literal_attributes_as_the_reference_writes_them():
    assert parse_literal("['Cat', 'Dog']") == ["Cat", "Dog"]
    assert parse_literal('["a", "b"]') == ["a", "b"]
    assert parse_literal("{ text: 'None of the above' }") == {"text": "None of the above"}
    assert parse_literal("[{'label': 'person', shortDisplayName: 'per'}]") == [{"label": "person", "shortDisplayName": "per"}]
    assert parse_literal("[1, 2.5, true, null]") == [1, 2.5, True, None]
    with pytest.raises(ValueError):
        parse_literal("['unterminated")
    with pytest.raises(ValueError):
        parse_literal("[" * 50 + "]" * 50)  # bounded depth


def test_task_page_loads_our_script_not_the_cdn(srv):
    mturk = client(srv.url)
    hit = mturk.create_hit(**hit_params(Question=html_question(IMAGE_CLASSIFIER)))["HIT"]
    assignment_id = accept(srv.url, hit["HITId"], "AWORKER0000001")
    page = urllib.request.urlopen(f"{srv.url}/worker/task?assignmentId={assignment_id}").read().decode()
    assert CDN not in page and f'src="{LOCAL_SCRIPT}"' in page
    script = urllib.request.urlopen(srv.url + LOCAL_SCRIPT)
    assert script.headers["Content-Type"].startswith("text/javascript")
    body = script.read().decode()
    for element in ("crowd-form", "crowd-button", "crowd-input", "crowd-text-area", "crowd-radio-group",
                    "crowd-radio-button", "crowd-checkbox", "crowd-classifier", "crowd-image-classifier",
                    "crowd-classifier-multi-select", "crowd-bounding-box", "crowd-semantic-segmentation",
                    "crowd-entity-annotation", "crowd-keypoint", "crowd-polygon", "crowd-instructions", "crowd-alert"):
        assert f'"{element}"' in body, element
    assert localise('<script src="//assets.crowd.aws/crowd-html-elements.js">') == f'<script src="{LOCAL_SCRIPT}">'
    assert CDN_SCRIPT.search("https://assets.crowd.aws/other.js") is None


def test_crowd_page_read_as_one_form_and_packed_as_task_answers():
    html = f"""<script src="{CDN}"></script><crowd-form>
      <crowd-classifier name="sentiment" categories="['Positive', 'Negative']" header="Sentiment?"></crowd-classifier>
      <crowd-classifier-multi-select name="topics" categories="['a', 'b', 'c']"></crowd-classifier-multi-select>
      <crowd-radio-group><crowd-radio-button name="yes" value="yes">Yes</crowd-radio-button>
        <crowd-radio-button name="no" value="no">No</crowd-radio-button></crowd-radio-group>
      <crowd-checkbox name="attrs" value="blurry">Blurry</crowd-checkbox>
      <crowd-checkbox name="attrs" value="dim">Dim</crowd-checkbox>
      <crowd-input name="count" type="number"></crowd-input>
      <crowd-text-area name="why">default text</crowd-text-area>
      <crowd-bounding-box name="boxes" labels="['cat']" src="x.png"></crowd-bounding-box>
      <input type="hidden" name="token" value="abc">
    </crowd-form>"""
    [form] = parse_crowd_forms(html)
    kinds = {(c.get("crowd"), c["name"]) for c in form["controls"]}
    assert ("classifier", "sentiment") in kinds and ("multi", "topics") in kinds and ("native", "token") in kinds
    boxes = json.dumps({"image_size": {"width": 10, "height": 8}, "boxes": [
        {"label": "cat", "left": 1, "top": 2, "width": 3, "height": 4}]})
    group = next(c["name"] for c in form["controls"] if c.get("crowd") == "radio")
    fields = [("assignmentId", "A1"), ("sentiment", "Negative"), ("topics", "a"), ("topics", "c"), (group, "no"),
              ("attrs", "dim"), ("count", "3"), ("why", "because"), ("boxes", boxes)]
    packed = task_answers_fields(form, fields)
    assert packed[0] == ("assignmentId", "A1") and packed[1][0] == "taskAnswers"
    [answer] = json.loads(packed[1][1])
    assert answer == {
        "sentiment": {"label": "Negative"}, "topics": {"labels": ["a", "c"]}, "yes": {"yes": False},
        "no": {"no": True}, "attrs": {"blurry": False, "dim": True}, "count": 3, "why": "because",
        "boxes": {"boundingBoxes": [{"height": 4, "label": "cat", "left": 1, "top": 2, "width": 3}],
                  "inputImageProperties": {"height": 8, "width": 10}},
        "token": "abc"}
    assert parse_crowd_forms("<form><input name=x></form>") == []


def test_flattened_answers_read_like_nested_ones():
    fields = {"taskAnswers": json.dumps([{"category.label": "dog", "note": "x"}])}
    assert task_answers(fields) == {"category": {"label": "dog"}, "note": "x"}
    assert extract_label(fields, "category", ["cat", "dog"]) == "dog"


@pytest.mark.parametrize("layout, gold, field", [(GETTING_STARTED, "tulip", "answer"), (IMAGE_CLASSIFIER, "dog", "category")])
def test_reference_layouts_answered_by_the_simulated_crowd(srv, layout, gold, field):
    """The getting-started text area and a crowd-image-classifier: the crowd answers, the answer
    comes back as MTurk's QuestionFormAnswers with one taskAnswers field."""
    mturk = client(srv.url)
    mturk.create_hit(**hit_params(Question=html_question(layout), MaxAssignments=1, RequesterAnnotation="b/1"))
    crowd = SimulatedCrowd(srv.url, {"b/1": gold}, workers=3, accuracy=(1.0, 1.0), spammer_share=0, seed=1)
    assert crowd.work() == 1
    [hit] = mturk.list_hits()["HITs"]
    [assignment] = mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
    doc = xmltodict.parse(assignment["Answer"])["QuestionFormAnswers"]["Answer"]
    assert doc["QuestionIdentifier"] == "taskAnswers"
    fields = parse_question_form_answers(assignment["Answer"]).fields
    answer = task_answers(fields)
    assert (answer[field]["label"] if isinstance(answer[field], dict) else answer[field]) == gold


def test_reference_layouts_harvested(ws, marketplace, tmp_path):
    """A requester's own crowd-form layout (the getting-started one, as a batch template) goes
    through post, the simulated crowd and harvest, and its labels are the crowd's."""
    batch_dir = make_batch(tmp_path, name="crowd-iris", items=12)
    (batch_dir / "crowd.html.j2").write_text(
        f'<script src="{CDN}"></script>\n<crowd-form>\n'
        "<p>{{ item.petal_length }} cm petals: which species?</p>\n"
        "<p>Is the drawing clear?</p><crowd-radio-group><crowd-radio-button name=\"clear\" value=\"yes\">Yes"
        "</crowd-radio-button><crowd-radio-button name=\"unclear\" value=\"no\">No</crowd-radio-button></crowd-radio-group>\n"
        "<crowd-image-classifier name=\"{{ field }}\" src=\"https://example.com/x.png\" header=\"Species?\" "
        "categories='{{ labels | tojson }}'></crowd-image-classifier>\n</crowd-form>\n")
    toml = (batch_dir / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "crowd.html.j2"')
    (batch_dir / "batch.toml").write_text(toml)
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, target="local", endpoint_url=marketplace.url, remember_endpoint=False)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, accuracy=(1.0, 1.0),
                           spammer_share=0, seed=2)
    run_until_done(ws, batch, marketplace.url, crowd)
    store = Store(ws.store_path)
    labels = store.labels(batch.name)
    assert len(labels) == 12
    gold = {i.id: i.gold for i in batch.items}
    assert all(v["status"] == "labelled" and json.loads(v["value"]) == gold[k] for k, v in labels.items())
    quarantined = store.db.execute("select count(*) from assignments where quarantine is not null").fetchone()[0]
    assert quarantined == 0


CROWD_OUTPUTS = {
    # task type → (field, one crowd-element answer as the element reference documents it, expected parse)
    "image-classification": ("species", {"species": {"label": "setosa"}}, "setosa"),
    "text-classification-multilabel": ("topics", {"topics": {"labels": ["price", "service"]}}, ["price", "service"]),
    "bounding-box": ("boxes", {"boxes": {"boundingBoxes": [{"height": 4, "label": "circle", "left": 1, "top": 2, "width": 3}],
                                         "inputImageProperties": {"height": 20, "width": 30}}},
                     {"image_size": {"width": 30, "height": 20},
                      "boxes": [{"label": "circle", "left": 1, "top": 2, "width": 3, "height": 4}]}),
    "named-entity-recognition": ("entities", {"entities": {"entities": [{"endOffset": 5, "label": "person", "startOffset": 0}]}},
                                 {"entities": [{"label": "person", "startOffset": 0, "endOffset": 5}]}),
    "free-text": ("word", {"word": "harbour"}, "harbour"),
}


@pytest.mark.parametrize("task_type", sorted(CROWD_OUTPUTS))
def test_every_task_type_reads_crowd_element_outputs(task_type):
    field, answer, expected = CROWD_OUTPUTS[task_type]
    labels = {"image-classification": ["setosa", "virginica"], "text-classification-multilabel": ["price", "quality", "service"],
              "bounding-box": ["circle", "square"], "named-entity-recognition": ["person", "location"], "free-text": []}[task_type]
    spec = TaskSpec(batch="b", labels=labels, answer_field=field, label_attribute="x")
    fields = {"taskAnswers": json.dumps([answer])}
    assert get_task_type(task_type).parse(fields, spec) == expected


def test_segmentation_reads_crowd_output():
    import base64
    import io

    import numpy as np
    from PIL import Image

    rgba = np.zeros((4, 6, 4), dtype=np.uint8)  # transparent: background
    rgba[1:3, 2:5] = [0xff, 0x7f, 0x0e, 255]  # the second label's colour in the answer's mappings
    buffer = io.BytesIO()
    Image.fromarray(rgba, "RGBA").save(buffer, format="PNG")
    answer = {"mask": {"inputImageProperties": {"height": 4, "width": 6},
                       "labelMappings": {"circle": {"color": "#1f77b4"}, "square": {"color": "#ff7f0e"}},
                       "labeledImage": {"pngImageData": base64.b64encode(buffer.getvalue()).decode()}}}
    spec = TaskSpec(batch="b", labels=["circle", "square"], answer_field="mask", label_attribute="x")
    value = get_task_type("semantic-segmentation").parse({"taskAnswers": json.dumps([answer])}, spec)
    from annotate.tasktypes.semantic_segmentation import decode_mask

    mask = decode_mask(value["mask"], ["circle", "square"])
    assert mask.sum() == 2 * 6 and set(np.unique(mask)) == {0, 2}


def test_every_example_has_a_crowd_layout(tmp_path):
    for example in available_examples():
        copy = tmp_path / example
        shutil.copytree(EXAMPLES / example, copy)
        name = use_crowd_template(copy)
        assert name in set(CROWD_TEMPLATES.values())
        assert load_batch(copy).template == name


# Same crowd, same seed: the crowd-element layout labels as well as the plain form (within noise:
# the structured crowds draw the same answers, only the wire format differs).
@pytest.mark.parametrize("example", ["shapes-boxes", "reviews-multilabel", "news-entities", "words-text",
                                     "shapes-segmentation", "shapes-multilabel"])
def test_demo_with_crowd_template_matches_plain(tmp_path, example):
    plain = run_demo(example, tmp_path / "plain", seed=0, train=False)
    crowd = run_demo(example, tmp_path / "crowd", seed=0, train=False, template="crowd")
    assert crowd["labelled"] >= plain["labelled"] - 1
    assert crowd["accuracy"] >= plain["accuracy"] - 0.06, (plain, crowd)
    from annotate.workspace import Workspace

    crowd_store = Store(Workspace.resolve(crowd["home"]).store_path)
    rows = crowd_store.db.execute("select answer_xml from assignments limit 3").fetchall()
    assert rows and all("taskAnswers" in r[0] for r in rows)


def test_replay_crowd_answers_crowd_element_layouts(srv):
    """Real workers' recorded labels replayed into a crowd-image-classifier layout."""
    from annotate.marketplace.replay import ReplayCrowd

    mturk = client(srv.url)
    for i in range(3):
        mturk.create_hit(**hit_params(Question=html_question(IMAGE_CLASSIFIER), MaxAssignments=2, RequesterAnnotation=f"r/{i}"))
    recorded = {f"r/{i}": [("w1", "cat"), ("w2", ["dog", "bird", "cat"][i])] for i in range(3)}
    crowd = ReplayCrowd(srv.url, recorded, seed=0)
    assert crowd.work() == 6
    got = []
    for hit in mturk.list_hits()["HITs"]:
        for a in mturk.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]:
            got.append(extract_label(parse_question_form_answers(a["Answer"]).fields, "category", ["cat", "dog", "bird"]))
    assert sorted(got) == sorted(["cat"] * 3 + ["dog", "bird", "cat"])
