"""Worker quality: near-chance workers are excluded (the project's exclusion qualification, which
every batch's HITs require the absence of), never blocked, and buy nothing more; known-answer
items score workers and are never exported."""

from __future__ import annotations


from annotate.config import load_batch
from annotate.export import export_batch
from annotate.harvest import harvest
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.store import Store
from conftest import make_batch, mturk_client, run_until_done


def test_spammers_are_excluded_not_blocked_and_stop_getting_work(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=150)
    batch = load_batch(batch_dir)
    # One HIT at a time: parallel posting orders the HITs as threads finish, and the round robin
    # below then pairs workers differently from run to run (CI once drew a pairing in which a
    # spammer's random answers stayed above the bar; 1 seed in 10 does so in item order).
    post_batch(ws, batch_dir, endpoint_url=marketplace.url, concurrency=1)
    # 2 spammers in 9 (the round robin pairs them with different workers over the batch).
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=9, spammer_share=0.22,
                           accuracy=(0.9, 0.98), seed=2)
    spammers = {w.worker_id for w in crowd.workers if w.spammer}
    run_until_done(ws, batch, marketplace.url, crowd)
    client = mturk_client(marketplace.url)
    assert client.list_worker_blocks(MaxResults=100)["WorkerBlocks"] == []  # nobody blocked automatically
    store = Store(ws.store_path)
    exclusion = store.qualification_type("exclusion", "local")
    held = {q["WorkerId"] for q in client.list_workers_with_qualification_type(
        QualificationTypeId=exclusion, MaxResults=100)["Qualifications"]}
    assert spammers and held == spammers  # every spammer, and nobody else
    hit_type = client.get_hit(HITId=store.hits(batch.name, created=True)[0]["hit_id"])["HIT"]
    assert {"QualificationTypeId": exclusion, "Comparator": "DoesNotExist",
            "ActionsGuarded": "DiscoverPreviewAndAccept"} in hit_type["QualificationRequirements"]
    rows = {w["worker_id"]: w for w in store.workers()}
    assert {w for w, r in rows.items() if r["excluded"]} == spammers
    assert all("look random" in rows[w]["exclude_reason"] and not rows[w]["blocked"] for w in spammers)
    # Once excluded, a worker submits nothing more: their last answer predates the exclusion.
    for worker in spammers:
        last = max(r["stored_at"] for r in store.db["assignments"].rows_where("worker_id = ?", [worker]))
        assert last <= rows[worker]["excluded_at"]


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
