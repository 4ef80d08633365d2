"""Steering consensus (issue 16): target_accuracy and answers_per_item, calibrated confidence,
the batch accuracy estimate, and bad settings named in full."""

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from annotate.consensus import get_policy
from annotate.consensus.calibration import batch_estimate, label_confidence
from annotate.consensus.policies import SettingError
from annotate.consensus.simulate import replay
from annotate.consensus.synthetic import hard_crowd, synthetic_crowd


def crowd(seed=0, n_items=300):
    answers, truth, _ = synthetic_crowd(n_items, 9, 40, 3, seed=seed, accuracy=(0.55, 0.9))
    return answers, truth.rename_axis("item").reset_index()


@pytest.mark.parametrize("settings, field", [
    ({"target_accuracy": 1.2}, "target_accuracy"), ({"target_accuracy": "high"}, "target_accuracy"),
    ({"answers_per_item": 0}, "answers_per_item"), ({"answers_per_item": True}, "answers_per_item"),
    ({"answers_per_item": 3, "budget": 5.0}, "answers_per_item"), ({"targett_accuracy": 0.9}, "targett_accuracy"),
])
def test_bad_settings_name_the_field(settings, field):
    with pytest.raises(SettingError) as err:
        get_policy(None, **settings)
    assert err.value.setting == field and field in str(err.value)


def test_answers_per_item_spends_the_budget_and_beats_fixed_k():
    answers, truth = crowd()
    for k in (3, 4):
        spend = replay(get_policy(None, answers_per_item=k), answers, truth, seed=0)
        fixed = replay(get_policy("fixed", assignments=k, aggregator="dawid_skene"), answers, truth, seed=0)
        assert k - 0.5 <= spend.answers_per_item <= k
        assert spend.accuracy >= fixed.accuracy


def test_target_accuracy_buys_more_for_a_higher_target():
    answers, truth = crowd(1)
    low = replay(get_policy(None, target_accuracy=0.80), answers, truth, seed=0)
    high = replay(get_policy(None, target_accuracy=0.95), answers, truth, seed=0)
    assert low.answers_per_item < high.answers_per_item <= 9
    assert high.accuracy >= low.accuracy
    assert set(high.labels["action"]) == {"label"}  # the target mode labels every item


def test_no_answer_is_bought_that_could_not_change_a_label():
    # two items answered 2-0 by workers the crowd trusts: no third answer could move them
    rows = [(f"i{n}", w, "a") for n in range(20) for w in ("w1", "w2")]
    rows += [("split", "w1", "a"), ("split", "w2", "b")]
    a = pd.DataFrame(rows, columns=["item", "worker", "label"])
    items = pd.DataFrame({"item": [f"i{n}" for n in range(20)] + ["split"], "bought": 2, "open": False})
    d = get_policy(None, answers_per_item=5).decide(a, items)
    assert d["split"].action == "extend"
    assert all(d[f"i{n}"].action == "label" for n in range(20))


def test_calibrated_confidence_is_less_sure_than_raw_and_estimate_has_interval():
    answers, truth = hard_crowd(n_items=200, per_item=4, seed=2)
    policy = get_policy(None)
    labels, _ = policy.aggregate(answers)
    assert {"confidence", "raw_confidence"} <= set(labels.columns)
    assert labels["confidence"].between(0, 1).all()
    # cross-fitting never makes the batch surer than raw Dawid–Skene on a crowd with spammers
    assert labels["confidence"].mean() < labels["raw_confidence"].mean()
    est = batch_estimate(labels["confidence"], labels["raw_confidence"])
    assert est.low < est.accuracy < est.high and est.items == 200
    # a majority-vote label gets a calibrated probability too
    mv = get_policy("agree").aggregate(answers)[0]
    assert mv["confidence"].notna().all() and not np.allclose(mv["confidence"], mv["raw_confidence"])
    again = label_confidence(answers, labels.set_index("item")["label"])
    assert np.allclose(again.reindex(labels["item"]).to_numpy(), labels["confidence"].to_numpy())


def test_batch_estimate_poisson_binomial():
    est = batch_estimate([0.9] * 100)
    assert est.accuracy == pytest.approx(0.9)
    half = 1.959964 * (100 * 0.09) ** 0.5 / 100
    assert (est.low, est.high) == (pytest.approx(0.9 - half), pytest.approx(0.9 + half))
    wider = batch_estimate([0.9] * 100, raw_mean=0.98)  # calibration moved it 0.08: model term 0.04
    assert wider.high - wider.low > est.high - est.low
    assert batch_estimate([]).items == 0


def test_status_results_export_show_the_accuracy_estimate(ws, marketplace, tmp_path):
    """Through the marketplace: a target_accuracy batch is harvested to the end; status, results
    and export (tables and --json) give the estimate, and the stored confidence is calibrated."""
    import json

    from annotate.cli import cli
    from annotate.config import load_batch
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.post import post_batch
    from annotate.store import Store
    from conftest import make_batch, run_until_done

    def run(*args):
        return CliRunner().invoke(cli, ["--home", str(ws.home), *args], catch_exceptions=False)

    batch_dir = make_batch(tmp_path, items=12, extra_toml="")
    text = (batch_dir / "batch.toml").read_text().replace('policy = "agree"\nagree = 2',
                                                          'policy = "adaptive"\ntarget_accuracy = 0.9')
    (batch_dir / "batch.toml").write_text(text)
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, seed=1, spammer_share=0.0)
    run_until_done(ws, batch, marketplace.url, crowd)

    status = json.loads(run("status", batch.name, "--json").output.strip().splitlines()[-1])["batches"][0]
    est = status["accuracy_estimate"]
    assert status["labelled"] > 0 and est["items"] == status["labelled"]
    low, high = est["interval"]
    assert 0 <= low <= est["estimated_accuracy"] <= high <= 1
    table = run("status", batch.name)
    assert "est. accuracy" in table.output and f"{est['estimated_accuracy']:.3f}" in table.output

    results = json.loads(run("results", batch.name, "--json").output.strip().splitlines()[-1])
    assert results["accuracy_estimate"] == est
    labelled = [r["confidence"] for r in results["items"] if r["status"] == "labelled"]
    assert sum(labelled) / len(labelled) == pytest.approx(est["estimated_accuracy"], abs=1e-4)
    # the stored confidence is the calibrated one, not the raw Dawid–Skene posterior
    store = Store(ws.store_path, readonly=True)
    raw = store.events(batch.name, ("estimate",))[-1]
    assert raw["calibrated"] <= raw["raw"]
    assert "labels about" in run("results", batch.name).output

    exported = json.loads(run("export", batch.name, "--json", "--no-split").output.strip().splitlines()[-1])
    assert exported["accuracy_estimate"] == est
    manifest = [json.loads(line) for line in open(exported["manifest"])]
    confidences = sorted(next(v for k, v in m.items() if k.endswith("-metadata"))["confidence"] for m in manifest)
    assert confidences == pytest.approx(sorted(labelled), abs=0.006)  # the manifest rounds to 2 places


def test_answers_per_item_budget_spends_the_batch_budget():
    from decimal import Decimal

    from annotate.budget import spend_to_budget

    # $10 at $0.06 an answer (0.05 + 20% fee) = 166 answers over 40 items: 4.15 per item
    got = spend_to_budget({"answers_per_item": "budget"}, Decimal("10.00"), Decimal("0.05"), 40)
    assert got == {"answers_per_item": 4.15}
    assert get_policy(None, **got).settings["budget"] == 4.15
    assert spend_to_budget({"target_accuracy": 0.9}, None, Decimal("0.05"), 40) == {"target_accuracy": 0.9}
    with pytest.raises(SettingError, match="max_usd"):
        spend_to_budget({"answers_per_item": "budget"}, None, Decimal("0.05"), 40)
    with pytest.raises(SettingError, match="fewer than one per item"):
        spend_to_budget({"answers_per_item": "budget"}, Decimal("1.00"), Decimal("0.05"), 40)
    with pytest.raises(SettingError, match="'budget'"):
        get_policy(None, answers_per_item="budget")  # unresolved: only the batch knows its money


def test_harvest_resolves_answers_per_item_budget():
    from annotate.harvest import stored_policy

    batch = {"config": {"consensus": {"policy": "adaptive", "answers_per_item": "budget"},
                        "budget": {"max_usd": "10.00"}}, "reward": "0.05"}
    assert stored_policy(batch, lambda: 40).settings["budget"] == 4.15
