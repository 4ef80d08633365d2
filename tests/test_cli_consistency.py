"""The CLI read as a requester reads it in a cron log: output piped to a file is never wrapped or
cut, and the rough edges behave alike (unknown names exit 2, confirmations without a terminal say
"pass --yes", settings edited after posting are refused by name, dry runs validate offline)."""

from __future__ import annotations

import json
import socket
from datetime import datetime, timezone
import urllib.request
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.cli import train as train_cli
from annotate.config import load_batch
from annotate.marketplace import MarketplaceServer
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.sagemaker.settings import TrainingSettings
from annotate.store import Store
from annotate.workspace import Workspace
from conftest import all_hits, make_batch, mturk_client


def invoke(home: Path, *args: str):
    # CliRunner's streams are not terminals: exactly what `annotate … | cat` or cron sees.
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def line_with(output: str, text: str) -> str:
    [line] = [line for line in output.splitlines() if text in line]
    return line


@pytest.fixture
def deep_home(tmp_path):
    """A project home whose paths are longer than any terminal (and than the old 160 columns)."""
    home = tmp_path.joinpath(*["a-rather-deeply-nested-folder"] * 6) / "home"
    assert len(str(home)) > 180
    return Workspace(home).ensure()


def test_piped_output_is_never_wrapped_or_cut(deep_home, tmp_path):
    home = deep_home.home
    batch_dir = make_batch(tmp_path, items=4)
    with MarketplaceServer(deep_home.marketplace_db) as marketplace:
        posted = invoke(home, "post", str(batch_dir), "--endpoint-url", marketplace.url)
        assert posted.exit_code == 0, posted.output
        # Was "… (estimate $0.48, balance \n$10000.00)." at 80 columns.
        assert "estimate $0.48, balance $10000.00)." in line_with(posted.output, "Posted 4 HIT(s)")
        crowd = SimulatedCrowd(marketplace.url, load_batch(batch_dir).gold_annotations(), workers=8, seed=1)
        outputs = [posted.output]
        for _ in range(20):
            crowd.work()
            harvested = invoke(home, "harvest")
            assert harvested.exit_code == 0, harvested.output
            outputs.append(harvested.output)
            if "4/4" in harvested.output:
                break
        header = line_with(harvested.output, "new answers")
        assert all(column in header for column in ("batch", "quarantined", "decided", "API calls"))
        status = invoke(home, "status", "iris-small")
        workers = invoke(home, "workers", "iris-small")
        exported = invoke(home, "export", "iris-small")
        report_path = tmp_path.joinpath(*["another-long-folder-name-for-the-report"] * 5) / "report.html"
        outputs += [status.output, workers.output, exported.output]
    assert status.exit_code == workers.exit_code == exported.exit_code == 0
    assert all(c in line_with(status.output, "assignments") for c in ("batch", "committed", "budget", "API calls"))
    assert "estimated accuracy" in line_with(workers.output, "known answers right")
    files = list((deep_home.exports / "iris-small").iterdir())
    assert files and len(str(files[0])) > 200
    for path in files:
        assert line_with(exported.output, path.name).strip() == str(path)  # whole, on one line
    assert "Exported" in line_with(exported.output, "labelled item(s) of iris-small") and "validation):" in exported.output
    report = invoke(home, "report", "iris-small", "--out", str(report_path))
    assert report.exit_code == 0, report.output
    assert line_with(report.output, "Report for iris-small").endswith(str(report_path))
    outputs.append(report.output)
    assert not any("…" in output for output in outputs)


def test_workers_of_an_unknown_batch_exits_2(ws):
    result = invoke(ws.home, "workers", "nosuch")
    assert result.exit_code == 2
    assert "no batch named 'nosuch'" in result.output


def test_teardown_without_a_terminal_says_pass_yes(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=3)
    assert invoke(ws.home, "post", str(batch_dir), "--endpoint-url", marketplace.url).exit_code == 0
    refused = invoke(ws.home, "teardown", "--batch", "iris-small")
    assert refused.exit_code == 2, refused.output
    assert "pass --yes" in refused.output and "expire 3 open HIT(s) of batch iris-small" in refused.output
    client = mturk_client(marketplace.url)
    now = datetime.now(timezone.utc)
    assert all(h["Expiration"] > now for h in all_hits(client))  # nothing expired
    done = invoke(ws.home, "teardown", "--batch", "iris-small", "--yes")
    assert done.exit_code == 0, done.output
    assert "removed expire 3 open HIT(s)" in done.output
    assert all(h["Expiration"] <= datetime.now(timezone.utc) for h in all_hits(client))


def test_harvest_confirmation_without_a_terminal_says_pass_yes():
    from annotate.cli.batches import _confirm_or_refuse
    from annotate.errors import UserError

    with pytest.raises(UserError, match="pass --yes"):
        _confirm_or_refuse(False)("Post 3 HITs to PRODUCTION?")  # pytest's stdin is no terminal
    assert _confirm_or_refuse(True)("anything?") is True


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_preview_on_a_chosen_port(tmp_path):
    batch_dir = make_batch(tmp_path, items=2)
    port = _free_port()
    result = CliRunner().invoke(cli, ["preview", str(batch_dir), "--port", str(port), "--html",
                                      str(tmp_path / "page.html"), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["url"].startswith(f"http://127.0.0.1:{port}/worker/task?")
    assert "<form" in (tmp_path / "page.html").read_text()
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        refused = CliRunner().invoke(cli, ["preview", str(batch_dir), "--port", str(busy), "--html",
                                           str(tmp_path / "other.html")])
    assert refused.exit_code == 2 and "--port" in refused.output and f"port {busy}" in refused.output


def test_preview_serve_listens_on_the_port(tmp_path):
    from annotate.preview import preview

    batch_dir = make_batch(tmp_path, items=2)
    port = _free_port()
    seen = []

    def hold(result):  # what `annotate preview --serve --port N` holds open until Ctrl+C
        with urllib.request.urlopen(f"http://127.0.0.1:{port}" + result.url.split(str(port), 1)[1]) as response:
            seen.append(response.status)

    preview(batch_dir, hold=hold, port=port)
    assert seen == [200]


def test_post_refuses_settings_changed_since_posting(ws, marketplace, tmp_path):
    batch_dir = make_batch(tmp_path, items=3)
    assert invoke(ws.home, "post", str(batch_dir), "--endpoint-url", marketplace.url).exit_code == 0
    again = invoke(ws.home, "post", str(batch_dir))
    assert again.exit_code == 0 and "3 item(s) were already posted" in again.output  # unchanged: fine
    toml = batch_dir / "batch.toml"
    toml.write_text(toml.read_text().replace('reward = "0.05"', 'reward = "0.10"').replace("agree = 2", "agree = 3"))
    changed = invoke(ws.home, "post", str(batch_dir))
    assert changed.exit_code == 2, changed.output
    assert "consensus.agree 2 -> 3" in changed.output and "hit.reward '0.05' -> '0.10'" in changed.output
    assert "Posted" not in changed.output
    store = Store(ws.store_path)
    assert store.get_batch("iris-small")["config"]["hit"]["reward"] == "0.05"
    assert len(store.hits("iris-small", created=True)) == 3
    # Adding items is what re-posting is for: it still works once the settings are restored.
    toml.write_text(toml.read_text().replace('reward = "0.10"', 'reward = "0.05"').replace("agree = 3", "agree = 2"))
    assert invoke(ws.home, "post", str(batch_dir), "--dry-run").exit_code == 0


@pytest.fixture
def no_aws(monkeypatch, tmp_path):
    """No credentials and no region anywhere boto3 looks (environment, files, instance metadata)."""
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE",
                 "AWS_DEFAULT_PROFILE", "AWS_DEFAULT_REGION", "AWS_REGION", "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
                 "AWS_CONTAINER_CREDENTIALS_FULL_URI", "AWS_WEB_IDENTITY_TOKEN_FILE", "AWS_ROLE_ARN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def test_sandbox_dry_run_validates_offline_without_credentials(ws, tmp_path, no_aws):
    batch_dir = make_batch(tmp_path, items=3)
    result = invoke(ws.home, "post", str(batch_dir), "--target", "sandbox", "--dry-run", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    assert summary["dry_run"] and summary["balance_usd"] is None and summary["api_calls"] == {}
    assert summary["estimate_usd"] == "0.36" and "balance was not checked" in summary["notes"][0]
    shown = invoke(ws.home, "post", str(batch_dir), "--target", "sandbox", "--dry-run")
    assert "Would post 3 HIT(s)" in shown.output and "no AWS credentials" in shown.output
    assert Store(ws.store_path).batch_names() == []
    # Still validated: a reward MTurk would refuse fails the offline dry run with exit 2.
    bad = make_batch(tmp_path / "bad", items=3, hit__reward='"-1"')
    refused = invoke(ws.home, "post", str(bad), "--target", "sandbox", "--dry-run")
    assert refused.exit_code == 2 and "reward" in refused.output


def test_aws_train_dry_run_names_every_missing_setting(tmp_path, monkeypatch, no_aws):
    monkeypatch.setattr(train_cli, "_settings", lambda ws, batch: TrainingSettings(features=["x"]))
    exported = []
    monkeypatch.setattr(train_cli, "_export", lambda *a: exported.append(a))
    result = invoke(tmp_path, "train", "iris", "--target", "aws", "--dry-run")
    assert result.exit_code == 2, result.output
    assert "no AWS region" in result.output and "no execution role" in result.output
    assert "credentials" not in result.output  # a dry run sends nothing: it needs none
    assert exported == []
    sent = invoke(tmp_path, "train", "iris", "--target", "aws")
    assert sent.exit_code == 2
    assert all(m in sent.output for m in ("no AWS region", "no execution role", "no AWS credentials"))


def test_watch_shows_each_pass_and_the_totals(ws, marketplace, tmp_path):
    import re

    batch_dir = make_batch(tmp_path, items=4)
    assert invoke(ws.home, "post", str(batch_dir), "--endpoint-url", marketplace.url).exit_code == 0
    crowd = SimulatedCrowd(marketplace.url, load_batch(batch_dir).gold_annotations(), workers=8, seed=1)
    crowd.start(interval=0.05)
    try:
        result = invoke(ws.home, "harvest", "--watch", "--interval", "0.3", "--timeout", "120")
    finally:
        crowd.stop()
    assert result.exit_code == 0, result.output
    passes = re.findall(r"^pass (\d+): iris-small: \d/4 decided, \+(\d+) answers \((\d+) in all\)", result.output, re.M)
    assert [int(n) for n, _, _ in passes] == list(range(1, len(passes) + 1))
    running = 0
    for _, new, in_all in passes:
        running += int(new)
        assert int(in_all) == running
    stored = sum(Store(ws.store_path).assignment_counts("iris-small").values())
    assert running == stored
    assert f"Harvest: {len(passes)} pass(es) in all" in result.output
    [row] = [line for line in result.output.splitlines() if line.strip("│ ").startswith("iris-small")]
    assert row.split("│")[2].strip() == str(stored)  # the table's "new answers": every pass's, not the last one's


def test_stderr_messages_are_whole_off_a_terminal(capsys):
    """What demo's "Look around:" line and replay's summary go through: one line, however long."""
    from rich.table import Table

    from annotate.cli._common import console

    err = console(stderr=True)
    long_home = "/tmp/" + "/".join(["a-folder-with-a-long-name"] * 12) + "/annotate-demo/.annotate"
    err.print(f"Look around: annotate --home {long_home} status digits")
    table = Table(title="Replay")
    table.add_column(style="bold")
    table.add_column()
    table.add_row("workdir", long_home)
    err.print(table)
    lines = capsys.readouterr().err.splitlines()
    assert lines[0] == f"Look around: annotate --home {long_home} status digits"
    assert any(line.rstrip(" │").endswith(long_home) for line in lines[1:]) and "…" not in "".join(lines)


def test_progress_bars_only_on_a_terminal_and_never_with_quiet(ws, marketplace, tmp_path, monkeypatch):
    first, second, third = (make_batch(tmp_path / n, name=f"iris-{n}", items=3) for n in ("a", "b", "c"))
    logged = invoke(ws.home, "post", str(first), "--endpoint-url", marketplace.url)
    assert logged.exit_code == 0 and "Creating HITs" not in logged.output  # a log gets no bar
    monkeypatch.setenv("FORCE_COLOR", "1")  # rich then draws as on a terminal (https://force-color.org)
    shown = invoke(ws.home, "post", str(second), "--endpoint-url", marketplace.url)
    assert shown.exit_code == 0 and "Creating HITs" in shown.stderr and "Creating HITs" not in shown.stdout
    quiet = CliRunner().invoke(cli, ["--home", str(ws.home), "--quiet", "post", str(third), "--endpoint-url",
                                     marketplace.url])
    assert quiet.exit_code == 0 and "Creating HITs" not in quiet.output
    assert "Posted 3 HIT(s) for batch iris-c" in click.unstyle(quiet.output)  # FORCE_COLOR colours it
