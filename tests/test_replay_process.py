"""The marketplace in its own process (annotate.marketplace.process), as run_replay(own_process=True)
runs it: it serves boto3 and the worker pages, and it never outlives its parent, whether the parent stops it,
fails, is interrupted, or is killed outright."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import boto3
import pandas as pd
import pytest

from annotate.marketplace.process import MarketplaceError, MarketplaceProcess
from annotate.marketplace.replay import ReplayCrowd
from annotate.replay import run_replay

MODULE = "annotate.marketplace.process"


def _alive(pid: int) -> bool:
    """Running (a zombie waiting for its reaper is not)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        state = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    return "\nState:\tZ" not in state


def _marketplace_children() -> list[int]:
    """Marketplace processes whose parent is this one."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            cmdline = (stat.parent / "cmdline").read_bytes()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and MODULE.encode() in cmdline and fields[0] != "Z":
            found.append(int(stat.parent.name))
    return found


def _wait_gone(pid: int, seconds: float = 20.0) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if not _alive(pid):
            return True
        time.sleep(0.05)
    return False


def _client(url: str):
    return boto3.client("mturk", endpoint_url=url, region_name="us-east-1",
                        aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="secret")


def test_serves_boto3_and_stops_by_pid(tmp_path):
    with MarketplaceProcess(tmp_path / "m.db", mode="sandbox") as market:
        pid = market.pid
        assert _alive(pid) and pid != os.getpid()
        assert _client(market.url).get_account_balance()["AvailableBalance"] == "10000.00"
    assert not _alive(pid)
    assert market.pid is None
    market.stop()  # twice is harmless


def test_its_own_process_group_in_the_same_session(tmp_path):
    """A terminal's Ctrl-C reaches the parent alone (which stops the child in order); the session is
    the parent's, so autogroup scheduling does not set the child apart from the requester."""
    with MarketplaceProcess(tmp_path / "m.db") as market:
        assert os.getpgid(market.pid) == market.pid != os.getpgid(0)
        assert os.getsid(market.pid) == os.getsid(0)


def test_a_failure_inside_stops_it(tmp_path):
    with pytest.raises(RuntimeError, match="boom"):
        with MarketplaceProcess(tmp_path / "m.db") as market:
            pid = market.pid
            raise RuntimeError("boom")
    assert not _alive(pid)
    assert _marketplace_children() == []


def test_a_child_that_cannot_start_says_why(tmp_path):
    with pytest.raises(MarketplaceError, match="throttle|fault|spec|unknown"):
        MarketplaceProcess(tmp_path / "m.db", faults="nonsense=1").start()
    assert _marketplace_children() == []


def test_a_child_that_ignores_its_stdin_is_ended_by_pid(tmp_path, monkeypatch):
    import annotate.marketplace.process as process

    monkeypatch.setattr(process, "STOP_SECONDS", 0.5)
    market = MarketplaceProcess(tmp_path / "m.db").start()
    pid = market.pid
    os.kill(pid, signal.SIGSTOP)  # cannot read its stdin's EOF, nor act on SIGTERM: only SIGKILL ends it
    market.stop()
    assert not _alive(pid)


def test_the_child_goes_when_its_parent_is_killed(tmp_path):
    """SIGKILL leaves the parent no cleanup: the child sees its stdin close and stops by itself."""
    script = textwrap.dedent(f"""
        import sys, time
        from annotate.marketplace.process import MarketplaceProcess
        market = MarketplaceProcess({str(tmp_path / "m.db")!r}).start()
        print(market.pid, flush=True)
        time.sleep(120)
    """)
    parent = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    try:
        child = int(parent.stdout.readline())
        assert _alive(child)
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait(timeout=10)
        assert _wait_gone(child), f"marketplace process {child} outlived its killed parent"
    finally:
        if parent.poll() is None:
            os.kill(parent.pid, signal.SIGKILL)
            parent.wait()
        parent.stdout.close()


def test_a_crowd_beside_it_sees_the_annotations(tmp_path):
    """The key is published in the parent, so the replay crowd's listing carries RequesterAnnotation."""
    with MarketplaceProcess(tmp_path / "m.db", mode="sandbox") as market:
        client = _client(market.url)
        html = ('<HTMLQuestion xmlns="http://mechanicalturk.amazonaws.com/AWSMechanicalTurkDataSchemas/'
                '2011-11-11/HTMLQuestion.xsd"><HTMLContent><![CDATA[<!DOCTYPE html><html><body>'
                '<form name="mturk_form" method="post" action="https://www.mturk.com/mturk/externalSubmit">'
                '<input type="hidden" name="assignmentId" value=""><input type="radio" name="label" value="a">'
                '<input type="radio" name="label" value="b"><input type="submit"></form></body></html>]]>'
                '</HTMLContent><FrameHeight>0</FrameHeight></HTMLQuestion>')
        hit = client.create_hit(Title="t", Description="d", Reward="0.05", MaxAssignments=1, LifetimeInSeconds=600,
                                AssignmentDurationInSeconds=60, Question=html, RequesterAnnotation="x/1")["HIT"]
        crowd = ReplayCrowd(market.url, {"x/1": [("AW1", "b")]}, shuffle=False)
        try:
            assert crowd.work() == 1
        finally:
            crowd._conn.close()
        [a] = client.list_assignments_for_hit(HITId=hit["HITId"])["Assignments"]
        assert a["WorkerId"] == "AW1" and "<FreeText>b</FreeText>" in a["Answer"]


def _tiny_dataset(root: Path, items: int = 12) -> Path:
    root.mkdir()
    rows = [{"item": f"i{i}", "worker": f"w{w}", "label": "pos" if (i + w) % 4 else "neg"}
            for i in range(items) for w in range(3)]
    pd.DataFrame(rows).to_csv(root / "answers.csv", index=False)
    pd.DataFrame({"item": [f"i{i}" for i in range(items)], "label": ["pos"] * items}).to_csv(root / "truth.csv",
                                                                                             index=False)
    return root


def test_replay_leaves_no_process_behind(tmp_path):
    summary = run_replay(_tiny_dataset(tmp_path / "tiny"), policy="agree", workdir=tmp_path, block=False,
                         own_process=True)
    assert summary["items"] == 12 and summary["n_scored"] == 12
    assert _marketplace_children() == []


def test_an_interrupted_replay_leaves_no_process_behind(tmp_path):
    def interrupt(*_):
        assert _marketplace_children() != []  # the replay's marketplace runs in a child process
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_replay(_tiny_dataset(tmp_path / "tiny"), policy="agree", workdir=tmp_path, block=False,
                   on_progress=interrupt, own_process=True)
    assert _marketplace_children() == []


def test_in_process_and_child_process_replays_agree(tmp_path):
    dataset = _tiny_dataset(tmp_path / "tiny")
    child = run_replay(dataset, policy="agree", seed=1, workdir=tmp_path / "a", block=False, own_process=True)
    inside = run_replay(dataset, policy="agree", seed=1, workdir=tmp_path / "b", block=False)
    assert _marketplace_children() == []
    for key in ("accuracy", "answers_per_item", "unresolved", "passes", "api_calls", "cost_usd"):
        assert child[key] == inside[key], key
