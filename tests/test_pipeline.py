"""The spine end to end, through boto3 against the embedded marketplace over HTTP:
post → simulated crowd → harvest (store, approve, agree or extend) → export."""

from __future__ import annotations

import json
import urllib.parse
import urllib.request

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import load_batch
from annotate.errors import BudgetExceeded, TargetMismatch, UserError
from annotate.export import export_batch
from annotate.harvest import HarvestBusy, harvest, harvest_lock
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch, request_token
from annotate.store import Store
from conftest import all_hits, make_batch, mturk_client, run_until_done


def worker_submit(url, hit_id, worker_id, fields):
    """A person doing a HIT: accept it, then post the form to externalSubmit."""
    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    req = urllib.request.Request(f"{url}/worker/accept", data=urllib.parse.urlencode(
        {"hitId": hit_id, "workerId": worker_id}).encode(), headers={"Accept": "application/json"})
    try:
        body = urllib.request.build_opener(NoRedirect).open(req).read()
    except urllib.error.HTTPError as exc:  # the 303 to the task page, with a JSON body
        body = exc.read()
    assignment_id = json.loads(body)["assignmentId"]
    data = urllib.parse.urlencode([("assignmentId", assignment_id), *fields.items()]).encode()
    urllib.request.urlopen(urllib.request.Request(f"{url}/mturk/externalSubmit", data=data))
    return assignment_id


def test_end_to_end_labels_exports_and_approves_everything(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=30)
    batch = load_batch(batch_dir)
    result = post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    assert result.created == 30 and result.recovered == 0
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=15, seed=3)
    final = run_until_done(ws, batch, marketplace.url, crowd)
    assert final.decided == 30

    store = Store(ws.store_path)
    labels = store.labels(batch.name)
    gold = {i.id: i.gold for i in batch.items}
    labelled = [k for k, v in labels.items() if v["status"] == "labelled"]
    assert len(labelled) >= 28
    accuracy = sum(labels[k]["label"] == gold[k] for k in labelled) / len(labelled)
    assert accuracy >= 0.85

    # The marketplace's own view: every submitted assignment approved, no HIT posted twice.
    client = mturk_client(marketplace.url)
    hits = all_hits(client)
    assert len(hits) == 30
    assert len({h["RequesterAnnotation"] for h in hits}) == 30
    approved = 0
    for hit in hits:
        assignments = client.list_assignments_for_hit(HITId=hit["HITId"], MaxResults=100)["Assignments"]
        assert all(a["AssignmentStatus"] == "Approved" for a in assignments)
        approved += len(assignments)
        assert hit["MaxAssignments"] <= 9
    assert approved == store.db["assignments"].count == sum(store.assignment_counts(batch.name).values())

    # Every answer was stored raw and parsed.
    row = next(iter(store.db["assignments"].rows))
    assert row["answer_xml"].startswith("<?xml") and "QuestionFormAnswers" in row["answer_xml"]
    assert json.loads(row["answer"])["QuestionFormAnswers"]

    exported = export_batch(ws, batch.name, tmp_path / "out", split=0.8)
    lines = [json.loads(x) for x in exported.manifest.read_text().splitlines()]
    assert len(lines) == len(labelled)
    for line in lines:
        meta = line["species-metadata"]
        assert "source" in line and isinstance(line["species"], int)
        assert meta["class-name"] == batch.labels[line["species"]]
        assert meta["type"] == "groundtruth/image-classification" and meta["human-annotated"] == "yes"
        assert meta["job-name"] == "labeling-job/iris-small" and 0 <= meta["confidence"] <= 1
    assert exported.n_train + exported.n_validation == len(labelled)
    header = exported.csv.read_text().splitlines()[0].split(",")
    assert header[0] == "id" and header[-4:] == ["label", "label_index", "confidence", "answers"]
    assert "species" not in header  # the hidden gold column is not exported


def test_posting_twice_creates_no_second_hit(ws, marketplace, batch_dir):
    first = post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    second = post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    assert first.created == 12
    assert second.created == 0 and second.already_posted == 12
    assert len(all_hits(mturk_client(marketplace.url))) == 12


def test_crash_between_create_and_record_recovers_the_hit(ws, marketplace, batch_dir):
    """A HIT created, then the process died before recording it: the re-run finds it by its token."""
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    store = Store(ws.store_path)
    victim = store.hits("iris-small")[0]
    store.db.execute("update hits set hit_id = null, status = 'intent' where token = ?", [victim["token"]])
    result = post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    assert result.recovered == 1 and result.created == 0
    assert store.hits("iris-small")[0]["hit_id"] == victim["hit_id"]
    assert len(all_hits(mturk_client(marketplace.url))) == 12


def test_tokens_are_stable_and_short():
    token = request_token("abc", "item-1", 0)
    assert token == request_token("abc", "item-1", 0) != request_token("abc", "item-1", 1)
    assert len(token) <= 64


def test_budget_is_checked_before_anything_is_posted(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, budget__max_usd='"0.50"')  # 12 items × 2 × $0.06 = $1.44
    with pytest.raises(BudgetExceeded, match="budget"):
        post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    assert Store(ws.store_path).batch_names() == []
    assert all_hits(mturk_client(marketplace.url)) == []


def test_recorded_target_wins(ws, marketplace, batch_dir):
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    with pytest.raises(TargetMismatch, match="posted to local"):
        post_batch(ws, batch_dir, target="sandbox")
    [result] = harvest(ws, ["iris-small"], target="production")  # recorded for the batch, not raised
    with pytest.raises(TargetMismatch):
        result.raise_failure()


def test_unknown_label_is_quarantined_not_lost(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=1)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    hit_id = Store(ws.store_path).hits("iris-small")[0]["hit_id"]
    worker_submit(marketplace.url, hit_id, "AWORKERONE0001", {"species": "<b>rose</b>"})
    worker_submit(marketplace.url, hit_id, "AWORKERTWO0002", {"species": "setosa"})
    [result] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert result.new_answers == 2 and result.quarantined == 1 and result.approved == 2
    rows = {r["worker_id"]: r for r in Store(ws.store_path).db["assignments"].rows}
    assert "not one of the task's labels" in rows["AWORKERONE0001"]["quarantine"]
    assert "<FreeText>&lt;b&gt;rose&lt;/b&gt;</FreeText>" in rows["AWORKERONE0001"]["answer_xml"]  # kept raw
    assert result.extended == 1  # one usable answer: not yet two in agreement


def test_disagreement_extends_until_the_cap_then_unresolved(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=1, consensus__max_assignments="3")
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    store = Store(ws.store_path)
    hit_id = store.hits("iris-small")[0]["hit_id"]
    answers = iter(["setosa", "versicolor", "virginica"])
    for n in range(2):
        for _ in range(2 if n == 0 else 1):
            worker_submit(marketplace.url, hit_id, f"AWORKER{n}{_}XYZ00", {"species": next(answers)})
        [result] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
        if n == 0:
            assert result.extended == 1
    assert result.unresolved == 1
    assert mturk_client(marketplace.url).get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 3
    assert store.labels("iris-small")["iris-001"]["status"] == "unresolved"


def test_interrupted_extension_is_finished_exactly_once(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=1)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    store = Store(ws.store_path)
    hit = store.hits("iris-small")[0]
    batch = store.get_batch("iris-small")
    # As if a harvest died right after recording its intent to buy one more assignment.
    store.record_extension_intents([{"token": request_token(batch["uid"], "iris-001", 1), "batch": "iris-small",
                                     "item_id": "iris-001", "hit_id": hit["hit_id"], "round": 1, "added": 1,
                                     "max_after": 3, "state": "intent", "created_at": "x", "done_at": None}])
    harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert mturk_client(marketplace.url).get_hit(HITId=hit["hit_id"])["HIT"]["MaxAssignments"] == 3
    assert store.pending_extensions("iris-small") == []


def test_a_second_harvest_steps_aside(ws):
    with harvest_lock(ws):
        with pytest.raises(HarvestBusy, match="another harvest is running"):
            with harvest_lock(ws):
                pass
        result = CliRunner().invoke(cli, ["--home", str(ws.home), "harvest", "--json"])
        assert result.exit_code == 0
        assert json.loads(result.output.strip().splitlines()[-1])["busy"] is True


def test_cli_bad_input_exits_2_and_writes_nothing(ws, tmp_path):
    batch_dir = make_batch(tmp_path)
    (batch_dir / "items.csv").write_text("id,sepal_length,sepal_width,petal_length,petal_width,species\n"
                                         "a,1,2,3,4,setosa\na,1,2,3,4,setosa\n")
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(batch_dir)])
    assert result.exit_code == 2
    assert "items.csv:3" in result.output and "duplicate item id" in result.output
    assert Store(ws.store_path).batch_names() == []


def test_cli_post_status_export(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=4)
    runner = CliRunner()
    home = ["--home", str(ws.home)]
    result = runner.invoke(cli, [*home, "post", str(batch_dir), "--endpoint-url", marketplace.url, "--json"])
    assert result.exit_code == 0, result.output
    posted = json.loads(result.output.strip().splitlines()[-1])
    assert posted["created"] == 4 and posted["estimate_usd"] == "0.48"
    crowd = SimulatedCrowd(marketplace.url, load_batch(batch_dir).gold_annotations(), workers=8, seed=1)
    for _ in range(20):
        crowd.work()
        result = runner.invoke(cli, [*home, "harvest", "--json"])
        assert result.exit_code == 0, result.output
        if json.loads(result.output.strip().splitlines()[-1])["batches"][0]["done"]:
            break
    status = json.loads(runner.invoke(cli, [*home, "status", "iris-small", "--json"]).output.strip().splitlines()[-1])
    [row] = status["batches"]
    assert row["labelled"] + row["unresolved"] == 4 and row["pending"] == 0
    assert row["api_calls"]["CreateHITWithHITType"] == 4
    result = runner.invoke(cli, [*home, "export", "iris-small", "--format", "manifest", "--out", str(tmp_path / "e"), "--json"])
    assert result.exit_code == 0, result.output
    folder = tmp_path / "e" / "iris-small"  # each batch's files in a folder of its own
    assert (folder / "iris-small.manifest").exists() and not (folder / "iris-small.csv").exists()
    assert runner.invoke(cli, [*home, "export", "nope"]).exit_code == 2


def test_auto_approval_mode_leaves_approving_to_mturk(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=10, hit__approval='"auto"', hit__auto_approval_delay='"1h"')
    batch = load_batch(batch_dir)
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    crowd = SimulatedCrowd(marketplace.url, batch.gold_annotations(), workers=8, seed=1)
    result = run_until_done(ws, batch, marketplace.url, crowd)
    store = Store(ws.store_path)
    assert "ApproveAssignment" not in store.api_calls(batch.name)
    assert store.assignment_counts(batch.name) == {"Submitted": sum(store.assignment_counts(batch.name).values())}
    # MTurk approves them at AutoApprovalTime: an hour later they all are.
    marketplace.backend.clock = lambda: __import__("time").time() + 3700
    client = mturk_client(marketplace.url)
    for hit in all_hits(client):
        assert all(a["AssignmentStatus"] == "Approved" for a in
                   client.list_assignments_for_hit(HITId=hit["HITId"], MaxResults=100)["Assignments"])
    assert result.done
    # A HIT read again (here: put back to Reviewable) brings MTurk's new statuses into the store.
    hit_id = all_hits(client)[0]["HITId"]
    client.update_hit_review_status(HITId=hit_id, Revert=True)
    store.set_hit_fields(hit_id, reviewed=0)
    harvest(ws, [batch.name], endpoint_url=marketplace.url)
    n = len(client.list_assignments_for_hit(HITId=hit_id, MaxResults=100)["Assignments"])
    assert Store(ws.store_path).assignment_counts(batch.name).get("Approved") == n
