"""Worker quality: near-chance workers are blocked (through MTurk's own CreateWorkerBlock) and
buy nothing more; known-answer items score workers and are never exported."""

from __future__ import annotations


from annotate.config import load_batch
from annotate.export import export_batch
from annotate.harvest import harvest
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.store import Store
from conftest import make_batch, mturk_client, run_until_done


def test_spammers_are_blocked_and_stop_getting_work(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=150)
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, spammer_share=0.34,
                           accuracy=(0.9, 0.98), seed=2)
    spammers = {w.worker_id for w in crowd.workers if w.spammer}
    run_until_done(ws, batch, marketplace.url, crowd)
    blocks = {b["WorkerId"]: b["Reason"] for b in mturk_client(marketplace.url).list_worker_blocks(MaxResults=100)["WorkerBlocks"]}
    assert spammers and set(blocks) == spammers  # every spammer, and nobody else
    assert all("look random" in reason for reason in blocks.values())
    store = Store(ws.store_path)
    assert {w["worker_id"] for w in store.workers() if w["blocked"]} == spammers
    # Once blocked, a worker submits nothing more: their last answer predates the block.
    blocked_at = {r["worker_id"]: r["updated_at"] for r in store.workers() if r["blocked"]}
    for worker, when in blocked_at.items():
        last = max(r["stored_at"] for r in store.db["assignments"].rows_where("worker_id = ?", [worker]))
        assert last <= when


def test_known_answers_score_workers_and_are_not_exported(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=30, batch__known_answer_column='"known"')
    lines = (batch_dir / "items.csv").read_text().splitlines()
    # The first 6 items get their known answer (copied from the gold), the rest none.
    out = [lines[0] + ",known"]
    for n, line in enumerate(lines[1:]):
        out.append(line + "," + (line.rsplit(",", 1)[1] if n < 6 else ""))
    (batch_dir / "items.csv").write_text("\n".join(out) + "\n")
    batch = load_batch(batch_dir)
    assert sum(1 for i in batch.items if i.known) == 6 and "known" not in batch.items[0].data
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=6, spammer_share=0.0, seed=4)
    result = run_until_done(ws, batch, marketplace.url, crowd)
    store = Store(ws.store_path)
    labels = store.labels(batch.name)
    assert sum(1 for r in labels.values() if r["status"] == "known") == 6
    assert sum(r["gold_seen"] or 0 for r in store.workers(batch.name)) == sum(
        len(list(store.db["assignments"].rows_where("item_id = ?", [i.id]))) for i in batch.items if i.known)
    exported = export_batch(ws, batch.name, tmp_path / "out", split=None)
    ids = {line.split(",")[0] for line in exported.csv.read_text().splitlines()[1:]}
    assert not ids & {i.id for i in batch.items if i.known}
    assert result.decided == 30


def test_leave_one_out_agreement_never_lets_a_worker_vouch_for_themselves():
    import pandas as pd

    from annotate.harvest import leave_one_out_agreement, wilson_upper

    answers = pd.DataFrame({"item": ["a", "a", "a", "b", "b", "c"], "worker": ["w1", "w2", "w3", "w1", "w2", "w1"],
                            "label": ["x", "x", "y", "y", "z", "x"]})
    scored, right = leave_one_out_agreement(answers, known={"c": "y"})
    # a: w1 vs {x, y} (no strict majority) unscored; w2 likewise; w3 vs {x, x} -> wrong.
    # b: w1 vs {z} wrong; w2 vs {y} wrong. c: known answer y, w1 said x -> wrong.
    assert scored.to_dict() == {"w1": 2, "w2": 1, "w3": 1}
    assert right.to_dict() == {"w1": 0, "w2": 0, "w3": 0}
    assert wilson_upper(18, 50) < 0.5 < wilson_upper(20, 30)
