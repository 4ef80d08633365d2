"""Posting a batch: one HIT type, one HIT per item, never twice.

Everything is validated and rendered before the first call; the cost is estimated and
checked against the balance and the budget; each HIT is recorded as an intent under a
UniqueRequestToken derived from the batch and the item before it is created, so a crash
or a re-run recovers the HIT (MTurk answers HitAlreadyExists with its id) instead of
paying for a second one.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Callable

from annotate.config import Batch, load_batch
from annotate.budget import Budget, caps_from_config
from annotate.concurrency import parallel
from annotate.consensus import get_policy
from annotate.errors import BudgetExceeded, TargetMismatch, UserError
from annotate.fees import assignment_cost, format_money
from annotate.mturk import MTurk, connect, existing_hit_id
from annotate.store import HitIntent, Store, to_json, utcnow
from annotate.templates import QuestionRenderer, register_local_media, s3_presigner
from annotate.workspace import Workspace

Progress = Callable[[int, int], None]


@dataclass
class PostResult:
    batch: str
    target: str
    hit_type_id: str | None
    items: int
    created: int = 0
    recovered: int = 0
    already_posted: int = 0
    estimate_usd: Decimal = Decimal(0)
    balance_usd: Decimal | None = None
    dry_run: bool = False
    api_calls: dict[str, int] = field(default_factory=dict)


def request_token(batch_uid: str, item_id: str, round_: int) -> str:
    """UniqueRequestToken (≤ 64 chars): the same batch, item and round always give the same token."""
    digest = hashlib.sha256(f"{batch_uid}\0{item_id}\0{round_}".encode()).hexdigest()[:48]
    return f"ann-{digest}"


def make_policy(batch: Batch):
    settings = dict(batch.consensus)
    name = settings.pop("policy", None)
    try:
        return get_policy(name, **settings)
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        raise UserError(f"consensus settings: {message}", file=str(batch.dir / "batch.toml"), field="consensus") from None


def resolve_target(stored: dict | None, requested: str | None, batch_name: str) -> str:
    """The target recorded for a batch wins; a different one is refused. Production is never implied."""
    if stored is None:
        return requested or "local"
    if requested and requested != stored["target"]:
        raise TargetMismatch(f"batch {batch_name!r} was posted to {stored['target']}; refusing --target {requested}")
    if stored["target"] == "production" and requested != "production":
        raise TargetMismatch(f"batch {batch_name!r} is on production: repeat with --target production to act on it")
    return stored["target"]


def post_batch(ws: Workspace, batch_dir: str | Path, **options) -> PostResult:
    """Post a batch (see `_post_batch`). One post at a time per project home: a second run waits
    for the first, then finds its items posted (two at once both found the batch new)."""
    with ws.lock("post"):
        return _post_batch(ws, batch_dir, **options)


def _post_batch(
    ws: Workspace,
    batch_dir: str | Path,
    *,
    target: str | None = None,
    endpoint_url: str | None = None,
    confirm: Callable[[str], bool] | None = None,
    progress: Progress | None = None,
    dry_run: bool = False,
    remember_endpoint: bool = True,
    concurrency: int | None = None,
) -> PostResult:
    """Post a batch (or the items of it not yet posted). `remember_endpoint=False` for throwaway
    marketplaces (the demo's), so later commands fall back to the project's embedded one."""
    batch = load_batch(batch_dir)
    policy = make_policy(batch)
    store = Store(ws.ensure().store_path)
    stored = store.get_batch(batch.name)
    target = resolve_target(stored, target, batch.name)
    if stored is not None and endpoint_url is None:
        endpoint_url = stored.get("endpoint_url")  # the marketplace it was posted to, if one was named

    # Render every question first: a template or item error stops everything before a call is made.
    presign = None
    if any(str(v).startswith("s3://") for item in batch.items for v in item.data.values()):
        import boto3

        presign = s3_presigner(boto3.client("s3"))
    # Rendered (and size-checked) here only to be checked: each is rendered again just before its
    # HIT is created. Keeping them would cost ~2 KB per item even compressed (200 MB at 100,000).
    renderer = QuestionRenderer(batch, target, presign)
    for item in batch.items:
        renderer.question(item)

    posted_items = {h["item_id"] for h in store.hits(batch.name, created=True)} if stored else set()
    if stored:
        known = set(store.item_ids(batch.name))
        missing = known - {i.id for i in batch.items}
        if missing:
            raise UserError(f"{len(missing)} item(s) posted before are missing from the items file "
                            f"(e.g. {sorted(missing)[0]!r}); a batch's items can be added to, not removed",
                            file=str(batch.items_file))
    to_post = [i for i in batch.items if i.id not in posted_items]
    initial = policy.initial_assignments
    unit = assignment_cost(batch.hit.reward, initial, batch.hit.masters)
    estimate = unit * initial * len(to_post)
    result = PostResult(batch=batch.name, target=target, hit_type_id=stored.get("hit_type_id") if stored else None,
                        items=len(batch.items), already_posted=len(posted_items), estimate_usd=estimate, dry_run=dry_run)
    Budget.load(store, batch.name, *caps_from_config(batch.config)).require(
        estimate, f"posting {len(to_post)} HIT(s) × {initial} assignment(s) at ${batch.hit.reward} + fee",
        file=str(batch.dir / "batch.toml"))
    if not to_post:
        return result

    with connect(ws, target, endpoint_url) as mturk:
        balance = Decimal(mturk.call("GetAccountBalance")["AvailableBalance"])
        result.balance_usd = balance
        if estimate > balance:
            raise BudgetExceeded(f"posting costs ${format_money(estimate)} but the {target} account balance is "
                                 f"${format_money(balance)}")
        if dry_run:
            result.api_calls = mturk.take_calls()
            return result
        if target == "production" and confirm is not None and not confirm(
                f"Post {len(to_post)} HITs to PRODUCTION for up to ${format_money(estimate)}?"):
            raise UserError("not confirmed; nothing was posted")

        if target == "local" and renderer.served_local_media:
            # Before any HIT can show the files, and before the store is written: a marketplace that
            # refuses (no key) leaves nothing half-posted.
            register_local_media(mturk.endpoint_url, batch.dir, ws.marketplace_db)
        if stored is None:
            store.add_batch(_batch_row(batch, target, endpoint_url if remember_endpoint else None, policy_name=getattr(policy, "name", None)),
                            [{"batch": batch.name, "item_id": i.id, "position": i.position, "line": i.line,
                              "data": to_json(i.data), "gold": i.gold, "known": i.known} for i in batch.items])
            stored = store.get_batch(batch.name)
        else:
            new = [i for i in batch.items if i.id not in set(store.item_ids(batch.name))]
            store.add_items([{"batch": batch.name, "item_id": i.id, "position": i.position, "line": i.line,
                              "data": to_json(i.data), "gold": i.gold, "known": i.known} for i in new])
        hit_type_id = stored.get("hit_type_id") or _create_hit_type(mturk, batch)
        store.update_batch(batch.name, hit_type_id=hit_type_id, posted_at=utcnow())
        result.hit_type_id = hit_type_id

        uid = stored["uid"]
        store.record_hit_intents([{"token": request_token(uid, i.id, 0), "batch": batch.name, "item_id": i.id,
                                   "max_assignments": initial, "status": "intent", "reviewed": 0} for i in to_post])
        intents = store.hit_intents(batch.name)
        store.event(batch.name, "post", hits=len(intents), estimate=str(estimate))
        items = {i.id: i for i in batch.items}
        created: list[tuple[str, str]] = []
        try:
            calls = parallel(lambda intent: _create_hit(mturk, batch, hit_type_id, intent,
                                                        renderer.question(items[intent.item_id])),
                             intents, concurrency)
            for n, (intent, (hit_id, recovered, expires)) in enumerate(calls, start=1):
                created.append((intent.token, hit_id, expires))
                result.recovered += recovered
                result.created += not recovered
                if len(created) >= 200:
                    store.hits_created(created)
                    created.clear()
                if progress:
                    progress(n, len(intents))
        finally:
            # Whatever was created is recorded even when a later call fails; what is not, the
            # next run recovers through its token.
            store.hits_created(created)
            result.api_calls = mturk.take_calls()
            store.add_api_calls(batch.name, result.api_calls)
    return result


def _create_hit_type(mturk: MTurk, batch: Batch) -> str:
    params = dict(
        AutoApprovalDelayInSeconds=batch.hit.auto_approval_delay,
        AssignmentDurationInSeconds=batch.hit.assignment_duration,
        Reward=format_money(batch.hit.reward),
        Title=batch.hit.title,
        Keywords=batch.hit.keywords,
        Description=batch.hit.description,
    )
    if batch.hit.qualifications:
        params["QualificationRequirements"] = batch.hit.qualifications
    return mturk.call("CreateHITType", **params)["HITTypeId"]


def _create_hit(mturk: MTurk, batch: Batch, hit_type_id: str, intent: HitIntent, question: str) -> tuple[str, bool, str | None]:
    """Create one HIT; if its token was used before, recover that HIT instead.
    Returns (HIT id, recovered, expiration as ISO 8601)."""
    import botocore.exceptions

    try:
        response = mturk.call(
            "CreateHITWithHITType",
            HITTypeId=hit_type_id,
            MaxAssignments=intent.max_assignments,
            LifetimeInSeconds=batch.hit.lifetime,
            Question=question,
            RequesterAnnotation=batch.annotation(intent.item_id),
            UniqueRequestToken=intent.token,
        )
        return response["HIT"]["HITId"], False, _iso(response["HIT"].get("Expiration"))
    except botocore.exceptions.ClientError as exc:
        hit_id = existing_hit_id(exc)
        if hit_id is None:
            raise
        return hit_id, True, _iso(mturk.call("GetHIT", HITId=hit_id)["HIT"].get("Expiration"))


def _iso(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _batch_row(batch: Batch, target: str, endpoint_url: str | None, policy_name: str | None) -> dict:
    return {
        "name": batch.name, "uid": uuid.uuid4().hex[:16], "dir": str(batch.dir), "target": target,
        "endpoint_url": endpoint_url, "hit_type_id": None, "task_type": batch.task_type,
        "label_attribute": batch.label_attribute, "labels": batch.labels, "answer_field": batch.answer_field,
        "reward": format_money(batch.hit.reward), "masters": int(batch.hit.masters), "lifetime": batch.hit.lifetime,
        "budget_usd": format_money(batch.budget_usd) if batch.budget_usd is not None else None,
        "policy": policy_name, "config": batch.config, "created_at": utcnow(), "posted_at": None,
    }
