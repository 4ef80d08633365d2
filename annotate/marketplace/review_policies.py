"""Review Policies: the local marketplace runs none.

MTurk's Review Policies (ScoreMyKnownAnswers/2011-09-01, SimplePlurality/2011-09-01) approve,
reject and extend on the requester's behalf. Accepting a policy and then doing nothing would change
what a HIT does without a word, so CreateHIT / CreateHITWithHITType refuse a policy with a
RequestError that says so; ListReviewPolicyResultsForHIT answers the documented shape for a HIT
without policies: its HITId and nothing else.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from annotate.marketplace.models import RequestError

if TYPE_CHECKING:
    from annotate.marketplace.models import Marketplace

POLICY_PARAMETERS = ("AssignmentReviewPolicy", "HITReviewPolicy")


def refuse(p: dict[str, Any]) -> None:
    """Refuse a CreateHIT call that names a Review Policy."""
    for name in POLICY_PARAMETERS:
        if p.get(name) is not None:
            raise RequestError(f"{name} {p[name].get('PolicyName')!r}: Review Policies are not supported by the local "
                               f"marketplace; leave {name} out and review assignments with ListAssignmentsForHIT, "
                               f"ApproveAssignment and RejectAssignment.", "AWS.MechanicalTurk.InvalidParameterValue")


def list_review_policy_results_for_hit(m: "Marketplace", p: dict[str, Any]) -> dict[str, Any]:
    with m.operation("ListReviewPolicyResultsForHIT") as (conn, _):
        hit = m._hit_row(conn, p["HITId"])  # HITDoesNotExist as GetHIT gives it
        return {"HITId": hit["hit_id"]}
