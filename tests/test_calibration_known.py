"""The accuracy estimate calibrated on known-answer items (issue 16): a crowd that agrees on the
wrong label cannot be seen from its answers alone; known answers, bought for like any item, can."""

import numpy as np
import pandas as pd
import pytest

from annotate.consensus import get_policy
from annotate.consensus.calibration import MIN_KNOWN, KnownAnswerCalibration, batch_estimate
from annotate.consensus.simulate import replay, shuffled_answers
from annotate.consensus.synthetic import misleading_crowd


def test_map_learns_how_often_a_stated_probability_is_right():
    rng = np.random.default_rng(0)
    stated = np.full(400, 0.99)
    right = rng.random(400) < 0.8  # said 0.99, right 80% of the time
    m = KnownAnswerCalibration.fit(stated, right)
    assert m.apply([0.99])[0] == pytest.approx(right.mean(), abs=0.03)
    # honest statements are left about as they are
    p = rng.uniform(0.55, 0.99, 2000)
    honest = KnownAnswerCalibration.fit(p, rng.random(2000) < p)
    assert np.abs(honest.apply(p) - p).max() < 0.05
    # fewer than MIN_KNOWN known items: no map; a few: a map, but less sure of itself
    assert KnownAnswerCalibration.fit(stated[: MIN_KNOWN - 1], right[: MIN_KNOWN - 1]) is None
    few = KnownAnswerCalibration.fit(stated[:20], right[:20])
    assert few.apply([0.99])[0] == pytest.approx(right[:20].mean(), abs=0.1)
    assert few.mean_variance(stated) > m.mean_variance(stated) > 0


def test_interval_carries_the_maps_own_uncertainty():
    p = [0.8] * 200
    plain = batch_estimate(p)
    wider = batch_estimate(p, model_variance=0.02 ** 2)
    assert wider.high - wider.low > plain.high - plain.low


def _estimate(answers, truth, seed, known):
    policy = get_policy(None)
    res = replay(policy, answers, truth, seed=seed, known=known)
    pool = shuffled_answers(answers, seed)
    got = pool[pool["pos"].to_numpy() < res.labels.set_index("item")["answers"].reindex(pool["item"]).to_numpy()]
    labels, _ = policy.aggregate(got[["item", "worker", "label"]], known=known)
    delivered = labels[~labels["item"].isin(list(known or {}))]
    t = truth.set_index("item")["label"]
    right = (delivered["label"].astype(str).to_numpy() == t.reindex(delivered["item"]).to_numpy())
    crowd = delivered["crowd_confidence"] if "crowd_confidence" in delivered else delivered["confidence"]
    return float(delivered["confidence"].mean()), float(crowd.mean()), float(right.mean()), res


def test_crowd_agreeing_on_the_wrong_label_is_seen_with_known_answers():
    answers, truth = misleading_crowd(n_items=400, seed=3)
    truth = truth.rename_axis("item").reset_index()
    gaps, crowd_gaps = [], []
    for seed in range(3):
        known_items = np.random.default_rng(seed).choice(truth["item"], size=40, replace=False)
        known = dict(zip(known_items, truth.set_index("item")["label"].reindex(known_items)))
        est, crowd_est, measured, res = _estimate(answers, truth, seed, known)
        assert res.n_scored == len(truth) - len(known)  # known items are not scored
        gaps.append(est - measured)
        crowd_gaps.append(crowd_est - measured)
    # from the answers alone the estimate is optimistic by far more than the target allows …
    assert np.mean(crowd_gaps) > 0.06
    # … with 10% known answers it is within it
    assert abs(np.mean(gaps)) <= 0.02


def test_known_items_are_bought_for_like_any_other():
    """Workers cannot tell a known-answer item apart, and the policy decides its purchases from the
    crowd's view of it (annotate.consensus.dawid_skene: its posterior as if its answer were not
    known): known items are extended past their first answers as the others are. (The known answers
    do change every purchase a little, through what the fit learns of the workers, so the counts
    are no longer those of the same replay without them.)"""
    answers, truth = misleading_crowd(n_items=200, seed=1)
    truth = truth.rename_axis("item").reset_index()
    known = dict(zip(truth["item"][:40], truth["label"][:40]))
    with_known = replay(get_policy(None), answers, truth, seed=0, known=known)
    a = with_known.labels.set_index("item")["answers"]
    on_known, others = a.reindex(list(known)), a.drop(list(known))
    assert on_known.max() > 2 and (on_known > 2).mean() > 0.5
    assert abs(on_known.mean() - others.mean()) < 0.5


def test_harvest_buys_for_known_items_and_calibrates_the_estimate_on_them(ws, marketplace, tmp_path):
    """Through the marketplace: known-answer items are extended like any item (they used to be left
    at their first answers), stay labelled by what is known and unexported, and the batch's estimate
    in status --json says it was calibrated on them."""
    import json

    from click.testing import CliRunner

    from annotate.cli import cli
    from annotate.config import load_batch
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.post import post_batch
    from annotate.store import Store
    from conftest import make_batch, run_until_done

    batch_dir = make_batch(tmp_path, items=40, batch__known_answer_column='"known"')
    text = (batch_dir / "batch.toml").read_text().replace('policy = "agree"\nagree = 2', 'policy = "adaptive"')
    (batch_dir / "batch.toml").write_text(text)
    lines = (batch_dir / "items.csv").read_text().splitlines()
    out = [lines[0] + ",known"] + [line + "," + (line.rsplit(",", 1)[1] if n % 3 == 0 else "")
                                   for n, line in enumerate(lines[1:])]
    (batch_dir / "items.csv").write_text("\n".join(out) + "\n")
    batch = load_batch(batch_dir)
    known = {i.id for i in batch.items if i.known}
    assert len(known) == 14
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=14, spammer_share=0.3, seed=2)
    run_until_done(ws, batch, marketplace.url, crowd)

    store = Store(ws.store_path, readonly=True)
    labels = store.labels(batch.name)
    assert {i for i, r in labels.items() if r["status"] == "known"} == known
    bought = {r["item_id"]: r["max_assignments"] for r in store.db.query(
        "select item_id, max_assignments from hits where batch = ?", [batch.name])}
    assert max(bought[i] for i in known) > 2  # bought for like any other item
    run = CliRunner().invoke(cli, ["--home", str(ws.home), "status", batch.name, "--json"], catch_exceptions=False)
    est = json.loads(run.output.strip().splitlines()[-1])["batches"][0]["accuracy_estimate"]
    assert est["calibrated_on"]["known_items"] == len(known)
    assert est["items"] == sum(1 for r in labels.values() if r["status"] == "labelled")
    event = store.events(batch.name, ("estimate",))[-1]
    assert event["model_variance"] > 0
    low, high = est["interval"]
    assert low <= est["estimated_accuracy"] <= high


def test_target_accuracy_trusts_a_known_answer_estimate_over_split_votes():
    """Without known answers a 1–1 split is bought for whatever the estimate (Dawid–Skene can
    collapse on sparse data and call everything certain); with a known-answer calibration the
    estimate sees such a collapse itself, so a reached target buys nothing more (sp_amt at 0.85:
    2.15 answers/item, now the 2.00 fixed-2 Dawid–Skene needs)."""
    answers, truth = misleading_crowd(n_items=300, per_item=2, misleading=0.05, seed=5)
    truth = truth.rename_axis("item").reset_index()
    items = pd.DataFrame({"item": truth["item"], "bought": 2, "open": False})
    known = dict(zip(truth["item"][:40], truth["label"][:40]))
    policy = get_policy(None, target_accuracy=0.6)
    blind = policy.decide(answers, items)
    seeing = policy.decide(answers, items, known=known)
    assert sum(d.action == "extend" for d in blind.values()) > 0  # the split votes
    assert sum(d.action == "extend" for d in seeing.values()) == 0
    assert all(d.action == "label" for d in seeing.values())


def test_target_accuracy_buys_past_unanimous_items_when_known_answers_show_the_target_is_far():
    """A crowd agreeing on wrong labels: no single answer could move a 5–0 item, so the policy used
    to label every such item and stop short of the target with nothing left to buy (bluebirds at
    0.85: 0.769 at 5.45 answers/item). When even the estimate's upper end is short of the target,
    such items are bought for too; more answers move the fit's view of its workers. Not without
    known answers (the crowd-only estimate cannot see it), and not once the target is in reach."""
    answers, truth = misleading_crowd(n_items=300, per_item=10, misleading=0.3, misled=0.9, seed=2)
    first5 = answers.groupby("item").head(5)
    items = pd.DataFrame({"item": truth.index, "bought": 5, "open": False})
    known = dict(zip(truth.index[:60], truth.iloc[:60]))
    unanimous = set(first5.groupby("item")["label"].nunique().loc[lambda n: n == 1].index)
    assert len(unanimous) > 100

    def extended(decisions):
        return {i for i, d in decisions.items() if d.action == "extend"}

    far = get_policy(None, target_accuracy=0.95).decide(first5, items, known=known)
    assert extended(far) & unanimous
    blind = get_policy(None, target_accuracy=0.95).decide(first5, items)
    assert not extended(blind) & unanimous
    near = get_policy(None, target_accuracy=0.6).decide(first5, items, known=known)
    assert all(near[i].action == "label" for i in unanimous)
