"""The bad-input catalogue: every malformed input a requester can hand annotate gets a clear
message naming the file, line or field, exit code 2, and leaves the store exactly as it was."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.store import Store
from conftest import all_hits, make_batch, mturk_client

HEADER = "id,sepal_length,sepal_width,petal_length,petal_width,species\n"


def store_digest(path: Path) -> str:
    """Every row of every table: equal digests mean an untouched store."""
    store = Store(path)
    rows = []
    for table in sorted(store.db.table_names()):
        rows.append((table, sorted(json.dumps(r, sort_keys=True, default=str) for r in store.db[table].rows)))
    store.close()
    return hashlib.sha256(json.dumps(rows).encode()).hexdigest()


def items(text):
    return lambda d: (d / "items.csv").write_text(text)


def items_bytes(data):
    return lambda d: (d / "items.csv").write_bytes(data)


def toml(old, new):
    def edit(d):
        text = (d / "batch.toml").read_text()
        assert old in text, old
        (d / "batch.toml").write_text(text.replace(old, new))
    return edit


def template(body, name="t.html.j2"):
    def edit(d):
        if isinstance(body, bytes):
            (d / name).write_bytes(body)
        else:
            (d / name).write_text(body)
        toml('template = "iris.html.j2"', f'template = "{name}"')(d)
    return edit


def jsonl(text, name="items.jsonl"):
    def edit(d):
        if isinstance(text, bytes):
            (d / name).write_bytes(text)
        else:
            (d / name).write_text(text)
        toml('items = "items.csv"', f'items = "{name}"')(d)
    return edit


def both(*edits):
    def edit(d):
        for e in edits:
            e(d)
    return edit


ROW = '"sepal_length": 1, "sepal_width": 2, "petal_length": 3, "petal_width": 4, "species": "setosa"'


# (id, how to break a good batch, words the message must contain)
POST_CASES = [
    ("csv-empty-file", items(""), ["items.csv", "no header"]),
    ("csv-header-only", items(HEADER), ["items.csv", "no items"]),
    ("csv-duplicate-id", items(HEADER + "a,1,2,3,4,setosa\na,1,2,3,4,setosa\n"), ["items.csv:3", "duplicate item id"]),
    ("csv-empty-id", items(HEADER + ",1,2,3,4,setosa\n"), ["items.csv:2", "empty item id"]),
    ("csv-missing-gold-column", items("id,sepal_length,sepal_width,petal_length,petal_width\na,1,2,3,4\n"),
     ["items.csv:2", "gold column 'species'"]),
    ("csv-missing-template-column", items("id,sepal_length,sepal_width,petal_length,species\na,1,2,3,setosa\n"),
     ["iris.html.j2", "petal_width", "items.csv:2"]),
    ("csv-extra-field", items(HEADER + "a,1,2,3,4,setosa,x\n"), ["items.csv:2", "more fields"]),
    ("csv-short-row", items(HEADER + "a,1,2\n"), ["items.csv:2", "fewer fields"]),
    ("csv-duplicate-column", items("id,id,species\n"), ["items.csv:1", "duplicate columns"]),
    ("csv-bad-encoding", items_bytes(HEADER.encode() + b"a,1,2,3,4,set\xe9osa\n"), ["items.csv:2", "UTF-8"]),
    ("csv-gold-outside-labels", items(HEADER + "a,1,2,3,4,daisy\n"), ["items.csv:2", "not one of the task's labels"]),
    ("csv-slash-in-id", items(HEADER + "a/b,1,2,3,4,setosa\n"), ["items.csv:2", "'/'"]),
    ("jsonl-not-json", jsonl('{"id": "a"\n'), ["items.jsonl:1", "not JSON"]),
    ("jsonl-not-object", jsonl('[1, 2]\n'), ["items.jsonl:1", "JSON object"]),
    ("jsonl-empty", jsonl("\n\n"), ["items.jsonl", "no items"]),
    ("manifest-no-source", jsonl('{"source-ref": "s3://b/a.png", "id": "a"}\n{"id": "b"}\n', "items.manifest"),
     ["items.manifest:2", "source-ref"]),
    ("items-unknown-format", toml('items = "items.csv"', 'items = "items.xlsx"'), ["items.xlsx", "not found"]),
    ("toml-syntax", toml('reward = "0.05"', 'reward = '), ["batch.toml:", "TOML syntax error"]),
    ("toml-missing-title", toml('title = "Identify the iris species from a drawing"\n', ""), ["hit.title", "missing"]),
    ("toml-missing-reward", toml('reward = "0.05"\n', ""), ["hit.reward", "missing"]),
    ("toml-negative-reward", toml('reward = "0.05"', 'reward = "-0.05"'), ["hit.reward", "zero or more"]),
    ("toml-float-reward", toml('reward = "0.05"', 'reward = 0.05'), ["hit.reward", "string"]),
    ("toml-fraction-of-cent", toml('reward = "0.05"', 'reward = "0.051"'), ["hit.reward", "whole cents"]),
    ("toml-lifetime-too-short", toml('lifetime = "3d"', 'lifetime = "5s"'), ["hit.lifetime", "30..31536000"]),
    ("toml-lifetime-too-long", toml('lifetime = "3d"', 'lifetime = "400d"'), ["hit.lifetime"]),
    ("toml-duration-garbage", toml('assignment_duration = "10m"', 'assignment_duration = "soon"'),
     ["hit.assignment_duration"]),
    ("toml-approval-delay-too-long", toml('auto_approval_delay = "1d"', 'auto_approval_delay = "31d"'),
     ["hit.auto_approval_delay"]),
    ("toml-unknown-setting", toml("[hit]\n", "[hit]\ncolour = \"red\"\n"), ["hit.colour", "unknown setting"]),
    ("toml-labels-empty", toml('labels = ["setosa", "versicolor", "virginica"]', "labels = []"), ["task.labels"]),
    ("toml-labels-duplicate", toml('labels = ["setosa", "versicolor", "virginica"]', 'labels = ["setosa", "setosa"]'),
     ["task.labels", "duplicate"]),
    ("toml-unknown-task-type", toml('task_type = "image-classification"', 'task_type = "video-tracking"'),
     ["batch.task_type", "unknown task type"]),
    ("toml-bad-name", toml('name = "iris-small"', 'name = "my batch"'), ["batch.name"]),
    ("toml-budget-negative", toml('max_usd = "50.00"', 'max_usd = "-5"'), ["budget.max_usd"]),
    ("toml-budget-too-small", toml('max_usd = "50.00"', 'max_usd = "0.10"'), ["budget", "passes the batch budget"]),
    ("toml-unknown-policy", toml('policy = "agree"', 'policy = "telepathy"'), ["consensus", "telepathy"]),
    ("toml-bad-consensus-setting", toml("agree = 2", "agree = 0"), ["consensus", "agree"]),
    ("toml-unknown-consensus-setting", toml("agree = 2", "agree = 2\nquorum = 3"), ["consensus", "quorum"]),
    # issue 16: the two ways to say what is wanted, named in full when wrong
    ("toml-target-accuracy-out-of-range", toml('policy = "agree"\nagree = 2', 'policy = "adaptive"\ntarget_accuracy = 1.5'),
     ["consensus.target_accuracy", "[0.5, 1)"]),
    ("toml-answers-per-item-zero", toml('policy = "agree"\nagree = 2', 'policy = "adaptive"\nanswers_per_item = 0'),
     ["consensus.answers_per_item", ">= 1"]),
    ("toml-answers-per-item-budget-too-small",
     toml('policy = "agree"\nagree = 2\nmax_assignments = 9\n\n[budget]\nmax_usd = "50.00"',
          'policy = "adaptive"\nanswers_per_item = "budget"\n\n[budget]\nmax_usd = "0.10"'),
     ["consensus.answers_per_item", "fewer than one per item"]),
    ("toml-title-too-long", toml('title = "Identify the iris species from a drawing"', 'title = "' + "x" * 129 + '"'),
     ["hit.title", "128"]),
    ("template-missing", toml('template = "iris.html.j2"', 'template = "nope.html.j2"'), ["batch.template", "not found"]),
    ("template-syntax", template("<p>\n{% for x in %}\n"), ["t.html.j2:2", "syntax"]),
    ("template-undefined", template("{{ item.colour }}"), ["t.html.j2", "colour", "items.csv:2"]),
    ("template-oversize", template("{{ 'x' * 70000 }}"), ["65,535"]),
    # issue 11 (B3, B4, B8, B11): every MTurk constraint checked for the whole batch before the first paid call
    ("toml-reward-exponent", toml('reward = "0.05"', 'reward = "1e30"'), ["hit.reward", "0.05"]),
    ("toml-reward-too-many-digits", toml('reward = "0.05"', 'reward = "' + "9" * 30 + '"'), ["hit.reward", "digits"]),
    ("toml-reward-table", toml('reward = "0.05"', 'reward = {usd = "0.05"}'), ["hit.reward", "not an amount"]),
    ("toml-task-type-list", toml('task_type = "image-classification"', 'task_type = ["image-classification"]'),
     ["batch.task_type"]),
    ("toml-name-integer", toml('name = "iris-small"', "name = 5"), ["batch.name"]),
    ("toml-description-too-long", toml('description = "Look', 'description = "' + "x" * 2001 + 'Look'),
     ["hit.description", "2000"]),
    ("toml-keywords-too-long", toml('keywords = "iris', 'keywords = "' + "k," * 500 + 'iris'), ["hit.keywords", "1000"]),
    ("toml-title-control-char", toml('title = "Identify', 'title = "\\u0001Identify'), ["hit.title", "U+0001"]),
    ("toml-label-control-char", toml('"setosa", "versicolor"', '"setosa", "versi\\u0000color"'), ["task.labels", "U+0000"]),
    ("toml-field-assignmentId", toml('field = "species"', 'field = "assignmentId"'), ["task.field", "assignmentId"]),
    ("toml-field-hitId", toml('field = "species"', 'field = "hitId"'), ["task.field", "hitId"]),
    ("toml-field-workerId", toml('field = "species"', 'field = "workerId"'), ["task.field", "workerId"]),
    ("toml-field-turkSubmitTo", toml('field = "species"', 'field = "turkSubmitTo"'), ["task.field", "turkSubmitTo"]),
    ("toml-max-assignments-past-cliff", toml("max_assignments = 9", "max_assignments = 20"),
     ["consensus.max_assignments", "fewer than 10"]),
    ("toml-max-assignments-absurd", toml("max_assignments = 9", "max_assignments = 2000000\ninitial_assignments = 10"),
     ["consensus.max_assignments", "1,000,000"]),
    ("toml-qualification-bad-comparator",
     toml("[hit]\n", '[hit]\nqualifications = [{QualificationTypeId = "000000000000000000L0", Comparator = "Bigger"}]\n'),
     ["hit.qualifications", "Comparator"]),
    ("toml-qualification-wrong-type",
     toml("[hit]\n", '[hit]\nqualifications = [{QualificationTypeId = "000000000000000000L0", Comparator = "In", '
                     'IntegerValues = ["x"]}]\n'), ["hit.qualifications", "IntegerValues"]),
    ("toml-eleven-qualifications",
     toml("[hit]\n", "[hit]\nqualifications = [" + ", ".join(['{QualificationTypeId = "000000000000000000L0", '
                                                               'Comparator = "Exists"}'] * 11) + "]\n"),
     ["hit.qualifications", "at most 10"]),
    ("toml-label-attribute-trailing-dash", toml('label_attribute = "species"', 'label_attribute = "species-"'),
     ["batch.label_attribute"]),
    ("toml-label-attribute-reserved", toml('label_attribute = "species"', 'label_attribute = "species-metadata"'),
     ["batch.label_attribute", "-metadata"]),
    ("csv-control-char", items(HEADER + "a,1,2,3,4,setosa\nb,1\x01,2,3,4,setosa\n"), ["items.csv:3", "sepal_length", "U+0001"]),
    ("csv-nul", items(HEADER + "a,1,2,3,4,setosa\nb,1,2\x00,3,4,setosa\n"), ["items.csv:3", "U+0000"]),
    ("csv-annotation-too-long", both(toml('name = "iris-small"', 'name = "' + "n" * 60 + '"'),
                                     items(HEADER + "a" * 200 + ",1,2,3,4,setosa\n")),
     ["items.csv:2", "RequesterAnnotation", "255"]),
    ("jsonl-lone-surrogate", jsonl('{"id": "a", ' + ROW + ', "note": "\\ud800"}\n'), ["items.jsonl:1", "note", "U+D800"]),
    ("jsonl-control-char-in-key", jsonl('{"id": "a", ' + ROW + ', "n\\u0007te": "x"}\n'), ["items.jsonl:1", "U+0007"]),
    ("jsonl-not-utf8", jsonl(b'{"id": "a", "x": "\xff"}\n'), ["items.jsonl:1", "UTF-8"]),
    ("jsonl-deeply-nested", jsonl('{"id": "a", ' + ROW + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n"),
     ["items.jsonl:1", "nested"]),
    ("jsonl-nested-past-limit", jsonl('{"id": "a", ' + ROW + ', "x": ' + "[" * 50 + "]" * 50 + "}\n"),
     ["items.jsonl:1", "nested more than"]),
    ("template-missing-include", template('<p>\n{% include "nope.html.j2" %}'), ["t.html.j2:2", "nope.html.j2", "not found"]),
    ("template-zero-division", template("<p>\n<p>{{ 1//0 }}</p>\n"), ["t.html.j2:2", "ZeroDivisionError", "items.csv:2"]),
    ("template-bad-filter-argument", template("{{ item.id | truncate('x') }}"), ["t.html.j2:1", "items.csv:2"]),
    ("template-not-utf8", template(b"<p>caf\xe9</p>\n"), ["t.html.j2:1", "UTF-8"]),
    ("template-included-not-utf8", both(template('{% include "inc.html.j2" %}'),
                                        lambda d: (d / "inc.html.j2").write_bytes(b"ok\n\xff\n")),
     ["inc.html.j2:2", "UTF-8"]),
    ("template-control-char", template("<p>\x01</p>"), ["t.html.j2", "well-formed", "U+0001"]),
]


@pytest.fixture
def home(tmp_path, marketplace, ws):
    """A project that already holds a posted batch, so 'untouched' means something."""
    good = make_batch(tmp_path / "good", name="existing", items=3)
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(good), "--endpoint-url", marketplace.url])
    assert result.exit_code == 0, result.output
    return ws


@pytest.mark.parametrize("case,breaker,expected", POST_CASES, ids=[c[0] for c in POST_CASES])
def test_post_bad_input(home, marketplace, tmp_path, case, breaker, expected):
    batch = make_batch(tmp_path / "bad", items=3)
    breaker(batch)
    before = store_digest(home.store_path)
    client = mturk_client(marketplace.url)
    balance = client.get_account_balance()["AvailableBalance"]
    result = CliRunner().invoke(cli, ["--home", str(home.home), "post", str(batch), "--endpoint-url", marketplace.url])
    assert result.exit_code == 2, result.output
    for words in expected:
        assert words in result.output, (words, result.output)
    assert "Traceback" not in result.output
    assert store_digest(home.store_path) == before
    # refused before the first paid call: no HIT made, nothing spent
    assert len(all_hits(client)) == 3 and client.get_account_balance()["AvailableBalance"] == balance


FLAG_CASES = [
    ("post-not-a-dir", ["post", "no/such/dir"], ["no/such/dir"]),
    ("post-unknown-target", ["post", "x", "--target", "mars"], ["mars"]),
    ("export-unknown-batch", ["export", "nope"], ["no batch named 'nope'"]),
    ("export-bad-split", ["export", "existing", "--split", "1.5"], ["--split"]),
    ("export-bad-format", ["export", "existing", "--format", "xml"], ["xml"]),
    ("status-unknown-batch", ["status", "nope"], ["no batch named 'nope'"]),
    ("harvest-unknown-batch", ["harvest", "nope"], ["no batch named 'nope'"]),
    ("harvest-wrong-target", ["harvest", "existing", "--target", "sandbox"], ["posted to local"]),
    ("demo-unknown-example", ["demo", "--example", "nope"], ["unknown example"]),
]


@pytest.mark.parametrize("case,args,expected", FLAG_CASES, ids=[c[0] for c in FLAG_CASES])
def test_bad_flags(home, case, args, expected):
    before = store_digest(home.store_path)
    result = CliRunner().invoke(cli, ["--home", str(home.home), *args])
    assert result.exit_code == 2, result.output
    for words in expected:
        assert words in result.output, (words, result.output)
    assert store_digest(home.store_path) == before


def test_catalogue_is_large_enough():
    assert len(POST_CASES) + len(FLAG_CASES) >= 80
