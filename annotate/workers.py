"""`annotate workers block|unblock|exclude|include`: a person's decisions about one worker.

Blocking (CreateWorkerBlock) is only ever explicit: it counts against the worker's MTurk account,
so it is for abuse, decided by a person with a reason. Exclusion (the project's exclusion
qualification, annotate.pools) is what the harvest applies to workers answering at random; a
person can apply or lift it too. Each acts on the marketplace of the last batch the worker
answered (or --target / --endpoint-url), and the calls count towards that batch.
"""

from __future__ import annotations

from dataclasses import dataclass

from annotate import pools
from annotate.errors import UserError
from annotate.requester import Confirm, batch_client, confirmed
from annotate.store import Store
from annotate.workspace import Workspace

REASON_MAX = 1024


@dataclass
class WorkerAction:
    action: str  # block | unblock | exclude | include
    worker_id: str
    reason: str
    batch: str  # the batch whose marketplace it acted on

    def as_json(self) -> dict:
        return {"action": self.action, "worker_id": self.worker_id, "reason": self.reason, "batch": self.batch}


def act(ws: Workspace, action: str, worker_id: str, reason: str, *, confirm: Confirm | None = None,
        target: str | None = None, endpoint_url: str | None = None) -> WorkerAction:
    if action not in ("block", "unblock", "exclude", "include"):
        raise ValueError(action)
    reason = " ".join((reason or "").split())
    if not reason:
        raise UserError("give a reason (--reason TEXT)", field="--reason")
    if len(reason) > REASON_MAX:
        raise UserError(f"the reason is {len(reason)} characters; MTurk takes at most {REASON_MAX}", field="--reason")
    store = Store(ws.ensure().store_path)
    batch = _last_batch(store, worker_id)
    row = store.worker(worker_id) or {}
    confirmed(confirm, {"block": f"Block worker {worker_id} (it counts against their MTurk account)?",
                        "unblock": f"Unblock worker {worker_id}?",
                        "exclude": f"Exclude worker {worker_id} from this project's HITs?",
                        "include": f"Let worker {worker_id} take this project's HITs again?"}[action])
    with batch_client(ws, store, batch, target, endpoint_url) as mturk:
        if action == "block":
            mturk.call("CreateWorkerBlock", WorkerId=worker_id, Reason=reason)
            store.set_blocked(worker_id, reason)
        elif action == "unblock":
            if not row.get("blocked"):
                raise UserError(f"worker {worker_id} is not blocked", field="WORKER_ID")
            mturk.call("DeleteWorkerBlock", WorkerId=worker_id, Reason=reason)
            store.set_blocked(worker_id, reason, blocked=False)
        elif action == "exclude":
            pools.exclude(store, mturk, worker_id, f"By hand: {reason}")
        else:
            if not row.get("excluded"):
                raise UserError(f"worker {worker_id} is not excluded", field="WORKER_ID")
            pools.include(store, mturk, worker_id, reason)
    store.event(batch["name"], f"worker-{action}", worker=worker_id, reason=reason)
    return WorkerAction(action, worker_id, reason, batch["name"])


def _last_batch(store: Store, worker_id: str) -> dict:
    rows = list(store.db.query("select batch from assignments where worker_id = ? and batch in "
                               "(select name from batches where hit_type_id is not null) "
                               "order by stored_at desc limit 1", [worker_id]))
    if not rows:
        known = [r["worker_id"] for r in store.db.query(
            "select distinct worker_id from assignments order by worker_id limit 5")]
        raise UserError(f"no worker {worker_id!r} answered a batch in {store.path} (e.g. {', '.join(known) or 'none yet'})",
                        field="WORKER_ID")
    return store.get_batch(rows[0]["batch"])
