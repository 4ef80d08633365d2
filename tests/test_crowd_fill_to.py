"""`--crowd simulated --fill-to N`: a crowd that only tops up what people leave. A HIT's open slots
are left to people until they have stood untouched for `fill_after` seconds; then the crowd takes
them until the HIT holds N assignments — so a person alone can finish a 2-assignment HIT."""

from __future__ import annotations

import pytest
from click.testing import CliRunner
from conftest_marketplace import FakeClock, accept, submit, work

from annotate.cli import cli
from annotate.marketplace.crowd import SimulatedCrowd

PERSON = "APERSONALONE12"


def assignments(mturk, hit_id: str) -> list[dict]:
    return mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]


def test_the_crowd_waits_for_people_then_tops_up_to_n(srv, mturk):
    from conftest_marketplace import hit_params

    clock = FakeClock()
    two = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]["HITId"]
    three = mturk.create_hit(**hit_params(MaxAssignments=3))["HIT"]["HITId"]
    crowd = SimulatedCrowd(srv.url, workers=5, spammer_share=0, seed=0, fill_to=2, fill_after=30, clock=clock)
    try:
        assert crowd.work() == 0  # seen for the first time: people get the first 30 s
        work(srv.url, two, PERSON)  # a person does one assignment of the first HIT ...
        held = accept(srv.url, three, PERSON)  # ... and holds one of the second
        clock.advance(29)
        assert crowd.work() == 0  # both HITs' open slots changed (people took some): their wait starts again
        clock.advance(29)
        assert crowd.work() == 0
        clock.advance(2)
        # 30 s untouched: the first HIT topped up to 2 (done with one person), the second to 2 with
        # the person's assignment in hand counted; its third slot stays open
        assert crowd.work() == 2
        assert sorted(a["WorkerId"] == PERSON for a in assignments(mturk, two)) == [False, True]
        assert crowd.work() == 0
        assert submit(srv.url, held) == 200
        assert len(assignments(mturk, three)) == 2
        clock.advance(300)
        assert crowd.work() == 0  # holds 2 = N: nothing more, however long it waits
        assert mturk.get_hit(HITId=three)["HIT"]["NumberOfAssignmentsAvailable"] == 1
    finally:
        crowd.stop()


def test_without_fill_to_the_crowd_takes_every_slot_at_once(srv, mturk):
    from conftest_marketplace import hit_params

    hit = mturk.create_hit(**hit_params(MaxAssignments=3))["HIT"]["HITId"]
    crowd = SimulatedCrowd(srv.url, workers=5, spammer_share=0, seed=0)
    try:
        assert crowd.work() == 3
    finally:
        crowd.stop()
    assert len(assignments(mturk, hit)) == 3


def test_settings_are_checked():
    with pytest.raises(ValueError, match="fill_to"):
        SimulatedCrowd("http://127.0.0.1:9", fill_to=0)
    with pytest.raises(ValueError, match="fill_after"):
        SimulatedCrowd("http://127.0.0.1:9", fill_to=1, fill_after=-1)
    result = CliRunner().invoke(cli, ["marketplace", "serve", "--fill-to", "2", "--port", "0"])
    assert result.exit_code == 2 and "--fill-to needs --crowd simulated" in result.output
