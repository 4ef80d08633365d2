"""scripts/bench_consensus: the markdown table (--markdown) and the target verdicts."""

from importlib.machinery import SourceFileLoader
from importlib.util import module_from_spec, spec_from_loader
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "bench_consensus"


def load_bench():
    loader = SourceFileLoader("bench_consensus", str(SCRIPT))
    module = module_from_spec(spec_from_loader("bench_consensus", loader))
    loader.exec_module(module)
    return module


def row(config, accuracy, pct=40.0):
    return {"dataset": "temp", "config": config, "accuracy": accuracy, "accuracy_sd": 0.001,
            "answers_per_item": pct / 10, "pct_bought": pct, "cost": "55.44"}


def test_markdown_table_and_verdicts():
    bench = load_bench()
    rows = [row("agree2 (tutorial)", 0.88, 24.0), row(f"default ({bench.DEFAULT_POLICY})", 0.9364),
            row("DS all answers", 0.9416, 100.0)]
    targets = bench.verdicts(rows)
    assert targets["temp"]["ok"] and targets["temp"]["ds_all_minus_0.01"] == 0.9316
    md = bench.markdown_table(rows, targets).splitlines()
    assert md[0].startswith("| dataset | config | accuracy")
    assert md[1].startswith("|---|---|---:")
    assert "| `temp` | default (adaptive) | 0.9364 | 0.0010 | 4.00 | 40.0% | 55.44 | +0.0048 |" in md
    assert any(line.startswith("| `temp` | 0.9364 | 0.9316 | 0.8800 | 40.0% | yes |") for line in md)


def test_bench_cli_accepts_markdown_flag(capsys):
    bench = load_bench()
    try:
        bench.main(["--markdown", "--datasets", ""])
    except SystemExit as exc:  # pragma: no cover - argparse error would fail the test below
        raise AssertionError(exc)
    out = capsys.readouterr().out
    assert out.startswith("| dataset | config")


def test_accuracy_scores_only_items_with_truth():
    """issue 16: half the truth removed must not halve the accuracy."""
    import pandas as pd

    bench = load_bench()
    labels = pd.Series({"a": "1", "b": "0", "c": "1", "d": "1"})
    truth = pd.DataFrame({"item": ["a", "c", "zz"], "label": ["1", "0", "1"]})  # b, d: no truth; zz: never labelled
    assert bench.accuracy(labels, truth) == 0.5
    assert bench.score(labels, truth) == (0.5, 2)


def test_markdown_says_how_many_items_were_scored():
    bench = load_bench()
    rows = [{**r, "n_scored": 231} for r in (row("agree2 (tutorial)", 0.88, 24.0), row(f"default ({bench.DEFAULT_POLICY})", 0.9364),
                                            row("DS all answers", 0.9416, 100.0))]
    assert "`temp` 231" in bench.markdown_table(rows, bench.verdicts(rows))


def test_crowdkit_check_counts_differing_labels():
    """issue 16: the DS-vs-crowd-kit check says how many labels differ, not just an agreement share."""
    import pandas as pd

    bench = load_bench()
    ours = pd.Series({"1": "0", "2": "1", "3": "1"})
    theirs = pd.Series({1: 0, 2: 0, 3: 1, 4: 1})  # crowd-kit keeps the input's dtypes; item 4 only theirs
    assert bench.differing_labels(ours, theirs) == 2
    assert bench.differing_labels(ours, ours) == 0
    rows = [{**r, "crowdkit_differing": 3} for r in (row("agree2 (tutorial)", 0.88, 24.0),
                                                    row(f"default ({bench.DEFAULT_POLICY})", 0.9364),
                                                    row("DS all answers", 0.9416, 100.0))]
    assert "differing from crowd-kit's DawidSkene: `temp` 3." in bench.markdown_table(rows, bench.verdicts(rows))
