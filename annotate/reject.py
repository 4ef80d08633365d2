"""RejectAssignment with the requester's feedback, and ApproveAssignment (with OverrideRejection
to undo a rejection). Never automatic: a person names the assignments and confirms.

Only Submitted assignments can be rejected (MTurk's rule too), and the whole request is checked
against MTurk before anything is changed: one assignment that cannot be rejected means none is.
A rejected answer leaves consensus at the next harvest pass (the store's usable answers exclude
Rejected ones) and is no longer counted as spent.
"""

from __future__ import annotations

from contextlib import ExitStack
from dataclasses import dataclass, field

import botocore.exceptions

from annotate.errors import UserError
from annotate.mturk import MTurk, describe
from annotate.requester import Confirm, batch_client, confirmed, stored_batch
from annotate.store import Store
from annotate.workspace import Workspace

MAX_FEEDBACK = 1024  # RequesterFeedback's limit


@dataclass
class ReviewResult:
    action: str  # reject | approve
    assignments: list[str] = field(default_factory=list)
    workers: list[str] = field(default_factory=list)
    batches: list[str] = field(default_factory=list)

    def as_json(self) -> dict:
        return {"action": self.action, "assignments": self.assignments, "workers": self.workers,
                "batches": self.batches}


def reject(ws: Workspace, assignment_ids: list[str], feedback: str, *, confirm: Confirm | None = None,
           target: str | None = None, endpoint_url: str | None = None) -> ReviewResult:
    feedback = (feedback or "").strip()
    if not feedback:
        raise UserError("say why: workers see the feedback of a rejection", field="--feedback")
    if len(feedback) > MAX_FEEDBACK:
        raise UserError(f"feedback is {len(feedback)} characters; MTurk takes at most {MAX_FEEDBACK}",
                        field="--feedback")
    return _review(ws, "reject", assignment_ids, feedback, ("Submitted",), confirm, target, endpoint_url)


def approve(ws: Workspace, assignment_ids: list[str], *, override: bool = False, feedback: str | None = None,
            confirm: Confirm | None = None, target: str | None = None, endpoint_url: str | None = None) -> ReviewResult:
    """Approve Submitted assignments; with `override`, Rejected ones too (the rejection is undone and paid)."""
    allowed = ("Submitted", "Rejected") if override else ("Submitted",)
    return _review(ws, "approve", assignment_ids, feedback, allowed, confirm, target, endpoint_url)


def _review(ws, action, assignment_ids, feedback, allowed, confirm, target, endpoint_url) -> ReviewResult:
    ids = list(dict.fromkeys(assignment_ids))
    if not ids:
        raise UserError("name at least one ASSIGNMENT", field="ASSIGNMENT")
    store = Store(ws.ensure().store_path)
    rows = store.assignments_by_id(ids)
    missing = [a for a in ids if a not in rows]
    if missing:
        raise UserError(f"not in the store: {', '.join(missing)} (harvest the batch first, or check the id)",
                        field="ASSIGNMENT")
    by_batch: dict[str, list[str]] = {}
    for a in ids:
        by_batch.setdefault(rows[a]["batch"], []).append(a)
    result = ReviewResult(action, workers=sorted({rows[a]["worker_id"] for a in ids}), batches=sorted(by_batch))
    with ExitStack() as stack:  # one connection per batch touched (they may live on different marketplaces)
        clients = {name: stack.enter_context(batch_client(ws, store, stored_batch(store, name), target, endpoint_url))
                   for name in by_batch}
        # MTurk is the truth about an assignment's state: check every one before changing any.
        wrong = []
        for name, aids in by_batch.items():
            for a in aids:
                status = clients[name].call("GetAssignment", AssignmentId=a)["Assignment"]["AssignmentStatus"]
                if status != rows[a]["status"]:
                    store.set_assignment_statuses([(a, status)])
                if status not in allowed:
                    wrong.append(f"{a} is {status}")
        if wrong:
            only = " or ".join(allowed)
            hint = ""
            if action == "reject" and any(w.endswith(" is Approved") for w in wrong):
                hint = ("; harvest approves each answer once stored: to review before paying, post with "
                        "[hit] approval = \"auto\" and an auto_approval_delay long enough to review")
            raise UserError(f"only {only} assignments can be {action}d; {'; '.join(wrong)} (nothing was done){hint}",
                            field="ASSIGNMENT")
        n = len(result.workers)
        confirmed(confirm, f"{action.capitalize()} {len(ids)} assignment(s) of {n} worker(s) "
                           f"in {', '.join(result.batches)}?")
        for name, aids in by_batch.items():
            for a in aids:
                _act(clients[name], store, name, action, a, rows[a]["worker_id"], feedback, allowed)
                result.assignments.append(a)
    return result


def _act(mturk: MTurk, store: Store, batch: str, action: str, aid: str, worker: str, feedback, allowed) -> None:
    try:
        if action == "reject":
            mturk.call("RejectAssignment", AssignmentId=aid, RequesterFeedback=feedback)
        else:
            params = {"AssignmentId": aid, "OverrideRejection": "Rejected" in allowed}
            if feedback:
                params["RequesterFeedback"] = feedback
            mturk.call("ApproveAssignment", **params)
    except botocore.exceptions.ClientError as exc:
        # A lost response of a call that went through: the assignment shows the state asked for.
        wanted = "Rejected" if action == "reject" else "Approved"
        if mturk.call("GetAssignment", AssignmentId=aid)["Assignment"]["AssignmentStatus"] != wanted:
            raise UserError(f"MTurk refused to {action} {aid}: {describe(exc)}") from exc
    if action == "reject":
        store.set_assignment_statuses([(aid, "Rejected")])
    else:
        store.set_assignments_approved([aid])
    store.event(batch, action, assignment=aid, worker=worker, feedback=feedback,
                override="Rejected" in allowed if action == "approve" else None)

