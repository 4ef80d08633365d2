"""The demo at a fixed seed prints the same figures every run; its export counts the answers of
every task type and writes the [training] features in their order."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.demo import run_demo

TIMING = ("seconds",)  # wall-clock time: the one figure a seed cannot fix


def figures(summary: dict) -> dict:
    """The summary without timings, its paths relative to the run's own folder (each run gets a new one)."""
    run = summary["workdir"]
    return {k: v.replace(run, "<run>") if isinstance(v, str) else v for k, v in summary.items() if k not in TIMING}


def test_demo_cli_twice_at_seed_0_prints_identical_figures(tmp_path):
    """`annotate demo --example iris --seed 0 --json`, twice: crowd, harvest, split and model alike."""
    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "demo", "--example", "iris",
                                          "--seed", "0", "--workdir", str(tmp_path), "--json"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output.strip().splitlines()[-1]))
    assert figures(outputs[0]) == figures(outputs[1])
    assert outputs[0]["model_accuracy"] is not None and outputs[0]["accuracy"] >= 0.9
    # the export's feature columns come in [training] features order, right after the id
    with open(outputs[0]["csv"], newline="") as handle:
        header = next(csv.reader(handle))
    assert header[:5] == ["id", "sepal_length", "sepal_width", "petal_length", "petal_width"]


def test_demo_twice_structured_example(tmp_path):
    def run(seed):
        summary = run_demo("shapes-multilabel", tmp_path, seed=seed, train=False, timeout=240)
        # source-ref is absolute: the same path under each run's own folder
        return figures(summary), Path(summary["csv"]).read_text().replace(summary["workdir"], "<run>")

    first, first_csv = run(0)
    second, second_csv = run(0)
    assert first == second
    assert second_csv == first_csv  # labels, confidences and answer counts alike
    other, _ = run(1)
    assert other != second  # the seed does matter


@pytest.mark.parametrize("example", ["shapes-multilabel", "shapes-boxes", "shapes-segmentation", "news-entities",
                                     "words-text"])
def test_answers_column_counts_every_task_type(tmp_path, example):
    summary = run_demo(example, tmp_path, seed=0, train=False, timeout=240)
    with open(summary["csv"], newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert rows and all(int(r["answers"]) >= 2 for r in rows), [r["answers"] for r in rows]
    assert sum(int(r["answers"]) for r in rows) <= summary["assignments"]
