"""Rendering: autoescaped, StrictUndefined, CDATA-safe, size-checked, media per target."""

from __future__ import annotations

import xml.etree.ElementTree as ET

import pytest

from annotate.config import load_batch
from annotate.errors import UserError
from annotate.templates import HTML_QUESTION_NS, QUESTION_MAX_BYTES, QuestionRenderer, cdata, html_question
from conftest import make_batch


def test_question_is_well_formed_html_question(batch_dir):
    batch = load_batch(batch_dir)
    xml = QuestionRenderer(batch).question(batch.items[0])
    root = ET.fromstring(xml)
    assert root.tag == f"{{{HTML_QUESTION_NS}}}HTMLQuestion"
    html = root.find(f"{{{HTML_QUESTION_NS}}}HTMLContent").text
    assert 'action="/mturk/externalSubmit"' in html
    assert 'name="species" value="virginica"' in html
    assert "assignmentId" in html
    assert "virginica" in html  # a label, not the gold: check the gold never appears as data
    assert batch.items[0].gold not in {v for v in batch.items[0].data.values()}


def test_submit_url_per_target(batch_dir):
    batch = load_batch(batch_dir)
    assert "https://workersandbox.mturk.com/mturk/externalSubmit" in QuestionRenderer(batch, "sandbox").html(batch.items[0])
    assert "https://www.mturk.com/mturk/externalSubmit" in QuestionRenderer(batch, "production").html(batch.items[0])


def test_cdata_cannot_be_closed_early():
    text = "a ]]> b"
    xml = html_question(text)
    root = ET.fromstring(xml)
    assert root.find(f"{{{HTML_QUESTION_NS}}}HTMLContent").text == text
    assert cdata("]]>]]>").count("<![CDATA[") == 3


def test_item_text_is_escaped(tmp_path):
    batch_dir = make_batch(tmp_path, items=1)
    (batch_dir / "items.csv").write_text(
        "id,sepal_length,sepal_width,petal_length,petal_width,species\n"
        'x,"<script>alert(1)</script>",3,1.4,0.2,setosa\n')
    (batch_dir / "t.html.j2").write_text('{% extends "_base.html.j2" %}{% block task %}<p>{{ item.sepal_length }}</p>{% endblock %}')
    text = (batch_dir / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "t.html.j2"')
    (batch_dir / "batch.toml").write_text(text)
    html = QuestionRenderer(load_batch(batch_dir)).html(load_batch(batch_dir).items[0])
    assert "<script>alert(1)</script>" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html


def test_undefined_variable_names_template_and_item(tmp_path):
    batch_dir = make_batch(tmp_path, items=2)
    (batch_dir / "t.html.j2").write_text('{% extends "_base.html.j2" %}{% block task %}{{ item.colour }}{% endblock %}')
    text = (batch_dir / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "t.html.j2"')
    (batch_dir / "batch.toml").write_text(text)
    batch = load_batch(batch_dir)
    with pytest.raises(UserError, match=r"t.html.j2.*colour.*iris-001.*items.csv:2"):
        QuestionRenderer(batch).questions()


def test_template_syntax_error_names_the_line(tmp_path):
    batch_dir = make_batch(tmp_path, items=2)
    (batch_dir / "t.html.j2").write_text('line one\n{% if %}\n')
    text = (batch_dir / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "t.html.j2"')
    (batch_dir / "batch.toml").write_text(text)
    with pytest.raises(UserError, match=r"t.html.j2:2"):
        QuestionRenderer(load_batch(batch_dir))


def test_oversize_question_is_refused_before_posting(tmp_path):
    batch_dir = make_batch(tmp_path, items=2)
    (batch_dir / "t.html.j2").write_text("{{ 'x' * 70000 }}")
    text = (batch_dir / "batch.toml").read_text().replace('template = "iris.html.j2"', 'template = "t.html.j2"')
    (batch_dir / "batch.toml").write_text(text)
    with pytest.raises(UserError, match=f"{QUESTION_MAX_BYTES:,}"):
        QuestionRenderer(load_batch(batch_dir)).questions()


def test_local_media_is_inlined_locally_and_refused_on_mturk():
    from conftest import EXAMPLES

    batch = load_batch(EXAMPLES / "digits")
    html = QuestionRenderer(batch, "local").html(batch.items[0])
    assert 'src="data:image/png;base64,' in html
    renderer = QuestionRenderer(batch, "sandbox")
    with pytest.raises(UserError, match="local file"):
        renderer.media("images/digit-0001.png")
    assert renderer.media("https://example.org/a.png") == "https://example.org/a.png"


def test_large_local_media_is_served_not_inlined(tmp_path, marketplace):
    import urllib.request

    from annotate.templates import local_media_prefix, register_local_media

    batch_dir = make_batch(tmp_path, items=1)
    big = batch_dir / "photos" / "big.jpg"
    big.parent.mkdir()
    big.write_bytes(b"\xff\xd8" + bytes(200_000))  # far over what could be inlined
    renderer = QuestionRenderer(load_batch(batch_dir), "local")
    url = renderer.media("photos/big.jpg")
    assert url == local_media_prefix(batch_dir) + "photos/big.jpg"
    assert register_local_media(marketplace.url, batch_dir) == local_media_prefix(batch_dir)
    with urllib.request.urlopen(marketplace.url + url) as response:
        assert len(response.read()) == 200_002
    with pytest.raises(UserError, match="media file not found"):
        renderer.media("photos/missing.jpg")
    with pytest.raises(UserError, match="local file"):
        QuestionRenderer(load_batch(batch_dir), "production").media("photos/big.jpg")
