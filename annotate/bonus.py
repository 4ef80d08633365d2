"""SendBonus: to one worker, or for every answer that agreed with the batch's consensus.

Money moves once: each bonus has a UniqueRequestToken derived from batch, worker, assignment and
amount, is recorded (as intent) before SendBonus and marked paid after it. A retry skips what the
store knows was paid and re-sends an unconfirmed intent under the same token, which MTurk refuses
as already processed if it went through. Bonus plus MTurk's fee (20%, $0.01 minimum) is checked
against the batch and account budgets before anything is paid, and counted as spent afterwards.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation

import botocore.exceptions

from annotate.budget import Budget, caps_from_config
from annotate.errors import UserError
from annotate.fees import CENT, assignment_fee, format_money
from annotate.mturk import TOKEN_ALREADY_PROCESSED, describe, error_code
from annotate.requester import Confirm, batch_client, confirmed, stored_batch
from annotate.store import Store
from annotate.workspace import Workspace

MAX_REASON = 1024


@dataclass
class BonusResult:
    batch: str
    paid: list[dict] = field(default_factory=list)  # bonuses sent by this run
    already_paid: int = 0  # the same bonus (same token) paid by an earlier run
    total_usd: Decimal = Decimal(0)  # bonus + fee of what this run paid

    def as_json(self) -> dict:
        return {"batch": self.batch, "paid": self.paid, "already_paid": self.already_paid,
                "total_usd": format_money(self.total_usd)}


def bonus_token(batch_uid: str, worker_id: str, assignment_id: str, amount: Decimal) -> str:
    key = f"bonus\0{batch_uid}\0{worker_id}\0{assignment_id}\0{format_money(amount)}"
    return "ann-b-" + hashlib.sha256(key.encode()).hexdigest()[:48]


def parse_amount(text: str) -> Decimal:
    try:
        amount = Decimal(str(text).strip().lstrip("$"))
    except InvalidOperation:
        raise UserError(f"not an amount of money: {text!r}", field="--amount") from None
    if not amount.is_finite() or amount < CENT or amount != amount.quantize(CENT):
        raise UserError(f"a bonus is at least $0.01, in whole cents: got {text!r}", field="--amount")
    return amount


def bonus(ws: Workspace, batch_name: str, *, amount: str | Decimal, reason: str, worker: str | None = None,
          agreeing: bool = False, confirm: Confirm | None = None, target: str | None = None,
          endpoint_url: str | None = None) -> BonusResult:
    amount = parse_amount(str(amount))
    reason = (reason or "").strip()
    if not reason:
        raise UserError("say why: workers see the reason with the bonus", field="--reason")
    if len(reason) > MAX_REASON:
        raise UserError(f"the reason is {len(reason)} characters; MTurk takes at most {MAX_REASON}", field="--reason")
    if bool(worker) == bool(agreeing):
        raise UserError("give either --worker ID or --agreeing", field="--worker")
    store = Store(ws.ensure().store_path)
    batch = stored_batch(store, batch_name)
    targets = _agreeing(store, batch) if agreeing else _one_worker(store, batch_name, worker)
    fee = assignment_fee(amount, 1)
    known = store.bonuses(batch_name)
    todo, result = [], BonusResult(batch_name)
    for worker_id, assignment_id in targets:
        token = bonus_token(batch["uid"], worker_id, assignment_id, amount)
        if known.get(token, {}).get("paid"):
            result.already_paid += 1
        else:
            todo.append({"token": token, "worker": worker_id, "assignment": assignment_id,
                         "amount": format_money(amount), "fee": format_money(fee)})
    if not todo:
        return result
    cost = (amount + fee) * len(todo)
    # Intents not yet confirmed are already in the budget's committed money: do not count them twice.
    unconfirmed = sum((amount + fee for b in todo if b["token"] in known), Decimal(0))
    Budget.load(store, batch_name, *caps_from_config(batch["config"])).require(
        cost - unconfirmed, f"{len(todo)} bonus(es) of ${format_money(amount)} (+ ${format_money(fee)} fee each)")
    workers = len({b["worker"] for b in todo})
    confirmed(confirm, f"Pay {len(todo)} bonus(es) of ${format_money(amount)} to {workers} worker(s) in {batch_name}, "
                       f"${format_money(cost)} with MTurk's fee?")
    with batch_client(ws, store, batch, target, endpoint_url) as mturk:
        for b in todo:
            if b["token"] not in known:
                store.event(batch_name, "bonus-intent", **b, reason=reason)  # before the money moves
            try:
                mturk.call("SendBonus", WorkerId=b["worker"], AssignmentId=b["assignment"],
                           BonusAmount=b["amount"], Reason=reason, UniqueRequestToken=b["token"])
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) != TOKEN_ALREADY_PROCESSED:
                    raise UserError(f"MTurk refused the bonus to {b['worker']} on {b['assignment']}: "
                                    f"{describe(exc)} ({len(result.paid)} paid before it)") from exc
            store.event(batch_name, "bonus", **b, reason=reason)
            result.paid.append(b)
            result.total_usd += amount + fee
    return result


def _one_worker(store: Store, batch: str, worker: str) -> list[tuple[str, str]]:
    """The worker's first answer in the batch carries the bonus (the first stays first as answers
    arrive, so a retry derives the same token)."""
    for a in store.worker_assignments(batch):
        if a["worker_id"] == worker and a["status"] != "Rejected":
            return [(worker, a["assignment_id"])]
    raise UserError(f"worker {worker} has no assignment in batch {batch!r} that was not rejected "
                    f"(a bonus is paid on an assignment)", field="--worker")


def _agreeing(store: Store, batch: dict) -> list[tuple[str, str]]:
    """Every usable answer whose label is the consensus label of a labelled item."""
    from annotate.tasktypes import get_task_type

    if not get_task_type(batch["task_type"]).single_label:
        raise UserError(f"--agreeing compares answers with one label per item; task type {batch['task_type']!r} "
                        f"has none: bonus workers one by one with --worker", field="--agreeing")
    labels = {item: r["label"] for item, r in store.labels(batch["name"]).items() if r["status"] == "labelled"}
    out = [(a["worker_id"], a["assignment_id"]) for a in store.worker_assignments(batch["name"])
           if a["status"] != "Rejected" and a["quarantine"] is None and a["label"] is not None
           and labels.get(a["item_id"]) == a["label"]]
    if not out:
        raise UserError(f"no answer in batch {batch['name']!r} agrees with a consensus label yet (harvest first)",
                        field="--agreeing")
    return out
