"""The requester's review commands and results, end to end through boto3 against the embedded
marketplace over HTTP: reject / approve --override, bonus (a retry pays once; the budget refuses),
notify (100 per call, failures named), cancel (answers kept, nothing bought after), results and
the quarantine warning in status."""

from __future__ import annotations

import json
import urllib.request
from decimal import Decimal

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import load_batch
from annotate.harvest import harvest
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.status import status
from annotate.store import Store
from conftest import REPO, all_hits, make_batch, mturk_client, run_until_done


def run(ws, *args):
    """The CLI as a script runs it: no terminal on stdin."""
    return CliRunner().invoke(cli, ["--home", str(ws.home), *args], catch_exceptions=False)


def last_json(result) -> dict:
    return json.loads(result.output.strip().splitlines()[-1])


def finished_batch(ws, marketplace, tmp_path, *, items=6, workers=6, **overrides):
    batch_dir = make_batch(tmp_path, items=items, **overrides)
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=workers, seed=1, spammer_share=0.0)
    run_until_done(ws, batch, marketplace.url, crowd)
    return batch, crowd


def test_reject_needs_yes_without_a_terminal_then_rejects_and_override_undoes_it(ws, marketplace, tmp_path):
    # "auto" approval: the harvest stores answers without approving them, so they stay Submitted for review.
    batch, _ = finished_batch(ws, marketplace, tmp_path, hit__approval='"auto"')
    store = Store(ws.store_path)
    rows = store.worker_assignments(batch.name)
    assert rows and all(r["status"] == "Submitted" for r in rows)
    first = rows[0]
    other = next(r for r in rows if r["worker_id"] != first["worker_id"])
    picked = [first["assignment_id"], other["assignment_id"]]
    client = mturk_client(marketplace.url)

    refused = run(ws, "reject", *picked, "--feedback", "The species does not match the drawing.")
    assert refused.exit_code == 2 and "pass --yes" in refused.output and "2 worker(s)" in refused.output
    assert all(client.get_assignment(AssignmentId=a)["Assignment"]["AssignmentStatus"] == "Submitted" for a in picked)

    done = run(ws, "reject", *picked, "--feedback", "The species does not match the drawing.", "--yes", "--json")
    assert done.exit_code == 0, done.output
    summary = last_json(done)
    assert summary["assignments"] == picked and len(summary["workers"]) == 2
    for a in picked:
        shown = client.get_assignment(AssignmentId=a)["Assignment"]
        assert shown["AssignmentStatus"] == "Rejected"
        assert shown["RequesterFeedback"] == "The species does not match the drawing."
    assert {r["assignment_id"]: r["status"] for r in Store(ws.store_path).worker_assignments(batch.name)}[
        picked[0]] == "Rejected"

    # Only Submitted assignments: rejecting again is refused, and nothing is done.
    again = run(ws, "reject", picked[0], "--feedback", "again", "--yes")
    assert again.exit_code == 2 and "only Submitted" in again.output

    # The next harvest leaves rejected answers out of consensus; status and results show them.
    [result] = harvest(ws, [batch.name], endpoint_url=marketplace.url)
    result.raise_failure()
    [row] = status(ws, batch.name)
    assert row["assignments_by_status"]["Rejected"] == 2 and row["review"]["rejected"] == 2
    items = {r["item"]: r for r in last_json(run(ws, "results", batch.name, "--json"))["items"]}
    assert items[first["item_id"]]["rejected"] >= 1
    assert sum(r["rejected"] for r in items.values()) == 2
    assert sum(r["answers"] for r in items.values()) == len(rows) - 2

    # Reversible: approve --override pays the rejected assignment after all.
    plain = run(ws, "approve", picked[0], "--yes")
    assert plain.exit_code == 2 and "only Submitted" in plain.output
    undone = run(ws, "approve", "--override", picked[0], "--yes")
    assert undone.exit_code == 0, undone.output
    assert client.get_assignment(AssignmentId=picked[0])["Assignment"]["AssignmentStatus"] == "Approved"
    statuses = {r["assignment_id"]: r["status"] for r in Store(ws.store_path).worker_assignments(batch.name)}
    assert statuses[picked[0]] == "Approved" and statuses[picked[1]] == "Rejected"
    assert status(ws, batch.name)[0]["review"]["overridden"] == 1


def test_reject_refuses_an_assignment_the_store_does_not_know(ws, marketplace, tmp_path):
    finished_batch(ws, marketplace, tmp_path, items=3, workers=4)
    result = run(ws, "reject", "NOSUCHASSIGNMENT", "--feedback", "x", "--yes")
    assert result.exit_code == 2 and "not in the store" in result.output
    # With approval at harvest (the default) every stored answer is already paid: the message says how to review.
    approved = Store(ws.store_path).worker_assignments("iris-small")[0]["assignment_id"]
    result = run(ws, "reject", approved, "--feedback", "x", "--yes")
    assert result.exit_code == 2 and "is Approved" in result.output and 'approval = "auto"' in result.output
    assert run(ws, "reject", approved, "--feedback", "   ", "--yes").exit_code == 2


def _bonuses(client, hit_ids) -> list[dict]:
    return [b for h in hit_ids for b in client.list_bonus_payments(HITId=h, MaxResults=100)["BonusPayments"]]


def test_bonus_pays_once_however_often_it_is_retried_and_counts_in_the_budget(ws, marketplace, tmp_path):
    batch, _ = finished_batch(ws, marketplace, tmp_path)
    client = mturk_client(marketplace.url)
    hit_ids = [h["HITId"] for h in all_hits(client)]
    store = Store(ws.store_path)
    worker = store.worker_assignments(batch.name)[0]["worker_id"]
    spent_before = Decimal(status(ws, batch.name)[0]["spent_usd"])

    args = ["bonus", batch.name, "--worker", worker, "--amount", "0.10", "--reason", "Careful work", "--json"]
    needs_yes = run(ws, *args)
    assert needs_yes.exit_code == 2 and "pass --yes" in needs_yes.output
    first = run(ws, *args, "--yes")
    assert first.exit_code == 0, first.output
    assert last_json(first)["total_usd"] == "0.12"  # $0.10 + MTurk's 20% fee
    paid = _bonuses(client, hit_ids)
    assert [(b["WorkerId"], b["BonusAmount"], b["Reason"]) for b in paid] == [(worker, "0.10", "Careful work")]

    # A plain retry: the store knows it was paid.
    again = last_json(run(ws, *args, "--yes"))
    assert again["already_paid"] == 1 and again["paid"] == []
    # A crash after SendBonus, before the store heard: the same token, and MTurk refuses to pay twice.
    crashed = Store(ws.store_path)
    crashed.db.execute("delete from events where kind = 'bonus'")
    crashed.db.conn.commit()
    resumed = run(ws, *args, "--yes")
    assert resumed.exit_code == 0, resumed.output
    assert len(_bonuses(client, hit_ids)) == 1
    assert Decimal(status(ws, batch.name)[0]["spent_usd"]) == spent_before + Decimal("0.12")
    assert status(ws, batch.name)[0]["review"]["bonuses"] == 1

    # Every answer that agreed with consensus, once each.
    labels = {k: v["label"] for k, v in store.labels(batch.name).items() if v["status"] == "labelled"}
    agreeing = [a for a in store.worker_assignments(batch.name) if labels.get(a["item_id"]) == a["label"]]
    assert agreeing
    out = run(ws, "bonus", batch.name, "--agreeing", "--amount", "0.02", "--reason", "Agreed with consensus",
              "--yes", "--json")
    assert out.exit_code == 0, out.output
    assert len(last_json(out)["paid"]) == len(agreeing)
    assert len(_bonuses(client, hit_ids)) == 1 + len(agreeing)
    assert last_json(run(ws, "bonus", batch.name, "--agreeing", "--amount", "0.02", "--reason", "Agreed with consensus",
                         "--yes", "--json"))["already_paid"] == len(agreeing)
    assert len(_bonuses(client, hit_ids)) == 1 + len(agreeing)

    # Past the batch budget ($50 in the example): refused before anything is paid.
    over = run(ws, "bonus", batch.name, "--agreeing", "--amount", "20.00", "--reason", "too much", "--yes")
    assert over.exit_code == 2 and "budget" in over.output
    assert len(_bonuses(client, hit_ids)) == 1 + len(agreeing)
    review = status(ws, batch.name)[0]["review"]
    assert review["bonuses"] == 1 + len(agreeing)
    assert Decimal(review["bonus_usd"]) == Decimal("0.12") + Decimal("0.03") * len(agreeing)  # $0.02 + $0.01 minimum fee


@pytest.mark.parametrize("amount", ["0", "-1", "0.001", "abc"])
def test_bonus_refuses_an_amount_that_is_not_whole_cents(ws, marketplace, tmp_path, amount):
    batch, _ = finished_batch(ws, marketplace, tmp_path, items=2, workers=3)
    result = run(ws, "bonus", batch.name, "--agreeing", "--amount", amount, "--reason", "r", "--yes")
    assert result.exit_code == 2 and "--amount" in result.output


def _messages(url: str, worker: str) -> list[dict]:
    req = urllib.request.Request(f"{url}/worker/messages?workerId={worker}", headers={"Accept": "application/json"})
    return json.loads(urllib.request.urlopen(req).read())["messages"]


def test_notify_goes_in_chunks_and_names_the_workers_it_could_not_reach(ws, marketplace, tmp_path, monkeypatch):
    import annotate.notify

    batch, _ = finished_batch(ws, marketplace, tmp_path, items=8, workers=7)
    workers = sorted({a["worker_id"] for a in Store(ws.store_path).worker_assignments(batch.name)})
    assert len(workers) >= 4
    client = mturk_client(marketplace.url)
    client.create_worker_block(WorkerId=workers[0], Reason="test: blocked workers cannot be messaged")
    monkeypatch.setattr(annotate.notify, "PER_CALL", 3)  # MTurk's 100, made small enough to see the chunks

    result = run(ws, "notify", batch.name, "--subject", "Thank you", "--message", "More HITs tomorrow.", "--json")
    assert result.exit_code == 2
    summary = last_json(result)
    assert summary["calls"] == -(-len(workers) // 3)
    assert list(summary["failed"]) == [workers[0]] and "blocked" in summary["failed"][workers[0]]
    assert sorted(summary["sent"]) == workers[1:]
    for w in workers[1:]:
        assert [m["subject"] for m in _messages(marketplace.url, w)] == ["Thank you"]
    assert _messages(marketplace.url, workers[0]) == []

    one = run(ws, "notify", batch.name, "--subject", "Just you", "--message", "Hi", "--worker", workers[1])
    assert one.exit_code == 0, one.output
    assert [m["subject"] for m in _messages(marketplace.url, workers[1])] == ["Just you", "Thank you"]
    review = status(ws, batch.name)[0]["review"]
    assert review["notices"] == 2 and review["notified_workers"] == len(workers) - 1 + 1
    stranger = run(ws, "notify", batch.name, "--subject", "s", "--message", "m", "--worker", "ANOBODY")
    assert stranger.exit_code == 2 and "ANOBODY" in stranger.output


def test_cancel_expires_open_hits_keeps_answers_and_buys_nothing_more(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=10)
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, seed=2, spammer_share=0.0)
    submitted = crowd.work(limit=7)
    assert submitted == 7

    refused = run(ws, "cancel", batch.name)
    assert refused.exit_code == 2 and "pass --yes" in refused.output
    done = run(ws, "cancel", batch.name, "--yes", "--json")
    assert done.exit_code == 0, done.output
    assert last_json(done)["expired"] == 10
    assert crowd.work() == 0  # no worker can take an expired HIT

    calls_before = Store(ws.store_path).api_calls(batch.name)
    for _ in range(5):
        [result] = harvest(ws, [batch.name], endpoint_url=marketplace.url)
        result.raise_failure()
        if result.done:
            break
    assert result.done
    store = Store(ws.store_path)
    assert len(store.worker_assignments(batch.name)) == 7  # every submitted answer collected
    calls = store.api_calls(batch.name)
    assert calls.get("CreateAdditionalAssignmentsForHIT", 0) == calls_before.get("CreateAdditionalAssignmentsForHIT", 0)
    [row] = status(ws, batch.name)
    assert row["labelled"] + row["unresolved"] == 10 and row["unresolved"] > 0
    assert row["api_calls"]["UpdateExpirationForHIT"] >= 10
    assert row["review"]["cancelled"] is True


def test_results_filters_and_formats(ws, marketplace, tmp_path):
    batch, _ = finished_batch(ws, marketplace, tmp_path, items=8, workers=6)
    rows = last_json(run(ws, "results", batch.name, "--json"))["items"]
    assert [r["item"] for r in rows] == [i.id for i in batch.items]
    for r in rows:
        assert r["answers"] == sum(r["votes"].values()) and r["quarantined"] == 0
        assert r["status"] in ("labelled", "unresolved")
    labelled = last_json(run(ws, "results", batch.name, "--status", "labelled", "--json"))["items"]
    assert labelled == [r for r in rows if r["status"] == "labelled"]
    confident = last_json(run(ws, "results", batch.name, "--min-confidence", "0.9", "--json"))["items"]
    assert confident == [r for r in rows if r["confidence"] is not None and r["confidence"] >= 0.9]
    text = run(ws, "results", batch.name, "--csv").output.splitlines()
    assert text[0] == "item,status,label,confidence,answers,votes,quarantined,rejected" and len(text) == 9
    table = run(ws, "results", batch.name)
    assert table.exit_code == 0 and rows[0]["item"] in table.output


def test_status_warns_when_most_answers_are_quarantined_and_names_the_field(ws, marketplace, tmp_path):
    # A template whose form sends `kind` while the batch reads `species`: every answer is quarantined.
    batch_dir = make_batch(tmp_path, items=6, batch__template='"fixed.html.j2"')
    template = (REPO / "hit_templates" / "iris.html.j2").read_text()
    assert "single_choice(field, labels)" in template
    (batch_dir / "fixed.html.j2").write_text(template.replace("single_choice(field, labels)",
                                                              "single_choice('kind', labels)"))
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, seed=1)
    for _ in range(3):
        crowd.work()
        harvest(ws, [batch.name], endpoint_url=marketplace.url)[0].raise_failure()
    [row] = status(ws, batch.name)
    assert row["quarantined"] >= 10 and row["quarantined"] == row["assignments"]
    warning = row["quarantine_warning"]
    assert "[task] field = 'species'" in warning and "the form sends: kind" in warning
    assert list(row["quarantine_reasons"]) == ["no 'species' field in the answer"]
    shown = run(ws, "status")
    assert "warning" in shown.output and "[task] field = 'species'" in shown.output
    rows = last_json(run(ws, "results", batch.name, "--json"))["items"]
    assert sum(r["quarantined"] for r in rows) == row["quarantined"]


def test_status_gives_no_warning_for_a_healthy_batch(ws, marketplace, tmp_path):
    batch, _ = finished_batch(ws, marketplace, tmp_path, items=6, workers=6)
    [row] = status(ws, batch.name)
    assert row["quarantine_warning"] is None and row["quarantined"] == 0
    assert row["review"] == {"rejected": 0, "overridden": 0, "bonuses": 0, "bonus_usd": "0.00", "notices": 0,
                             "notified_workers": 0, "cancelled": False}
