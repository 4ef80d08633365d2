"""Leftover HITs: the ones still open for workers when a requester is done with a batch.

Expiring them (UpdateExpirationForHIT with ExpireAt now) stops further work and spending; MTurk
refunds the unused slots when the HIT is deleted, which `annotate teardown` leaves to the
requester (deleted HITs can no longer be reviewed)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from annotate.errors import UserError
from annotate.mturk import connect
from annotate.post import resolve_target
from annotate.store import Store
from annotate.workspace import Workspace


def open_hits(store: Store, batch: str) -> list[dict]:
    """HITs of the batch that may still take workers: not collected, and not expired."""
    now = datetime.now(timezone.utc)
    out = []
    for hit in store.hits(batch, created=True):
        expires = hit.get("expires_at")
        if hit["reviewed"]:
            continue
        if expires and datetime.fromisoformat(expires.replace("Z", "+00:00")) <= now:
            continue
        out.append(hit)
    return out


def expire_leftover_hits(ws: Workspace, batch: str, *, target: str | None = None,
                         endpoint_url: str | None = None) -> int:
    store = Store(ws.store_path)
    stored = store.get_batch(batch)
    if stored is None:
        raise UserError(f"no batch named {batch!r} (known: {', '.join(store.batch_names()) or 'none'})", field="--batch")
    where = resolve_target(stored, target, batch)
    hits = open_hits(store, batch)
    if not hits:
        return 0
    past = datetime.now(timezone.utc) - timedelta(seconds=1)
    with connect(ws, where, endpoint_url or stored.get("endpoint_url")) as mturk:
        for hit in hits:
            mturk.call("UpdateExpirationForHIT", HITId=hit["hit_id"], ExpireAt=past)
            store.set_hit_fields(hit["hit_id"], expires_at=past.isoformat())
        store.add_api_calls(batch, mturk.take_calls())
    store.event(batch, "expire-leftovers", hits=len(hits))
    return len(hits)
