"""`annotate review BATCH`: what in a batch needs a person's eye, from the store alone.

- answers that fail a known answer (worker, item, answer, known answer), to reject or to check
  whether the known answer itself is wrong;
- quarantined answers with their reason (the harvest kept them out of consensus);
- workers near the exclusion bar: the 95% Wilson interval on their accuracy straddles the
  threshold the harvest excludes below (WorkerSettings.threshold), so neither keeping nor
  excluding them is settled by the evidence; and workers under the bar whom nothing excluded
  (exclusion off, or too few answers for the rule). Accuracy is measured exactly as the harvest
  measures it (annotate.exclusion.assess: known answers, else the other answers' weighted
  evidence, never one co-worker's disagreement).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from annotate.config import WorkerSettings
from annotate.errors import UserError
from annotate.exclusion import assess, wilson
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


def wilson_interval(successes: float, n: float) -> tuple[float, float]:
    """The Wilson score interval the harvest's exclusion rule uses (one-sided 95% at each end)."""
    return wilson(successes, n)


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
        out.workers = _standing(answers, known, settings, threshold, len(row["labels"]),
                                store.blocked_workers() | store.excluded_workers())
    return out


def _standing(answers, known: dict[str, str], settings: WorkerSettings, threshold: float, n_labels: int,
              gone: set[str]) -> list[dict]:
    """Workers whose interval straddles the bar ("near"), or lies under it while they still work
    ("below"), on the evidence the harvest's exclusion rule uses."""
    rows = []
    for d in assess(answers, known, n_labels, settings.rules()):
        if d.scored < MIN_SCORED or d.worker_id in gone:
            continue  # too little evidence to say anything; or already excluded/blocked
        if d.high < threshold:
            standing = "below"
        elif d.low < threshold:
            standing = "near"
        else:
            continue
        rows.append({"worker": d.worker_id, "answers": d.answers, "right": d.right, "scored": d.scored,
                     "basis": d.evidence, "accuracy": round(d.right / d.scored, 4), "low": round(d.low, 4),
                     "high": round(d.high, 4), "standing": standing, "decidable": d.answers >= settings.exclude_after})
    rows.sort(key=lambda w: (w["standing"] != "below", w["accuracy"], w["worker"]))
    return rows
