"""The worker site as a person sees it: HITs grouped by HIT type with paging, the Worker ID format
hinted, the task frame as high as the HIT's FrameHeight, a favicon; and, in Chromium, that a person
can find a group, preview it and accept with a Worker ID the hint taught them."""

from __future__ import annotations

import html
import io
import json
import re
import struct
import urllib.request

import pytest
from conftest_marketplace import FakeClock, accept, client, external_question, hit_params, html_question, http

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.worker import GROUPS_PER_PAGE, time_allotted
from annotate.marketplace.worker_page import WORKER_ID_HINT

WORKER = "AWORKERONE1234"


@pytest.fixture
def srv(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", clock=FakeClock()) as server:
        yield server


@pytest.fixture
def mturk(srv):
    return client(srv.url, retries=False)


def rows(page: str) -> list[str]:
    return re.findall(r"<tr data-hit-type=.*?</tr>", page)


def test_index_has_one_row_per_hit_type(srv, mturk):
    digits = [mturk.create_hit(**hit_params(Title="Digits", Reward="0.02", MaxAssignments=2,
                                            AssignmentDurationInSeconds=300))["HIT"] for _ in range(5)]
    iris = [mturk.create_hit(**hit_params(Title="Iris <flowers>", Reward="0.10", MaxAssignments=3,
                                          AssignmentDurationInSeconds=5400))["HIT"] for _ in range(3)]
    status, _, page = http("GET", srv.url + "/worker/")
    assert status == 200
    got = rows(page)
    assert len(got) == 2  # not 8: HITs of one type are one group
    assert f'data-hit-type="{digits[0]["HITTypeId"]}"' in got[0] and f'data-hit-type="{iris[0]["HITTypeId"]}"' in got[1]
    cells = [re.findall(r"<td[^>]*>(.*?)</td>", row) for row in got]
    assert "Digits" in cells[0][0] and cells[0][1:4] == ["$0.02", "5", "5 minutes"]
    assert "Iris &lt;flowers&gt;" in cells[1][0] and cells[1][1:4] == ["$0.10", "3", "1 hour 30 minutes"]
    # the link previews the group's next (oldest) HIT
    assert f"/worker/preview?hitId={digits[0]['HITId']}" in got[0]
    assert "8 HITs" in page
    # a worker who did the oldest digits HIT is sent to the next one; their id stays in the links
    accept(srv.url, digits[0]["HITId"], WORKER)
    _, _, page = http("GET", srv.url + f"/worker/?workerId={WORKER}")
    first = rows(page)[0]
    assert f"hitId={digits[1]['HITId']}&amp;workerId={WORKER}" in first and "Accept &amp; Work" in first
    assert re.findall(r"<td[^>]*>(.*?)</td>", first)[2] == "4"
    # the JSON listing the crowds read is unchanged: one HIT a row
    _, _, body = http("GET", srv.url + "/worker/?format=json")
    assert [h["hitId"] for h in json.loads(body)["hits"]] == [h["HITId"] for h in digits + iris]


def test_accept_and_work_from_the_index(srv, mturk):
    hit = mturk.create_hit(**hit_params(MaxAssignments=1))["HIT"]
    _, _, page = http("GET", srv.url + f"/worker/?workerId={WORKER}")
    form = re.search(r'<form class="inline" method="post" action="/worker/accept">(.*?)</form>', rows(page)[0]).group(1)
    fields = dict(re.findall(r'name="(\w+)" value="([^"]*)"', form))
    assert fields == {"hitId": hit["HITId"], "workerId": WORKER}
    status, headers, _ = http("POST", srv.url + "/worker/accept", fields)
    assert status == 303 and "/worker/task?assignmentId=" in headers["Location"]
    _, _, page = http("GET", srv.url + "/worker/")
    assert rows(page) == [] and "No HITs are available right now." in page


def test_groups_are_paged(srv, mturk):
    types = [mturk.create_hit(**hit_params(Title=f"Batch {i:02d}", MaxAssignments=1))["HIT"]["HITTypeId"]
             for i in range(GROUPS_PER_PAGE + 3)]
    _, _, first = http("GET", srv.url + "/worker/")
    assert [re.search(r'data-hit-type="(\w+)"', r).group(1) for r in rows(first)] == types[:GROUPS_PER_PAGE]
    assert 'rel="next" href="/worker/?page=2"' in first and 'rel="prev"' not in first
    assert "Page 1 of 2" in first
    _, _, second = http("GET", srv.url + "/worker/?page=2")
    assert [re.search(r'data-hit-type="(\w+)"', r).group(1) for r in rows(second)] == types[GROUPS_PER_PAGE:]
    assert 'rel="prev" href="/worker/?page=1"' in second and 'rel="next"' not in second
    _, _, beyond = http("GET", srv.url + "/worker/?page=9")
    assert rows(beyond) == [] and "There is no page 9; there are 2." in beyond
    for bad in ("0", "two", "-1"):
        status, _, page = http("GET", srv.url + f"/worker/?page={bad}")
        assert status == 400 and 'data-code="InvalidPage"' in page, bad


def test_index_gathers_groups_past_one_listing_page(srv, mturk, monkeypatch):
    # the index reads the whole listing, a MAX_LISTING page at a time
    monkeypatch.setattr("annotate.marketplace.worker.MAX_LISTING", 2)
    hits = [mturk.create_hit(**hit_params(Title=t, MaxAssignments=1))["HIT"] for t in "AAABBA"]
    _, _, page = http("GET", srv.url + "/worker/")
    counts = [re.findall(r"<td[^>]*>(.*?)</td>", r)[2] for r in rows(page)]
    assert counts == ["4", "2"] and hits[0]["HITTypeId"] != hits[3]["HITTypeId"]


def test_time_allotted_words():
    assert [time_allotted(s) for s in (45, 60, 600, 3600, 3660, 86400 + 7200 + 60)] == \
        ["45 seconds", "1 minute", "10 minutes", "1 hour", "1 hour 1 minute", "1 day 2 hours"]


def test_worker_id_format_is_hinted_wherever_it_is_asked(srv, mturk):
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    mturk.create_qualification_type(Name="Cats", Description="Knows cats", QualificationTypeStatus="Active")
    for path in ("/worker/", f"/worker/preview?hitId={hit_id}", "/worker/messages", "/worker/qualifications"):
        status, _, page = http("GET", srv.url + path)
        assert status == 200, path
        field = re.search(r'<input name="workerId"[^>]*>', page).group(0)
        assert 'pattern="A[A-Z0-9]{1,63}"' in field and 'placeholder="A1B2C3D4E5F6G7"' in field, path
        assert f'title="{html.escape(WORKER_ID_HINT)}"' in field and html.escape(WORKER_ID_HINT) in page, path
    # what the browser would let through is still checked by the server, with the same words
    status, _, page = http("GET", srv.url + "/worker/?workerId=a1b2")
    assert status == 400 and "is not a worker id" in page and "A1B2C3D4E5F6G7" in page
    status, _, page = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": "worker-1"})
    assert status == 400 and 'data-code="InvalidWorkerId"' in page


def frame_style(page: str) -> str:
    return re.search(r'<iframe[^>]*style="([^"]*)"', page).group(1)


@pytest.mark.parametrize("height, css", [(900, "height:900px"), (0, "height:85vh"), (600, "height:600px")])
def test_preview_frame_follows_frame_height(srv, mturk, height, css):
    hit_id = mturk.create_hit(**hit_params(Question=html_question(frame_height=height)))["HIT"]["HITId"]
    _, _, page = http("GET", srv.url + f"/worker/preview?hitId={hit_id}")
    assert css in frame_style(page)
    external = mturk.create_hit(**hit_params(Question=external_question("https://example.org/task")))["HIT"]["HITId"]
    _, _, page = http("GET", srv.url + f"/worker/preview?hitId={external}")
    assert "height:400px" in frame_style(page)


def test_favicon(srv):
    with urllib.request.urlopen(srv.url + "/favicon.ico", timeout=10) as response:
        assert response.status == 200 and response.headers["Content-Type"] == "image/x-icon"
        icon = response.read()
    reserved, kind, count = struct.unpack("<HHH", icon[:6])
    width, height, _, _, _, bits, size, offset = struct.unpack("<BBBBHHII", icon[6:22])
    assert (reserved, kind, count, width, height, bits, offset) == (0, 1, 1, 16, 16, 32, 22)
    png = icon[offset:]
    assert len(png) == size and png.startswith(b"\x89PNG\r\n\x1a\n")
    from PIL import Image

    image = Image.open(io.BytesIO(icon))
    image.load()
    assert image.size == (16, 16)


# -- in Chromium ---------------------------------------------------------------------------------

@pytest.mark.browser
def test_a_person_finds_a_group_and_accepts_in_chromium(srv, mturk, browser):
    tall = mturk.create_hit(**hit_params(Title="Tall task", MaxAssignments=2,
                                         Question=html_question(frame_height=0)))["HIT"]
    page = browser.new_page(viewport={"width": 1000, "height": 800})
    failed = []
    page.on("response", lambda r: failed.append(r.url) if r.status >= 400 else None)
    try:
        page.goto(srv.url + "/worker/")
        assert page.locator("tr[data-hit-type]").count() == 1
        field = page.get_by_label("Worker ID")
        assert field.get_attribute("placeholder") == "A1B2C3D4E5F6G7"
        assert page.get_by_text(WORKER_ID_HINT).first.is_visible()
        page.get_by_role("link", name="Preview").click()
        page.wait_for_url(re.compile(r"/worker/preview\?hitId="))
        # FrameHeight 0: the task frame fills most of the window, not a fixed 600 px
        box = page.locator("iframe#TaskFrame").bounding_box()
        assert box is not None and box["height"] == pytest.approx(0.85 * 800, abs=2)
        field = page.get_by_label("Worker ID")
        field.fill("worker one")
        assert field.evaluate("e => !e.checkValidity() && e.validationMessage.length > 0")
        assert WORKER_ID_HINT in field.evaluate("e => e.validationMessage")  # the title is the browser's message
        field.fill(WORKER)
        page.get_by_role("button", name="Accept").click()
        page.wait_for_url(re.compile(r"/worker/task\?assignmentId="))
        assert f"hitId={tall['HITId']}" in page.url
        assert not [u for u in failed if "favicon" in u], failed
    finally:
        page.close()
