"""Excluded workers and the trusted-worker pool, as MTurk qualifications the project owns.

Two qualification types per account, created once and remembered in the store:
 - exclusion: granted to workers shown to answer at random. Every batch's HITs require its
   absence (DoesNotExist, guarding discovery, preview and accept), so an excluded worker no
   longer sees them. Unlike CreateWorkerBlock, it does not count against the worker's account
   (MTurk's own advice: exclude for quality with a qualification, block only for abuse).
 - pool: granted with IntegerValue = the worker's pool score (the lower end of a 95% interval
   on their accuracy, in percent, over every batch; annotate.exclusion). A batch with
   `[workers] pool = N` requires GreaterThanOrEqualTo N.
Blocking stays, by hand only: `annotate workers block|unblock ID --reason`.
"""

from __future__ import annotations

import botocore.exceptions

from annotate.exclusion import pool_score
from annotate.mturk import MTurk, refused
from annotate.store import Store

TYPES = {
    "exclusion": ("annotate: excluded workers",
                  "Workers whose answers this requester found to be about random. HITs of this requester "
                  "that require its absence are not shown to them."),
    "pool": ("annotate: trusted-worker pool",
             "Workers whose accuracy this requester has established on earlier work. The value is a "
             "lower bound on that accuracy, in percent."),
}
GUARD = "DiscoverPreviewAndAccept"  # an excluded worker neither finds, previews nor accepts the HIT


def qualification_type(store: Store, mturk: MTurk, purpose: str) -> str:
    """The project's qualification type for `purpose` on this marketplace: as stored (checked once
    per connection: a store may meet a new marketplace), else found by its name (the store was
    lost, the account kept it), else created."""
    cache = mturk.__dict__.setdefault("_annotate_qualification_types", {})
    if purpose in cache:
        return cache[purpose]
    name, description = TYPES[purpose]
    type_id = store.qualification_type(purpose, mturk.target)
    if type_id is not None:
        try:
            if mturk.call("GetQualificationType", QualificationTypeId=type_id)["QualificationType"][
                    "QualificationTypeStatus"] != "Active":
                type_id = None
        except botocore.exceptions.ClientError as exc:
            if not refused(exc):
                raise
            type_id = None
    if type_id is None:
        type_id = _find(mturk, name)
    if type_id is None:
        type_id = mturk.call("CreateQualificationType", Name=name, Description=description,
                             QualificationTypeStatus="Active")["QualificationType"]["QualificationTypeId"]
    store.save_qualification_type(purpose, mturk.target, type_id)
    cache[purpose] = type_id
    return type_id


def _find(mturk: MTurk, name: str) -> str | None:
    for t in mturk.pages("ListQualificationTypes", "QualificationTypes", Query=name, MustBeRequestable=False,
                         MustBeOwnedByCaller=True, MaxResults=100):
        if t["Name"] == name and t.get("QualificationTypeStatus") == "Active":
            return t["QualificationTypeId"]
    return None


def requirements(store: Store, mturk: MTurk, pool: int | None) -> list[dict]:
    """What every batch's HIT type requires: no exclusion; with `pool`, a pool score of at least it."""
    out = [{"QualificationTypeId": qualification_type(store, mturk, "exclusion"), "Comparator": "DoesNotExist",
            "ActionsGuarded": GUARD}]
    if pool is not None:
        out.append({"QualificationTypeId": qualification_type(store, mturk, "pool"),
                    "Comparator": "GreaterThanOrEqualTo", "IntegerValues": [pool], "ActionsGuarded": GUARD})
    return out


def exclude(store: Store, mturk: MTurk, worker_id: str, reason: str) -> None:
    """Grant the exclusion qualification (no notice to the worker), then record it."""
    mturk.call("AssociateQualificationWithWorker", QualificationTypeId=qualification_type(store, mturk, "exclusion"),
               WorkerId=worker_id, IntegerValue=1, SendNotification=False)
    store.set_excluded(worker_id, reason)


def include(store: Store, mturk: MTurk, worker_id: str, reason: str) -> None:
    """Take the exclusion back: the worker sees this requester's HITs again."""
    try:
        mturk.call("DisassociateQualificationFromWorker", QualificationTypeId=qualification_type(store, mturk, "exclusion"),
                   WorkerId=worker_id, Reason=reason)
    except botocore.exceptions.ClientError as exc:
        if not refused(exc):
            raise  # refused: the worker did not hold it on this marketplace; the store is put right below
    store.set_excluded(worker_id, reason, excluded=False)


def update_pool(store: Store, mturk: MTurk, pool_after: int) -> dict[str, int]:
    """Grant (or update) the pool qualification of every worker whose pool score, over every
    batch's evidence, is established and differs from what MTurk holds. Returns worker -> score."""
    changed = {}
    for w in store.pool_evidence():
        if w["excluded"]:
            continue
        score = pool_score(w["evidence_right"], w["evidence"], w["answers"], pool_after)
        if score is None or score == w["pool"]:
            continue
        mturk.call("AssociateQualificationWithWorker", QualificationTypeId=qualification_type(store, mturk, "pool"),
                   WorkerId=w["worker_id"], IntegerValue=score, SendNotification=False)
        store.set_pool(w["worker_id"], score)
        changed[w["worker_id"]] = score
    return changed
