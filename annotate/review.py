"""`annotate review BATCH`: what in a batch needs a person's eye, from the store alone.

- answers that fail a known answer (worker, item, answer, known answer), to reject or to check
  whether the known answer itself is wrong;
- quarantined answers with their reason (the harvest kept them out of consensus);
- workers near the exclusion bar: the 95% Wilson interval on their accuracy straddles the
  threshold the harvest blocks below (WorkerSettings.threshold), so neither keeping nor
  excluding them is settled by the evidence; and workers under the bar whom nothing excluded
  (blocking off, or too few answers for the rule). Accuracy is measured as the harvest measures
  it: on known answers when a worker has enough of them, else as agreement with the other
  workers' strict majority (leave-one-out).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from annotate.config import WorkerSettings
from annotate.errors import UserError
from annotate.harvest import leave_one_out_agreement, wilson_upper
from annotate.store import Store
from annotate.workspace import Workspace

# An interval from fewer scored answers straddles any bar; listing those would list everyone.
MIN_SCORED = 5


@dataclass
class Review:
    batch: str
    threshold: float
    failing_known: list[dict] = field(default_factory=list)
    quarantined: list[dict] = field(default_factory=list)
    workers: list[dict] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        return {"failing_known": len(self.failing_known), "quarantined": len(self.quarantined),
                "workers_near_bar": sum(w["standing"] == "near" for w in self.workers),
                "workers_below_bar": sum(w["standing"] == "below" for w in self.workers)}

    def as_json(self) -> dict:
        return {**asdict(self), "counts": self.counts}


def wilson_interval(successes: int, n: int) -> tuple[float, float]:
    """The 95% Wilson score interval; its lower end is one minus the upper end for the failures
    (the interval is symmetric under p -> 1 - p)."""
    return 1.0 - wilson_upper(n - successes, n), wilson_upper(successes, n)


def review(ws: Workspace, batch: str) -> Review:
    store = Store(ws.store_path, readonly=True)
    row = store.get_batch(batch)
    if row is None:
        raise UserError(f"no batch named {batch!r} (known: {', '.join(store.batch_names()) or 'none'})")
    settings = WorkerSettings.from_config(row["config"])
    threshold = settings.threshold(len(row["labels"]))
    out = Review(batch, round(threshold, 4))
    known = store.known_answers(batch)
    for a in store.worker_assignments(batch):
        if a["quarantine"] is not None:
            out.quarantined.append({"assignment": a["assignment_id"], "worker": a["worker_id"], "item": a["item_id"],
                                    "status": a["status"], "reason": a["quarantine"]})
        elif a["item_id"] in known and a["label"] is not None and a["label"] != known[a["item_id"]] \
                and a["status"] != "Rejected":
            out.failing_known.append({"assignment": a["assignment_id"], "worker": a["worker_id"], "item": a["item_id"],
                                      "answer": a["label"], "known": known[a["item_id"]], "status": a["status"]})
    answers = store.answers(batch)
    if len(answers):
        out.workers = _standing(answers, known, settings, threshold, store.blocked_workers())
    return out


def _standing(answers, known: dict[str, str], settings: WorkerSettings, threshold: float,
              blocked: set[str]) -> list[dict]:
    """Workers whose interval straddles the bar ("near"), or lies under it while they still work
    ("below"), on the evidence the harvest's blocking rule uses."""
    scored, right = leave_one_out_agreement(answers, known)
    on_known = answers[answers["item"].isin(list(known))]
    seen = on_known.groupby("worker").size()
    correct = on_known[on_known["label"] == on_known["item"].map(known)].groupby("worker").size()
    counts = answers.groupby("worker").size()
    rows = []
    for worker, total in counts.items():
        if int(seen.get(worker, 0)) >= settings.block_after:
            r, n, basis = int(correct.get(worker, 0)), int(seen.get(worker, 0)), "known answers"
        else:
            r, n, basis = int(right.get(worker, 0)), int(scored.get(worker, 0)), "agreement with the others' majority"
        if n < MIN_SCORED:
            continue
        low, high = wilson_interval(r, n)
        if high < threshold:
            standing = "below"
        elif low < threshold:
            standing = "near"
        else:
            continue
        if worker in blocked:
            continue  # already excluded: nothing left to decide
        rows.append({"worker": worker, "answers": int(total), "right": r, "scored": n, "basis": basis,
                     "accuracy": round(r / n, 4), "low": round(low, 4), "high": round(high, 4), "standing": standing,
                     "decidable": n >= settings.block_after})
    rows.sort(key=lambda w: (w["standing"] != "below", w["accuracy"], w["worker"]))
    return rows
