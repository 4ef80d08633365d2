"""A requester's rough edges (issue 17): exports that never replace another batch's files and
replace their own whole; `source-ref` written alike in the manifest and the CSV; demos in a fresh
folder each run; `annotate browse` (Datasette) with described tables and canned queries, read-only;
progress bars only on a terminal and never with --quiet."""

from __future__ import annotations

import csv
import json
import os
import pty
import select
import shutil
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.config import load_batch
from annotate.export import export_batch
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.store import SCHEMA, Store
from annotate.workspace import Workspace
from conftest import EXAMPLES, make_batch, run_until_done
from processes import descendants, free_port, stop


def small_digits(root: Path, items: int = 12) -> Path:
    """The digits example (images, `source-ref` relative to the batch folder) cut to `items` rows."""
    batch = root / "digits"
    shutil.copytree(EXAMPLES / "digits", batch, ignore=shutil.ignore_patterns("__pycache__"))
    with open(EXAMPLES / "digits" / "items.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    with open(batch / "items.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows[: items + 1])
    return batch


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """One home with two labelled batches, iris-small (no media) and digits (images)."""
    from annotate.marketplace import MarketplaceServer

    root = tmp_path_factory.mktemp("project")
    ws = Workspace(root / "home").ensure()
    dirs = [make_batch(root, items=12), small_digits(root)]
    with MarketplaceServer(ws.marketplace_db) as server:
        for batch_dir in dirs:
            batch = load_batch(batch_dir)
            post_batch(ws, batch_dir, endpoint_url=server.url)
            run_until_done(ws, batch, server.url, SimulatedCrowd(server.url, batch.gold_annotations(), workers=9,
                                                                 seed=4, spammer_share=0.2))
    return ws, {d.name: d for d in dirs}


def invoke(ws, *args):
    return CliRunner().invoke(cli, ["--home", str(ws.home), *args])


# ------------------------------------------------------------------ exports: one folder per batch
def test_two_batches_exported_to_one_folder_keep_their_own_files(project, tmp_path):
    ws, _ = project
    out = tmp_path / "out"
    assert invoke(ws, "export", "digits", "--out", str(out)).exit_code == 0
    digits_files = {p: p.read_bytes() for p in (out / "digits").iterdir() if p.is_file()}
    assert invoke(ws, "export", "iris-small", "--out", str(out)).exit_code == 0
    # iris wrote its own folder; digits' train/validation files are untouched
    assert {p: p.read_bytes() for p in (out / "digits").iterdir() if p.is_file()} == digits_files
    for batch in ("digits", "iris-small"):
        names = sorted(p.name for p in (out / batch).iterdir())
        assert names == sorted([f"{batch}.manifest", f"{batch}.csv", "train.manifest", "validation.manifest",
                                "train.csv", "validation.csv"]), names
    ids = {b: {r["id"] for r in csv.DictReader((out / b / "train.csv").open())} for b in ("digits", "iris-small")}
    assert ids["digits"] and ids["iris-small"] and not ids["digits"] & ids["iris-small"]
    assert sorted(p.name for p in out.iterdir()) == ["digits", "iris-small"]  # nothing else, no temp files


def test_reexport_replaces_its_own_files_whole(project, tmp_path, monkeypatch):
    ws, _ = project
    first = export_batch(ws, "iris-small", tmp_path, split=0.75)
    before = {p: p.read_bytes() for p in first.files}
    # a failure while writing (a full disk on the third file) leaves the previous export as it was
    import annotate.export as export_module

    real_stage, calls = export_module._stage, []

    def failing(path, text):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(28, "No space left on device")
        return real_stage(path, text)

    monkeypatch.setattr(export_module, "_stage", failing)
    with pytest.raises(OSError):
        export_batch(ws, "iris-small", tmp_path, split=0.5)
    monkeypatch.undo()
    assert {p: p.read_bytes() for p in first.files} == before
    assert sorted(p.name for p in first.dir.iterdir()) == sorted(p.name for p in first.files)  # no temp files left
    # a re-export without the split: the folder holds that export only (no stale train.*)
    again = export_batch(ws, "iris-small", tmp_path, split=None)
    assert sorted(p.name for p in again.dir.iterdir()) == ["iris-small.csv", "iris-small.manifest"]
    assert again.manifest.read_bytes() == before[first.manifest]


def test_train_reads_the_batch_folder(project, tmp_path):
    """`annotate train` (local) exports to <home>/exports/<batch>/ and trains on that batch's files."""
    ws, _ = project
    result = invoke(ws, "train", "iris-small", "--job", "iris-small-folders", "--json")
    assert result.exit_code == 0, result.output
    assert (ws.exports / "iris-small" / "train.csv").is_file()
    assert not (ws.exports / "train.csv").exists()


# ------------------------------------------------------------------ source-ref: one flag, both files
def refs(result) -> tuple[list[str], list[str]]:
    manifest = [json.loads(line)["source-ref"] for line in result.manifest.read_text().splitlines()]
    table = [r["source-ref"] for r in csv.DictReader(result.csv.open(newline=""))]
    return manifest, table


def test_source_ref_absolute_by_default_in_manifest_and_csv(project, tmp_path):
    ws, dirs = project
    manifest, table = refs(export_batch(ws, "digits", tmp_path, split=None))
    assert manifest == table and len(manifest) > 0
    for ref in table:
        assert os.path.isabs(ref) and Path(ref).is_file(), ref
        assert Path(ref).parent == dirs["digits"] / "images"


def test_source_ref_s3_in_manifest_and_csv(project, tmp_path):
    ws, _ = project
    result = invoke(ws, "export", "digits", "--out", str(tmp_path), "--no-split", "--source-ref", "s3",
                    "--s3-prefix", "s3://my-bucket/media/digits/", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.strip().splitlines()[-1])
    manifest = [json.loads(line)["source-ref"] for line in Path(summary["manifest"]).read_text().splitlines()]
    table = [r["source-ref"] for r in csv.DictReader(open(summary["csv"], newline=""))]
    assert manifest == table
    assert all(ref.startswith("s3://my-bucket/media/digits/images/digit-") and ref.endswith(".png") for ref in table)
    # --s3-prefix alone means s3 as well
    alone = invoke(ws, "export", "digits", "--out", str(tmp_path / "b"), "--no-split", "--s3-prefix", "s3://b/p")
    assert alone.exit_code == 0, alone.output
    assert refs_in(tmp_path / "b" / "digits" / "digits.csv")[0].startswith("s3://b/p/images/")


def refs_in(path: Path) -> list[str]:
    return [r["source-ref"] for r in csv.DictReader(path.open(newline=""))]


@pytest.mark.parametrize("args, message", [
    (["--source-ref", "s3"], "--s3-prefix"),
    (["--source-ref", "s3", "--s3-prefix", "my-bucket/x"], "s3://"),
    (["--source-ref", "absolute", "--s3-prefix", "s3://b/p"], "--s3-prefix goes with --source-ref s3"),
])
def test_source_ref_flag_mistakes_exit_2_and_write_nothing(project, tmp_path, args, message):
    ws, _ = project
    result = invoke(ws, "export", "digits", "--out", str(tmp_path / "out"), *args)
    assert result.exit_code == 2 and message in result.output, result.output
    assert not (tmp_path / "out").exists()


# ------------------------------------------------------------------ demo: a fresh folder each run
def test_demo_runs_in_a_fresh_folder_unless_told_to_reuse(tmp_path):
    from annotate.demo import demo_folder

    first = demo_folder(tmp_path)
    (first / "mine.txt").write_text("kept")
    second = demo_folder(tmp_path)
    assert (first.name, second.name) == ("run-1", "run-2")
    assert (first / "mine.txt").read_text() == "kept"  # an earlier run is never touched
    (second / "old.txt").write_text("from the last run")
    reused = demo_folder(tmp_path, reuse=True)
    assert reused == second and not any(reused.iterdir())  # the latest one, emptied
    assert (first / "mine.txt").exists()


def test_demo_cli_keeps_every_run_unless_told_to_reuse(tmp_path, monkeypatch):
    """As scripts/demo runs it (`cd $DEMO_DIR && annotate demo …`): run-1, then run-2 beside it, then
    --reuse runs in run-2 again; run-1 is never touched, and the figures are the same in each."""
    monkeypatch.chdir(tmp_path)
    outputs = []
    for extra in ([], [], ["--reuse"]):
        result = CliRunner().invoke(cli, ["demo", "--example", "words-text", "--no-train", "--json", *extra],
                                    catch_exceptions=False)
        assert result.exit_code == 0, result.output
        outputs.append(json.loads(result.output.strip().splitlines()[-1]))
    runs = tmp_path / "annotate-demo"
    assert [o["workdir"] for o in outputs] == [str(runs / "run-1"), str(runs / "run-2"), str(runs / "run-2")]
    assert sorted(p.name for p in runs.iterdir()) == ["run-1", "run-2"]
    assert all(Path(o["manifest"]).is_file() for o in outputs)  # the first run's export is still there
    figures = [{k: v for k, v in o.items() if k in ("items", "labelled", "accuracy", "cost_usd", "assignments")}
               for o in outputs]
    assert figures[0] == figures[1] == figures[2]  # same seed, same figures, whatever the folder


def test_scripts_demo_honours_demo_dir(tmp_path):
    """scripts/demo runs in $DEMO_DIR: its run folders go there, not into the repository."""
    text = (Path(__file__).resolve().parent.parent / "scripts" / "demo").read_text()
    assert 'cd "${DEMO_DIR:-$ROOT}"' in text and 'exec "$VENV/bin/annotate" demo "$@"' in text
    result = CliRunner().invoke(cli, ["demo", "--help"])
    assert "--reuse" in result.output and "run-<N>" in result.output


# ------------------------------------------------------------------ browse
def test_browse_metadata_describes_every_table_and_column():
    from annotate.browse import QUERIES, metadata

    meta = metadata(Path("/x/annotate.db"))
    tables = meta["databases"]["annotate"]["tables"]
    for name, spec in SCHEMA.items():
        assert tables[name]["description"], f"table {name} has no description in annotate/browse.py TABLES"
        for column in spec["columns"]:
            assert tables[name]["columns"].get(column), f"{name}.{column} has no description in annotate/browse.py"
    assert {"low_confidence_labels", "workers_by_accuracy", "spend_by_batch", "quarantined_answers",
            "unresolved_items"} <= set(QUERIES)


def test_browse_without_datasette_says_how_to_install(project, monkeypatch):
    ws, _ = project
    monkeypatch.setitem(sys.modules, "datasette", None)  # as if it were not installed
    result = invoke(ws, "browse", "--no-open")
    assert result.exit_code == 2
    assert "pip install 'annotate[browse]'" in result.output


def test_browse_refuses_a_missing_store_and_a_busy_port(project, tmp_path):
    pytest.importorskip("datasette")
    result = CliRunner().invoke(cli, ["--home", str(tmp_path / "empty"), "browse", "--no-open"])
    assert result.exit_code == 2 and "post a batch first" in result.output, result.output
    ws, _ = project
    import socket

    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = invoke(ws, "browse", "--no-open", "--port", str(busy.getsockname()[1]))
    assert result.exit_code == 2 and "pass another --port" in result.output, result.output


def get_json(url: str):
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.loads(response.read())


def wait_for(url: str, proc: subprocess.Popen, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(f"annotate browse exited with {proc.returncode}: {proc.stderr.read()}")
        try:
            return get_json(url)
        except (urllib.error.URLError, ConnectionError):
            time.sleep(0.2)
    raise AssertionError(f"{url} never answered")


def test_browse_serves_canned_queries_read_only(project, tmp_path):
    pytest.importorskip("datasette")
    ws, _ = project
    store = Store(ws.store_path)
    # a quarantined answer, an unresolved item and a bonus, so every canned query has rows to check
    store.db.execute("update assignments set quarantine = 'answer field missing' where assignment_id = "
                     "(select min(assignment_id) from assignments where batch = 'digits')")
    store.db.execute("update labels set status = 'unresolved' where batch = 'iris-small' and item_id = "
                     "(select min(item_id) from labels where batch = 'iris-small')")
    store.event("digits", "bonus", token="t1", worker="W1", assignment="A1", amount="0.50", fee="0.10", reason="x")
    store.db.conn.commit()
    port = free_port()
    base = f"http://127.0.0.1:{port}/annotate"
    proc = subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(ws.home), "browse", "--port", str(port),
                             "--no-open"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        tables = wait_for(f"{base}.json", proc)
        assert "labels" in [t["name"] for t in tables["tables"]]

        def query(name, **params):
            return get_json(f"{base}/{name}.json?" + urllib.parse.urlencode({"_shape": "array", **params}))

        low = query("low_confidence_labels", below="0.99", batch="")
        expected = {(r["batch"], r["item_id"]) for r in store.db.query(
            "select batch, item_id from labels where status = 'labelled' and confidence < 0.99")}
        assert {(r["batch"], r["item_id"]) for r in low} == expected and expected
        assert [r["confidence"] for r in low] == sorted(r["confidence"] for r in low)
        default = query("low_confidence_labels", batch="digits", below="")
        assert all(r["batch"] == "digits" and r["confidence"] < 0.8 for r in default)

        workers = query("workers_by_accuracy", batch="digits")
        mine = {r["worker_id"]: r for r in store.workers("digits")}
        assert {r["worker_id"] for r in workers} == set(mine)
        assert all(r["answers"] == mine[r["worker_id"]]["answers"] for r in workers)
        skills = [r["estimated_accuracy"] for r in workers if r["estimated_accuracy"] is not None]
        assert skills == sorted(skills, reverse=True)

        spend = {r["batch"]: r for r in query("spend_by_batch")}
        assert set(spend) == {"digits", "iris-small"}
        for batch, row in spend.items():
            money = store.money(batch)
            assert Decimal(row["spent_usd"]) == money["spent"], batch
            assert Decimal(row["committed_usd"]) == money["committed"], batch
        assert spend["digits"]["bonuses"] == 1

        quarantined = query("quarantined_answers", batch="")
        assert [r["reason"] for r in quarantined] == ["answer field missing"]
        unresolved = query("unresolved_items", batch="iris-small")
        assert len(unresolved) == 1 and unresolved[0]["batch"] == "iris-small"
        progress = {r["batch"]: r for r in query("progress_by_batch")}
        assert progress["iris-small"]["unresolved"] == 1 and progress["iris-small"]["items"] == 12

        # Browsing never holds a lock: a harvest writes at once (no busy wait), and the new row shows.
        writer = Store(ws.store_path)
        writer.db.execute("PRAGMA busy_timeout = 0")
        writer.event("digits", "browse-check", n=1)
        rows = get_json(f"{base}/events.json?_shape=array&kind=browse-check")
        assert len(rows) == 1
        assert query("low_confidence_labels", below="0.99", batch="")  # still serving after the write
        # Datasette holds the store file open read-only (O_RDONLY), never for writing
        opened = [fd for fd in os.listdir(f"/proc/{proc.pid}/fd")
                  if os.readlink(f"/proc/{proc.pid}/fd/{fd}") == str(ws.store_path.resolve())]
        assert opened
        for fd in opened:
            flags = int(Path(f"/proc/{proc.pid}/fdinfo/{fd}").read_text().split("flags:")[1].split()[0], 8)
            assert flags & os.O_ACCMODE == os.O_RDONLY, oct(flags)
    finally:
        code = stop(proc)
    assert code in (0, -2, 1, 130), proc.stderr.read()
    assert proc.pid not in descendants(os.getpid())
    with pytest.raises((urllib.error.URLError, ConnectionError)):
        get_json(f"{base}.json")


def test_browse_opens_the_store_read_only():
    from annotate.browse import serve_args

    args = serve_args(Path("/h/annotate.db"), Path("/tmp/m.json"), port=9, open_browser=False)
    assert "--immutable" not in args and "-i" not in args  # ?mode=ro: a harvest may still write
    assert "--open" not in args and args[args.index("--host") + 1] == "127.0.0.1"


# ------------------------------------------------------------------ progress bars: terminal only
def run_on_terminal(args: list[str], cwd: Path, timeout: float = 120.0) -> tuple[int, str]:
    """Run `python -m annotate ARGS` with stderr on a pseudo-terminal (stdout piped); return its
    exit code and everything it drew on the terminal."""
    main, tty = pty.openpty()
    env = {**os.environ, "TERM": "xterm-256color", "COLUMNS": "120", "LINES": "40"}
    env.pop("NO_COLOR", None)
    proc = subprocess.Popen([sys.executable, "-m", "annotate", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=tty, stdin=subprocess.DEVNULL, env=env)
    os.close(tty)
    drawn = b""
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([main], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(main, 65536)
                except OSError:  # the terminal closed: the process has gone
                    break
                if not chunk:
                    break
                drawn += chunk
            elif proc.poll() is not None:
                break
        proc.stdout.read()
    finally:
        if proc.poll() is None:
            stop(proc)
        os.close(main)
    return proc.wait(), drawn.decode("utf-8", "replace")


def test_export_and_train_bars_on_a_terminal_only(project, tmp_path):
    ws, _ = project
    home = ["--home", str(ws.home)]
    code, drawn = run_on_terminal([*home, "export", "digits", "--out", str(tmp_path / "tty")], tmp_path)
    assert code == 0 and "Exporting digits" in drawn, drawn
    code, drawn = run_on_terminal([*home, "--quiet", "export", "digits", "--out", str(tmp_path / "q")], tmp_path)
    assert code == 0 and "Exporting" not in drawn and "━" not in drawn, drawn
    code, drawn = run_on_terminal([*home, "train", "iris-small", "--job", "tty-job"], tmp_path)
    assert code == 0 and "training iris-small locally" in drawn, drawn
    code, drawn = run_on_terminal([*home, "-q", "train", "iris-small", "--job", "tty-quiet"], tmp_path)
    assert code == 0 and "training iris-small locally" not in drawn, drawn
    # piped: no bar, no spinner, nothing but the lines themselves
    piped = subprocess.run([sys.executable, "-m", "annotate", *home, "export", "digits", "--out", str(tmp_path / "p")],
                           capture_output=True, text=True, cwd=tmp_path)
    assert piped.returncode == 0
    assert "Exporting digits" not in piped.stderr and "━" not in piped.stderr and "\x1b" not in piped.stderr
    assert piped.stderr.startswith("Exported ")
    trained = subprocess.run([sys.executable, "-m", "annotate", *home, "train", "iris-small", "--job", "piped-job"],
                             capture_output=True, text=True, cwd=tmp_path)
    assert trained.returncode == 0, trained.stderr
    assert "training iris-small locally" not in trained.stderr and "\x1b" not in trained.stderr


def test_aws_waits_feed_the_bar(monkeypatch):
    """train/deploy --target aws: each DescribeTrainingJob/DescribeEndpoint the wait sees becomes the bar's
    text (job, status, elapsed); the bar is the same wait_bar as the local waits (terminal only)."""
    from annotate.cli import train as train_cli

    class Line:
        text = ""

        def update(self, text):
            self.text = text

    line = Line()
    train_cli._progress(line)({"TrainingJobName": "j", "TrainingJobStatus": "InProgress",
                               "SecondaryStatus": "Training", "ElapsedSeconds": 125})
    assert line.text == "j: InProgress (Training), 2 min 05 s"
    source = Path(train_cli.__file__).read_text()
    assert ".status(" not in source  # rich's status spinner ignored --quiet: every wait uses wait_bar
