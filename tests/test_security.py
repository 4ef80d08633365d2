"""Security: no credentials in the store, logs or exports; the marketplace binds loopback;
production needs --target production and a confirmation; overlapping cron harvests step aside."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

from click.testing import CliRunner

from annotate.cli import cli
from annotate.marketplace import MarketplaceServer
from annotate.store import Store
from conftest import make_batch
from processes import stop

SECRET_ID = "AKIAANNOTATETESTKEY01"
SECRET_KEY = "annotate/test+secret/KEY/never-to-be-written-anywhere"


def test_no_credentials_in_store_logs_or_exports(tmp_path, monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", SECRET_ID)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    result = CliRunner().invoke(cli, ["demo", "--example", "iris", "--workdir", str(tmp_path), "--no-train", "--json"])
    assert result.exit_code == 0, result.output
    for path in Path(tmp_path).rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert SECRET_ID.encode() not in data and SECRET_KEY.encode() not in data, path
    assert SECRET_ID not in result.output and SECRET_KEY not in result.output


def test_marketplace_binds_loopback_by_default(tmp_path):
    with MarketplaceServer(tmp_path / "m.db") as server:
        assert server.url.startswith("http://127.0.0.1:")


def _production_batch(ws, tmp_path):
    """A batch the store says was posted to production (no real MTurk is touched by these tests)."""
    batch_dir = make_batch(tmp_path, items=2)
    store = Store(ws.store_path)
    store.add_batch({"name": "iris-small", "uid": "u1", "dir": str(batch_dir), "target": "production",
                     "endpoint_url": None, "hit_type_id": "HT1", "task_type": "image-classification",
                     "label_attribute": "species", "labels": ["setosa"], "answer_field": "species",
                     "reward": "0.05", "lifetime": 60, "masters": 0, "budget_usd": None, "policy": "agree",
                     "config": {}, "created_at": "x", "posted_at": "x"}, [])
    return batch_dir


def test_production_needs_the_explicit_target_and_a_confirmation(ws, tmp_path, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID", raising=False)
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY", raising=False)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    batch_dir = _production_batch(ws, tmp_path)
    home = ["--home", str(ws.home)]
    runner = CliRunner()
    # Never implied: a production batch is untouchable without --target production.
    for args in (["harvest", "iris-small"], ["post", str(batch_dir)]):
        result = runner.invoke(cli, [*home, *args])
        assert result.exit_code == 2 and "--target production" in result.output, result.output
    # A bare cron harvest leaves it alone, and says so.
    result = runner.invoke(cli, [*home, "harvest", "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output.strip().splitlines()[-1])["skipped_production"] == ["iris-small"]
    # Explicit, but unattended without --yes: refused before any call.
    result = runner.invoke(cli, [*home, "harvest", "--target", "production"])
    assert result.exit_code == 2 and "--yes" in result.output, result.output
    # Explicit and confirmed, but no credentials: refused, naming what is missing.
    result = runner.invoke(cli, [*home, "harvest", "--target", "production", "--yes"])
    assert result.exit_code == 2 and "no AWS credentials" in result.output, result.output


def test_overlapping_cron_harvests_never_both_run(ws, tmp_path):
    """Two `annotate harvest` processes at once (a slow marketplace, so they overlap): one works,
    the other exits 0 saying another harvest is running; the store stays consistent."""
    from annotate.config import load_batch
    from annotate.marketplace.crowd import SimulatedCrowd
    from annotate.post import post_batch

    batch_dir = make_batch(tmp_path, items=40)
    with MarketplaceServer(ws.marketplace_db, faults="latency=0.03") as server:
        post_batch(ws, batch_dir, endpoint_url=server.url)
        crowd = SimulatedCrowd(server.url, load_batch(batch_dir).gold_annotations(), workers=10, seed=3)
        busy = 0
        for _ in range(3):
            crowd.work()
            procs = [subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(ws.home), "harvest", "--json"],
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=dict(os.environ))
                     for _ in range(2)]
            try:
                outs = [p.communicate(timeout=300) for p in procs]
            finally:  # a hung harvest is stopped by its pid, not left running after the test
                for p in procs:
                    stop(p, signal.SIGTERM, timeout=10)
            assert all(p.returncode == 0 for p in procs), [e.decode()[-2000:] for _, e in outs]
            results = [json.loads(o.decode().strip().splitlines()[-1]) for o, _ in outs]
            busy += sum(r["busy"] for r in results)
            assert sum(not r["busy"] for r in results) >= 1
        assert busy >= 1
    store = Store(ws.store_path)
    ids = [r["assignment_id"] for r in store.db["assignments"].rows]
    assert len(ids) == len(set(ids))
    assert store.db["extensions"].count == len({r["token"] for r in store.db["extensions"].rows})
