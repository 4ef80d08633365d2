"""ListBonusPayments: the bonuses paid (SendBonus, in models.py) for a HIT or an assignment."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from annotate.marketplace.models import RequestError, _decode_token

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace


def list_bonus_payments(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    hit_id, assignment_id = p.get("HITId"), p.get("AssignmentId")
    max_results = p.get("MaxResults", 10)
    with m.operation("ListBonusPayments") as (conn, _):
        if hit_id is None and assignment_id is None:
            raise RequestError("Either the HITId parameter or the AssignmentId parameter must be specified.",
                               "AWS.MechanicalTurk.InvalidParameterValue")
        where, args = [], []
        if hit_id is not None:
            m._hit_row(conn, hit_id)  # HITDoesNotExist
            where.append("a.hit_id = ?")
            args.append(hit_id)
        if assignment_id is not None:
            m._assignment_row(conn, assignment_id)  # AssignmentDoesNotExist
            where.append("b.assignment_id = ?")
            args.append(assignment_id)
        rows = conn.execute(f"SELECT b.* FROM bonuses b JOIN assignments a ON a.assignment_id = b.assignment_id "
                            f"WHERE {' AND '.join(where)} AND b.seq > ? ORDER BY b.seq LIMIT ?",
                            (*args, _decode_token(p.get("NextToken")), max_results + 1)).fetchall()
        rows, token = m._page(rows, max_results, lambda r: r["seq"])
        out: dict[str, Any] = {"NumResults": len(rows), "BonusPayments": [
            {"WorkerId": r["worker_id"], "BonusAmount": r["amount"], "AssignmentId": r["assignment_id"],
             "Reason": r["reason"], "GrantTime": r["grant_time"]} for r in rows]}
        if token:
            out["NextToken"] = token
        return out
