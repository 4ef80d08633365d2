"""UpdateHITTypeOfHIT: move a HIT to another HIT type.

The HIT takes on the new type's properties in place of the old ones (title, description, keywords,
reward, assignment duration, auto-approval delay, qualification requirements), for assignments
accepted from then on. Money follows the marketplace's model (models.py): the HIT holds one
per-slot cost for every slot; slots already paid out (approved) keep the cost they were paid at,
and every other slot moves to the new type's cost, so a dearer type debits the difference
(InsufficientFunds when the balance cannot cover it) and a cheaper one refunds it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from annotate.fees import assignment_cost, money
from annotate.marketplace.models import APPROVED, RequestError

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace


def update_hit_type_of_hit(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    hit_id, hit_type_id = p["HITId"], p["HITTypeId"]
    with m.operation("UpdateHITTypeOfHIT") as (conn, now):
        hit = m._hit_row(conn, hit_id)
        new_type = conn.execute("SELECT * FROM hit_types WHERE hit_type_id = ?", (hit_type_id,)).fetchone()
        if new_type is None:
            raise RequestError(f"Hit type {hit_type_id} does not exist.", "AWS.MechanicalTurk.HITTypeDoesNotExist")
        if hit["disposed"]:
            raise RequestError("This HIT is currently in the state 'Disposed'. This operation can be called with a "
                               "status of: Assignable, Unassignable, Reviewable, Reviewing",
                               "AWS.MechanicalTurk.InvalidHITState")
        if hit_type_id == hit["hit_type_id"]:
            return {}
        old_unit = money(hit["unit_cost"])
        # The fee tier was fixed when the HIT was made (it cannot cross 10 assignments).
        new_unit = assignment_cost(money(new_type["reward"]), hit["initial_max_assignments"])
        approved = conn.execute("SELECT COUNT(*) FROM assignments WHERE hit_id = ? AND status = ?",
                                (hit_id, APPROVED)).fetchone()[0]
        difference = (new_unit - old_unit) * (hit["max_assignments"] - approved)
        if difference > 0:
            m._debit(conn, difference)
        elif difference < 0:
            m._credit(conn, -difference)
        conn.execute("UPDATE hits SET hit_type_id = ?, unit_cost = ? WHERE hit_id = ?",
                     (hit_type_id, str(new_unit), hit_id))
        m._recompute(conn, hit_id, now)
        return {}
