"""Automated data labelling ([automation], annotate.automation): the model labels what it is sure of,
the crowd the rest — with an honest threshold, machine labels kept apart from worker scoring, and
no HIT ever posted twice."""

from __future__ import annotations

import csv
import json
import shutil
import sqlite3
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from annotate.automation import choose_threshold, initial_sample, wilson_lower
from annotate.cli import cli
from annotate.config import AutomationSettings, load_batch
from annotate.errors import UserError
from annotate.store import Store
from annotate.workspace import Workspace

from conftest import EXAMPLES, all_hits, make_batch, mturk_client
from test_training_demo import figures

AUTOMATION = """
[automation]
enabled = true
target_accuracy = 0.8
confidence_level = 0.9
initial = 50
folds = 5
step = 20
min_validation = 10
"""


def digits_batch(root: Path, *, items: int = 110, automation: str = AUTOMATION, name: str = "digits-small") -> Path:
    """The digits example cut to `items` rows, with an [automation] table."""
    batch = root / name
    shutil.copytree(EXAMPLES / "digits", batch, ignore=shutil.ignore_patterns("__pycache__", "images"))
    (batch / "images").mkdir()
    with open(EXAMPLES / "digits" / "items.csv", newline="") as handle:
        rows = list(csv.reader(handle))[: items + 1]
    for row in rows[1:]:
        shutil.copy(EXAMPLES / "digits" / row[1], batch / row[1])
    with open(batch / "items.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows)
    text = (batch / "batch.toml").read_text().replace('name = "digits"', f'name = "{name}"')
    (batch / "batch.toml").write_text(text + automation)
    return batch


# ------------------------------------------------------------------ the threshold
def test_wilson_lower_bound_is_below_the_point_estimate_and_tightens_with_n():
    assert wilson_lower(0, 0) == 0.0
    assert wilson_lower(50, 50) < 1.0
    assert wilson_lower(50, 50) < wilson_lower(500, 500) < 1.0
    assert wilson_lower(95, 100, 0.95) < 0.95 < wilson_lower(990, 1000, 0.95)


def test_threshold_is_the_lowest_whose_lower_bound_meets_the_target():
    rng = np.random.default_rng(3)
    conf = rng.uniform(0.2, 1.0, 2000)
    correct = rng.uniform(size=2000) < conf  # a calibrated model: right as often as it is sure
    t = choose_threshold(conf, correct, 0.9, confidence_level=0.95, min_validation=50)
    assert t is not None
    above = conf >= t.value
    assert t.validated == above.sum() and t.correct == correct[above].sum()
    assert wilson_lower(int(correct[above].sum()), int(above.sum()), 0.95) >= 0.9 and t.bound >= 0.9
    # the next confidence down does not meet the bar (the lowest one is chosen, and a lower bound, not
    # the point estimate: at the threshold the point estimate is above the target)
    lower = conf[conf < t.value].max()
    below = conf >= lower
    assert wilson_lower(int(correct[below].sum()), int(below.sum()), 0.95) < 0.9
    assert correct[above].mean() > 0.9


def test_no_threshold_from_too_few_items_or_a_bad_model():
    assert choose_threshold([0.99] * 20, [True] * 20, 0.95, min_validation=50) is None  # too few held out
    assert choose_threshold([0.99] * 30, [True] * 30, 0.95, min_validation=1) is None  # 30/30: bound 0.92
    assert choose_threshold([0.9] * 200, [True, False] * 100, 0.95) is None
    # ties stay together: 60 items at one confidence, one of them wrong, is judged as 59/60
    t = choose_threshold([0.9] * 60 + [0.5] * 10, [True] * 59 + [False] + [True] * 10, 0.85, min_validation=10)
    assert t is not None and t.validated in (60, 70)


def test_threshold_chosen_on_holdout_meets_the_target_on_unseen_items():
    """The honest part: a threshold chosen on held-out labelled digits keeps machine labels of digits the
    model never saw (scored against the true digit) at or above the target."""
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    data = load_digits()
    order = np.random.default_rng(0).permutation(len(data.target))
    train, held, unseen = order[:200], order[200:500], order[500:]
    model = SVC(probability=True, random_state=0).fit(data.data[train], data.target[train])
    p_held = model.predict_proba(data.data[held])
    t = choose_threshold(p_held.max(1), model.classes_[p_held.argmax(1)] == data.target[held], 0.95)
    assert t is not None
    p = model.predict_proba(data.data[unseen])
    chosen = p.max(1) >= t.value
    assert chosen.sum() > 0.3 * len(unseen)  # a useful share is labelled by machine
    assert (model.classes_[p.argmax(1)][chosen] == data.target[unseen][chosen]).mean() >= 0.95


# ------------------------------------------------------------------ settings
def test_off_by_default_and_every_item_is_posted(tmp_path, ws, marketplace):
    from annotate.post import post_batch

    batch = load_batch(EXAMPLES / "digits")
    assert batch.automation == AutomationSettings() and not batch.automation.enabled
    small = make_batch(tmp_path, items=12)
    result = post_batch(ws, small, endpoint_url=marketplace.url)
    assert result.created == 12


def test_initial_sample_is_seeded_and_sized():
    ids = [f"i{n}" for n in range(200)]
    settings = AutomationSettings(enabled=True, initial=0.1, seed=4)
    assert initial_sample(ids, settings) == initial_sample(ids, settings) and len(initial_sample(ids, settings)) == 20
    assert initial_sample(ids, AutomationSettings(enabled=True, initial=0.1, seed=5)) != initial_sample(ids, settings)
    assert len(initial_sample(ids, AutomationSettings(enabled=True, initial=30))) == 30


@pytest.mark.parametrize("table, field", [
    ("enabled = 'yes'", "automation.enabled"),
    ("target_accuracy = 1.5", "automation.target_accuracy"),
    ("target_accuracy = 0", "automation.target_accuracy"),
    ("confidence_level = 0.3", "automation.confidence_level"),
    ("folds = 1", "automation.folds"),
    ("folds = 2.5", "automation.folds"),
    ("initial = 0", "automation.initial"),
    ("initial = 2.5", "automation.initial"),
    ("step = 'ten'", "automation.step"),
    ("min_validation = 0", "automation.min_validation"),
    ("seed = -1", "automation.seed"),
    ("rounds = 3", "automation.rounds"),
])
def test_bad_automation_settings_exit_2_naming_file_and_field(tmp_path, table, field):
    batch = make_batch(tmp_path, extra_toml=f"\n[automation]\nenabled = true\n{table}\n"
                       if not table.startswith("enabled") else f"\n[automation]\n{table}\n")
    with pytest.raises(UserError) as err:
        load_batch(batch)
    assert err.value.field == field and err.value.file.endswith("batch.toml")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "post", str(batch)])
    assert result.exit_code == 2 and field in result.output and "batch.toml" in result.output, result.output
    assert not (tmp_path / "home" / "annotate.db").exists() or not Store(tmp_path / "home" / "annotate.db").batch_names()


def test_automation_needs_a_single_label_task_and_features(tmp_path):
    no_features = make_batch(tmp_path, name="nofeat", extra_toml="\n[automation]\nenabled = true\n")
    text = (no_features / "batch.toml").read_text()
    (no_features / "batch.toml").write_text(text.replace("[training]", "[training-off]"))
    with pytest.raises(UserError) as err:
        load_batch(no_features)
    assert err.value.field in ("training.features", "training-off")  # either way: exit 2 before anything
    multi = tmp_path / "multi"
    shutil.copytree(EXAMPLES / "shapes-multilabel", multi)
    (multi / "batch.toml").write_text((multi / "batch.toml").read_text() + "\n[automation]\nenabled = true\n")
    with pytest.raises(UserError) as err:
        load_batch(multi)
    assert err.value.field == "automation.enabled" and "single-label" in str(err.value)


# ------------------------------------------------------------------ a whole automated batch
@pytest.fixture(scope="module")
def automated(tmp_path_factory):
    """A 110-digit batch with automation, labelled to the end by a simulated crowd on the marketplace."""
    from annotate.harvest import harvest
    from annotate.marketplace import MarketplaceServer
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.post import post_batch

    root = tmp_path_factory.mktemp("auto")
    ws = Workspace(root / "home").ensure()
    batch_dir = digits_batch(root)
    batch = load_batch(batch_dir)
    with MarketplaceServer(ws.marketplace_db) as server:
        crowd = SimulatedCrowd(server.url, batch.gold_annotations(), workers=12, accuracy=(0.85, 0.97),
                               spammer_share=0.0, seed=1)
        posted = post_batch(ws, batch_dir, endpoint_url=server.url, concurrency=1)
        passes = []
        try:
            for _ in range(120):
                crowd.work()
                [result] = harvest(ws, [batch.name], endpoint_url=server.url, concurrency=1)
                result.raise_failure()
                passes.append(result)
                if result.done:
                    break
            else:
                raise AssertionError("the automated batch never finished")
        finally:
            crowd.stop()
        hits = all_hits(mturk_client(server.url))
    yield {"ws": ws, "batch": batch, "dir": batch_dir, "posted": posted, "passes": passes, "hits": hits,
           "store": Store(ws.store_path)}


def test_post_creates_hits_for_the_initial_sample_only(automated):
    posted, batch = automated["posted"], automated["batch"]
    assert posted.created == 50 == len(initial_sample([i.id for i in batch.items], batch.automation))


def test_every_item_labelled_once_by_people_or_machine_and_no_hit_twice(automated):
    store, batch, hits = automated["store"], automated["batch"], automated["hits"]
    machine = store.machine_labels(batch.name)
    human = store.human_labels(batch.name)
    assert machine, "the model labelled nothing: the test would prove little"
    assert not set(machine) & set(human)
    assert set(machine) | set(human) == {i.id for i in batch.items}
    # one HIT per item at most, in the store and on the marketplace; none for machine-labelled items
    rows = store.hits(batch.name)
    assert len(rows) == len({r["item_id"] for r in rows}) == len(hits)
    annotations = [h["RequesterAnnotation"] for h in hits]
    assert len(annotations) == len(set(annotations))
    assert not {a.split("/", 1)[1] for a in annotations} & set(machine)
    rounds = store.automation_rounds(batch.name)
    assert len(rounds) >= 1 and sum(r["machine_labelled"] for r in rounds) == len(machine)
    # every machine label met its round's threshold, and that threshold met the target's lower bound
    by_round = {r["round"]: r for r in rounds}
    for m in machine.values():
        assert m["confidence"] >= by_round[m["round"]]["threshold"] >= 0
        assert by_round[m["round"]]["bound"] >= batch.automation.target_accuracy
    # money: within the budget, and no more spent than the HITs bought
    money = store.money(batch.name)
    assert money["spent"] + money["committed"] <= batch.budget_usd


def test_a_second_post_and_a_round_with_nothing_left_post_nothing(automated):
    from annotate.automation import run_round
    from annotate.post import post_batch

    store, batch = automated["store"], automated["batch"]
    before = len(store.hits(batch.name))
    again = post_batch(automated["ws"], automated["dir"], dry_run=True)
    assert again.created == 0 and again.estimate_usd == 0
    assert run_round(store, batch.name).round is None
    assert len(store.hits(batch.name)) == before


def test_machine_labels_are_never_used_to_score_workers(automated):
    """Known-answer scores, leave-one-out agreement and Dawid–Skene skills read workers' answers only:
    turning every machine label wrong changes no worker's figures."""
    from annotate.harvest import harvest
    from annotate.marketplace import MarketplaceServer

    ws, store, batch = automated["ws"], automated["store"], automated["batch"]
    machine = store.machine_labels(batch.name)
    answered = set(store.answers(batch.name)["item"])
    assert not answered & set(machine)
    assert not set(store.known_answers(batch.name)) & set(machine)
    before = store.workers(batch.name)
    wrong = {k: str((int(m["label"]) + 1) % 10) for k, m in machine.items()}
    with sqlite3.connect(ws.store_path) as db:
        db.executemany("update machine_labels set label = ?, value = ? where batch = ? and item_id = ?",
                       [(v, json.dumps(v), batch.name, k) for k, v in wrong.items()])
    try:
        with MarketplaceServer(ws.marketplace_db) as server:
            [result] = harvest(ws, [batch.name], endpoint_url=server.url)
            result.raise_failure()
        assert store.workers(batch.name) == before
    finally:
        with sqlite3.connect(ws.store_path) as db:
            db.executemany("update machine_labels set label = ?, value = ? where batch = ? and item_id = ?",
                           [(m["label"], m["value"], batch.name, k) for k, m in machine.items()])


def test_export_marks_machine_labels_as_ground_truth_does(automated, tmp_path):
    from annotate.export import export_batch

    ws, store, batch = automated["ws"], automated["store"], automated["batch"]
    machine = store.machine_labels(batch.name)
    exported = export_batch(ws, batch.name, tmp_path / "out", split=None)
    lines = [json.loads(line) for line in exported.manifest.read_text().splitlines()]
    assert len(lines) == len(batch.items)
    by_id = {Path(line["source-ref"]).name: line for line in lines}
    items = {i.id: i for i in batch.items}
    for item_id, m in machine.items():
        line = by_id[Path(items[item_id].data["source-ref"]).name]
        meta = line["digit-metadata"]
        assert meta["human-annotated"] == "no" and meta["confidence"] == round(m["confidence"], 2)  # as for people
        assert meta["class-name"] == m["label"] and line["digit"] == int(m["label"])
    humans = [line for line in lines if line["digit-metadata"]["human-annotated"] == "yes"]
    assert len(humans) == len(batch.items) - len(machine)
    with open(exported.csv, newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert [r["id"] for r in rows] == [i.id for i in batch.items]  # item order, both kinds together
    assert {r["id"] for r in rows if r["human-annotated"] == "no"} == set(machine)


def test_status_shows_machine_labelled_counts(automated):
    result = CliRunner().invoke(cli, ["--home", str(automated["ws"].home), "status", automated["batch"].name, "--json"])
    assert result.exit_code == 0, result.output
    [row] = json.loads(result.output.strip().splitlines()[-1])["batches"]
    machine = len(automated["store"].machine_labels(automated["batch"].name))
    assert row["machine_labelled"] == machine and row["automation"]["rounds"] >= 1 and row["pending"] == 0
    text = CliRunner().invoke(cli, ["--home", str(automated["ws"].home), "status"])
    assert f"{machine} item(s) labelled by machine" in text.output


def test_automate_command_refuses_a_batch_without_automation(tmp_path, ws, marketplace):
    from annotate.post import post_batch

    small = make_batch(tmp_path, items=4)
    post_batch(ws, small, endpoint_url=marketplace.url)
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "automate", "iris-small", "--endpoint-url",
                                      marketplace.url])
    assert result.exit_code == 2 and "automation.enabled" in result.output, result.output
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "automate", "nope"])
    assert result.exit_code == 2 and "no batch named 'nope'" in result.output


def test_automate_command_runs_a_round_and_posts_only_the_released_items(tmp_path, ws, marketplace):
    """Before any human label: a round releases `step` random items and posts HITs for them only."""
    from annotate.post import post_batch

    batch_dir = digits_batch(tmp_path, items=100)
    posted = post_batch(ws, batch_dir, endpoint_url=marketplace.url, concurrency=1)
    assert posted.created == 50
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "automate", "digits-small", "--endpoint-url",
                                      marketplace.url, "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["round"] == 1 and summary["machine_labelled"] == 0 and summary["released"] == 20
    assert summary["posted"] == 20 and "too few human labels" in summary["note"]
    store = Store(ws.store_path)
    assert len(store.hits("digits-small")) == 70 == len({h["item_id"] for h in store.hits("digits-small")})
    # the next round sends the last 30 (at most 1.5 steps left: all at once); then nothing is left
    second = CliRunner().invoke(cli, ["--home", str(ws.home), "automate", "digits-small", "--endpoint-url",
                                      marketplace.url, "--json"])
    assert json.loads(second.output.strip().splitlines()[-1])["released"] == 30
    third = CliRunner().invoke(cli, ["--home", str(ws.home), "automate", "digits-small", "--endpoint-url",
                                     marketplace.url, "--json"])
    assert json.loads(third.output.strip().splitlines()[-1])["round"] is None
    assert len(store.hits("digits-small")) == 100 == len(all_hits(mturk_client(marketplace.url)))


@pytest.mark.slow
def test_digits_auto_demo_is_reproducible(tmp_path):
    """`annotate demo --example digits-auto --seed 0 --json`, twice: the same figures but the wall time."""
    outputs = []
    for _ in range(2):
        result = CliRunner().invoke(cli, ["--home", str(tmp_path / "home"), "demo", "--example", "digits-auto",
                                          "--seed", "0", "--workdir", str(tmp_path), "--json", "--no-train"],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output.strip().splitlines()[-1]))
    assert figures(outputs[0]) == figures(outputs[1])  # each run has a folder of its own: paths relative to it
    assert outputs[0]["machine_labelled"] > 0 and outputs[0]["accuracy"] >= 0.97


@pytest.mark.parametrize("training, field", [
    ('algorithm = "image-classification"', "training.algorithm"),
])
def test_automation_refuses_a_model_it_cannot_train(tmp_path, training, field):
    batch = digits_batch(tmp_path, items=20)
    text = (batch / "batch.toml").read_text().replace("[training]\n", f"[training]\n{training}\n")
    (batch / "batch.toml").write_text(text)
    with pytest.raises(UserError) as err:
        load_batch(batch)
    assert err.value.field == field


def test_a_hyperparameter_the_script_lacks_is_a_user_error_not_an_exit(tmp_path):
    from annotate.automation import Model

    with pytest.raises(UserError) as err:
        Model({"training": {"features": ["pixels"], "hyperparameters": {"depth": 3}}}, ["0", "1"])
    assert "depth" in str(err.value)
