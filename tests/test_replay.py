"""`annotate replay`: a real MTurk answer set through the marketplace over HTTP, and the same
figures as the offline replay (annotate.consensus.simulate) answer for answer."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.consensus import get_policy
from annotate.consensus.simulate import replay as offline_replay
from annotate.datasets import load_crowd_dataset, shared_crowd_data
from annotate.replay import run_replay

CROWD_DATA = shared_crowd_data(Path(__file__).resolve().parents[1])
pytestmark = pytest.mark.skipif(not (CROWD_DATA / "temp").is_dir(), reason="../shared/crowd-data is not beside the repository")


def small_dataset(tmp_path, name="temp", items=80) -> Path:
    answers = pd.read_csv(CROWD_DATA / name / "answers.csv", dtype=str)
    truth = pd.read_csv(CROWD_DATA / name / "truth.csv", dtype=str)
    keep = sorted(truth["item"].unique())[:items]
    out = tmp_path / name
    out.mkdir()
    answers[answers["item"].isin(keep)].to_csv(out / "answers.csv", index=False)
    truth[truth["item"].isin(keep)].to_csv(out / "truth.csv", index=False)
    return out


@pytest.mark.parametrize("policy", ["agree", None])
def test_live_replay_equals_the_offline_replay(tmp_path, policy):
    dataset = small_dataset(tmp_path)
    live = run_replay(dataset, policy=policy, seed=3, workdir=tmp_path, block=False)
    data = load_crowd_dataset(dataset)
    offline = offline_replay(get_policy(policy), data.answers, data.truth, seed=3)
    assert live["items"] == offline.items == 80
    assert live["accuracy"] == round(offline.accuracy, 4)
    assert live["answers_per_item"] == round(offline.answers_per_item, 3)
    assert live["unresolved"] == offline.unresolved
    assert live["available_per_item"] == 10.0
    assert live["api_calls"]["CreateHITWithHITType"] == 80
    assert live["n_scored"] == offline.n_scored == 80


def test_live_and_offline_score_only_items_with_truth(tmp_path):
    """issue 16: items without a truth row are neither right nor wrong, in both replays, and both
    say how many items they scored."""
    dataset = small_dataset(tmp_path, items=60)
    truth = pd.read_csv(dataset / "truth.csv", dtype=str)
    truth.iloc[::2].to_csv(dataset / "truth.csv", index=False)  # half the truth removed
    live = run_replay(dataset, policy="agree", seed=2, workdir=tmp_path, block=False)
    data = load_crowd_dataset(dataset)
    offline = offline_replay(get_policy("agree"), data.answers, data.truth, seed=2)
    assert live["items"] == offline.items == 60
    assert live["n_scored"] == offline.n_scored == 30
    assert live["accuracy"] == round(offline.accuracy, 4) > 0.85


def test_live_replay_with_known_answers_equals_the_offline_replay(tmp_path):
    """issue 16: `annotate replay --known-share` seeds the batch with known-answer items as the bench
    does (simulate.known_sample): bought for like any item (same answers as offline, item for item),
    not scored, and the batch's calibrated estimate is reported beside the measured accuracy."""
    from annotate.consensus.simulate import known_sample

    dataset = small_dataset(tmp_path, items=100)
    data = load_crowd_dataset(dataset)
    known = known_sample(data.answers, data.truth, 0.1, 4)
    assert len(known) == 30  # a tenth is 10: at least 30
    live = run_replay(dataset, seed=4, workdir=tmp_path, block=False, known_share=0.1)
    offline = offline_replay(get_policy(None), data.answers, data.truth, seed=4, known=known)
    assert live["known_items"] == 30
    assert live["n_scored"] == offline.n_scored == 70
    assert live["accuracy"] == round(offline.accuracy, 4)
    assert live["answers_per_item"] == round(offline.answers_per_item, 3)
    est = live["accuracy_estimate"]
    assert est["calibrated_on"]["known_items"] == 30 and est["items"] == 70 - live["unresolved"]
    low, high = est["interval"]
    assert low <= est["estimated_accuracy"] <= high
    # a bad share is refused before the last run's folder is cleared: its database is still there
    kept = sorted((tmp_path / "annotate-replay").rglob("*.db"))
    assert kept
    result = CliRunner().invoke(cli, ["replay", str(dataset), "--known-share", "1.5", "--workdir", str(tmp_path)])
    assert result.exit_code == 2 and "--known-share" in result.output
    assert sorted((tmp_path / "annotate-replay").rglob("*.db")) == kept


def test_replay_cli_json_and_blocking(tmp_path):
    dataset = small_dataset(tmp_path, items=120)
    result = CliRunner().invoke(cli, ["replay", str(dataset), "--seed", "1", "--workdir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    for key in ("accuracy", "answers_per_item", "available_per_item", "cost_usd", "items", "unresolved"):
        assert key in summary
    assert summary["items"] == 120 and summary["accuracy"] > 0.85
    assert summary["fraction_bought"] <= 0.4


def test_bad_dataset_exits_2(tmp_path):
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "answers.csv").write_text("item,worker\n1,2\n")
    (bad / "truth.csv").write_text("item,label\n1,0\n")
    result = CliRunner().invoke(cli, ["replay", str(bad), "--workdir", str(tmp_path)])
    assert result.exit_code == 2
    assert "answers.csv" in result.output


def test_dataset_named_with_underscore_replays(tmp_path):
    """issue 11, B14: `annotate replay ../shared/crowd-data/sp_amt` exited 2 because the label
    attribute came from the name, and '_' is no letter, digit or '-' (Ground Truth's rule)."""
    dataset = small_dataset(tmp_path, name="sp_amt", items=20)
    result = CliRunner().invoke(cli, ["replay", str(dataset), "--seed", "1", "--workdir", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["dataset"] == "sp_amt" and summary["items"] == 20


def test_bench_replay_row_times_both_replays(tmp_path):
    """scripts/bench_replay in a quick form: one small dataset through both replays, side by side."""
    from importlib.machinery import SourceFileLoader
    from importlib.util import module_from_spec, spec_from_loader

    script = Path(__file__).resolve().parents[1] / "scripts" / "bench_replay"
    loader = SourceFileLoader("bench_replay", str(script))
    bench = module_from_spec(spec_from_loader("bench_replay", loader))
    loader.exec_module(bench)
    row = bench.replay_time_row(small_dataset(tmp_path, items=20), seed=1, policy="agree", workdir=tmp_path,
                                own_process=True)
    assert row["items"] == 20 and row["offline_n_scored"] == row["marketplace_n_scored"] == 20
    assert row["marketplace_seconds"] > 0 and row["offline_seconds"] > 0
    assert row["ratio"] > 0
    # CPU seconds count the marketplace's own process too (it has exited by then)
    assert row["marketplace_cpu_seconds"] > 0 and row["offline_cpu_seconds"] > 0 and row["cpu_ratio"] > 0
    assert row["api_calls"] >= 20 + row["answers"]  # a create per HIT, at least an approval per answer
    assert "| `" + row["dataset"] + "` |" in bench.markdown([row])
    # --own-process: the same replay with the marketplace in a child process, more columns
    assert row["own_process_seconds"] > 0 and row["own_process_accuracy"] == row["marketplace_accuracy"]
    assert row["own_process_cpu_seconds"] > 0
    assert "own process ratio" in bench.markdown([row])
