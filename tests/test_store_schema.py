"""Schema versions: older stores are migrated (data intact, exports unchanged), newer ones are
refused untouched with exit 2 naming both versions, and a failed step changes nothing."""

from __future__ import annotations

import hashlib
import sqlite3
import subprocess
import sys

import pytest
import sqlite_utils
from click.testing import CliRunner
from sqlite_utils import Migrations

import annotate.migrations as migrations
import annotate.store as store_module
from annotate.cli import cli
from annotate.config import load_batch
from annotate.export import export_batch
from annotate.marketplace.crowd import SimulatedCrowd
from annotate.post import post_batch
from annotate.status import status
from annotate.store import INDEXES, SCHEMA, SCHEMA_VERSION, Store, StoreTooNew
from annotate.workspace import Workspace
from conftest import make_batch, run_until_done

# The tables exactly as annotate 0.1.0's first release created them (sqlite_master), before
# `value`, `known`, `expires_at`, `lifetime` and the gold counts were added under the same version.
FIRST_RELEASE_SQL = [
    'CREATE TABLE "batches" ( "name" TEXT PRIMARY KEY, "uid" TEXT, "dir" TEXT, "target" TEXT, "endpoint_url" TEXT, '
    '"hit_type_id" TEXT, "task_type" TEXT, "label_attribute" TEXT, "labels" TEXT, "answer_field" TEXT, "reward" TEXT, '
    '"masters" INTEGER, "budget_usd" TEXT, "policy" TEXT, "config" TEXT, "created_at" TEXT, "posted_at" TEXT )',
    'CREATE TABLE "items" ( "batch" TEXT, "item_id" TEXT, "position" INTEGER, "line" INTEGER, "data" TEXT, '
    '"gold" TEXT, PRIMARY KEY ("batch", "item_id") )',
    'CREATE TABLE "hits" ( "token" TEXT PRIMARY KEY, "batch" TEXT, "item_id" TEXT, "hit_id" TEXT, '
    '"max_assignments" INTEGER, "status" TEXT, "hit_status" TEXT, "created_at" TEXT, "reviewed" INTEGER )',
    'CREATE TABLE "assignments" ( "assignment_id" TEXT PRIMARY KEY, "hit_id" TEXT, "batch" TEXT, "item_id" TEXT, '
    '"worker_id" TEXT, "status" TEXT, "accept_time" TEXT, "submit_time" TEXT, "answer_xml" TEXT, "answer" TEXT, '
    '"label" TEXT, "quarantine" TEXT, "stored_at" TEXT, "approved_at" TEXT )',
    'CREATE TABLE "answers" ( "assignment_id" TEXT, "field" TEXT, "value" TEXT, PRIMARY KEY ("assignment_id", "field") )',
    'CREATE TABLE "extensions" ( "token" TEXT PRIMARY KEY, "batch" TEXT, "item_id" TEXT, "hit_id" TEXT, "round" INTEGER, '
    '"added" INTEGER, "max_after" INTEGER, "state" TEXT, "created_at" TEXT, "done_at" TEXT )',
    'CREATE TABLE "labels" ( "batch" TEXT, "item_id" TEXT, "status" TEXT, "label" TEXT, "confidence" REAL, '
    '"votes" TEXT, "answers" INTEGER, "decided_at" TEXT, PRIMARY KEY ("batch", "item_id") )',
    'CREATE TABLE "workers" ( "worker_id" TEXT PRIMARY KEY, "answers" INTEGER, "agreed" INTEGER, "skill" REAL, '
    '"blocked" INTEGER, "block_reason" TEXT, "updated_at" TEXT )',
    'CREATE TABLE "batch_workers" ( "batch" TEXT, "worker_id" TEXT, "answers" INTEGER, "skill" REAL, '
    '"updated_at" TEXT, PRIMARY KEY ("batch", "worker_id") )',
    'CREATE TABLE "events" ( "id" INTEGER PRIMARY KEY, "at" TEXT, "batch" TEXT, "kind" TEXT, "detail" TEXT )',
    'CREATE TABLE "api_calls" ( "batch" TEXT, "operation" TEXT, "calls" INTEGER, PRIMARY KEY ("batch", "operation") )',
    'CREATE INDEX "idx_hits_batch_item_id" ON "hits" ("batch", "item_id")',
    'CREATE INDEX "idx_hits_hit_id" ON "hits" ("hit_id")',
    'CREATE INDEX "idx_assignments_batch_item_id" ON "assignments" ("batch", "item_id")',
    'CREATE INDEX "idx_assignments_hit_id" ON "assignments" ("hit_id")',
    'CREATE INDEX "idx_extensions_batch_hit_id" ON "extensions" ("batch", "hit_id")',
]
TABLES = list(SCHEMA)


def digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def layout(db: sqlite_utils.Database) -> dict:
    """Tables as {name: ({column: type}, primary key)}, annotate's own tables only."""
    return {t: ({c.name: c.type for c in db[t].columns}, tuple(db[t].pks)) for t in TABLES}


def schema_of(path) -> tuple[int, list[str]]:
    db = sqlite_utils.Database(sqlite3.connect(f"file:{path}?mode=ro", uri=True))
    try:
        names = [r["name"] for r in db.query("select name from _sqlite_migrations order by id")] \
            if "_sqlite_migrations" in db.table_names() else []
        return db.execute("PRAGMA user_version").fetchone()[0], names
    finally:
        db.close()


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    """A real project home: a batch posted, worked by a simulated crowd, harvested to the end,
    and its export as the current annotate writes it."""
    from annotate.marketplace import MarketplaceServer

    root = tmp_path_factory.mktemp("labelled")
    ws = Workspace(root / "home").ensure()
    batch_dir = make_batch(root, items=12)
    batch = load_batch(batch_dir)
    with MarketplaceServer(ws.marketplace_db) as server:
        post_batch(ws, batch_dir, endpoint_url=server.url)
        run_until_done(ws, batch, server.url, SimulatedCrowd(server.url, batch.gold_annotations(), workers=9, seed=4))
    out = export_batch(ws, batch.name, root / "reference", split=0.75)
    return ws, batch.name, out


def old_store(src, dst, *, first_release: bool, user_version: int) -> None:
    """`dst`: the rows of the store at `src` in an older layout, as an older annotate left it."""
    target = sqlite_utils.Database(str(dst))
    if first_release:
        for sql in FIRST_RELEASE_SQL:
            target.execute(sql)
    else:  # today's layout, made the way annotate made it before schema versions were checked
        for name, spec in SCHEMA.items():
            target[name].create(spec["columns"], pk=spec["pk"])
        for table, cols in INDEXES:
            target[table].create_index(cols)
    target.execute("ATTACH DATABASE ? AS src", [str(src)])
    for table in TABLES:
        if not target[table].exists():
            continue  # a table the older layout did not have yet
        cols = ", ".join(f"[{c}]" for c in target[table].columns_dict)
        target.execute(f"INSERT INTO main.[{table}] ({cols}) SELECT {cols} FROM src.[{table}]")
    target.conn.commit()
    target.execute("DETACH DATABASE src")
    target.execute(f"PRAGMA user_version = {user_version}")
    target.close()


def test_a_new_store_has_the_layout_every_query_uses(tmp_path):
    """annotate.migrations builds annotate.store.SCHEMA: a column added to one and not the other fails here."""
    Store(tmp_path / "a.db").close()
    db = sqlite_utils.Database(str(tmp_path / "a.db"))
    want = {}
    for name, spec in SCHEMA.items():
        made = sqlite_utils.Database(memory=True)
        made[name].create(spec["columns"], pk=spec["pk"])
        want[name] = ({c.name: c.type for c in made[name].columns}, tuple(made[name].pks))
    assert layout(db) == want
    indexed = {(i.name and tuple(i.columns)) for t in TABLES for i in db[t].indexes}
    assert {tuple(cols) for _, cols in INDEXES} <= indexed
    assert schema_of(tmp_path / "a.db") == (SCHEMA_VERSION, migrations.STEPS)
    assert SCHEMA_VERSION == 4


@pytest.mark.parametrize("first_release, user_version", [(True, 1), (True, 0), (False, 0), (False, 1)],
                         ids=["first-release", "first-release-unversioned", "current-unversioned", "current-v1"])
def test_an_older_store_is_migrated_and_exports_the_same(labelled, tmp_path, first_release, user_version):
    ws, name, reference = labelled
    home = Workspace(tmp_path / "home").ensure()
    old_store(ws.store_path, home.store_path, first_release=first_release, user_version=user_version)
    before = sqlite_utils.Database(str(home.store_path))
    counts = {t: before[t].count if before[t].exists() else 0 for t in TABLES}
    assert ("value" in before["labels"].columns_dict) is not first_release
    before.close()

    store = Store(home.store_path)
    assert schema_of(home.store_path) == (SCHEMA_VERSION, migrations.STEPS)
    assert {t: store.db[t].count for t in TABLES} == counts  # every row kept
    assert layout(store.db) == layout(Store(tmp_path / "fresh.db").db)
    store.close()

    out = export_batch(home, name, tmp_path / "out", split=0.75)
    for attr in ("manifest", "csv", "train_csv", "validation_manifest"):
        assert getattr(out, attr).read_text() == getattr(reference, attr).read_text(), attr
    assert status(home, name)[0]["labelled"] == status(ws, name)[0]["labelled"] > 0
    Store(home.store_path).close()  # opening again does nothing more
    assert schema_of(home.store_path) == (SCHEMA_VERSION, migrations.STEPS)


def test_reading_an_older_store_never_writes_it(labelled, tmp_path):
    """status, export and workers read an old store through a migrated copy in memory."""
    ws, name, reference = labelled
    home = Workspace(tmp_path / "home").ensure()
    old_store(ws.store_path, home.store_path, first_release=True, user_version=1)
    before = digest(home.store_path)
    runner = CliRunner()
    for args in (["status", "--json"], ["workers", name, "--json"],
                 ["export", name, "--out", str(tmp_path / "out"), "--split", "0.75"]):
        result = runner.invoke(cli, ["--home", str(home.home), *args])
        assert result.exit_code == 0, result.output
    assert digest(home.store_path) == before and schema_of(home.store_path) == (1, [])
    assert (tmp_path / "out" / name / f"{name}.csv").read_text() == reference.csv.read_text()


def newer_store(path) -> None:
    """A store as a later annotate (the schema after this one's) leaves it."""
    Store(path).close()
    db = sqlite_utils.Database(str(path))
    db["_sqlite_migrations"].insert({"migration_set": "annotate", "name": "v99_from_the_future",
                                     "applied_at": "2027-01-01 00:00:00+00:00"})
    db["_annotate"].upsert({"key": "migrated_by", "value": "0.9.0"}, pk="key")
    db["hits"].transform(types={"max_assignments": str})  # a layout this annotate cannot read
    db.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    db.close()


def test_a_newer_store_is_refused_untouched(tmp_path):
    home = Workspace(tmp_path / "home").ensure()
    newer_store(home.store_path)
    before = digest(home.store_path)
    for readonly in (False, True):
        with pytest.raises(StoreTooNew) as err:
            Store(home.store_path, readonly=readonly)
        message = str(err.value)
        assert str(home.store_path) in message and f"schema version {SCHEMA_VERSION + 1}" in message and f"version {SCHEMA_VERSION}" in message
        assert "annotate 0.9.0" in message
    batch_dir = make_batch(tmp_path, items=2)
    for args in (["status"], ["export", "iris-small"], ["workers"], ["post", str(batch_dir)], ["harvest"]):
        result = CliRunner().invoke(cli, ["--home", str(home.home), *args])
        assert result.exit_code == 2, (args, result.output)
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and f"schema version {SCHEMA_VERSION + 1}" in lines[0] and f"version {SCHEMA_VERSION}" in lines[0], result.output
    assert digest(home.store_path) == before
    assert schema_of(home.store_path) == (SCHEMA_VERSION + 1, [*migrations.STEPS, "v99_from_the_future"])


def test_an_unknown_step_is_refused_even_at_the_same_version(tmp_path):
    """A store migrated by a diverging annotate (a step this one never had) is not read as ours."""
    Store(tmp_path / "a.db").close()
    db = sqlite_utils.Database(str(tmp_path / "a.db"))
    db["_sqlite_migrations"].update(2, {"name": "v2_something_else"})
    db.close()
    with pytest.raises(StoreTooNew, match=f"schema version {SCHEMA_VERSION}"):
        Store(tmp_path / "a.db")


def schema_3(monkeypatch, state: dict) -> None:
    """annotate with a (test-only) schema 3 whose step uses table.transform; with state["fail"]
    the step raises after transforming."""
    extended = Migrations(migrations.MIGRATION_SET)
    for name in migrations.STEPS:  # every released step, then the test's
        extended(name=name)(getattr(migrations, name))

    @extended(name="v3_rename_block_reason")
    def v3(db):
        db["workers"].transform(rename={"block_reason": "blocked_because"}, types={"agreed": float})
        if state["fail"]:
            raise RuntimeError("step 3 failed")

    monkeypatch.setattr(store_module, "MIGRATIONS", extended)
    monkeypatch.setattr(store_module, "STEPS", [*migrations.STEPS, "v3_rename_block_reason"])
    monkeypatch.setattr(store_module, "SCHEMA_VERSION", SCHEMA_VERSION + 1)


def test_a_transform_step_migrates_and_a_failing_one_changes_nothing(tmp_path, monkeypatch):
    path = tmp_path / "a.db"
    store = Store(path)
    store.set_blocked("W1", "spam")
    store.close()
    state = {"fail": True}
    schema_3(monkeypatch, state)

    before = digest(path)
    with pytest.raises(RuntimeError, match="step 3 failed"):
        Store(path)
    assert digest(path) == before and schema_of(path) == (SCHEMA_VERSION, migrations.STEPS)

    state["fail"] = False
    store = Store(path)
    assert schema_of(path) == (SCHEMA_VERSION + 1, [*migrations.STEPS, "v3_rename_block_reason"])
    row = next(store.db.query("select * from workers"))
    assert row["blocked_because"] == "spam" and "block_reason" not in row
    assert store.db["workers"].columns_dict["agreed"] is float


MIGRATE_ONE = """
import sys, time
from annotate.store import Store
time.sleep(max(0.0, float(sys.argv[2]) - time.time()))
Store(sys.argv[1]).close()
"""


def test_two_processes_opening_an_old_store_migrate_it_once(labelled, tmp_path):
    import time

    ws, _, _ = labelled
    path = tmp_path / "annotate.db"
    old_store(ws.store_path, path, first_release=True, user_version=1)
    start = str(time.time() + 4.0)  # both past their imports, then at the same moment
    procs = [subprocess.Popen([sys.executable, "-c", MIGRATE_ONE, str(path), start], stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        results = [(p.wait(timeout=60), p.stderr.read()) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    assert results == [(0, ""), (0, "")]
    assert schema_of(path) == (SCHEMA_VERSION, migrations.STEPS)
