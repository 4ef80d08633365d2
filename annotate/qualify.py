"""Creating a batch's qualification test on a marketplace, once.

The type's id is kept in the store (a `qualification-type` event naming the batch, target, test
digest and id), so re-posting or `annotate qualify create` again reuses it. CreateQualificationType
has no request token, but a type's name is unique per account and ours is derived from the test:
a run that crashed between MTurk's answer and the store's record finds the type by its name
(QualificationTypeAlreadyExists, then ListQualificationTypes) instead of making a second one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from annotate.config import Batch, load_batch
from annotate.errors import UserError
from annotate.mturk import MTurk, connect, error_code
from annotate.qualification_test import check_request, create_request, type_name
from annotate.store import Store
from annotate.workspace import Workspace

EVENT = "qualification-type"


@dataclass
class QualifyResult:
    batch: str
    target: str
    qualification_type_id: str | None
    name: str
    created: bool = False
    dry_run: bool = False
    request: dict[str, Any] = field(default_factory=dict)
    requirement: dict[str, Any] | None = None
    questions: int = 0


def stored_type(store: Store, batch: Batch, target: str) -> str | None:
    """The id of this batch's test type on `target`, if one was created for this very test."""
    digest = batch.test.digest()
    for e in reversed(store.events(batch.name, (EVENT,))):
        if e.get("target") == target and e.get("digest") == digest:
            return e["qualification_type_id"]
    return None


def stored_types(store: Store, batch_name: str) -> list[dict[str, Any]]:
    return store.events(batch_name, (EVENT,))


def _find_by_name(mturk: MTurk, name: str) -> str | None:
    for t in mturk.pages("ListQualificationTypes", "QualificationTypes", Query=name, MustBeRequestable=False,
                         MustBeOwnedByCaller=True, MaxResults=100):
        if t.get("Name") == name:
            return t["QualificationTypeId"]
    return None


def ensure_test_type(store: Store, mturk: MTurk, batch: Batch, target: str,
                     marketplace_db: str | Path | None = None) -> tuple[str, bool]:
    """The batch's test type id on this marketplace, created if it is not yet: (id, created now)."""
    import botocore.exceptions

    found = stored_type(store, batch, target)
    if found is not None:
        return found, False
    base_url = mturk.endpoint_url if target == "local" else None
    params = create_request(batch, batch.test, base_url)
    check_request(params, str(batch.dir / "batch.toml"))
    if target == "local" and any(q.image and not q.image.startswith(("http://", "https://"))
                                 for q in batch.test.questions):
        from annotate.templates import register_local_media

        register_local_media(mturk.endpoint_url, batch.dir, marketplace_db)
    created = True
    try:
        type_id = mturk.call("CreateQualificationType", **params)["QualificationType"]["QualificationTypeId"]
    except botocore.exceptions.ClientError as exc:
        if error_code(exc) not in ("AWS.MechanicalTurk.QualificationTypeAlreadyExists",
                                   "QualificationTypeAlreadyExists"):
            raise
        type_id = _find_by_name(mturk, params["Name"])
        if type_id is None:
            raise
        created = False
    store.event(batch.name, EVENT, target=target, digest=batch.test.digest(), qualification_type_id=type_id,
                name=params["Name"], passing_score=batch.test.passing_score, questions=len(batch.test.questions))
    return type_id, created


def create(ws: Workspace, batch_dir: str | Path, *, target: str | None = None, endpoint_url: str | None = None,
           dry_run: bool = False) -> QualifyResult:
    """`annotate qualify create`: the batch's test type, on its own (post does the same on the way)."""
    from annotate.post import resolve_target

    batch = load_batch(batch_dir)
    file = str(batch.dir / "batch.toml")
    if batch.test is None:
        raise UserError("the batch has no qualification test (set [workers] test)", file=file, field="workers.test")
    store = Store(ws.ensure().store_path)
    stored = store.get_batch(batch.name)
    target = resolve_target(stored, target, batch.name)
    if stored is not None and endpoint_url is None:
        endpoint_url = stored.get("endpoint_url")
    params = create_request(batch, batch.test, endpoint_url if target == "local" else None)
    check_request(params, file)
    result = QualifyResult(batch.name, target, stored_type(store, batch, target), type_name(batch.name, batch.test),
                           dry_run=dry_run, request=params, questions=len(batch.test.questions))
    if dry_run or result.qualification_type_id is not None:
        if result.qualification_type_id:
            result.requirement = batch.test.requirement(result.qualification_type_id)
        return result
    with connect(ws, target, endpoint_url) as mturk:
        type_id, result.created = ensure_test_type(store, mturk, batch, target, ws.marketplace_db)
        store.add_api_calls(batch.name, mturk.take_calls())
    result.qualification_type_id = type_id
    result.requirement = batch.test.requirement(type_id)
    return result


def show(ws: Workspace, batch_name: str, *, endpoint_url: str | None = None) -> list[dict[str, Any]]:
    """The batch's test types as the store keeps them, with what the marketplace says of each now."""
    store = Store(ws.ensure().store_path)
    found = stored_types(store, batch_name)
    if not found:
        raise UserError(f"no qualification test was created for batch {batch_name!r} (annotate qualify create)")
    stored = store.get_batch(batch_name)
    out = []
    for e in found:
        entry = {k: e.get(k) for k in ("qualification_type_id", "name", "target", "passing_score", "questions", "at")}
        out.append(entry)
    target = found[-1]["target"]
    import botocore.exceptions

    with connect(ws, target, endpoint_url or (stored or {}).get("endpoint_url")) as mturk:
        for entry in out:
            if entry["target"] != target:
                continue
            try:
                t = mturk.call("GetQualificationType", QualificationTypeId=entry["qualification_type_id"])
            except botocore.exceptions.ClientError as exc:  # deleted since: say so beside it, keep the others
                entry["status"] = f"unavailable: {error_code(exc) or exc}"
                continue
            entry["status"] = t["QualificationType"].get("QualificationTypeStatus")
            workers = list(mturk.pages("ListWorkersWithQualificationType", "Qualifications",
                                       QualificationTypeId=entry["qualification_type_id"], MaxResults=100))
            passing = entry.get("passing_score") or 0
            entry["workers_tested"] = len(workers)
            entry["workers_passing"] = sum(1 for w in workers if w.get("IntegerValue", 0) >= passing)
    return out
