"""NotifyWorkers: a message (MTurk emails it) to the workers of a batch, or to those named.

MTurk takes at most 100 workers per call, so the list goes in chunks; a worker MTurk cannot reach
(it only reaches workers whose work this requester approved or rejected, and never a blocked one)
comes back in NotifyWorkersFailureStatuses, and a chunk MTurk refuses as a whole is reported
worker by worker. Nothing stops at the first failure: every chunk is tried, every failure named.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import botocore.exceptions

from annotate.errors import UserError
from annotate.mturk import describe, request_error
from annotate.requester import batch_client, stored_batch
from annotate.store import Store
from annotate.workspace import Workspace

PER_CALL = 100
MAX_SUBJECT = 200
MAX_MESSAGE = 4096


@dataclass
class NotifyResult:
    batch: str
    sent: list[str] = field(default_factory=list)
    failed: dict[str, str] = field(default_factory=dict)  # worker → MTurk's reason
    calls: int = 0

    def as_json(self) -> dict:
        return {"batch": self.batch, "sent": self.sent, "failed": self.failed, "calls": self.calls}


def notify(ws: Workspace, batch_name: str, *, subject: str, message: str, workers: list[str] | None = None,
           target: str | None = None, endpoint_url: str | None = None) -> NotifyResult:
    subject, message = (subject or "").strip(), (message or "").strip()
    if not subject or len(subject) > MAX_SUBJECT:
        raise UserError(f"a subject of 1 to {MAX_SUBJECT} characters (got {len(subject)})", field="--subject")
    if not message or len(message) > MAX_MESSAGE:
        raise UserError(f"a message of 1 to {MAX_MESSAGE} characters (got {len(message)})", field="--message")
    store = Store(ws.ensure().store_path)
    batch = stored_batch(store, batch_name)
    everyone = list(dict.fromkeys(a["worker_id"] for a in store.worker_assignments(batch_name)))
    if workers:
        recipients = list(dict.fromkeys(workers))
        strangers = [w for w in recipients if w not in set(everyone)]
        if strangers:
            raise UserError(f"not workers of batch {batch_name!r}: {', '.join(strangers)}", field="--worker")
    else:
        recipients = everyone
    if not recipients:
        raise UserError(f"batch {batch_name!r} has no workers yet (harvest first)")
    result = NotifyResult(batch_name)
    with batch_client(ws, store, batch, target, endpoint_url) as mturk:
        for start in range(0, len(recipients), PER_CALL):
            chunk = recipients[start:start + PER_CALL]
            result.calls += 1
            try:
                answer = mturk.call("NotifyWorkers", Subject=subject, MessageText=message, WorkerIds=chunk)
            except botocore.exceptions.ClientError as exc:
                if not request_error(exc):
                    raise
                result.failed.update({w: describe(exc) for w in chunk})
                continue
            failed = {f["WorkerId"]: f.get("NotifyWorkersFailureMessage") or f.get("NotifyWorkersFailureCode", "")
                      for f in answer.get("NotifyWorkersFailureStatuses", [])}
            result.failed.update(failed)
            result.sent += [w for w in chunk if w not in failed]
    store.event(batch_name, "notify", subject=subject, sent=len(result.sent), failed=result.failed)
    return result
