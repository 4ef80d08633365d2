"""Free text: parsing, normalised exact-match agreement, escaping wherever a worker's text is shown."""

from __future__ import annotations

import pytest

from annotate.answers import AnswerError
from annotate.tasktypes import TaskSpec, get_task_type
from annotate.tasktypes.free_text import normalise

SPEC = TaskSpec(batch="b", labels=["text"], answer_field="word", label_attribute="word", agree=2)
TT = get_task_type("free-text")


def test_parse_keeps_the_text_as_typed_even_markup():
    assert TT.parse({"word": "  Harbour "}, SPEC) == "Harbour"
    assert TT.parse({"word": "<script>alert(1)</script>"}, SPEC) == "<script>alert(1)</script>"


@pytest.mark.parametrize("fields, reason", [
    ({}, "no 'word' field"), ({"word": "   "}, "empty"), ({"word": "a\x00b"}, "control characters"),
    ({"word": "x" * 5001}, "at most 5000"),
])
def test_parse_rejects_with_a_reason(fields, reason):
    with pytest.raises(AnswerError, match=reason):
        TT.parse(fields, SPEC)


def test_normalised_agreement():
    assert normalise("  Quartz. ") == normalise("quartz") == "quartz"
    c = TT.consolidate([("w1", "Quartz."), ("w2", "quartz"), ("w3", "qaurtz")], SPEC)
    assert c.agreed and c.value == "quartz" and c.confidence == pytest.approx(2 / 3)
    c = TT.consolidate([("w1", "quartz"), ("w2", "qaurtz")], SPEC)
    assert not c.agreed


def test_manifest_and_score():
    meta = {"job-name": "j", "human-annotated": "yes", "creation-date": "d"}
    assert TT.manifest_entries(SPEC, "quartz", 0.666, meta) == {
        "word": "quartz", "word-metadata": {"confidence": 0.67, "type": "groundtruth/custom", **meta}}
    assert TT.score("Quartz", "quartz") == 1.0 and TT.score("quartz", "quarts") == 0.0


def test_a_workers_markup_is_escaped_in_the_hit_page(tmp_path):
    """Text shown back in a page (here: a free-text item whose source is a worker's answer) is escaped."""
    import shutil

    from annotate.config import load_batch
    from annotate.templates import QuestionRenderer
    from conftest import EXAMPLES

    batch_dir = tmp_path / "b"
    shutil.copytree(EXAMPLES / "words-text", batch_dir)
    (batch_dir / "items.jsonl").write_text('{"id": "1", "source": "<script>alert(1)</script><b>x</b>", "word": "x"}\n')
    batch = load_batch(batch_dir)
    html = QuestionRenderer(batch, "local").html(batch.items[0])
    assert "<script>alert(1)" not in html and "&lt;script&gt;alert(1)&lt;/script&gt;&lt;b&gt;" in html
