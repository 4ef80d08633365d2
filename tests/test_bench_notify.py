"""scripts/bench_notify on 20 items: both modes run to the end in one run, and the JSON carries the
figures with sane values. Timing targets belong to the benchmark itself (1,000 items), not here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("moto.server")
SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_notify"


@pytest.fixture(scope="module")
def quick(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench-notify")
    proc = subprocess.run([sys.executable, str(SCRIPT), "--items", "20", "--rate", "20", "--workers", "8",
                           "--interval", "2", "--sweep-interval", "30", "--timeout", "240", "--json",
                           "--workdir", str(work / "w")], capture_output=True, text=True, timeout=400)
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1]), proc.stdout


def test_both_modes_finish_with_the_same_crowd(quick):
    res, stdout = quick
    for mode in ("polling", "notifications"):
        r = res[mode]
        assert r["done"] and r["labelled"] > 0 and r["accuracy"] > 0.6
        assert 2 * 20 <= r["assignments"] <= 5 * 20
        # Every answer approved once, by the harvest.
        assert r["mturk_calls"]["ApproveAssignment"] == r["assignments"] == r["approval_latency"]["n"]
        lat = r["approval_latency"]
        assert 0 <= lat["median"] <= lat["p90"]
        assert r["mturk_calls_per_assignment"] == pytest.approx(r["mturk_calls_total"] / r["assignments"], abs=1e-3)
    assert "submit -> approval, median (s)" in stdout and "MTurk calls per assignment" in stdout


def test_notifications_replace_listing_with_events(quick):
    res, _ = quick
    polled, notified = res["polling"], res["notifications"]
    # One sweep at start (the next is 30 s away): the events named every HIT to read.
    assert notified["mturk_calls"].get("ListReviewableHITs", 0) == 1
    assert polled["mturk_calls"]["ListReviewableHITs"] >= 2
    assert notified["mturk_calls"]["UpdateNotificationSettings"] == 1
    assert "UpdateHITReviewStatus" not in notified["mturk_calls"] and polled["mturk_calls"]["UpdateHITReviewStatus"] == 20
    assert notified["sqs_calls"]["ReceiveMessage"] >= 1 and notified["sqs_calls"]["DeleteMessageBatch"] >= 1
    assert notified["calls_per_assignment_with_sqs"] > notified["mturk_calls_per_assignment"]
    assert set(res["targets"]) == {"median_latency_le_2s", "fewer_mturk_calls_per_assignment",
                                   "fewer_calls_per_assignment_with_sqs"}


def test_unknown_mode_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--modes", "polling,nope"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr
