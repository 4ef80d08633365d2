"""What the requester commands (reject, approve, bonus, notify, cancel) share: the batch as stored,
a connection to the marketplace it was posted to, and the count of API calls they made."""

from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

from annotate.errors import UserError
from annotate.mturk import MTurk, connect
from annotate.post import resolve_target
from annotate.store import Store
from annotate.workspace import Workspace

Confirm = Callable[[str], bool]


def stored_batch(store: Store, name: str) -> dict:
    batch = store.get_batch(name)
    if batch is None:
        raise UserError(f"no batch named {name!r} in {store.path} (known: {', '.join(store.batch_names()) or 'none'})")
    if not batch.get("hit_type_id"):
        raise UserError(f"batch {name!r} was never posted: there is nothing on MTurk to act on")
    return batch


@contextmanager
def batch_client(ws: Workspace, store: Store, batch: dict, target: str | None = None,
                 endpoint_url: str | None = None) -> Iterator[MTurk]:
    """MTurk where the batch lives; the calls made are added to the batch's API-call counts."""
    batch_target = resolve_target(batch, target, batch["name"])
    with connect(ws, batch_target, endpoint_url or batch.get("endpoint_url")) as client:
        try:
            yield client
        finally:
            store.add_api_calls(batch["name"], client.take_calls())


def confirmed(confirm: Confirm | None, question: str) -> None:
    """Ask; a 'no' does nothing and says so (exit 2)."""
    if confirm is not None and not confirm(question):
        raise UserError("not confirmed; nothing was done")
