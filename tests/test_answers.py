"""QuestionFormAnswers parsing and label extraction."""

from __future__ import annotations

import pytest

from annotate.answers import AnswerError, extract_label, parse_question_form_answers

NS = "http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/2005-10-01/QuestionFormAnswers.xsd"


def qfa(*pairs):
    body = "".join(f"<Answer><QuestionIdentifier>{k}</QuestionIdentifier><FreeText>{v}</FreeText></Answer>" for k, v in pairs)
    return f'<?xml version="1.0" encoding="ASCII"?><QuestionFormAnswers xmlns="{NS}">{body}</QuestionFormAnswers>'


def test_fields_and_label():
    parsed = parse_question_form_answers(qfa(("species", "setosa"), ("comment", "a &amp; b &#233;")))
    assert parsed.fields == {"species": "setosa", "comment": "a & b é"}
    assert extract_label(parsed.fields, "species", ["setosa", "virginica"]) == "setosa"


def test_repeated_fields_are_joined():
    assert parse_question_form_answers(qfa(("tags", "a"), ("tags", "b"))).fields == {"tags": "a|b"}


def test_crowd_form_task_answers():
    parsed = parse_question_form_answers(qfa(("taskAnswers", '[{"species": {"label": "virginica"}}]')))
    assert extract_label(parsed.fields, "species", ["setosa", "virginica"]) == "virginica"


@pytest.mark.parametrize("xml,match", [
    ("<QuestionFormAnswers", "malformed"),
    ("<Other/>", "not a QuestionFormAnswers"),
])
def test_malformed(xml, match):
    with pytest.raises(AnswerError, match=match):
        parse_question_form_answers(xml)


def test_unknown_label_and_missing_field():
    fields = parse_question_form_answers(qfa(("species", "<b>rose</b>"))).fields
    with pytest.raises(AnswerError, match="not one of the task's labels"):
        extract_label(fields, "species", ["setosa"])
    with pytest.raises(AnswerError, match="no 'colour' field"):
        extract_label(fields, "colour", ["setosa"])
