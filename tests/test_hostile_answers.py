"""Hostile worker answers: whatever a worker sends, reading it ends in an AnswerError with a reason
(the harvest quarantines that one assignment), never in RecursionError, OverflowError, a huge
allocation or a stopped pass. The limits live in annotate.answers; every task type uses them."""

from __future__ import annotations

import base64
import json
import sqlite3
import struct
import time
import zlib

import pytest

from annotate.answers import (ANSWER_NS, MAX_ANSWER_BYTES, MAX_JSON_BYTES, MAX_JSON_DEPTH, AnswerError,
                              check_json_depth, parse_question_form_answers, worker_json)
from annotate.harvest import harvest
from annotate.post import post_batch
from annotate.store import Store
from annotate.tasktypes import TaskSpec, get_task_type
from conftest import make_batch
from test_pipeline import worker_submit

DEEP_LISTS = "[" * 100_000
DEEP_DICTS = '{"a":' * 100_000
HUGE_INT = "9" * 5000


def qfa(*pairs: tuple[str, str]) -> str:
    from xml.sax.saxutils import escape

    body = "".join(f"<Answer><QuestionIdentifier>{k}</QuestionIdentifier><FreeText>{escape(v)}</FreeText></Answer>"
                   for k, v in pairs)
    return f'<?xml version="1.0" encoding="UTF-8"?><QuestionFormAnswers xmlns="{ANSWER_NS}">{body}</QuestionFormAnswers>'


# ---------------------------------------------------------------- the limits themselves
@pytest.mark.parametrize("text, reason", [
    (DEEP_LISTS, "nests more than"),
    (DEEP_DICTS, "nests more than"),
    ("[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1), "nests more than"),
    (HUGE_INT, "digits"),
    ("[" + "-" + HUGE_INT + "]", "digits"),
    ("1e400", "out of range"),
    ('{"x": -1e400}', "out of range"),
    ("NaN", "not a JSON number"),
    ('{"x": Infinity}', "not a JSON number"),
    ('"' + "x" * (MAX_JSON_BYTES + 1) + '"', "at most|over"),
    ('"\ud800"', "not valid Unicode"),
])
def test_worker_json_refuses_with_a_reason(text, reason):
    with pytest.raises(AnswerError, match=reason):
        worker_json(text, "taskAnswers")


def test_depth_scan_skips_strings_and_allows_honest_nesting():
    brackets_in_strings = json.dumps({"note": "[" * 1000 + "{" * 1000, "escaped": '\\"[[[['})
    assert worker_json(brackets_in_strings, "x")["note"].startswith("[[[")
    honest = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert worker_json(honest, "x") is not None
    many_shallow = json.dumps([{"label": "cat", "left": i} for i in range(2000)])  # many brackets, depth 2
    check_json_depth(many_shallow, "x")


def test_the_depth_scan_is_quick_on_the_largest_input():
    text = "[" * (MAX_JSON_BYTES // 2 - 1)
    started = time.perf_counter()
    with pytest.raises(AnswerError, match="nests more than"):
        worker_json(text, "x")
    assert time.perf_counter() - started < 1.0


@pytest.mark.parametrize("xml, reason", [
    (qfa(("species", "x" * (MAX_ANSWER_BYTES + 1))), "at most|over"),
    (qfa(("species", "é" * (MAX_ANSWER_BYTES // 2 + 1))), "bytes; at most"),  # under in characters, over in bytes
    (f'<QuestionFormAnswers xmlns="{ANSWER_NS}"><Answer><QuestionIdentifier>species</QuestionIdentifier>'
     f'<FreeText>{"<a>" * 50_000}{"</a>" * 50_000}</FreeText></Answer></QuestionFormAnswers>', "nests more than"),
    ('<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol"><!ENTITY lol2 "&lol;&lol;&lol;&lol;">]>'
     f'<QuestionFormAnswers xmlns="{ANSWER_NS}"><Answer><QuestionIdentifier>species</QuestionIdentifier>'
     '<FreeText>&lol2;</FreeText></Answer></QuestionFormAnswers>', "DOCTYPE"),
    (qfa(("species", "setosa")).replace("setosa", "set\ud800osa"), "not valid Unicode"),
    (None, "not XML text"),
])
def test_answer_xml_limits(xml, reason):
    with pytest.raises(AnswerError, match=reason):
        parse_question_form_answers(xml)


# ---------------------------------------------------------------- every task type, the same hostile values
SPECS = {
    "image-classification": TaskSpec(batch="b", labels=["cat", "dog"], answer_field="species", label_attribute="a"),
    "image-classification-multilabel": TaskSpec(batch="b", labels=["cat", "dog"], answer_field="species", label_attribute="a"),
    "bounding-box": TaskSpec(batch="b", labels=["cat", "dog"], answer_field="species", label_attribute="a"),
    "semantic-segmentation": TaskSpec(batch="b", labels=["cat", "dog"], answer_field="species", label_attribute="a"),
    "named-entity-recognition": TaskSpec(batch="b", labels=["cat", "dog"], answer_field="species", label_attribute="a"),
    "free-text": TaskSpec(batch="b", labels=[], answer_field="species", label_attribute="a"),
}
HOSTILE_FIELDS = {
    "deep taskAnswers": {"taskAnswers": DEEP_LISTS},
    "deep dicts in taskAnswers": {"taskAnswers": DEEP_DICTS},
    "huge int taskAnswers": {"taskAnswers": HUGE_INT},
    "non-dict taskAnswers": {"taskAnswers": '"just words"'},
    "number taskAnswers": {"taskAnswers": "42"},
    "1e400 in taskAnswers": {"taskAnswers": '{"species": 1e400}'},
    "deep field in taskAnswers": {"taskAnswers": json.dumps({"species": 0}).replace("0", DEEP_LISTS[:5000])},
}


@pytest.mark.parametrize("case", sorted(HOSTILE_FIELDS))
@pytest.mark.parametrize("task_type", sorted(SPECS))
def test_every_task_type_turns_hostile_answers_into_answer_errors(task_type, case):
    with pytest.raises(AnswerError):
        get_task_type(task_type).parse(HOSTILE_FIELDS[case], SPECS[task_type])


@pytest.mark.parametrize("task_type", ["bounding-box", "semantic-segmentation", "named-entity-recognition",
                                       "image-classification-multilabel"])
@pytest.mark.parametrize("raw", [DEEP_LISTS, DEEP_DICTS, HUGE_INT, "[" + HUGE_INT + "]", "1e400", "NaN"])
def test_structured_json_fields_are_limited(task_type, raw):
    fields = {"species": raw, "species-length": "10"}
    with pytest.raises(AnswerError):
        get_task_type(task_type).parse(fields, SPECS[task_type])


@pytest.mark.parametrize("box", [
    {"label": "cat", "left": 10 ** 99, "top": 0, "width": 1, "height": 1},
    {"label": "cat", "left": 1e308, "top": 0, "width": 1e308, "height": 1},
])
def test_bounding_box_numbers_out_of_any_range(box):
    fields = {"species": json.dumps({"image_size": {"width": 10, "height": 10}, "boxes": [box]})}
    with pytest.raises(AnswerError):
        get_task_type("bounding-box").parse(fields, SPECS["bounding-box"])


def test_named_entity_length_of_five_thousand_digits():
    fields = {"species": json.dumps({"entities": [{"label": "cat", "startOffset": 0, "endOffset": 1}]}),
              "species-length": HUGE_INT}
    with pytest.raises(AnswerError, match="not a number"):
        get_task_type("named-entity-recognition").parse(fields, SPECS["named-entity-recognition"])


def _png_header_only(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\x00" * 16)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("side", [9_000, 100_000])  # over MAX_SIDE; 100,000² is a decompression bomb to PIL
def test_segmentation_mask_claiming_gigapixels_is_refused_from_its_header(side):
    mask = "data:image/png;base64," + base64.b64encode(_png_header_only(side, side)).decode()
    fields = {"species": json.dumps({"image_size": {"width": 10, "height": 10}, "mask": mask})}
    started = time.perf_counter()
    with pytest.raises(AnswerError, match="larger than any task image|decompression bomb"):
        get_task_type("semantic-segmentation").parse(fields, SPECS["semantic-segmentation"])
    assert time.perf_counter() - started < 1.0  # nothing was decoded


# ---------------------------------------------------------------- in a harvest pass
HOSTILE_SUBMISSIONS = {
    "AEVILDEEPLIST01": {"taskAnswers": DEEP_LISTS},
    "AEVILDEEPDICT01": {"taskAnswers": DEEP_DICTS},
    "AEVILHUGEINT001": {"taskAnswers": HUGE_INT},
    "AEVILNOTADICT01": {"taskAnswers": "[42]"},
    "AEVILINFINITY01": {"taskAnswers": '{"species": 1e400}'},
}


def test_hostile_answers_are_quarantined_and_honest_ones_stored_and_approved_in_the_same_pass(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=3)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    store = Store(ws.store_path)
    hits = {h["item_id"]: h["hit_id"] for h in store.hits("iris-small")}
    evil = list(HOSTILE_SUBMISSIONS.items())
    # Item 1: two hostile answers beside two honest ones (the HIT takes what the marketplace allows).
    for worker, fields in evil[:2]:
        worker_submit(marketplace.url, hits["iris-001"], worker, fields)
    # Items 2 and 3: honest pairs, so the batch has answers to store, approve and label.
    for item in ("iris-002", "iris-003"):
        worker_submit(marketplace.url, hits[item], "AHONESTWORKER01", {"species": "setosa"})
        worker_submit(marketplace.url, hits[item], "AHONESTWORKER02", {"species": "setosa"})
    # A 10 MB answer cannot come through the marketplace's 8 MB form cap: put it where MTurk's
    # ListAssignmentsForHIT reads it, as if it had arrived some other way.
    mdb = sqlite3.connect(ws.marketplace_db)
    with mdb:
        mdb.execute("update assignments set answer = ? where worker_id = ?",
                    [qfa(("species", "x" * 10_000_000)), "AEVILDEEPDICT01"])
    mdb.close()

    [result] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert result.failure is None
    assert result.new_answers == 6 and result.approved == 6 and result.quarantined == 2
    rows = {r["worker_id"]: r for r in store.db["assignments"].rows}
    assert "nests more than" in rows["AEVILDEEPLIST01"]["quarantine"]
    assert "at most" in rows["AEVILDEEPDICT01"]["quarantine"] or "over" in rows["AEVILDEEPDICT01"]["quarantine"]
    assert len(rows["AEVILDEEPDICT01"]["answer_xml"]) > 10_000_000  # kept raw, never dropped
    assert rows["AEVILDEEPLIST01"]["answer_xml"].count("[") == 100_000
    assert all(r["status"] == "Approved" for r in rows.values())  # quarantined answers are paid too
    labels = store.labels("iris-small")
    assert labels["iris-002"]["status"] == labels["iris-003"]["status"] == "labelled"

    # A second pass reads nothing new and fails on nothing.
    [again] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert again.failure is None and again.new_answers == 0


def test_every_hostile_submission_is_quarantined_through_the_marketplace(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=len(HOSTILE_SUBMISSIONS))
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    store = Store(ws.store_path)
    for hit, (worker, fields) in zip(store.hits("iris-small"), HOSTILE_SUBMISSIONS.items()):
        worker_submit(marketplace.url, hit["hit_id"], worker, fields)
        worker_submit(marketplace.url, hit["hit_id"], "AHONESTWORKER01", {"species": "virginica"})
    [result] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert result.failure is None
    assert result.quarantined == len(HOSTILE_SUBMISSIONS) and result.approved == 2 * len(HOSTILE_SUBMISSIONS)
    reasons = {r["worker_id"]: r["quarantine"] for r in store.db["assignments"].rows}
    assert all(reasons[w] for w in HOSTILE_SUBMISSIONS)
    assert reasons["AHONESTWORKER01"] is None
    assert all(len(reason) <= 500 and "\n" not in reason for reason in reasons.values() if reason)
