import numpy as np
import pandas as pd
import pytest

from annotate.consensus import AGGREGATORS, DawidSkene, MajorityVote, OneCoinDawidSkene, Wawa, WeightedMajorityVote, get_aggregator
from annotate.consensus.synthetic import synthetic_crowd


def table(rows):
    return pd.DataFrame(rows, columns=["item", "worker", "label"])


SMALL = table([
    ("a", "w1", "x"), ("a", "w2", "x"), ("a", "w3", "y"),
    ("b", "w1", "y"), ("b", "w2", "y"), ("b", "w3", "y"),
    ("c", "w1", "x"), ("c", "w3", "y"),  # a tie
])


def test_majority_vote_counts_and_tie_rule():
    mv = MajorityVote().fit(SMALL)
    assert mv.labels_.to_dict() == {"a": "x", "b": "y", "c": "x"}  # tie -> label sorting first
    assert mv.probas_.loc["a", "x"] == pytest.approx(2 / 3)
    assert mv.confidence_["c"] == pytest.approx(0.5)
    # w3 gave y on a (posterior 1/3), y on b (1), y on c (0.5)
    assert mv.skills_["w3"] == pytest.approx((1 / 3 + 1 + 0.5) / 3)


def test_results_do_not_depend_on_row_order():
    shuffled = SMALL.sample(frac=1.0, random_state=3)
    for name in AGGREGATORS:
        a = get_aggregator(name).fit_predict_proba(SMALL)
        b = get_aggregator(name).fit_predict_proba(shuffled)
        pd.testing.assert_frame_equal(a, b)


def test_weighted_majority_uses_given_skills():
    t = table([("a", "good", "x"), ("a", "bad1", "y"), ("a", "bad2", "y")])
    skills = pd.Series({"good": 0.99, "bad1": 0.55, "bad2": 0.55})
    assert WeightedMajorityVote(skills=skills).fit_predict(t)["a"] == "x"
    assert MajorityVote().fit_predict(t)["a"] == "y"


def test_wawa_weights_by_agreement_with_majority():
    w = Wawa().fit(SMALL)
    # w2 agrees with MV on a and b; w3 only on b
    assert w.skills_["w2"] == pytest.approx(1.0)
    assert w.skills_["w3"] == pytest.approx(1 / 3)
    assert w.labels_["c"] == "x"  # w1 (agreement 1) outweighs w3


def test_empty_answers_give_empty_results():
    ds = DawidSkene().fit(table([]))
    assert ds.labels_.empty and ds.probas_.empty and ds.skills_.empty


def test_missing_column_is_an_error():
    with pytest.raises(ValueError, match="column"):
        MajorityVote().fit(pd.DataFrame({"item": ["a"], "label": ["x"]}))


def test_dawid_skene_recovers_planted_confusion_matrices():
    answers, truth, conf = synthetic_crowd(n_items=3000, per_item=6, n_workers=40, n_labels=3, seed=7)
    ds = DawidSkene().fit(answers)
    assert (ds.labels_.reindex(truth.index) == truth).mean() > 0.97
    # errors_[worker, given, true] ; workers encoded in sorted id order = synthetic order w0000..
    err = np.abs(ds.errors_ - conf)
    assert err.mean() < 0.03 and err.max() < 0.15, (err.mean(), err.max())
    assert (ds.labels_.reindex(truth.index) == truth).mean() > (MajorityVote().fit_predict(answers).reindex(truth.index) == truth).mean()


def test_dawid_skene_beats_majority_against_a_biased_crowd():
    # a lazy worker always answers "x"; three careful ones are right 75% of the time
    rows, truth = [], {}
    rng = np.random.default_rng(0)
    for i in range(200):
        t = "x" if rng.random() < 0.5 else "y"
        truth[f"i{i}"] = t
        rows += [(f"i{i}", "lazy1", "x")]
        for w in ("c1", "c2", "c3"):
            rows.append((f"i{i}", w, t if rng.random() < 0.75 else ("x" if t == "y" else "y")))
    t = table(rows)
    ds = DawidSkene().fit(t)
    acc = np.mean([ds.labels_[i] == truth[i] for i in truth])
    mv = MajorityVote().fit_predict(t)
    mv_acc = np.mean([mv[i] == truth[i] for i in truth])
    assert acc > mv_acc + 0.05, (acc, mv_acc)
    # the lazy workers' confusion: they say "x" whatever the truth
    lazy = list(ds.skills_.index).index("lazy1")
    assert ds.errors_[lazy, 0, :].min() > 0.99  # given "x" (code 0) for both true classes


def test_one_coin_recovers_accuracies():
    answers, truth, conf = synthetic_crowd(n_items=3000, per_item=5, n_workers=30, n_labels=2, seed=2)
    oc = OneCoinDawidSkene().fit(answers)
    acc = (oc.labels_.reindex(truth.index) == truth).mean()
    assert acc > 0.9 and acc >= (MajorityVote().fit_predict(answers).reindex(truth.index) == truth).mean()
    planted = conf[:, [0, 1], [0, 1]].mean(axis=1)
    assert np.abs(oc.skills_raw_ - planted).max() < 0.1


def test_prior_skills_warm_start_dawid_skene():
    # one item, three workers: history says w_good is reliable
    t = table([("a", "w_good", "x"), ("a", "w_b1", "y"), ("a", "w_b2", "y")])
    prior = pd.Series({"w_good": 0.99, "w_b1": 0.5, "w_b2": 0.5})
    assert DawidSkene(prior_weight=20).fit_predict(t, skills=prior)["a"] == "x"
    assert DawidSkene().fit_predict(t)["a"] == "y"


def test_labels_argument_fixes_label_set():
    p = MajorityVote().fit_predict_proba(SMALL, labels=["x", "y", "z"])
    assert list(p.columns) == ["x", "y", "z"] and (p["z"] == 0).all()
    with pytest.raises(ValueError, match="outside"):
        MajorityVote().fit(SMALL, labels=["x"])


def test_get_aggregator_unknown_name():
    with pytest.raises(ValueError, match="glad"):
        get_aggregator("glad")


def test_dawid_skene_column_without_evidence_is_uniform_over_all_labels():
    """A worker who never saw an item of class c: P(given | c) is spread over all K labels, not only
    over the labels this worker happened to give (crowd-kit's convention; see dawid_skene.py)."""
    import numpy as np
    import pandas as pd

    from annotate.consensus import DawidSkene

    rows = [(f"i{i}", w, "a") for i in range(6) for w in ("w1", "w2", "w3")]
    rows += [(f"j{i}", w, "b") for i in range(6) for w in ("w2", "w3")]
    rows += [(f"k{i}", w, "c") for i in range(6) for w in ("w2", "w3")]
    m = DawidSkene().fit(pd.DataFrame(rows, columns=["item", "worker", "label"]))
    w1 = list(m.skills_.index).index("w1")
    errors = m.errors_[w1]  # [given, true]
    assert errors[0, 0] == pytest.approx(1.0)  # w1 always right on class a
    assert np.allclose(errors[:, 1], 1 / 3) and np.allclose(errors[:, 2], 1 / 3)
