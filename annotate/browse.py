"""`annotate browse`: the store in Datasette (an optional extra: `pip install 'annotate[browse]'`).

The store is SQLite made with sqlite-utils, so Datasette is the tool to look around it with. This
module generates Datasette's metadata from the store's schema (annotate.store.SCHEMA): every table
and every column is named and described, so a requester reads "estimated accuracy of the worker"
instead of `skill`; and it adds canned queries a requester asks for (labels with low confidence,
workers by accuracy, spend by batch, quarantined answers, unresolved items, progress by batch).

Datasette opens a database file that may change with `?mode=ro`: it never writes, and as the store
is in WAL mode a reader never blocks a harvest writing to it (and sees its new rows). It is not
opened as immutable, which would promise SQLite the file never changes while a harvest changes it.
"""

from __future__ import annotations

import json
import socket
import tempfile
from pathlib import Path

from annotate.errors import UserError
from annotate.store import SCHEMA

INSTALL_HINT = "pip install 'annotate[browse]'"
DEFAULT_PORT = 8001  # Datasette's own default

TABLES: dict[str, tuple[str, dict[str, str]]] = {
    "batches": ("One row per posted batch: its settings as posted (batch.toml) and where it runs.", {
        "name": "The batch's name (batch.toml `name`).",
        "uid": "A unique id of this batch, part of every UniqueRequestToken it sends.",
        "dir": "The batch folder it was posted from (batch.toml and the items).",
        "target": "Marketplace: local (embedded), sandbox or production.",
        "endpoint_url": "The MTurk endpoint the batch talks to, when not the target's own.",
        "hit_type_id": "MTurk's HITTypeId of the batch's HITs.",
        "task_type": "Ground Truth task type (image-classification, bounding-box, …).",
        "label_attribute": "The label attribute name in the augmented manifest.",
        "labels": "The classes workers choose from (JSON list).",
        "answer_field": "The form field holding a worker's answer.",
        "reward": "Reward per assignment, USD (before MTurk's fee).",
        "lifetime": "Seconds each HIT stays on offer to workers.",
        "masters": "1 if the HITs require the Masters qualification (+5% fee).",
        "budget_usd": "The batch's spending cap, USD, if any.",
        "policy": "The consensus policy: aggregator and stopping rule (JSON).",
        "config": "The whole batch.toml as posted (JSON).",
        "created_at": "When the batch was first recorded (UTC).",
        "posted_at": "When its HITs were last posted (UTC).",
    }),
    "items": ("The items of each batch, one row per item, as read from its items file.", {
        "batch": "The batch the item belongs to.",
        "item_id": "The item's id (the `id` column of the items file).",
        "position": "The item's order in the items file.",
        "line": "The line of the items file it came from.",
        "data": "The item's input columns, as workers see them (JSON).",
        "gold": "Hidden true answer used by the demo's simulated crowd (never shown to workers).",
        "known": "A known answer used to score workers (never exported).",
    }),
    "hits": ("One row per HIT: recorded as an intent before CreateHIT, its HIT id filled in after.", {
        "token": "UniqueRequestToken of the CreateHIT call (never posted twice).",
        "batch": "The batch the HIT belongs to.",
        "item_id": "The item the HIT asks about.",
        "hit_id": "MTurk's HITId (empty while only the intent is recorded).",
        "max_assignments": "How many workers may answer the HIT (grows when it is extended).",
        "status": "annotate's state of the HIT: intent, created, …",
        "hit_status": "MTurk's HITStatus as last seen (Assignable, Reviewable, …).",
        "created_at": "When the HIT was created (UTC).",
        "expires_at": "When the HIT stops being offered to workers (UTC).",
        "reviewed": "1 once every assignment of the HIT has been reviewed.",
    }),
    "assignments": ("One row per worker's answer to a HIT, stored before it is approved.", {
        "assignment_id": "MTurk's AssignmentId.",
        "hit_id": "The HIT answered.",
        "batch": "The batch of the HIT.",
        "item_id": "The item answered.",
        "worker_id": "The worker who answered.",
        "status": "MTurk's AssignmentStatus: Submitted, Approved or Rejected.",
        "accept_time": "When the worker accepted the HIT (UTC).",
        "submit_time": "When the worker submitted the answer (UTC).",
        "answer_xml": "The answer as MTurk returned it (QuestionFormAnswers XML).",
        "answer": "The answer's form fields (JSON).",
        "label": "The class chosen (single-label tasks).",
        "value": "The answer as the task type reads it (JSON: a class, boxes, a mask, spans, text).",
        "quarantine": "Why the answer is set aside and not counted (empty: counted).",
        "stored_at": "When annotate stored the answer (UTC).",
        "approved_at": "When annotate approved the assignment (UTC).",
    }),
    "answers": ("Each form field of each answer, one row per field.", {
        "assignment_id": "The assignment the field belongs to.",
        "field": "The form field's name (QuestionIdentifier).",
        "value": "What the worker sent in it.",
    }),
    "extensions": ("Extra assignments bought for items without consensus (CreateAdditionalAssignmentsForHIT).", {
        "token": "UniqueRequestToken of the extension (never bought twice).",
        "batch": "The batch of the HIT.",
        "item_id": "The item that needed more answers.",
        "hit_id": "The HIT extended.",
        "round": "Which extension of this HIT (1, 2, …).",
        "added": "Assignments added.",
        "max_after": "The HIT's MaxAssignments after the extension.",
        "state": "intent (recorded before the call) or done.",
        "created_at": "When the extension was recorded (UTC).",
        "done_at": "When MTurk confirmed it (UTC).",
    }),
    "labels": ("The consensus for each item: labelled, unresolved, or still pending.", {
        "batch": "The batch of the item.",
        "item_id": "The item.",
        "status": "labelled (consensus reached), unresolved (given up on) or pending.",
        "label": "The consensus class (single-label tasks).",
        "value": "The consolidated answer as the task type writes it (JSON).",
        "confidence": "How sure the consensus is, 0..1 (the manifest's `confidence`).",
        "votes": "The answers counted, by class or worker (JSON).",
        "answers": "How many answers the decision read.",
        "decided_at": "When the item was decided (UTC).",
    }),
    "workers": ("Every worker seen, across batches: answers, agreement, estimated accuracy, exclusion, pool, blocks.", {
        "worker_id": "MTurk's WorkerId.",
        "answers": "Answers given, in all batches.",
        "agreed": "Answers that agreed with the consensus.",
        "skill": "Estimated accuracy of the worker, 0..1, across batches.",
        "blocked": "1 if the worker is blocked from annotate's HITs.",
        "block_reason": "Why the worker was blocked.",
        "excluded": "1 if the worker holds the project's exclusion qualification (no batch's HITs show to them).",
        "exclude_reason": "Why: the evidence the harvest's exclusion rule read, or a person's reason.",
        "excluded_at": "When the worker was excluded (UTC).",
        "pool": "Pool score: the lower end of a 95% interval on the worker's accuracy, in percent.",
        "pool_at": "When the pool score was last granted or changed (UTC).",
        "updated_at": "When these figures were last updated (UTC).",
    }),
    "batch_workers": ("Each worker's figures in one batch (a batch's prior is what the others taught).", {
        "batch": "The batch.",
        "worker_id": "MTurk's WorkerId.",
        "answers": "Answers given in this batch.",
        "skill": "Estimated accuracy of the worker in this batch, 0..1.",
        "gold_seen": "Items with a known answer the worker answered.",
        "gold_correct": "Of those, how many the worker got right.",
        "evidence": "Answers' worth of evidence the exclusion rule scored (a known answer counts 1).",
        "evidence_right": "Of that evidence, how much says the worker was right.",
        "updated_at": "When these figures were last updated (UTC).",
    }),
    "qualification_types": ("The project's own qualification types (exclusion, pool), created once per marketplace.", {
        "purpose": "What the type is for: exclusion or pool.",
        "marketplace": "The marketplace it lives on (sandbox, production, or a local endpoint).",
        "qualification_type_id": "MTurk's QualificationTypeId.",
        "created_at": "When annotate created it (UTC).",
    }),
    "machine_labels": ("Labels a model gave ([automation]): never a worker's answer, never used to score workers.", {
        "batch": "The batch.",
        "item_id": "The item.",
        "label": "The label the model gave.",
        "value": "The label as exported (JSON).",
        "confidence": "The model's confidence in it.",
        "threshold": "The round's confidence threshold the label cleared.",
        "round": "The automated-labelling round that gave it.",
        "model": "Which model (algorithm and fold) gave it.",
        "labelled_at": "When (UTC).",
    }),
    "automation_rounds": ("Each automated-labelling round's figures.", {
        "batch": "The batch.",
        "round": "The round, from 1.",
        "at": "When it ran (UTC).",
        "human_labels": "Human labels there were.",
        "trained_on": "Human labels each fold's model was trained on.",
        "validation": "Held-out items at or above the threshold.",
        "threshold": "The lowest confidence at which machine labels met the target (empty: none did).",
        "bound": "The lower confidence bound on the machine labels' accuracy at that threshold.",
        "machine_labelled": "Items labelled by machine in this round.",
        "released": "Items sent to the crowd in this round.",
        "remaining": "Items neither labelled nor sent yet.",
        "compute_seconds": "Seconds spent fitting and scoring.",
        "note": "Why the round did what it did.",
    }),
    "automation_released": ("Items an automated-labelling round sent to the crowd (so none is posted twice).", {
        "batch": "The batch.",
        "item_id": "The item.",
        "round": "The round that sent it.",
    }),
    "events": ("What happened, in order: posts, harvest passes, bonuses, cancels, … (an audit log).", {
        "id": "Order of the events.",
        "at": "When it happened (UTC).",
        "batch": "The batch it concerns (empty: the whole project).",
        "kind": "What happened (post, bonus-intent, bonus, cancel, …).",
        "detail": "Its details (JSON).",
    }),
    "api_calls": ("MTurk API calls made for each batch, by operation.", {
        "batch": "The batch.",
        "operation": "The MTurk operation (CreateHITWithHITType, ListAssignmentsForHIT, …).",
        "calls": "How many calls were made.",
    }),
}
# Kept by the store's machinery, not by the batch lifecycle.
EXTRA_TABLES = {
    "_annotate": ("Notes annotate keeps about the store (which version last migrated it).", {
        "key": "What the note is about.", "value": "The note."}),
    "_sqlite_migrations": ("The schema steps applied to this store (sqlite-utils migrations).", {}),
}

# Money in integer cents, as annotate.fees computes it: the fee is 20% of the reward (40% on HITs
# with 10 or more assignments, +5% with Masters), rounded half up to the cent, at least $0.01.
_SPEND_SQL = """
with hit_costs as (
  select h.batch, h.max_assignments,
    (select count(*) from assignments a where a.hit_id = h.hit_id
       and a.status in ('Approved', 'Submitted')) as done,
    cast(round(cast(b.reward as real) * 100) as integer) as reward_cents,
    (case when h.max_assignments >= 10 then 40 else 20 end) + (case when b.masters then 5 else 0 end) as rate
  from hits h join batches b on b.name = h.batch
),
per_batch as (
  select batch, count(*) as hits, sum(done) as assignments,
    sum((reward_cents + max(1, (reward_cents * rate + 50) / 100)) * done) as spent,
    sum((reward_cents + max(1, (reward_cents * rate + 50) / 100)) * max(max_assignments - done, 0)) as committed
  from hit_costs group by batch
),
bonus_tokens as (
  select batch, json_extract(detail, '$.token') as token, max(kind = 'bonus') as paid,
    max(cast(round(cast(json_extract(detail, '$.amount') as real) * 100) as integer)
        + cast(round(cast(json_extract(detail, '$.fee') as real) * 100) as integer)) as cents
  from events where kind in ('bonus-intent', 'bonus') group by batch, token
),
bonuses as (
  select batch, count(*) as bonuses, sum(case when paid then cents else 0 end) as paid,
    sum(case when paid then 0 else cents end) as unconfirmed
  from bonus_tokens group by batch
)
select b.name as batch, b.target, b.reward as reward_usd, coalesce(p.hits, 0) as hits,
  coalesce(p.assignments, 0) as assignments_submitted, coalesce(x.bonuses, 0) as bonuses,
  printf('%.2f', (coalesce(p.spent, 0) + coalesce(x.paid, 0)) / 100.0) as spent_usd,
  printf('%.2f', (coalesce(p.committed, 0) + coalesce(x.unconfirmed, 0)) / 100.0) as committed_usd,
  b.budget_usd
from batches b left join per_batch p on p.batch = b.name left join bonuses x on x.batch = b.name
order by (coalesce(p.spent, 0) + coalesce(x.paid, 0)) desc, b.name
"""

# Named parameters become a form in Datasette; left empty, `batch` means every batch.
QUERIES: dict[str, dict[str, str]] = {
    "low_confidence_labels": {
        "title": "Labels with low confidence",
        "description": "Labelled items whose consensus confidence is below `below` (default 0.8), least sure "
                       "first: the ones to check by hand or send back to the crowd.",
        "sql": "select l.batch, l.item_id, l.label, l.value, round(l.confidence, 4) as confidence, l.answers, "
               "l.votes, l.decided_at, i.data from labels l left join items i on i.batch = l.batch and "
               "i.item_id = l.item_id where l.status = 'labelled' "
               "and l.confidence < cast(coalesce(nullif(:below, ''), 0.8) as real) "
               "and (:batch = '' or l.batch = :batch) order by l.confidence, l.batch, l.item_id",
    },
    "workers_by_accuracy": {
        "title": "Workers by accuracy",
        "description": "Each worker's estimated accuracy in each batch, best first, with answers given, known "
                       "answers right, and whether the worker is blocked.",
        "sql": "select bw.batch, bw.worker_id, round(bw.skill, 4) as estimated_accuracy, bw.answers, "
               "bw.gold_correct as known_answers_right, bw.gold_seen as known_answers_seen, "
               "coalesce(w.blocked, 0) as blocked, w.block_reason from batch_workers bw "
               "left join workers w using (worker_id) where (:batch = '' or bw.batch = :batch) "
               "order by bw.skill is null, bw.skill desc, bw.answers desc, bw.worker_id",
    },
    "spend_by_batch": {
        "title": "Spend by batch",
        "description": "Money per batch with MTurk's fee, as `annotate status` counts it: spent (submitted or "
                       "approved assignments, paid bonuses) and committed (assignments bought but not yet "
                       "answered, bonuses not yet confirmed), USD.",
        "sql": _SPEND_SQL.strip(),
    },
    "quarantined_answers": {
        "title": "Quarantined answers",
        "description": "Answers set aside and not counted towards consensus, with the reason.",
        "sql": "select batch, item_id, worker_id, assignment_id, status, quarantine as reason, submit_time, answer "
               "from assignments where quarantine is not null and (:batch = '' or batch = :batch) "
               "order by batch, item_id, submit_time",
    },
    "unresolved_items": {
        "title": "Unresolved items",
        "description": "Items the crowd could not agree on within the batch's limits, with the leading "
                       "answer and the votes.",
        "sql": "select l.batch, l.item_id, l.label as leading_label, l.value as leading_value, "
               "round(l.confidence, 4) as confidence, l.answers, l.votes, l.decided_at, i.data from labels l "
               "left join items i on i.batch = l.batch and i.item_id = l.item_id where l.status = 'unresolved' "
               "and (:batch = '' or l.batch = :batch) order by l.batch, l.item_id",
    },
    "progress_by_batch": {
        "title": "Progress by batch",
        "description": "Items per batch: labelled, unresolved, and still pending.",
        "sql": "select i.batch, count(*) as items, sum(l.status = 'labelled') as labelled, "
               "sum(l.status = 'unresolved') as unresolved, "
               "sum(l.status is null or l.status not in ('labelled', 'unresolved')) as pending "
               "from items i left join labels l on l.batch = i.batch and l.item_id = i.item_id "
               "group by i.batch order by i.batch",
    },
}


def database_name(store_path: Path) -> str:
    """The name Datasette gives the store (its file name without the suffix)."""
    return Path(store_path).stem


def metadata(store_path: Path) -> dict:
    """Datasette metadata for the store: every table and column of the schema described, the
    canned queries, and facets a requester filters by."""
    tables = {}
    for name, spec in SCHEMA.items():
        about, columns = TABLES.get(name, ("", {}))
        tables[name] = {"description": about, "columns": {c: columns.get(c, "") for c in spec["columns"]}}
    for name, (about, columns) in EXTRA_TABLES.items():
        tables[name] = {"description": about, **({"columns": columns} if columns else {})}
    for name, facets in (("labels", ["batch", "status"]), ("assignments", ["batch", "status"]),
                         ("hits", ["batch", "hit_status"]), ("events", ["batch", "kind"]),
                         ("batch_workers", ["batch"])):
        tables[name]["facets"] = facets
    tables["labels"]["sort"] = "confidence"
    tables["events"]["sort_desc"] = "id"
    return {
        "title": "annotate store",
        "description": "Batches, HITs, workers' answers and their consensus labels, as annotate stored them. "
                       "Read-only: browsing never changes the store nor blocks a harvest.",
        "databases": {database_name(store_path): {
            "description": f"The store at {store_path}",
            "tables": tables,
            "queries": QUERIES,
        }},
    }


def require_datasette() -> None:
    try:
        import datasette  # noqa: F401
    except ImportError:
        raise UserError(f"annotate browse needs Datasette: {INSTALL_HINT}") from None


def _require_free_port(host: str, port: int) -> None:
    """A port in use is the user's to change: say so (exit 2) rather than let the server fail inside."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server does: TIME_WAIT is no obstacle
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise UserError(f"cannot listen on {host}:{port} ({exc.strerror}): pass another --port",
                            field="--port") from None


def serve_args(store_path: Path, metadata_file: Path, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1",
               open_browser: bool = True) -> list[str]:
    """`datasette serve` arguments: the store as a mutable file (opened ?mode=ro, see the module
    docstring), our metadata, loopback only."""
    return ["serve", str(store_path), "--metadata", str(metadata_file), "--host", host, "--port", str(port),
            *(["--open"] if open_browser else [])]


def browse(store_path: str | Path, *, port: int = DEFAULT_PORT, host: str = "127.0.0.1", open_browser: bool = True) -> None:
    """Serve the store in Datasette until interrupted (Ctrl-C), in this process."""
    require_datasette()
    store_path = Path(store_path)
    if not store_path.is_file():
        raise UserError("there is no store here yet: post a batch first (or pass --home)", file=str(store_path))
    _require_free_port(host, port)
    from datasette.cli import cli as datasette_cli

    with tempfile.TemporaryDirectory(prefix="annotate-browse-") as tmp:
        meta = Path(tmp) / "metadata.json"
        meta.write_text(json.dumps(metadata(store_path), indent=2), encoding="utf-8")
        datasette_cli.main(serve_args(store_path, meta, port=port, host=host, open_browser=open_browser),
                           prog_name="annotate browse", standalone_mode=False)
