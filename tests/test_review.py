"""`annotate review BATCH`: answers failing known answers, quarantined answers with their reason,
and workers near the exclusion bar, after a real post / crowd / harvest on the local target."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import WorkerSettings, load_batch
from annotate.errors import UserError
from annotate.harvest import harvest
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.review import MIN_SCORED, review, wilson_interval
from annotate.store import Store
from conftest import REPO, make_batch, run_until_done


def run(ws, *args):
    return CliRunner().invoke(cli, ["--home", str(ws.home), *args], catch_exceptions=False)


def test_wilson_interval_is_the_harvests_and_its_mirror():
    from annotate.exclusion import wilson

    low, high = wilson_interval(8, 10)
    assert (low, high) == wilson(8, 10) and 0.54 < low < 0.55 and 0.93 < high < 0.94
    assert wilson_interval(2, 10) == pytest.approx((1 - high, 1 - low))
    assert wilson_interval(0, 10)[0] == pytest.approx(0.0, abs=1e-12)
    low, high = wilson_interval(3, 10)
    assert low < 0.3 < high


def test_review_lists_failed_known_answers_and_workers_near_the_bar(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=30, batch__known_answer_column='"known"',
                           extra_toml="\n[workers]\nblock = false\n")
    path = batch_dir / "items.csv"
    rows = list(csv.DictReader(path.open(newline="")))
    for n, row in enumerate(rows):
        row["known"] = row["species"] if n % 2 == 0 else ""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    batch = load_batch(batch_dir)
    known = {i.id: i.known for i in batch.items if i.known}
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=8, accuracy=(0.9, 0.99),
                           spammer_share=0.25, seed=5)
    run_until_done(ws, batch, marketplace.url, crowd)

    found = review(ws, batch.name)
    assert found.threshold == pytest.approx(WorkerSettings().threshold(3), abs=1e-4)
    # Exactly the wrong answers the crowd gave on known-answer items.
    item_of_hit = {h["hit_id"]: h["item_id"] for h in Store(ws.store_path).hits(batch.name, created=True)}
    expected = {s["assignment_id"] for s in crowd.submissions
                if item_of_hit[s["hit_id"]] in known and s["answer"] != known[item_of_hit[s["hit_id"]]]}
    assert expected and {r["assignment"] for r in found.failing_known} == expected
    answered = {s["assignment_id"]: s["answer"] for s in crowd.submissions}
    for r in found.failing_known:
        assert r["known"] == known[r["item"]] and r["answer"] == answered[r["assignment"]] != r["known"]
    assert found.quarantined == []

    # Every spammer with enough scored answers is listed; everyone listed has an interval under or across the bar.
    spammers = {w.worker_id for w in crowd.workers if w.spammer}
    listed = {w["worker"]: w for w in found.workers}
    for w in found.workers:
        assert w["low"] < found.threshold and w["standing"] in ("near", "below") and w["scored"] >= MIN_SCORED
        assert (w["high"] < found.threshold) == (w["standing"] == "below")
    counted = {w: sum(1 for s in crowd.submissions if s["worker_id"] == w) for w in spammers}
    assert all(w in listed for w, n in counted.items() if n >= 2 * MIN_SCORED)
    assert any(w in listed for w in spammers)

    shown = run(ws, "review", batch.name, "--json")
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output.strip().splitlines()[-1])
    assert data["counts"]["failing_known"] == len(found.failing_known)
    assert data["counts"]["workers_near_bar"] + data["counts"]["workers_below_bar"] == len(found.workers)
    table = run(ws, "review", batch.name)
    assert table.exit_code == 0 and "Answers failing a known answer" in table.output
    assert "Workers near the exclusion bar" in table.output


def test_review_lists_quarantined_answers_with_their_reason(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=4, batch__template='"fixed.html.j2"')
    template = (REPO / "hit_templates" / "iris.html.j2").read_text()
    (batch_dir / "fixed.html.j2").write_text(template.replace("single_choice(field, labels)",
                                                              "single_choice('kind', labels)"))
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=4, seed=1)
    crowd.work()
    harvest(ws, [batch.name], endpoint_url=marketplace.url)[0].raise_failure()
    found = review(ws, batch.name)
    assert {q["assignment"] for q in found.quarantined} == {s["assignment_id"] for s in crowd.submissions}
    assert {q["reason"] for q in found.quarantined} == {"no 'species' field in the answer (fields: kind)"}
    assert found.counts["quarantined"] == len(crowd.submissions) and found.failing_known == []
    table = run(ws, "review", batch.name)
    assert "Quarantined answers" in table.output and "no 'species' field" in table.output


def test_review_of_an_unknown_batch_exits_2(ws):
    with pytest.raises(UserError):
        review(ws, "nope")
    result = run(ws, "review", "nope")
    assert result.exit_code == 2 and "no batch named 'nope'" in result.output
