"""A harvest pass goes on whatever one batch does: a batch that fails (an endpoint that does not
answer, an unknown name, a bug) is reported in one line and the others are harvested; the CLI's exit
code says what kind of failure it was and `--json` always ends stdout. An extension MTurk refuses for
good closes its intent and leaves the item unresolved with MTurk's reason, never blocking a pass."""

from __future__ import annotations

import json
import socket
import sqlite3
import time

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.harvest import harvest, harvest_until_done
from annotate.marketplace import MarketplaceServer
from annotate.mturk import MTurkUnreachable
from annotate.post import post_batch, request_token
from annotate.status import status
from annotate.store import Store
from conftest import make_batch, mturk_client
from test_pipeline import worker_submit


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    monkeypatch.setenv("ANNOTATE_MTURK_RETRY_SECONDS", "0.5")


def dead_url() -> str:
    """A local port nothing listens on (connection refused at once)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


def answered_batch(ws, url, tmp_path, name, answers=("setosa", "setosa")):
    """A one-item batch posted to `url`, its HIT answered by len(answers) workers."""
    post_batch(ws, make_batch(tmp_path, name=name, items=1), endpoint_url=url)
    hit_id = Store(ws.store_path).hits(name)[0]["hit_id"]
    for n, label in enumerate(answers):
        worker_submit(url, hit_id, f"AWORKER{n:02d}{name[-3:].upper()}X", {"species": label})
    return hit_id


def orphan_batch(ws, tmp_path, name="iris-gone"):
    """A batch posted to a marketplace that has since gone away (its remembered endpoint is dead)."""
    with MarketplaceServer(tmp_path / f"{name}.db") as other:
        post_batch(ws, make_batch(tmp_path, name=name, items=1), endpoint_url=other.url)
    url = dead_url()
    Store(ws.store_path).db.execute("update batches set endpoint_url = ? where name = ?", [url, name])
    Store(ws.store_path).db.conn.commit()
    return url


def set_config(ws, name, section, **values):
    store = Store(ws.store_path)
    config = store.get_batch(name)["config"]
    config.setdefault(section, {}).update(values)
    store.db.execute("update batches set config = ? where name = ?", [json.dumps(config), name])
    store.db.conn.commit()


def run_cli(ws, *args):
    return CliRunner().invoke(cli, ["--home", str(ws.home), "harvest", *args])


def last_json(result) -> dict:
    return json.loads(result.stdout.strip().splitlines()[-1])


# ---------------------------------------------------------------- one batch fails, the others go on
def test_an_unreachable_batch_does_not_stop_the_others(ws, marketplace, tmp_path):
    url = orphan_batch(ws, tmp_path)  # first in name order: fails first
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    started = time.monotonic()
    results = {r.batch: r for r in harvest(ws)}
    elapsed = time.monotonic() - started
    assert results["iris-live"].failure is None and results["iris-live"].new_answers == 2
    assert results["iris-live"].approved == 2 and results["iris-live"].labelled == 1
    failure = results["iris-gone"].failure
    assert failure.kind == "unreachable" and failure.exit_code == 2
    assert url in failure.reason and "did not answer" in failure.reason and "\n" not in failure.reason
    assert isinstance(failure.error, MTurkUnreachable) and failure.error.attempts > 1  # retried first
    assert elapsed < 15  # within ANNOTATE_MTURK_RETRY_SECONDS (1 s) plus one backoff and the live batch


def test_cli_summary_exit_code_and_json_line_with_an_unreachable_endpoint(ws, marketplace, tmp_path):
    url = orphan_batch(ws, tmp_path)
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    result = run_cli(ws, "--json")
    assert result.exit_code == 2, result.output
    summary = last_json(result)
    assert [f["batch"] for f in summary["failures"]] == ["iris-gone"]
    assert summary["exit_code"] == 2 and summary["failures"][0]["kind"] == "unreachable"
    live = next(b for b in summary["batches"] if b["batch"] == "iris-live")
    assert live["failure"] is None and live["new_answers"] == 2
    assert "Traceback" not in result.stderr
    lines = [line for line in result.stderr.splitlines() if url in line]
    assert len(lines) == 1 and "iris-gone" in lines[0]  # one line, not a hundred


def test_every_batch_on_a_dead_endpoint_is_reported_and_tried_once(ws, tmp_path):
    url = dead_url()
    result = run_cli(ws, "--endpoint-url", url, "--json")  # no batches yet: nothing to try
    assert result.exit_code == 0 and last_json(result)["failures"] == []
    for name in ("iris-aaa", "iris-bbb"):
        orphan_batch(ws, tmp_path, name)
    started = time.monotonic()
    result = run_cli(ws, "--endpoint-url", url, "--json")
    assert time.monotonic() - started < 10  # the second batch is not retried again
    assert result.exit_code == 2
    failures = last_json(result)["failures"]
    assert [f["batch"] for f in failures] == ["iris-aaa", "iris-bbb"]
    assert failures[1]["reason"].startswith("not tried:")


def test_unknown_batch_name_is_reported_and_the_named_others_harvested(ws, marketplace, tmp_path):
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    result = run_cli(ws, "no-such-batch", "iris-live", "--json")
    assert result.exit_code == 2
    summary = last_json(result)
    assert summary["failures"] == [{"batch": "no-such-batch", "kind": "user", "exit_code": 2,
                                    "reason": summary["failures"][0]["reason"]}]
    assert "no batch named 'no-such-batch'" in summary["failures"][0]["reason"]
    assert next(b for b in summary["batches"] if b["batch"] == "iris-live")["approved"] == 2


def test_a_bug_in_one_batch_exits_1_with_its_traceback_and_the_others_are_harvested(ws, marketplace, tmp_path):
    answered_batch(ws, marketplace.url, tmp_path, "iris-bad")
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    set_config(ws, "iris-bad", "consensus", policy="no-such-policy")  # a store no version of annotate writes
    result = run_cli(ws, "--json")
    assert result.exit_code == 1
    summary = last_json(result)
    assert [(f["batch"], f["kind"]) for f in summary["failures"]] == [("iris-bad", "bug")]
    assert next(b for b in summary["batches"] if b["batch"] == "iris-live")["labelled"] == 1
    assert "Traceback" in result.stderr and "iris-bad:" in result.stderr  # tracebacks are for bugs


def test_json_line_even_when_the_pass_cannot_start(ws, tmp_path):
    ws.store_path.mkdir(parents=True)  # the store's path is a directory: SQLite cannot open it
    result = run_cli(ws, "--json")
    assert result.exit_code != 0
    summary = last_json(result)
    assert summary["batches"] == [] and summary["failures"][0]["batch"] is None
    assert summary["exit_code"] == result.exit_code


def test_a_bad_retry_setting_is_a_user_error_for_each_batch(ws, marketplace, tmp_path, monkeypatch):
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    monkeypatch.setenv("ANNOTATE_MTURK_RETRY_SECONDS", "soon")
    result = run_cli(ws, "--json")
    assert result.exit_code == 2
    assert "ANNOTATE_MTURK_RETRY_SECONDS" in last_json(result)["failures"][0]["reason"]


def test_throttling_that_outlasts_the_retries_exits_1(ws, marketplace, tmp_path):
    from annotate.marketplace.faults import Faults, FaultSpec

    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    marketplace.faults = Faults(FaultSpec(throttle=1.0))  # every requester call: "Rate exceeded"
    try:
        result = run_cli(ws, "--json")
    finally:
        marketplace.faults = None
    assert result.exit_code == 1  # may pass by itself: cron's next run
    [failure] = last_json(result)["failures"]
    assert failure["kind"] == "mturk" and "ThrottlingException" in failure["reason"]
    assert "Traceback" not in result.stderr


def test_watch_keeps_going_after_a_failed_pass(ws, marketplace, tmp_path):
    orphan_batch(ws, tmp_path)
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    passes = []
    results = harvest_until_done(ws, interval=0.05, timeout=6, on_pass=passes.append)
    assert len(passes) >= 2
    assert {r.batch: bool(r.failure) for r in results} == {"iris-gone": True, "iris-live": False}


def test_watch_ends_when_only_user_errors_are_left(ws, marketplace, tmp_path):
    answered_batch(ws, marketplace.url, tmp_path, "iris-live")
    result = run_cli(ws, "no-such-batch", "iris-live", "--watch", "--interval", "0.05", "--json")
    assert result.exit_code == 2
    summary = last_json(result)
    assert next(b for b in summary["batches"] if b["batch"] == "iris-live")["done"] is True


def test_post_to_an_unreachable_endpoint_is_one_line_exit_2(ws, tmp_path):
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(make_batch(tmp_path)),
                                      "--endpoint-url", dead_url(), "--yes"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and "did not answer" in result.stderr


# ---------------------------------------------------------------- extensions MTurk refuses (B3)
def split_nine(ws, marketplace, tmp_path):
    """One item whose HIT was created with 9 assignments, all answered 3/3/3 (no 5 agree)."""
    batch_dir = make_batch(tmp_path, items=1, consensus__agree="5", consensus__initial_assignments="9",
                           consensus__max_assignments="9")
    post_batch(ws, batch_dir, endpoint_url=marketplace.url)
    hit_id = Store(ws.store_path).hits("iris-small")[0]["hit_id"]
    for n, label in enumerate(["setosa", "versicolor", "virginica"] * 3):
        worker_submit(marketplace.url, hit_id, f"AWORKERSPLIT{n:02d}", {"species": label})
    return hit_id


def test_a_stored_cap_of_20_never_asks_mturk_past_9(ws, marketplace, tmp_path):
    hit_id = split_nine(ws, marketplace, tmp_path)
    set_config(ws, "iris-small", "consensus", max_assignments=20)  # a store from before the config check
    [first] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert first.failure is None and first.new_answers == 9 and first.approved == 9
    assert first.unresolved == 1 and first.extended == 0 and first.done
    assert "CreateAdditionalAssignmentsForHIT" not in first.api_calls
    for _ in range(2):
        [later] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
        assert later.failure is None and later.done and later.unresolved == 1
    assert mturk_client(marketplace.url).get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 9
    [row] = status(ws, "iris-small")
    assert "InvalidMaximumAssignmentsIncrease" in row["unresolved_reasons"]["iris-001"]
    assert len(Store(ws.store_path).db.execute(
        "select * from events where kind = 'extension-refused'").fetchall()) == 1  # recorded once


def test_a_recorded_extension_mturk_refuses_is_closed_and_never_blocks(ws, marketplace, tmp_path):
    hit_id = split_nine(ws, marketplace, tmp_path)
    set_config(ws, "iris-small", "consensus", max_assignments=20)
    store = Store(ws.store_path)
    batch = store.get_batch("iris-small")
    # What an older annotate left behind: the intent to take the 9-assignment HIT to 10, recorded
    # before a call that MTurk answers with InvalidMaximumAssignmentsIncrease on every pass.
    token = request_token(batch["uid"], "iris-001", 1)
    store.record_extension_intents([{"token": token, "batch": "iris-small", "item_id": "iris-001", "hit_id": hit_id,
                                     "round": 1, "added": 1, "max_after": 10, "state": "intent", "created_at": "x",
                                     "done_at": None}])
    for _ in range(3):
        [result] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
        assert result.failure is None, result.failure
    assert result.done and result.unresolved == 1 and result.approved == 0  # approved on the first pass
    assert store.pending_extensions("iris-small") == []
    assert store.db.execute("select state from extensions where token = ?", [token]).fetchone()[0] == "refused"
    assert store.labels("iris-small")["iris-001"]["status"] == "unresolved"
    [row] = status(ws, "iris-small")
    assert "InvalidMaximumAssignmentsIncrease" in row["unresolved_reasons"]["iris-001"]
    assert store.assignment_counts("iris-small") == {"Approved": 9}


def test_an_extension_the_account_cannot_pay_waits_for_a_later_pass(ws, marketplace, tmp_path):
    hit_id = answered_batch(ws, marketplace.url, tmp_path, "iris-small", answers=("setosa", "virginica"))
    mdb = sqlite3.connect(ws.marketplace_db)
    with mdb:
        mdb.execute("update account set balance = '0.00'")
    [poor] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert poor.failure is None and poor.approved == 2 and poor.over_budget == 1 and poor.extended == 0
    assert Store(ws.store_path).pending_extensions("iris-small") == []
    with mdb:
        mdb.execute("update account set balance = '100.00'")
    mdb.close()
    [paid] = harvest(ws, ["iris-small"], endpoint_url=marketplace.url)
    assert paid.failure is None and paid.extended == 1  # MTurk's InsufficientFunds was not for good
    assert mturk_client(marketplace.url).get_hit(HITId=hit_id)["HIT"]["MaxAssignments"] == 3
