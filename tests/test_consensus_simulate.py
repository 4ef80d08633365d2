from pathlib import Path

import pandas as pd
import pytest

from annotate.consensus import DawidSkene, get_policy
from annotate.consensus.simulate import replay, shuffled_answers
from annotate.consensus.synthetic import synthetic_crowd
from annotate.datasets import load_crowd_dataset
from annotate.fees import assignment_cost
from decimal import Decimal

from annotate.datasets import shared_crowd_data

DATA = shared_crowd_data(Path(__file__).resolve().parents[1])


@pytest.fixture(scope="module")
def crowd():
    answers, truth, _ = synthetic_crowd(n_items=200, per_item=6, n_workers=25, n_labels=2, seed=5)
    return answers, truth.rename("label").reset_index()


def test_replay_is_deterministic_per_seed(crowd):
    answers, truth = crowd
    p = get_policy("adaptive")
    a = replay(p, answers, truth, seed=3)
    b = replay(p, answers.sample(frac=1.0, random_state=1), truth, seed=3)  # row order must not matter
    pd.testing.assert_frame_equal(a.labels, b.labels)
    assert a.summary() == b.summary()
    c = replay(p, answers, truth, seed=4)
    assert not c.labels["answers"].equals(a.labels["answers"]) or c.accuracy != a.accuracy


def test_shuffle_is_per_item(crowd):
    answers, _ = crowd
    s1 = shuffled_answers(answers, 0)
    s2 = shuffled_answers(answers[answers["item"] != "i000000"], 0)
    # dropping one item leaves every other item's order unchanged
    key = ["item", "pos"]
    merged = s1[s1["item"] != "i000000"].merge(s2, on=key, suffixes=("", "_2"))
    assert (merged["worker"] == merged["worker_2"]).all() and len(merged) == len(s2)


def test_agree_replay_counts_and_cost(crowd):
    answers, truth = crowd
    r = replay(get_policy("agree"), answers, truth, seed=0)
    assert (r.labels["answers"] >= 2).all() and (r.labels["answers"] <= 6).all()
    # every labelled item has two agreeing votes among its answers
    assert r.answers_per_item == pytest.approx(r.labels["answers"].mean())
    assert r.cost == assignment_cost(Decimal("0.05"), 9) * int(r.labels["answers"].sum())
    assert r.fraction_bought == pytest.approx(r.labels["answers"].sum() / len(answers))


def test_running_out_of_answers_starves_an_item():
    # 3 answers, all different: agree keeps extending until the data runs out
    answers = pd.DataFrame({"item": ["i"] * 3, "worker": ["a", "b", "c"], "label": ["x", "y", "z"]})
    r = replay(get_policy("agree"), answers, seed=0)
    assert r.starved == 1 and r.unresolved == 1
    assert r.labels.loc[0, "answers"] == 3 and r.rounds == 3


def test_fixed_policy_buys_exactly_n(crowd):
    answers, truth = crowd
    r = replay(get_policy("fixed", assignments=3, aggregator="dawid_skene"), answers, truth, seed=1)
    assert (r.labels["answers"] == 3).all() and r.rounds == 1


@pytest.mark.skipif(not (DATA / "temp").is_dir(), reason="shared crowd data not present")
def test_default_policy_meets_target_on_temp():
    ds = load_crowd_dataset(DATA / "temp")
    ds_all = (DawidSkene().fit_predict(ds.answers).reindex(ds.truth["item"]).to_numpy() == ds.truth["label"].to_numpy()).mean()
    for seed in (0, 1):
        default = replay(get_policy(None), ds.answers, ds.truth, seed=seed)
        tutorial = replay(get_policy("agree"), ds.answers, ds.truth, seed=seed)
        assert default.accuracy >= ds_all - 0.01, (seed, default.accuracy, ds_all)
        assert default.fraction_bought <= 0.40
        assert default.accuracy >= tutorial.accuracy


@pytest.mark.skipif(not (DATA / "dog").is_dir(), reason="shared crowd data not present")
def test_default_policy_on_dog_holds_its_measured_level():
    # issue #3's open gap: dog's target is DS over all answers - 0.01 = 0.8326, and the default
    # reaches 0.8169 (5 seeds) at the 40% budget. Pin the measured level so it cannot regress.
    ds = load_crowd_dataset(DATA / "dog")
    for seed, floor in ((0, 0.82), (1, 0.82)):
        default = replay(get_policy(None), ds.answers, ds.truth, seed=seed)
        tutorial = replay(get_policy("agree"), ds.answers, ds.truth, seed=seed)
        assert default.accuracy >= floor, (seed, default.accuracy)
        assert default.fraction_bought <= 0.40
        assert default.accuracy >= tutorial.accuracy


def test_items_without_truth_are_not_scored(crowd):
    """issue 16: with half the truth removed the replay reported 0.49 where the scorable items were
    0.99 right. Only items with a truth row are scored, and the count is reported."""
    answers, truth = crowd
    full = replay(get_policy("adaptive"), answers, truth, seed=2)
    half = truth.iloc[::2]
    r = replay(get_policy("adaptive"), answers, half, seed=2)
    scorable = full.labels.set_index("item").loc[half["item"]]
    expected = float((scorable["label"].to_numpy() == half["label"].astype(str).to_numpy()).mean())
    assert r.n_scored == len(half) == 100 and full.n_scored == 200
    assert r.accuracy == pytest.approx(expected)
    assert r.accuracy > 0.8  # the old scoring: about half of the full accuracy
    assert r.summary()["n_scored"] == 100
    # truth rows for items the replay never saw are not scored either
    extra = pd.concat([half, pd.DataFrame({"item": ["no-such-item"], "label": ["0"]})])
    assert replay(get_policy("adaptive"), answers, extra, seed=2).n_scored == 100


def test_no_truth_scores_nothing(crowd):
    answers, _ = crowd
    r = replay(get_policy("agree"), answers, seed=0)
    assert r.n_scored == 0 and r.accuracy != r.accuracy  # NaN: nothing to score
