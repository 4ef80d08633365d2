"""Qualification tests ([workers] test in batch.toml), end to end on the local target: boto3 and the
simulated crowd against the embedded marketplace over HTTP. Workers who fail the test never see or
get the batch's HITs; passing workers do; a retake waits for the retry delay; re-posting (or a
second project home) never creates a second qualification type; bad settings exit 2 by name."""

from __future__ import annotations

import csv
import json

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import load_batch
from annotate.errors import UserError
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.workspace import Workspace
from conftest import all_hits, make_batch, mturk_client, run_until_done
from conftest_marketplace import http


def batch_with_test(tmp_path, *, items=24, known=10, workers_toml=None, name="iris-test"):
    """The iris example with a known answer on `known` items and a qualification test."""
    batch_dir = make_batch(tmp_path, name=name, items=items, batch__known_answer_column='"known"',
                           extra_toml=workers_toml if workers_toml is not None else
                           '\n[workers]\ntest = "known"\ntest_questions = 5\npassing_score = 80\n'
                           'retry_delay = "1h"\ntest_duration = "10m"\n')
    path = batch_dir / "items.csv"
    rows = list(csv.DictReader(path.open(newline="")))
    for n, row in enumerate(rows):
        row["known"] = row["species"] if n < known else ""
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
    return batch_dir


def run(ws, *args):
    return CliRunner().invoke(cli, ["--home", str(ws.home), *args], catch_exceptions=False)


def test_the_test_is_built_from_known_answers_chosen_the_same_way_every_time_and_held_back(tmp_path):
    batch = load_batch(batch_with_test(tmp_path))
    test = batch.test
    assert len(test.questions) == 5 and test.passing_score == 80 and test.retry_delay == 3600
    assert load_batch(batch.dir).test.item_ids == test.item_ids  # deterministic
    with (batch.dir / "items.csv").open(newline="") as handle:
        known = {r["id"]: r["species"] for r in csv.DictReader(handle) if r["known"]}
    assert test.item_ids <= set(known) and len(test.item_ids) == 5
    # Not simply the first five rows of the file: chosen by digest.
    assert test.item_ids != set(list(known)[:5])
    # Held back from the HITs: the test's answers never show up as (or score) a HIT.
    assert not test.item_ids & {i.id for i in batch.items} and len(batch.items) == 24 - 5
    # The documents pass the marketplace's own parsers; the answer is only in the AnswerKey.
    from annotate.marketplace import answer_key, question_form
    from annotate.qualification_test import answer_key_xml, create_request

    request = create_request(batch, test)
    form = question_form.parse(request["Test"])
    key = answer_key.parse(request["AnswerKey"], form)
    assert [q.identifier for q in form.questions] == ["q1", "q2", "q3", "q4", "q5"]
    # The question shows the item's measurements, not its answer (gold or known column) nor its id.
    assert "petal_length: " in request["Test"] and "species:" not in request["Test"]
    assert "known:" not in request["Test"] and not any(i in request["Test"] for i in test.item_ids)
    assert key.mapping == ("percentage", 5)
    assert request["AnswerKey"] == answer_key_xml(test)
    assert request["TestDurationInSeconds"] == 600 and request["RetryDelayInSeconds"] == 3600
    # A perfect answer sheet scores 100, one wrong 80.
    right = [{"id": f"q{n}", "selections": [q.answer]} for n, q in enumerate(test.questions, start=1)]
    assert answer_key.score(key, right) == 100
    wrong = next(o for o in test.questions[0].options if o != test.questions[0].answer)
    assert answer_key.score(key, [{"id": "q1", "selections": [wrong]}] + right[1:]) == 80


@pytest.mark.parametrize("toml, field", [
    ('\n[workers]\ntest = "known"\npassing_score = 120\n', "workers.passing_score"),
    ('\n[workers]\ntest = "known"\ntest_questions = 11\n', "workers.test_questions"),
    ('\n[workers]\ntest = "known"\nretry_delay = "soon"\n', "workers.retry_delay"),
    ('\n[workers]\ntest = "known"\ntest_duration = "5s"\n', "workers.test_duration"),
    ('\n[workers]\npassing_score = 70\n', "workers.passing_score"),
    ('\n[workers]\ntest = 3\n', "workers.test"),
])
def test_bad_test_settings_name_file_and_field(tmp_path, toml, field):
    batch_dir = batch_with_test(tmp_path, workers_toml=toml)
    with pytest.raises(UserError) as caught:
        load_batch(batch_dir)
    assert caught.value.field == field and "batch.toml" in str(caught.value)


def test_a_file_of_questions_is_checked_row_by_row(tmp_path, ws):
    batch_dir = batch_with_test(tmp_path, workers_toml='\n[workers]\ntest = "test.csv"\npassing_score = 50\n')
    (batch_dir / "test.csv").write_text("question,options,answer\nIs a circle round?,yes|no,yes\n"
                                        "Pick the iris,setosa|rose,tulip\n")
    with pytest.raises(UserError) as caught:
        load_batch(batch_dir)
    assert caught.value.line == 3 and caught.value.field == "answer" and "test.csv" in str(caught.value)
    (batch_dir / "test.csv").write_text("question,options,answer\nIs a circle round?,yes|no,yes\n"
                                        "Pick the iris,setosa|rose,setosa\n")
    batch = load_batch(batch_dir)
    assert [q.answer for q in batch.test.questions] == ["yes", "setosa"] and not batch.test.item_ids
    result = run(ws, "qualify", "create", str(batch_dir), "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    request = json.loads(result.output.strip().splitlines()[-1])["create_qualification_type"]
    assert "Is a circle round?" in request["Test"] and "<AnswerScore>1</AnswerScore>" in request["AnswerKey"]


def test_a_sandbox_dry_run_validates_offline_and_prints_the_request(tmp_path, ws, monkeypatch):
    for var in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_PROFILE", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    batch_dir = batch_with_test(tmp_path)
    result = run(ws, "post", str(batch_dir), "--target", "sandbox", "--dry-run")
    assert result.exit_code == 0, result.output
    assert "CreateQualificationType request:" in result.output and "TestDurationInSeconds: 600" in result.output
    as_json = run(ws, "post", str(batch_dir), "--target", "sandbox", "--dry-run", "--json")
    request = json.loads(as_json.output.strip().splitlines()[-1])["create_qualification_type"]
    assert request["Name"].startswith("annotate iris-test test ") and request["RetryDelayInSeconds"] == 3600
    # A test whose AnswerKey would be refused stops the dry run with exit 2, before any call.
    bad = batch_with_test(tmp_path / "bad", workers_toml='\n[workers]\ntest = "known"\ntest_duration = 10\n')
    refused = run(ws, "post", str(bad), "--target", "sandbox", "--dry-run")
    assert refused.exit_code == 2 and "workers.test_duration" in refused.output


def _assignments(client) -> list[dict]:
    found = []
    for hit in all_hits(client):
        found += client.list_assignments_for_hit(HITId=hit["HITId"], MaxResults=100)["Assignments"]
    return found


def _listed(url: str, worker_id: str) -> list[str]:
    status, _, body = http("GET", f"{url}/worker/?format=json&workerId={worker_id}")
    assert status == 200
    return [h["hitId"] for h in json.loads(body)["hits"]]


def test_the_test_gates_the_batch_failing_workers_never_see_its_hits(tmp_path, ws, srv):
    batch_dir = batch_with_test(tmp_path)
    batch = load_batch(batch_dir)
    posted = post_batch(ws, batch_dir, endpoint_url=srv.url)
    type_id = posted.qualification_type_id
    client = mturk_client(srv.url)
    qtype = client.get_qualification_type(QualificationTypeId=type_id)["QualificationType"]
    assert qtype["TestDurationInSeconds"] == 600 and qtype["RetryDelayInSeconds"] == 3600 and qtype["AnswerKey"]
    hits = all_hits(client)
    assert len(hits) == len(batch.items)
    assert not {h["RequesterAnnotation"] for h in hits} & {batch.annotation(i) for i in batch.test.item_ids}
    # The test's requirement, beside annotate's own (no exclusion qualification).
    [requirement] = [r for r in hits[0]["QualificationRequirements"] if r["QualificationTypeId"] == type_id]
    assert len(hits[0]["QualificationRequirements"]) == 2
    assert requirement["QualificationTypeId"] == type_id and requirement["Comparator"] == "GreaterThanOrEqualTo"
    assert requirement["IntegerValues"] == [80] and requirement["ActionsGuarded"] == "DiscoverPreviewAndAccept"

    # A third are spammers (at random, 3 labels: ~5% pass 4 of 5); the rest answer right 90-99% of the time.
    crowd = SimulatedCrowd(srv.url, batch.gold_annotations(), workers=12, accuracy=(0.9, 0.99), spammer_share=0.34,
                           seed=3)
    # Before the test nobody sees the HITs; each worker takes it once, through the worker pages.
    assert all(_listed(srv.url, w.worker_id) == [] for w in crowd.workers)
    for worker in crowd.workers:
        assert crowd.take_tests(worker) == [type_id]
    scores = {q["WorkerId"]: q["IntegerValue"] for q in client.list_workers_with_qualification_type(
        QualificationTypeId=type_id, MaxResults=100)["Qualifications"]}
    assert set(scores) == {w.worker_id for w in crowd.workers}
    passing = {w for w, s in scores.items() if s >= 80}
    failing = set(scores) - passing
    spammers = {w.worker_id for w in crowd.workers if w.spammer}
    assert failing and passing and failing >= spammers - passing
    assert len(spammers & passing) <= 1
    for w in failing:
        assert _listed(srv.url, w) == []
    for w in passing:
        assert set(_listed(srv.url, w)) == {h["HITId"] for h in hits}

    run_until_done(ws, batch, srv.url, crowd)
    done = _assignments(client)
    workers = {a["WorkerId"] for a in done}
    assert done and workers <= passing and not workers & failing
    assert len(workers) >= 2

    # Retaking waits for the retry delay (the marketplace's clock, moved by the test); during the batch
    # the crowd's own retakes were refused the same way, so the failing workers stayed out.
    loser = sorted(failing)[0]
    status, _, body = http("POST", f"{srv.url}/worker/qualifications/request",
                           {"qualificationTypeId": type_id, "workerId": loser}, headers={"Accept": "application/json"})
    assert status == 409 and json.loads(body)["error"] == "RetryDelayNotElapsed"
    srv.clock.advance(3601)
    status, _, body = http("POST", f"{srv.url}/worker/qualifications/request",
                           {"qualificationTypeId": type_id, "workerId": loser}, headers={"Accept": "application/json"})
    assert status == 200 and json.loads(body)["outcome"] == "Test"
    # A worker's browser is never shown the AnswerKey (only the marketplace's own simulated crowd is).
    assert "answerKey" not in json.loads(body) and "AnswerScore" not in body

    # Re-posting finds the type in the store; a second project home finds it by its name.
    again = post_batch(ws, batch_dir, endpoint_url=srv.url)
    assert again.qualification_type_id == type_id
    other = Workspace(tmp_path / "home2").ensure()
    from annotate.qualify import create

    found = create(other, batch_dir, endpoint_url=srv.url)
    assert found.qualification_type_id == type_id and not found.created
    cli_again = run(ws, "qualify", "create", str(batch_dir), "--endpoint-url", srv.url, "--json")
    assert cli_again.exit_code == 0, cli_again.output
    assert json.loads(cli_again.output.strip().splitlines()[-1])["qualification_type_id"] == type_id
    names = [t["Name"] for t in client.list_qualification_types(MustBeRequestable=False, MustBeOwnedByCaller=True,
                                                                 MaxResults=100)["QualificationTypes"]]
    assert sum(n.startswith("annotate iris-test test") for n in names) == 1
    shown = run(ws, "qualify", "show", batch.name, "--endpoint-url", srv.url, "--json")
    assert shown.exit_code == 0, shown.output
    [row] = json.loads(shown.output.strip().splitlines()[-1])["qualification_types"]
    assert row["qualification_type_id"] == type_id and row["workers_tested"] == 12
    assert row["workers_passing"] >= len(passing)
