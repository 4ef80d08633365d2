"""Known answers anchor the workers (issue 16): Dawid–Skene learns each worker's confusions against
the known answer where there is one, while a known item's own posterior stays the crowd's."""

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from annotate.consensus.calibration import calibrated, calibrated_probas
from annotate.consensus.dawid_skene import DawidSkene
from annotate.consensus.simulate import known_sample, shuffled_answers
from annotate.consensus.synthetic import hard_crowd
from annotate.datasets import load_crowd_dataset

CROWD_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "crowd-data"
needs_data = pytest.mark.skipif(not (CROWD_DATA / "bluebirds").is_dir(), reason="shared/crowd-data not beside the project")


def _bluebirds(k: int, seed: int):
    ds = load_crowd_dataset(CROWD_DATA / "bluebirds")
    answers = shuffled_answers(ds.answers, seed)
    answers = answers[answers["pos"] < k][["item", "worker", "label"]]
    known = known_sample(ds.answers, ds.truth, 0.10, seed)
    truth = ds.truth.astype(str).set_index("item")["label"]
    return answers, known, truth


def _accuracy(labels: pd.Series, truth: pd.Series, leave_out) -> float:
    scored = [i for i in labels.index if i in truth.index and i not in leave_out]
    return float(np.mean([str(labels[i]) == truth[i] for i in scored]))


@needs_data
def test_known_answers_show_which_workers_agree_on_wrong_labels():
    """bluebirds (biased workers agreeing on wrong labels), 9 answers per item, a tenth known:
    anchored, the smoothed fit labels the *other* items better (measured 0.838 -> 0.859)."""
    plain, anchored = [], []
    for seed in range(3):
        answers, known, truth = _bluebirds(9, seed)
        fit = dict(smoothing=2.0, default_skill=0.7)
        plain.append(_accuracy(DawidSkene(**fit).fit(answers).labels_, truth, known))
        anchored.append(_accuracy(DawidSkene(**fit).fit(answers, known=known).labels_, truth, known))
    assert np.mean(anchored) >= np.mean(plain) + 0.01


@needs_data
def test_a_known_items_label_and_probability_never_see_its_own_known_answer():
    """A known item is labelled by the fit that did not know its fold's answers: telling the fit a
    *wrong* known answer for it changes neither its posterior, its label nor its calibrated
    probability, while the known answers still reach the workers."""
    answers, known, truth = _bluebirds(3, 0)
    fit = dict(smoothing=2.0, default_skill=0.7)
    labels = sorted(answers["label"].unique())
    right = DawidSkene(**fit).fit(answers, known=known)
    for item in sorted(known)[:5]:
        wrong = dict(known, **{item: next(l for l in labels if l != known[item])})
        flipped = DawidSkene(**fit).fit(answers, known=wrong)
        assert np.allclose(right.probas_.loc[item], flipped.probas_.loc[item])
        assert right.labels_[item] == flipped.labels_[item]
        assert np.allclose(calibrated_probas(answers, right).loc[item], calibrated_probas(answers, flipped).loc[item])
    plain = DawidSkene(**fit).fit(answers)
    assert np.abs(plain.errors_ - right.errors_).max() > 0.05


def test_known_items_gain_from_the_anchoring_no_more_than_the_others():
    """Binary crowd with prolific spammers, 3 answers per item, 6 seeds: anchored, the labels of the
    known items themselves must not improve more than the others' do, or the calibration on them
    flatters the batch. With each item's own counts merely taken back out they gained 5 points
    against the others' 0.4 (near-ties decided by the workers' standing, which its known answer
    had moved)."""
    answers, truth = hard_crowd(n_items=600, n_labels=2, per_item=9, spammers=4, spam_share=0.45, skew=0.3)
    truth = truth.rename_axis("item").reset_index()
    t = dict(zip(truth["item"], truth["label"]))
    gain_known, gain_other = [], []
    for seed in range(6):
        known = known_sample(answers, truth, 0.10, seed)
        a = shuffled_answers(answers, seed)
        a = a[a["pos"] < 3][["item", "worker", "label"]]
        plain = DawidSkene(smoothing=2.0, default_skill=0.7).fit(a).labels_
        anchored = DawidSkene(smoothing=2.0, default_skill=0.7).fit(a, known=known).labels_
        is_known = plain.index.isin(list(known))
        right_p = plain.astype(str).to_numpy() == plain.index.map(t).astype(str)
        right_a = anchored.astype(str).to_numpy() == plain.index.map(t).astype(str)
        gain_known.append(right_a[is_known].mean() - right_p[is_known].mean())
        gain_other.append(right_a[~is_known].mean() - right_p[~is_known].mean())
    assert np.mean(gain_known) <= np.mean(gain_other) + 0.02


def test_known_answers_outside_the_batch_are_ignored():
    answers = pd.DataFrame({"item": ["a", "a", "b", "b"], "worker": ["w1", "w2", "w1", "w2"], "label": ["x", "x", "y", "y"]})
    plain = DawidSkene(smoothing=2.0).fit(answers)
    odd = DawidSkene(smoothing=2.0).fit(answers, known={"zz": "x", "a": "not-a-label"})
    pd.testing.assert_frame_equal(plain.probas_, odd.probas_)
    assert np.allclose(plain.errors_, odd.errors_)


def test_a_single_known_item_is_labelled_by_the_crowd_alone():
    """With one known item its fold holds everything known: it is labelled by the unanchored fit,
    never by its own known answer."""
    answers = pd.DataFrame({"item": ["a", "a", "a", "b", "b", "b"], "worker": ["w1", "w2", "w3"] * 2,
                            "label": ["x", "x", "y", "y", "y", "x"]})
    plain = DawidSkene(smoothing=2.0).fit(answers)
    told = DawidSkene(smoothing=2.0).fit(answers, known={"a": "y"})
    assert told.labels_["a"] == plain.labels_["a"] == "x"
    assert np.allclose(told.probas_.loc["a"], plain.probas_.loc["a"])
