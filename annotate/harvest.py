"""Harvesting: one idempotent pass (for cron) over a batch's finished HITs.

For each HIT MTurk lists as Reviewable: store every new answer, raw and parsed, before
anything acts on it; approve what is submitted; then ask the consensus policy, which
labels the item (the HIT moves to Reviewing, so it is never read again), buys more
assignments (recorded as intent first, under a UniqueRequestToken), or gives up.

Only one harvest runs at a time per project: a second one waits for the lock or exits
with a message (cron runs that overlap never double-act).
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Callable, Iterator

import botocore.exceptions
import pandas as pd

from annotate.answers import AnswerError, extract_label, parse_question_form_answers
from annotate.consensus import Decision, get_policy
from annotate.errors import UserError
from annotate.fees import assignment_cost, format_money
from annotate.mturk import MTurk, connect, error_code
from annotate.post import request_token, resolve_target
from annotate.store import Store, utcnow
from annotate.workspace import Workspace


class HarvestBusy(Exception):
    """Another harvest holds the project's lock."""


@dataclass
class HarvestResult:
    batch: str
    new_answers: int = 0
    approved: int = 0
    quarantined: int = 0
    labelled: int = 0
    extended: int = 0
    unresolved: int = 0
    over_budget: int = 0
    items: int = 0
    decided: int = 0
    api_calls: dict[str, int] = field(default_factory=dict)

    @property
    def done(self) -> bool:
        return self.items > 0 and self.decided >= self.items


@contextmanager
def harvest_lock(ws: Workspace, wait: bool = False) -> Iterator[None]:
    ws.ensure()
    path = ws.home / "harvest.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            handle.seek(0)
            holder = handle.read().strip() or "another process"
            raise HarvestBusy(f"another harvest is running ({holder}); this one did nothing") from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()} since {utcnow()}")
        handle.flush()
        try:
            yield
        finally:
            handle.truncate(0)
            fcntl.flock(handle, fcntl.LOCK_UN)


def stored_policy(batch: dict):
    settings = dict(batch["config"].get("consensus", {}))
    name = settings.pop("policy", None)
    return get_policy(name, **settings)


def harvest(
    ws: Workspace,
    batch_names: list[str] | None = None,
    *,
    target: str | None = None,
    endpoint_url: str | None = None,
    wait_for_lock: bool = False,
    mturk: MTurk | None = None,
) -> list[HarvestResult]:
    """One pass over the given batches (all of them by default)."""
    store = Store(ws.ensure().store_path)
    names = batch_names or store.batch_names()
    results = []
    with harvest_lock(ws, wait=wait_for_lock):
        for name in names:
            batch = store.get_batch(name)
            if batch is None:
                raise UserError(f"no batch named {name!r} in {ws.store_path} (post it first)")
            if not batch.get("hit_type_id"):
                continue
            batch_target = resolve_target(batch, target, name)
            if mturk is not None:
                results.append(_harvest_batch(store, batch, mturk))
                continue
            with connect(ws, batch_target, endpoint_url or batch.get("endpoint_url")) as client:
                results.append(_harvest_batch(store, batch, client))
    return results


def _harvest_batch(store: Store, batch: dict, mturk: MTurk) -> HarvestResult:
    name = batch["name"]
    result = HarvestResult(batch=name)
    policy = stored_policy(batch)
    hits = store.hits_by_id(name)
    labels = store.labels(name)
    decided = {item for item, row in labels.items() if row["status"] in ("labelled", "unresolved")}

    _finish_pending_extensions(store, batch, mturk, hits)

    reviewable = [h["HITId"] for h in mturk.pages("ListReviewableHITs", "HITs", HITTypeId=batch["hit_type_id"],
                                                   Status="Reviewable", MaxResults=100)]
    reviewable = [hit_id for hit_id in reviewable if hit_id in hits and hits[hit_id]["item_id"] not in decided]

    for hit_id in reviewable:
        _collect(store, batch, mturk, hits[hit_id], result)

    answers = pd.DataFrame(store.answers(name), columns=["item", "worker", "label"])
    closed = {hits[h]["item_id"] for h in reviewable}
    # A quarantined answer used up its slot without a usable label: the policy sees the slot as
    # never bought (else it would take the HIT for one that expired short, and stop buying).
    lost = store.quarantined_by_item(name)
    items = pd.DataFrame(
        [{"item": h["item_id"], "bought": h["max_assignments"] - lost.get(h["item_id"], 0),
          "open": h["item_id"] not in closed}
         for h in hits.values() if h["item_id"] not in decided],
        columns=["item", "bought", "open"])
    skills = store.prior_skills(name)
    decisions = policy.decide(answers, items, skills=pd.Series(skills, dtype=float) if skills else None) if len(items) else {}

    by_item = {h["item_id"]: h for h in hits.values()}
    label_rows = []
    for item_id in sorted(closed):
        decision: Decision = decisions.get(item_id) or Decision("wait", None, 0.0)
        hit = by_item[item_id]
        extend_by = min(decision.extend_by, policy.max_assignments - hit["max_assignments"])
        if decision.action == "extend" and extend_by <= 0:
            decision = Decision("unresolved", decision.label, decision.confidence)  # at the cap
        if decision.action == "extend":
            if _extend(store, batch, mturk, hit, extend_by):
                result.extended += 1
                continue
            result.over_budget += 1
            decision = Decision("unresolved", decision.label, decision.confidence)
        if decision.action in ("label", "unresolved"):
            label_rows.append(_label_row(name, item_id, decision, answers))
            mturk.call("UpdateHITReviewStatus", HITId=hit["hit_id"], Revert=False)
            store.set_hit_fields(hit["hit_id"], reviewed=1, hit_status="Reviewing")
            result.labelled += decision.action == "label"
            result.unresolved += decision.action == "unresolved"
    if label_rows:
        store.save_labels(label_rows)
        store.event(name, "decide", labelled=result.labelled, unresolved=result.unresolved)

    _refresh_labels(store, batch, policy, answers)
    result.items = len(hits)
    result.decided = sum(1 for r in store.labels(name).values() if r["status"] in ("labelled", "unresolved"))
    result.api_calls = mturk.take_calls()
    store.add_api_calls(name, result.api_calls)
    return result


def _collect(store: Store, batch: dict, mturk: MTurk, hit: dict, result: HarvestResult) -> None:
    """Store every new answer of a HIT, then approve what is still Submitted."""
    known = store.known_assignments(hit["hit_id"])
    for a in mturk.pages("ListAssignmentsForHIT", "Assignments", HITId=hit["hit_id"], MaxResults=100):
        aid = a["AssignmentId"]
        if aid not in known:
            label, quarantine, fields, document = None, None, {}, None
            try:
                parsed = parse_question_form_answers(a.get("Answer", ""))
                fields, document = parsed.fields, parsed.document
                label = extract_label(fields, batch["answer_field"], batch["labels"])
            except AnswerError as exc:
                quarantine = str(exc)  # kept with its reason, never dropped
            store.store_assignment({
                "assignment_id": aid, "hit_id": hit["hit_id"], "batch": batch["name"], "item_id": hit["item_id"],
                "worker_id": a["WorkerId"], "status": a["AssignmentStatus"],
                "accept_time": _iso(a.get("AcceptTime")), "submit_time": _iso(a.get("SubmitTime")),
                "answer_xml": a.get("Answer", ""), "answer": json.dumps(document) if document is not None else None,
                "label": label, "quarantine": quarantine, "stored_at": utcnow(), "approved_at": None,
            }, fields)
            known[aid] = a["AssignmentStatus"]
            result.new_answers += 1
            result.quarantined += quarantine is not None
        if a["AssignmentStatus"] == "Submitted":
            try:
                mturk.call("ApproveAssignment", AssignmentId=aid)
            except botocore.exceptions.ClientError as exc:
                # Approved meanwhile (auto-approval, or a pass that crashed after approving): the
                # assignment's real status tells, so look rather than guess.
                status = mturk.call("GetAssignment", AssignmentId=aid)["Assignment"]["AssignmentStatus"]
                if status != "Approved":
                    raise exc
            store.set_assignment_status(aid, "Approved")
            result.approved += 1
        elif known.get(aid) != a["AssignmentStatus"]:
            store.set_assignment_status(aid, a["AssignmentStatus"])


def _extend(store: Store, batch: dict, mturk: MTurk, hit: dict, extend_by: int) -> bool:
    """Buy `extend_by` more assignments, within the budget. False if the budget does not allow it."""
    reward = Decimal(batch["reward"])
    new_max = hit["max_assignments"] + extend_by
    if batch.get("budget_usd"):
        money = store.money(batch["name"])
        # The fee tier follows the HIT's MaxAssignments; crossing 10 re-prices nothing already paid,
        # but the added ones pay the new tier.
        cost = assignment_cost(reward, new_max, bool(batch.get("masters"))) * extend_by
        if money["spent"] + money["committed"] + cost > Decimal(batch["budget_usd"]):
            store.event(batch["name"], "over-budget", item=hit["item_id"], cost=format_money(cost))
            return False
    round_ = store.extension_rounds(batch["name"]).get(hit["item_id"], 0) + 1
    token = request_token(batch["uid"], hit["item_id"], round_)
    store.record_extension_intent({
        "token": token, "batch": batch["name"], "item_id": hit["item_id"], "hit_id": hit["hit_id"], "round": round_,
        "added": extend_by, "max_after": new_max, "state": "intent", "created_at": utcnow(), "done_at": None})
    _buy(store, mturk, token, hit["hit_id"], extend_by, new_max)
    return True


def _buy(store: Store, mturk: MTurk, token: str, hit_id: str, added: int, max_after: int) -> None:
    mturk.call("CreateAdditionalAssignmentsForHIT", HITId=hit_id, NumberOfAdditionalAssignments=added,
               UniqueRequestToken=token)
    store.set_hit_fields(hit_id, max_assignments=max_after, reviewed=0, hit_status="Assignable")
    store.extension_done(token)


def _finish_pending_extensions(store: Store, batch: dict, mturk: MTurk, hits: dict[str, dict]) -> None:
    """An extension recorded but not known to be done (a crash mid-call): look at the HIT, then finish it."""
    for ext in store.pending_extensions(batch["name"]):
        current = mturk.call("GetHIT", HITId=ext["hit_id"])["HIT"]["MaxAssignments"]
        if current >= ext["max_after"]:
            store.set_hit_fields(ext["hit_id"], max_assignments=current, reviewed=0, hit_status="Assignable")
            store.extension_done(ext["token"])
        else:
            _buy(store, mturk, ext["token"], ext["hit_id"], ext["added"], ext["max_after"])
        hits[ext["hit_id"]]["max_assignments"] = max(current, ext["max_after"])


def _label_row(batch: str, item_id: str, decision: Decision, answers: pd.DataFrame) -> dict:
    votes = answers.loc[answers["item"] == item_id, "label"].value_counts().to_dict()
    return {"batch": batch, "item_id": item_id, "status": "labelled" if decision.action == "label" else "unresolved",
            "label": decision.label, "confidence": float(decision.confidence), "votes": votes,
            "answers": int(sum(votes.values())), "decided_at": utcnow()}


def _refresh_labels(store: Store, batch: dict, policy, answers: pd.DataFrame) -> None:
    """Final labels and confidences come from the policy's aggregator over the whole batch, and
    worker skills are kept for the next batches."""
    if answers.empty:
        return
    skills = store.prior_skills(batch["name"])
    labels, learned = policy.aggregate(answers, skills=pd.Series(skills, dtype=float) if skills else None)
    current = store.labels(batch["name"])
    rows = []
    for rec in labels.itertuples(index=False):
        row = current.get(rec.item)
        if row is None or row["status"] != "labelled":
            continue
        row = dict(row)
        row["label"], row["confidence"] = rec.label, float(rec.confidence)
        rows.append(row)
    if rows:
        store.save_labels(rows)
    counts = answers.groupby("worker").size()
    now = utcnow()
    store.save_batch_workers(batch["name"], [
        {"worker_id": w, "answers": int(counts.get(w, 0)), "skill": float(s), "updated_at": now}
        for w, s in learned.items()])


def _iso(value) -> str | None:
    if value is None:
        return None
    if hasattr(value, "isoformat"):
        return value.isoformat()
    return str(value)


def harvest_until_done(
    ws: Workspace,
    batch_names: list[str] | None = None,
    *,
    interval: float = 30.0,
    timeout: float | None = None,
    on_pass: Callable[[list[HarvestResult]], None] | None = None,
    **kwargs,
) -> list[HarvestResult]:
    """`--watch`: pass after pass until every item is decided (or the timeout)."""
    started = time.monotonic()
    while True:
        results = harvest(ws, batch_names, **kwargs)
        if on_pass:
            on_pass(results)
        if all(r.done for r in results):
            return results
        if timeout is not None and time.monotonic() - started > timeout:
            return results
        time.sleep(interval)
