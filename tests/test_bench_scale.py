"""scripts/bench_scale on a tiny size: it runs, and its JSON carries the fields with sane values.
Timing targets belong to the benchmark itself, not to this test."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_scale"


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    work = tmp_path_factory.mktemp("bench-scale")
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--items", "120", "--latency", "0", "--parts", "post,harvest,naive,export",
         "--export-items", "300", "--json", "--workdir", str(work / "w")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    last = proc.stdout.strip().splitlines()[-1]
    return json.loads(last), proc.stdout


def test_post_and_harvest_figures(tiny):
    res, _ = tiny
    ours = res["ours"]
    assert res["items"] == 120 and ours["post"]["hits_created"] == 120
    assert ours["post"]["api_calls"]["CreateHITWithHITType"] == 120
    h = ours["harvest"]
    assert h["decided"] == 120 and h["labelled"] + h["unresolved"] == 120
    assert h["seconds"] > 0 and h["passes"] >= 1
    assert h["accuracy"] > 0.7  # the simulated crowd is mostly right; agree-2 keeps most of it
    # at least two answers per item, at most max_assignments (5)
    assert 2 * 120 <= ours["assignments_bought"] <= 5 * 120
    assert h["api_calls"]["ApproveAssignment"] == ours["assignments_bought"]
    # the client's count and the marketplace's own count agree
    assert ours["marketplace"]["matches_client_count"] is True
    assert ours["calls_total"] == ours["marketplace"]["total_api_calls"]
    assert ours["calls_per_assignment"] == pytest.approx(ours["calls_total"] / ours["assignments_bought"], abs=1e-3)
    f = ours["formula"]
    assert f["limit"] == pytest.approx(1.3 * ours["assignments_bought"] + ours["hits_created"], abs=0.1)
    assert f["met"] == (f["calls"] <= f["limit"])
    assert 0 < h["peak_rss_mb"] < 2000 and 0 < ours["post"]["peak_rss_mb"] < 2000
    assert h["phases"]["pass total"] <= h["seconds"] + 0.01


def test_naive_baseline_and_ratios(tiny):
    res, _ = tiny
    naive = res["naive"]
    assert naive["items"] == 120 and naive["labelled"] + naive["unresolved"] == 120
    assert naive["api_calls"]["GetHIT"] >= 120 and naive["api_calls"]["ListAssignmentsForHIT"] >= 120
    assert naive["api_calls"]["ApproveAssignment"] == naive["assignments_bought"]
    assert naive["accuracy"] > 0.7
    assert res["ratio_seconds"] > 0 and res["ratio_calls"] > 0


def test_export_and_targets(tiny):
    res, stdout = tiny
    e = res["export"]
    assert e["items"] == 300 and e["manifest_lines"] == 300
    assert e["n_train"] + e["n_validation"] == 300 and e["seconds"] > 0
    assert set(res["targets"]) >= {"formula", "memory_lt_500mb", "naive_ratio_ge_10", "export_le_5s"}
    assert "ds" not in res and "saturate" not in res  # only the parts asked for
    assert "post + harvest" in stdout and "naive sequential harvester" in stdout


def test_unknown_part_is_refused():
    proc = subprocess.run([sys.executable, str(SCRIPT), "--parts", "post,nope"], capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 2 and "nope" in proc.stderr
