"""Posting a batch: one HIT type, one HIT per item, never twice.

Everything is validated and rendered before the first call; the cost is estimated and
checked against the balance and the budget; each HIT is recorded as an intent under a
UniqueRequestToken derived from the batch and the item before it is created, so a crash
or a re-run recovers the HIT (MTurk answers HitAlreadyExists with its id) instead of
paying for a second one.

The token is a digest of what the HIT is (the batch's name, HIT type, template, task settings,
and the item's id and data), never of anything local to one project home, so the same batch
posted from a second home within MTurk's 24-hour token window recovers the first home's HITs
too. After 24 hours MTurk forgets a token: a second home would then create (and pay for) new
HITs; within one home the store remembers every HIT created, so re-posting never does, and an
intent left by a crash longer ago than that is looked for among the account's HITs (ListHITs)
before its token is sent again.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Callable

from annotate import automation
from annotate.config import Batch, Item, load_batch
from annotate.budget import Budget, caps_from_config
from annotate.concurrency import parallel
from annotate.budget import spend_to_budget
from annotate.consensus import get_policy
from annotate.errors import BudgetExceeded, TargetMismatch, UserError
from annotate.fees import assignment_cost, format_money
from annotate.limits import EXTENSION_CLIFF, MAX_ASSIGNMENTS_MAX, QUALIFICATIONS_MAX, input_shape, problems
from annotate.mturk import MTurk, connect, existing_hit_id
from annotate import pools
from annotate.store import HitIntent, Store, to_json, utcnow
from annotate.templates import QuestionRenderer, environment, register_local_media, s3_presigner
from annotate.workspace import Workspace

Progress = Callable[[int, int], None]
# MTurk remembers a UniqueRequestToken for 24 hours; an hour's margin for clocks and long runs.
TOKEN_MEMORY = timedelta(hours=23)


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
    notes: list[str] = field(default_factory=list)
    qualification_request: dict | None = None  # CreateQualificationType's, for a batch with a test
    qualification_type_id: str | None = None


def request_token(batch_uid: str, item_id: str, round_: int, content: str = "") -> str:
    """UniqueRequestToken (52 of MTurk's 64 characters): the same batch, item, round (and item
    content, when given) always give the same token."""
    key = f"{batch_uid}\0{item_id}\0{round_}" + (f"\0{content}" if content else "")
    digest = hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()[:48]
    return f"ann-{digest}"


def _digest(value) -> str:
    text = json.dumps(value, sort_keys=True, ensure_ascii=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


def batch_uid(batch: Batch, template_source: str, initial_assignments: int) -> str:
    """The batch's identity for request tokens: its name and everything that shapes its HITs, not
    the project home it is posted from (two homes posting one batch recover each other's HITs)."""
    return _digest({
        "name": batch.name, "hit_type": _hit_type_params(batch), "lifetime": batch.hit.lifetime,
        "frame_height": batch.hit.frame_height, "template": batch.template, "template_source": template_source,
        "task_type": batch.task_type, "labels": batch.labels, "field": batch.answer_field,
        "instructions": batch.instructions, "assignments": initial_assignments,
    })[:16]


def item_digest(item: Item) -> str:
    """What a HIT shows of its item: an edited item is a different HIT (a different token)."""
    return _digest([item.id, item.data])


def make_policy(batch: Batch):
    settings = dict(batch.consensus)
    name = settings.pop("policy", None)
    file = str(batch.dir / "batch.toml")
    try:
        settings = spend_to_budget(settings, batch.budget_usd, batch.hit.reward, len(batch.items))
        policy = get_policy(name, **settings)
    except (KeyError, ValueError, TypeError) as exc:
        message = exc.args[0] if exc.args else str(exc)
        # a setting that knows its name (annotate.consensus.policies.SettingError) is named in full
        field = f"consensus.{exc.setting}" if getattr(exc, "setting", None) else "consensus"
        raise UserError(f"consensus settings: {message}", file=file, field=field) from None
    first, most = policy.initial_assignments, policy.max_assignments
    if first < EXTENSION_CLIFF <= most:
        # MTurk refuses to extend a HIT created with fewer than 10 assignments to 10 or more
        # (InvalidMaximumAssignmentsIncrease): every harvest would fail on it, for good.
        raise UserError(f"max_assignments = {most}, but HITs start with {first} assignment(s) and MTurk never "
                        f"extends a HIT created with fewer than {EXTENSION_CLIFF} to {EXTENSION_CLIFF} or more; "
                        f"use at most {EXTENSION_CLIFF - 1}, or start at {EXTENSION_CLIFF} or more with "
                        f"initial_assignments (the 40% fee tier)", file=file, field="consensus.max_assignments")
    if most > MAX_ASSIGNMENTS_MAX:
        raise UserError(f"MTurk allows at most {MAX_ASSIGNMENTS_MAX:,} assignments per HIT, got {most}",
                        file=file, field="consensus.max_assignments")
    return policy


# CreateHITType / CreateHITWithHITType parameters → where the requester sets them.
_PARAM_FIELDS = {"Title": "hit.title", "Description": "hit.description", "Keywords": "hit.keywords",
                 "Reward": "hit.reward", "AssignmentDurationInSeconds": "hit.assignment_duration",
                 "AutoApprovalDelayInSeconds": "hit.auto_approval_delay", "QualificationRequirements": "hit.qualifications",
                 "LifetimeInSeconds": "hit.lifetime", "MaxAssignments": "consensus", "Question": "batch.template"}


def check_requests(batch: Batch, uid: str, initial: int, question: str) -> None:
    """The HIT type and one HIT request as the service model constrains them, before any call:
    every item's request differs only in parts checked item by item (question, annotation, token)."""
    file = str(batch.dir / "batch.toml")
    # The test's requirement is checked too, with a stand-in id (the type is created at post time).
    test = [batch.test.requirement("3" * 30)] if batch.test is not None else []
    for operation, params in (("CreateHITType", _hit_type_params(batch, test)),
                              ("CreateHITWithHITType", _hit_params(batch, "A" * 30, initial, batch.items[0].id, question,
                                                                   request_token(uid, batch.items[0].id, 0)))):
        wrong = problems(params, input_shape("mturk", operation))
        if wrong:
            where = next((f for p, f in _PARAM_FIELDS.items() if any(p in w for w in wrong)), None)
            raise UserError(f"MTurk's {operation} would refuse: " + "; ".join(wrong), file=file, field=where)


_UNSET = object()


def changed_settings(posted: dict, now: dict, prefix: str = "") -> list[tuple[str, object, object]]:
    """(dotted field, value when posted, value now) for every setting of batch.toml that differs."""
    changes: list[tuple[str, object, object]] = []
    for key in sorted(set(posted) | set(now)):
        before, after = posted.get(key, _UNSET), now.get(key, _UNSET)
        if isinstance(before, dict) and isinstance(after, dict):
            changes += changed_settings(before, after, f"{prefix}{key}.")
        elif before != after:
            changes.append((f"{prefix}{key}", before, after))
    return changes


def refuse_changed_settings(stored: dict, batch: Batch) -> None:
    """A posted batch's HITs, and every harvest after, keep the settings it was first posted with
    (the store's copy of batch.toml): an edit would be silently ignored, so it is refused by name."""
    posted = stored.get("config")
    if not isinstance(posted, dict):
        return
    changes = changed_settings(posted, json.loads(to_json(batch.config)))
    if not changes:
        return
    def shown(value) -> str:
        return "(unset)" if value is _UNSET else repr(value)

    raise UserError(
        f"settings changed since batch {batch.name!r} was posted: "
        + "; ".join(f"{name} {shown(before)} -> {shown(after)}" for name, before, after in changes)
        + ". Its HITs and its harvests keep the posted settings: restore them, or post the new ones "
          "as a new batch (another [batch] name)", file=str(batch.dir / "batch.toml"), field=changes[0][0])


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
    first_posted = stored.get("created_at") if stored else None
    target = resolve_target(stored, target, batch.name)
    if stored is not None:
        refuse_changed_settings(stored, batch)
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
    first_question = None
    for item in batch.items:
        question = renderer.question(item)
        first_question = first_question or question
    template_source = renderer.env.loader.get_source(renderer.env, batch.template)[0]
    uid = batch_uid(batch, template_source, policy.initial_assignments)
    check_requests(batch, uid, policy.initial_assignments, first_question)
    check_requirement_room(batch)

    posted_items = {h["item_id"] for h in store.hits(batch.name, created=True)} if stored else set()
    if stored:
        known = set(store.item_ids(batch.name))
        missing = known - {i.id for i in batch.items}
        if missing:
            raise UserError(f"{len(missing)} item(s) posted before are missing from the items file "
                            f"(e.g. {sorted(missing)[0]!r}); a batch's items can be added to, not removed",
                            file=str(batch.items_file))
    to_post = [i for i in batch.items if i.id not in posted_items]
    to_post = automation.postable(batch, store, to_post)  # [automation]: only what people are to label
    initial = policy.initial_assignments
    unit = assignment_cost(batch.hit.reward, initial, batch.hit.masters)
    estimate = unit * initial * len(to_post)
    result = PostResult(batch=batch.name, target=target, hit_type_id=stored.get("hit_type_id") if stored else None,
                        items=len(batch.items), already_posted=len(posted_items), estimate_usd=estimate, dry_run=dry_run)
    if batch.test is not None:
        from annotate.qualification_test import check_request, create_request
        from annotate.qualify import stored_type

        result.qualification_type_id = stored_type(store, batch, target)
        result.qualification_request = create_request(batch, batch.test, endpoint_url if target == "local" else None)
        check_request(result.qualification_request, str(batch.dir / "batch.toml"))
    Budget.load(store, batch.name, *caps_from_config(batch.config)).require(
        estimate, f"posting {len(to_post)} HIT(s) × {initial} assignment(s) at ${batch.hit.reward} + fee",
        file=str(batch.dir / "batch.toml"))
    if not to_post:
        return result
    if dry_run and target != "local" and endpoint_url is None and not _has_credentials():
        # Everything but the balance is checked offline: a dry run needs no account.
        result.notes.append(f"no AWS credentials: the {target} account balance was not checked")
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
            store.add_batch(_batch_row(batch, target, endpoint_url if remember_endpoint else None, policy_name=getattr(policy, "name", None), uid=uid),
                            [{"batch": batch.name, "item_id": i.id, "position": i.position, "line": i.line,
                              "data": to_json(i.data), "gold": i.gold, "known": i.known} for i in batch.items])
            stored = store.get_batch(batch.name)
        else:
            new = [i for i in batch.items if i.id not in set(store.item_ids(batch.name))]
            store.add_items([{"batch": batch.name, "item_id": i.id, "position": i.position, "line": i.line,
                              "data": to_json(i.data), "gold": i.gold, "known": i.known} for i in new])
        requirements = []
        if batch.test is not None:
            from annotate.qualify import ensure_test_type

            type_id, _ = ensure_test_type(store, mturk, batch, target, ws.marketplace_db)
            result.qualification_type_id = type_id
            requirements.append(batch.test.requirement(type_id))
        hit_type_id = stored.get("hit_type_id") or _create_hit_type(
            mturk, batch, [*requirements, *_worker_requirements(store, mturk, batch, result)])
        store.update_batch(batch.name, hit_type_id=hit_type_id, posted_at=utcnow())
        result.hit_type_id = hit_type_id
        items = {i.id: i for i in batch.items}
        if first_posted and _parse_time(first_posted) < datetime.now(timezone.utc) - TOKEN_MEMORY:
            # Intents from a run that crashed between MTurk's answer and the store's record, longer
            # ago than MTurk remembers tokens: sending a token again could make a second HIT.
            leftover = store.hit_intents(batch.name)
            if leftover:
                adopted = _find_created(mturk, batch, hit_type_id, leftover,
                                        None if presign else (lambda item_id: renderer.question(items[item_id])))
                store.hits_created(adopted)
                result.recovered += len(adopted)

        uid = stored["uid"]  # a batch first posted before tokens were derived keeps its random uid
        store.record_hit_intents([{"token": request_token(uid, i.id, 0, item_digest(i)), "batch": batch.name, "item_id": i.id,
                                   "max_assignments": initial, "status": "intent", "reviewed": 0} for i in to_post])
        intents = store.hit_intents(batch.name)
        store.event(batch.name, "post", hits=len(intents), estimate=str(estimate))
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


def _has_credentials() -> bool:
    import boto3

    return boto3.Session().get_credentials() is not None


def _hit_type_params(batch: Batch, extra: list[dict] | tuple = ()) -> dict:
    params = dict(
        AutoApprovalDelayInSeconds=batch.hit.auto_approval_delay,
        AssignmentDurationInSeconds=batch.hit.assignment_duration,
        Reward=format_money(batch.hit.reward),
        Title=batch.hit.title,
        Keywords=batch.hit.keywords,
        Description=batch.hit.description,
    )
    if batch.hit.qualifications or extra:
        params["QualificationRequirements"] = [*batch.hit.qualifications, *extra]
    return params


def _hit_params(batch: Batch, hit_type_id: str, max_assignments: int, item_id: str, question: str, token: str) -> dict:
    return dict(HITTypeId=hit_type_id, MaxAssignments=max_assignments, LifetimeInSeconds=batch.hit.lifetime,
                Question=question, RequesterAnnotation=batch.annotation(item_id), UniqueRequestToken=token)


def _create_hit_type(mturk: MTurk, batch: Batch, extra: list[dict] | tuple = ()) -> str:
    return mturk.call("CreateHITType", **_hit_type_params(batch, extra))["HITTypeId"]


def check_requirement_room(batch: Batch) -> None:
    """annotate adds its own requirements (excluded workers, the pool): the batch's must leave room."""
    pool = batch.workers.pool if batch.workers else None
    test = getattr(batch, "test", None) is not None
    ours = 1 + (pool is not None) + test
    if len(batch.hit.qualifications) + ours > QUALIFICATIONS_MAX:
        raise UserError(f"MTurk takes at most {QUALIFICATIONS_MAX} qualification requirements and annotate adds {ours} "
                        f"(excluded workers{', the pool' if pool is not None else ''}"
                        f"{', the qualification test' if test else ''}); keep at most "
                        f"{QUALIFICATIONS_MAX - ours}", file=str(batch.dir / "batch.toml"), field="hit.qualifications")


def _worker_requirements(store: Store, mturk: MTurk, batch: Batch, result: PostResult) -> list[dict]:
    """No excluded worker, and with `[workers] pool = N` a pool score of at least N (annotate.pools)."""
    pool = batch.workers.pool if batch.workers else None
    if pool is not None:
        holders = sum(1 for w in store.pool_evidence() if (w["pool"] or 0) >= pool and not w["excluded"])
        if not holders:
            result.notes.append(f"no worker holds a pool score of {pool} or more yet: only workers granted one "
                                f"(after a batch without `pool`) can take these HITs")
    return pools.requirements(store, mturk, pool)


def _create_hit(mturk: MTurk, batch: Batch, hit_type_id: str, intent: HitIntent, question: str) -> tuple[str, bool, str | None]:
    """Create one HIT; if its token was used before, recover that HIT instead.
    Returns (HIT id, recovered, expiration as ISO 8601)."""
    import botocore.exceptions

    try:
        response = mturk.call("CreateHITWithHITType", **_hit_params(batch, hit_type_id, intent.max_assignments,
                                                                    intent.item_id, question, intent.token))
        return response["HIT"]["HITId"], False, _iso(response["HIT"].get("Expiration"))
    except botocore.exceptions.ClientError as exc:
        hit_id = existing_hit_id(exc)
        if hit_id is None:
            raise
        return hit_id, True, _iso(mturk.call("GetHIT", HITId=hit_id)["HIT"].get("Expiration"))


def _find_created(mturk: MTurk, batch: Batch, hit_type_id: str, leftover: list[HitIntent],
                  question_of: Callable[[str], str] | None) -> list[tuple[str, str, str | None]]:
    """(token, HIT id, expiration) for each leftover intent whose HIT exists: same HIT type, same
    RequesterAnnotation and, unless the questions carry presigned (ever-changing) URLs, the same
    question. One pass over ListHITs, only in this rare case."""
    wanted = {batch.annotation(i.item_id): i for i in leftover}
    found = []
    for hit in mturk.pages("ListHITs", "HITs", MaxResults=100):
        intent = wanted.get(hit.get("RequesterAnnotation"))
        if intent is None or hit.get("HITTypeId") != hit_type_id:
            continue
        if question_of is not None and hit.get("Question") != question_of(intent.item_id):
            continue
        found.append((intent.token, hit["HITId"], _iso(hit.get("Expiration"))))
        del wanted[hit["RequesterAnnotation"]]
        if not wanted:
            break
    return found


def _parse_time(value: str) -> datetime:
    parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=timezone.utc)


def _iso(value) -> str | None:
    return value.isoformat() if hasattr(value, "isoformat") else value


def _batch_row(batch: Batch, target: str, endpoint_url: str | None, policy_name: str | None, *,
               uid: str | None = None) -> dict:
    if uid is None:  # callers that fill a store without posting (scripts/bench_scale)
        env = environment(batch.dir)
        uid = batch_uid(batch, env.loader.get_source(env, batch.template)[0], make_policy(batch).initial_assignments)
    return {
        "name": batch.name, "uid": uid, "dir": str(batch.dir), "target": target,
        "endpoint_url": endpoint_url, "hit_type_id": None, "task_type": batch.task_type,
        "label_attribute": batch.label_attribute, "labels": batch.labels, "answer_field": batch.answer_field,
        "reward": format_money(batch.hit.reward), "masters": int(batch.hit.masters), "lifetime": batch.hit.lifetime,
        "budget_usd": format_money(batch.budget_usd) if batch.budget_usd is not None else None,
        "policy": policy_name, "config": batch.config, "created_at": utcnow(), "posted_at": None,
    }
