"""Cancel a batch: every open HIT expires now (UpdateExpirationForHIT), so no worker can take it.

Nothing is deleted: what workers submitted (and what those at work when the HIT expired still
submit) is collected by the next harvest passes as usual, which label what agreed and record the
rest as unresolved. A cancelled batch is never extended again (the harvest reads the `cancel` event).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone

import botocore.exceptions

from annotate.errors import UserError
from annotate.mturk import HIT_DOES_NOT_EXIST, describe, error_code
from annotate.requester import Confirm, batch_client, confirmed, stored_batch
from annotate.store import Store, utcnow
from annotate.workspace import Workspace

HIT_STATE = "AWS.MechanicalTurk.InvalidHITState"


@dataclass
class CancelResult:
    batch: str
    expired: list[str] = field(default_factory=list)
    gone: list[str] = field(default_factory=list)  # HITs MTurk no longer has (deleted): nothing to expire

    def as_json(self) -> dict:
        return {"batch": self.batch, "expired": len(self.expired), "gone": len(self.gone)}


def open_hits(store: Store, batch: str) -> list[str]:
    """HITs of the batch not yet expired, as far as the store knows."""
    now = datetime.now(timezone.utc)
    out = []
    for h in store.hits(batch, created=True):
        expires = h.get("expires_at")
        if expires is None or _parse(expires) > now:
            out.append(h["hit_id"])
    return out


def cancel(ws: Workspace, batch_name: str, *, confirm: Confirm | None = None, target: str | None = None,
           endpoint_url: str | None = None) -> CancelResult:
    store = Store(ws.ensure().store_path)
    batch = stored_batch(store, batch_name)
    hits = open_hits(store, batch_name)
    workers = len({a["worker_id"] for a in store.worker_assignments(batch_name)})
    confirmed(confirm, f"Cancel {batch_name}: expire its {len(hits)} open HIT(s) now? ({workers} worker(s) have "
                       f"answered; their answers are kept)")
    # Recorded first: from now on a harvest buys nothing more for this batch, even if this run dies.
    store.event(batch_name, "cancel", hits=len(hits))
    result = CancelResult(batch_name)
    now = datetime.now(timezone.utc)
    with batch_client(ws, store, batch, target, endpoint_url) as mturk:
        for hit_id in hits:
            try:
                mturk.call("UpdateExpirationForHIT", HITId=hit_id, ExpireAt=now)
            except botocore.exceptions.ClientError as exc:
                if error_code(exc) in (HIT_DOES_NOT_EXIST, HIT_STATE):
                    result.gone.append(hit_id)  # deleted (disposed) already: no worker can take it
                    continue
                store.expire_hits(result.expired, utcnow())
                raise UserError(f"MTurk refused to expire HIT {hit_id}: {describe(exc)} "
                                f"({len(result.expired)} expired before it; run cancel again)") from exc
            result.expired.append(hit_id)
    store.expire_hits(result.expired + result.gone, utcnow())
    return result


def _parse(iso: str) -> datetime:
    when = datetime.fromisoformat(iso.replace("Z", "+00:00"))
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)
