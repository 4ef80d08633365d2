"""A store that is damaged, read-only, or on a full disk, and two posts at once: one line and
exit 2 naming the file (never a traceback), the store left as it was, never a duplicate HIT.
Bugs (a bad query, a broken constraint, any other OSError) keep their traceback."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.store import Store
from annotate.workspace import Workspace
from conftest import REPO, all_hits, make_batch, mturk_client
from test_store_schema import labelled  # noqa: F401  (a real, harvested project home)

WRITERS = [["post", "{batch}"], ["harvest"]]
READERS = [["status", "--json"], ["workers", "--json"], ["export", "iris-small", "--out", "{out}", "--no-split"]]


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def snapshot(src, dst) -> None:
    """A copy of a store as one self-contained file (no -wal beside it)."""
    conn = sqlite3.connect(src)
    conn.execute("VACUUM INTO ?", [str(dst)])
    conn.close()


def one_error_line(output: str) -> str:
    lines = [line for line in output.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in output, output
    return lines[0]


def invoke(home, args, **fmt):
    return CliRunner().invoke(cli, ["--home", str(home), *[a.format(**fmt) for a in args]])


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_a_damaged_store_is_one_line_naming_it(labelled, tmp_path, damage):  # noqa: F811
    ws, _, _ = labelled
    home = Workspace(tmp_path / "home").ensure()
    if damage == "garbage":
        home.store_path.write_bytes(b"this is not SQLite\n" + os.urandom(6000))
    else:  # a copy cut short (a full disk, a bad sync): the header is right, the pages are not
        snapshot(ws.store_path, tmp_path / "whole.db")
        data = (tmp_path / "whole.db").read_bytes()
        home.store_path.write_bytes(data[: len(data) // 3])
    before = digest(home.store_path)
    batch = make_batch(tmp_path, items=2)
    for args in READERS + WRITERS:
        result = invoke(home.home, args, batch=batch, out=tmp_path / "out")
        assert result.exit_code == 2, (args, result.output, result.exception)
        line = one_error_line(result.output)
        assert str(home.store_path) in line and ("damaged" in line or "not an annotate store" in line), line
    assert digest(home.store_path) == before


# ------------------------------------------------------------------ read-only
def _can_drop_privileges() -> bool:
    if os.geteuid() != 0:
        return True
    return shutil.which("setpriv") is not None and subprocess.run(
        ["setpriv", "--bounding-set=-dac_override,-dac_read_search", "true"]).returncode == 0


RUN_COMMANDS = """
import json, sys
from click.testing import CliRunner
from annotate.cli import cli
home, commands = sys.argv[1], json.loads(sys.argv[2])
results = []
for args in commands:
    result = CliRunner().invoke(cli, ["--home", home, *args])
    results.append([result.exit_code, result.stdout, result.stderr, repr(result.exception)])
print(json.dumps(results))
"""


def run_unprivileged(home, commands: list[list[str]]) -> list[tuple[int, str, str]]:
    """(exit code, stdout, stderr) of each `annotate` command, in one process that file
    permissions bind: as root (the test container), root without the capabilities that override
    them."""
    command = [sys.executable, "-c", RUN_COMMANDS, str(home), json.dumps(commands)]
    if os.geteuid() == 0:
        command = ["setpriv", "--bounding-set=-dac_override,-dac_read_search", *command]
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    return [tuple(r[:3]) for r in json.loads(done.stdout.strip().splitlines()[-1])]


@pytest.fixture
def read_only_home(labelled, tmp_path):  # noqa: F811
    """A copy of a harvested home, made read-only by `chmod` (file, or file and directory)."""
    if not _can_drop_privileges():
        pytest.skip("running as root without setpriv: file permissions cannot bind this test")
    ws, name, reference = labelled
    home = tmp_path / "home"
    home.mkdir()

    def make(directory_too: bool, unmerged_wal: bool = False):
        if unmerged_wal:  # a writer's last changes still in annotate.db-wal (copied while it was open)
            snapshot(ws.store_path, tmp_path / "base.db")
            writer = sqlite3.connect(tmp_path / "base.db")
            writer.execute("PRAGMA journal_mode = wal")
            writer.execute("PRAGMA wal_autocheckpoint = 0")
            with writer:
                writer.execute("update labels set status = 'unresolved'")  # every item, only in the WAL
            shutil.copyfile(tmp_path / "base.db", home / "annotate.db")
            shutil.copyfile(tmp_path / "base.db-wal", home / "annotate.db-wal")
            writer.close()
            (home / "annotate.db-wal").chmod(0o444)
        else:
            snapshot(ws.store_path, home / "annotate.db")
        (home / "annotate.db").chmod(0o444)
        if directory_too:
            home.chmod(0o555)
        return home, name, reference

    yield make
    home.chmod(0o755)
    (home / "annotate.db").chmod(0o644)


@pytest.mark.parametrize("directory_too", [False, True], ids=["file-444", "file-444-dir-555"])
def test_a_read_only_store_can_be_read_but_not_written(read_only_home, tmp_path, directory_too):
    home, name, reference = read_only_home(directory_too)
    store = home / "annotate.db"
    before = digest(store)
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)

    batch = make_batch(tmp_path, items=2)
    commands = [["status", "--json"], ["workers", "--json"], ["export", name, "--out", str(out), "--no-split", "--json"],
                ["post", str(batch)], ["harvest"], ["export", name]]
    status, workers, export, post, harvest, export_home = run_unprivileged(home, commands)

    assert status[0] == 0, status
    [row] = json.loads(status[1].strip().splitlines()[-1])["batches"]
    assert row["batch"] == name and row["labelled"] > 0
    assert workers[0] == 0 and json.loads(workers[1])["workers"], workers
    assert export[0] == 0, export
    assert (out / name / f"{name}.csv").read_text() == reference.csv.read_text()
    for code, _, stderr in (post, harvest):
        assert code == 2, stderr
        line = one_error_line(stderr)
        assert "read-only" in line and str(home) in line, line
    if directory_too:  # the default export directory is inside the home: named, one line
        assert export_home[0] == 2, export_home
        assert str(home / "exports") in one_error_line(export_home[2])
    else:
        assert export_home[0] == 0, export_home
    assert digest(store) == before


def test_a_read_only_directory_still_shows_changes_left_in_the_wal(read_only_home, labelled):  # noqa: F811
    """The changes a writer left in annotate.db-wal are read too (not just the older main file)."""
    ws, _, _ = labelled
    home, name, _ = read_only_home(True, unmerged_wal=True)
    before = digest(home / "annotate.db"), digest(home / "annotate.db-wal")
    [(code, stdout, stderr)] = run_unprivileged(home, [["status", "--json"]])
    assert code == 0, stderr
    [row] = json.loads(stdout.strip().splitlines()[-1])["batches"]
    assert row["labelled"] == 0 and row["unresolved"] == row["items"]
    assert (digest(home / "annotate.db"), digest(home / "annotate.db-wal")) == before


# ------------------------------------------------------------------ disk full
def test_a_full_disk_is_one_line_and_nothing_half_written(ws, marketplace, tmp_path, monkeypatch):
    """SQLite's own "database or disk is full", from a store that may not grow."""
    Store(ws.store_path).close()
    real_init = Store.__init__

    def no_room(self, path, **kwargs):
        real_init(self, path, **kwargs)
        pages = self.db.execute("PRAGMA page_count").fetchone()[0]
        self.db.execute(f"PRAGMA max_page_count = {pages + 1}")

    monkeypatch.setattr(Store, "__init__", no_room)
    batch = make_batch(tmp_path, items=40)
    result = invoke(ws.home, ["post", str(batch), "--endpoint-url", marketplace.url])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result.output)
    assert str(ws.store_path) in line and "disk is full" in line, line
    monkeypatch.undo()
    assert Store(ws.store_path).batch_names() == []  # the failed write was rolled back whole
    assert all_hits(mturk_client(marketplace.url)) == []  # and nothing was bought


def test_a_full_disk_while_exporting_names_the_file_and_leaves_no_part(labelled, tmp_path, monkeypatch):  # noqa: F811
    ws, name, _ = labelled
    real_fdopen = os.fdopen

    class Full:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, text):
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(os, "fdopen", lambda fd, *a, **k: Full(real_fdopen(fd, *a, **k)))
    out = tmp_path / "out"
    result = invoke(ws.home, ["export", name, "--out", str(out), "--no-split", "--format", "csv"])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result.output)
    assert str(out / name / f"{name}.csv") in line and "No space left on device" in line, line
    assert [p for p in out.rglob("*") if p.is_file()] == []  # the batch's folder, and nothing in it


# ------------------------------------------------------------------ two posts at once
POST = """
import sys, time
from annotate.cli import main
time.sleep(max(0.0, float(sys.argv[1]) - time.time()))
sys.argv = ["annotate", *sys.argv[2:]]
main()
"""


def test_two_posts_at_once_from_one_home_make_each_hit_once(tmp_path):
    from annotate.marketplace import MarketplaceServer

    home = Workspace(tmp_path / "home").ensure()
    batch = make_batch(tmp_path, items=25)
    with MarketplaceServer(tmp_path / "market.db", faults="latency=0.01") as server:
        start = str(time.time() + 4.0)  # both past their imports, then at the same moment
        procs = [subprocess.Popen([sys.executable, "-c", POST, start, "--home", str(home.home), "post", str(batch),
                                   "--endpoint-url", server.url, "--json"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=REPO)
                 for _ in range(2)]
        try:
            outcomes = [(p.wait(timeout=120), p.stdout.read(), p.stderr.read()) for p in procs]
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
        hits = all_hits(mturk_client(server.url))
    for code, stdout, stderr in outcomes:
        assert code == 0 and "Traceback" not in stderr, stderr
    results = sorted((json.loads(stdout.strip().splitlines()[-1]) for _, stdout, _ in outcomes),
                     key=lambda r: r["created"])
    assert [r["created"] for r in results] == [0, 25] and results[0]["already_posted"] == 25
    assert len(hits) == 25 and len({h["RequesterAnnotation"] for h in hits}) == 25
    assert len(Store(home.store_path, readonly=True).hits("iris-small", created=True)) == 25


def test_a_second_post_waits_for_the_first(ws):
    """The lock itself: held, a second taker blocks (or, not waiting, is told who holds it)."""
    import threading

    from annotate.workspace import LockBusy

    order = []
    with ws.lock("post"):
        other = threading.Thread(target=lambda: (ws.lock("post").__enter__(), order.append("second")))
        other.start()
        other.join(0.5)
        assert other.is_alive() and order == []
        with pytest.raises(LockBusy, match=f"pid {os.getpid()}"):
            with ws.lock("post", wait=False):
                pass
        order.append("first")
    other.join(5)
    assert order == ["first", "second"]


# ------------------------------------------------------------------ what stays a traceback
@pytest.mark.parametrize("exc, exit_code, one_line", [
    (sqlite3.OperationalError("no such column: nope"), 1, False),          # a bad query: a bug
    (sqlite3.IntegrityError("UNIQUE constraint failed: batches.name"), 1, False),
    (FileNotFoundError(errno.ENOENT, "No such file or directory", "x.txt"), 1, False),
    (OSError(errno.EROFS, "Read-only file system", "/mnt/ro/file"), 2, True),
    (PermissionError(errno.EACCES, "Permission denied", "/srv/annotate.db"), 2, True),
])
def test_only_the_machines_state_becomes_one_line(ws, monkeypatch, exc, exit_code, one_line):
    import annotate.status

    def fail(*args, **kwargs):
        raise exc

    monkeypatch.setattr(annotate.status, "status", fail)
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "status"])
    assert result.exit_code == exit_code
    if one_line:
        assert one_error_line(result.output) == f"error: {exc.filename}: {exc.strerror}"
    else:
        assert result.exception is exc  # click's runner caught it: the real CLI prints the traceback


def test_a_sqlite_error_is_named_by_the_database_it_came_from(ws, tmp_path, monkeypatch):
    """A full disk under another database annotate keeps (the embedded marketplace's, which also
    says its `db_path`) names that file, not the store."""
    import annotate.status

    class OtherDatabase:
        def __init__(self, path):
            self.db_path = path
            self.conn = sqlite3.connect(path)
            self.conn.execute("create table t (x)")
            pages = self.conn.execute("PRAGMA page_count").fetchone()[0]
            self.conn.execute(f"PRAGMA max_page_count = {pages}")

        def write(self):
            with self.conn:
                self.conn.execute("insert into t values (?)", ["x" * 100_000])

    other = OtherDatabase(tmp_path / "market.db")
    monkeypatch.setattr(annotate.status, "status", lambda *a, **k: other.write())
    result = CliRunner().invoke(cli, ["--home", str(ws.home), "status"])
    assert result.exit_code == 2, (result.output, result.exception)
    line = one_error_line(result.output)
    assert line.startswith(f"error: {tmp_path / 'market.db'}: the disk is full"), line
