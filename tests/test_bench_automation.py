"""scripts/bench_automation in its quick form (a few dozen digits): it runs both sides in one run and
its figures add up. The ≥ 50% target belongs to the full run (1,797 digits), not to this test."""

from __future__ import annotations

import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "bench_automation"


def test_bench_automation_quick_form(tmp_path):
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--items", "60", "--initial", "0.5", "--step", "0.25", "--target-accuracy", "0.8",
         "--min-validation", "10", "--json", "--workdir", str(tmp_path / "w")],
        capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    humans, automated = result["humans_only"], result["automated"]
    assert result["items"] == humans["items"] == automated["items"] == 60
    # humans only: a HIT per item, nothing by machine, no compute
    assert humans["hits"] == 60 and humans["machine_labelled"] == 0 and humans["compute_seconds"] == 0
    # automated: every item has a HIT or a machine label, never both; the model was trained
    assert automated["hits"] + automated["machine_labelled"] == 60 and automated["hits"] >= 30
    assert automated["rounds"] >= 1 and automated["compute_seconds"] > 0
    for side in (humans, automated):
        assert 0.8 <= side["accuracy"] <= 1 and side["wall_seconds"] > 0
        total = Decimal(side["crowd_cost_usd"]) + Decimal(side["compute_cost_usd"])
        assert abs(total - Decimal(side["total_cost_usd"])) < Decimal("0.0001")
    assert result["crowd_cost_saving"] == round(
        1 - float(automated["crowd_cost_usd"]) / float(humans["crowd_cost_usd"]), 4)
    assert "ml.m5.large" in result["compute_price"]
    # the table form prints the same run's figures side by side
    table = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True, text=True, timeout=60)
    assert table.returncode == 0 and "--items" in table.stdout
