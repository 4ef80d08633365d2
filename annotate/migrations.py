"""The store's schema history: one step per schema version, applied in order by sqlite-utils'
Migrations (which records each applied step in `_sqlite_migrations`).

A released step is never edited: a store somewhere was made by it. A schema change is a new
step at the end of this file plus the same change to `annotate.store.SCHEMA` (the layout the
queries write; tests/test_store_schema.py checks that a store built by these steps has exactly
that layout). A step may add a column (`table.add_column`), or make a change SQLite's ALTER
TABLE cannot — a type, a default, a rename, a dropped column — with `table.transform`, which
copies the table inside the migration's transaction. For example:

    @step
    def v3_extension_reason(db):
        db["extensions"].add_column("reason", str)
        db["hits"].transform(defaults={"reviewed": 0})

Steps run inside one transaction for the whole upgrade (annotate.store.Store holds it), so a
failing step leaves the store as it was.
"""

from __future__ import annotations

import json
from typing import Callable

import sqlite_utils
from sqlite_utils import Migrations

MIGRATION_SET = "annotate"
MIGRATIONS = Migrations(MIGRATION_SET)
STEPS: list[str] = []  # names, in order: a store's schema version is how many it has applied


def step(fn: Callable[[sqlite_utils.Database], None]) -> Callable[[sqlite_utils.Database], None]:
    """Register `fn` as the next schema version."""
    STEPS.append(fn.__name__)
    return MIGRATIONS(name=fn.__name__)(fn)


def _add_missing_columns(db: sqlite_utils.Database, table: str, columns: dict[str, type]) -> None:
    have = set(db[table].columns_dict)
    for name, kind in columns.items():
        if name not in have:
            db[table].add_column(name, kind)


# The tables as annotate 0.1.0 first created them (frozen: stores were made with exactly this).
FIRST_LAYOUT = {
    "batches": ({"name": str, "uid": str, "dir": str, "target": str, "endpoint_url": str, "hit_type_id": str,
                 "task_type": str, "label_attribute": str, "labels": str, "answer_field": str, "reward": str,
                 "masters": int, "budget_usd": str, "policy": str, "config": str, "created_at": str, "posted_at": str},
                "name"),
    "items": ({"batch": str, "item_id": str, "position": int, "line": int, "data": str, "gold": str},
              ("batch", "item_id")),
    "hits": ({"token": str, "batch": str, "item_id": str, "hit_id": str, "max_assignments": int,
              "status": str, "hit_status": str, "created_at": str, "reviewed": int},
             "token"),
    "assignments": ({"assignment_id": str, "hit_id": str, "batch": str, "item_id": str, "worker_id": str,
                     "status": str, "accept_time": str, "submit_time": str, "answer_xml": str, "answer": str,
                     "label": str, "quarantine": str, "stored_at": str, "approved_at": str},
                    "assignment_id"),
    "answers": ({"assignment_id": str, "field": str, "value": str}, ("assignment_id", "field")),
    "extensions": ({"token": str, "batch": str, "item_id": str, "hit_id": str, "round": int, "added": int,
                    "max_after": int, "state": str, "created_at": str, "done_at": str},
                   "token"),
    "labels": ({"batch": str, "item_id": str, "status": str, "label": str, "confidence": float,
                "votes": str, "answers": int, "decided_at": str},
               ("batch", "item_id")),
    "workers": ({"worker_id": str, "answers": int, "agreed": int, "skill": float, "blocked": int,
                 "block_reason": str, "updated_at": str},
                "worker_id"),
    "batch_workers": ({"batch": str, "worker_id": str, "answers": int, "skill": float, "updated_at": str},
                      ("batch", "worker_id")),
    "events": ({"id": int, "at": str, "batch": str, "kind": str, "detail": str}, "id"),
    "api_calls": ({"batch": str, "operation": str, "calls": int}, ("batch", "operation")),
}
FIRST_INDEXES = [
    ("hits", ["batch", "item_id"]),
    ("hits", ["hit_id"]),
    ("assignments", ["batch", "item_id"]),
    ("assignments", ["hit_id"]),
    ("extensions", ["batch", "hit_id"]),
]


@step
def v1_first_layout(db: sqlite_utils.Database) -> None:
    """The first layout. Stores made before schema versions were checked already have its tables
    (labelled version 1, or 0 before that): only what is missing is created."""
    for name, (columns, pk) in FIRST_LAYOUT.items():
        if not db[name].exists():
            db[name].create(columns, pk=pk)
    for table, columns in FIRST_INDEXES:
        db[table].create_index(columns, if_not_exists=True)


@step
def v2_answer_values_and_known_answers(db: sqlite_utils.Database) -> None:
    """Answers of every task type (JSON `value` beside the single `label`), known answers, HIT
    expiry, a batch's lifetime, per-batch gold counts, and `_annotate` (key, value) notes. Stores labelled version 1 may hold some
    of these already (they were added without a version change): each is added only if missing.
    Classification answers and labels stored before `value` existed get it from `label`, as the
    harvest writes it today (the label as JSON), so old batches still export."""
    _add_missing_columns(db, "batches", {"lifetime": int})
    _add_missing_columns(db, "items", {"known": str})
    _add_missing_columns(db, "hits", {"expires_at": str})
    _add_missing_columns(db, "assignments", {"value": str})
    _add_missing_columns(db, "labels", {"value": str})
    _add_missing_columns(db, "batch_workers", {"gold_seen": int, "gold_correct": int})
    # Which annotate last migrated the store: an older annotate refusing it can say which to install.
    db["_annotate"].create({"key": str, "value": str}, pk="key", if_not_exists=True)
    db.conn.create_function("annotate_json", 1, json.dumps, deterministic=True)
    for table in ("assignments", "labels"):
        db.execute(f"update [{table}] set value = annotate_json(label) where value is null and label is not null")


@step
def v3_worker_exclusion_and_pools(db: sqlite_utils.Database) -> None:
    """Exclusion (a qualification, instead of automatic blocks) and trusted-worker pools: who is
    excluded and why, each worker's pool score as granted, each batch's evidence per worker,
    and the project's own qualification types."""
    _add_missing_columns(db, "workers", {"excluded": int, "exclude_reason": str, "excluded_at": str, "pool": int,
                                         "pool_at": str})
    _add_missing_columns(db, "batch_workers", {"evidence": float, "evidence_right": float})
    db["qualification_types"].create({"purpose": str, "marketplace": str, "qualification_type_id": str,
                                      "created_at": str}, pk=("purpose", "marketplace"), if_not_exists=True)


@step
def v4_automated_labelling(db: sqlite_utils.Database) -> None:
    """Automated data labelling ([automation]): labels a model gave (never a worker's answer, so
    never used to score workers), each round's figures, and the items each round sent to the crowd."""
    db["machine_labels"].create({"batch": str, "item_id": str, "label": str, "value": str, "confidence": float,
                                 "threshold": float, "round": int, "model": str, "labelled_at": str},
                                pk=("batch", "item_id"), if_not_exists=True)
    db["automation_rounds"].create({"batch": str, "round": int, "at": str, "human_labels": int, "trained_on": int,
                                    "validation": int, "threshold": float, "bound": float, "machine_labelled": int,
                                    "released": int, "remaining": int, "compute_seconds": float, "note": str},
                                   pk=("batch", "round"), if_not_exists=True)
    db["automation_released"].create({"batch": str, "item_id": str, "round": int},
                                     pk=("batch", "item_id"), if_not_exists=True)
