"""An ExternalQuestion in a real browser: the worker page frames the requester's own site (another
origin), whose script reads the query parameters MTurk adds and posts its form to
turkSubmitTo/mturk/externalSubmit from inside the frame. Skipped without Playwright or Chromium."""

from __future__ import annotations

import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from conftest_marketplace import FakeClock, accept, client, external_question, hit_params

from annotate.marketplace import MarketplaceServer

pytestmark = pytest.mark.browser

WORKER = "AWORKERONE1234"

# What requesters' external HITs do: read assignmentId and turkSubmitTo from the query string,
# refuse to submit in preview, aim the form at turkSubmitTo + /mturk/externalSubmit.
PAGE = b"""<!DOCTYPE html><html><body>
<form id="mturk_form" method="post">
  <input type="hidden" name="assignmentId" id="assignmentId">
  <label>What is it? <input type="text" name="label" id="label"></label>
  <input type="submit" id="submitButton" value="Submit">
</form>
<script>
  const q = new URLSearchParams(location.search);
  document.getElementById("assignmentId").value = q.get("assignmentId");
  document.getElementById("mturk_form").action = (q.get("turkSubmitTo") || "") + "/mturk/externalSubmit";
  if (q.get("assignmentId") === "ASSIGNMENT_ID_NOT_AVAILABLE") {
    document.getElementById("submitButton").disabled = true;
  }
</script></body></html>"""


class _Site(BaseHTTPRequestHandler):
    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(PAGE)))
        self.end_headers()
        self.wfile.write(PAGE)

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def site():
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


def test_framed_external_question_submits_from_the_frame(tmp_path, site, browser):
    with MarketplaceServer(tmp_path / "m.db", clock=FakeClock()) as srv:
        mturk = client(srv.url)
        hit_id = mturk.create_hit(**hit_params(Question=external_question(site + "/hit")))["HIT"]["HITId"]
        page = browser.new_page()
        try:
            page.goto(f"{srv.url}/worker/preview?hitId={hit_id}")
            preview = next(f for f in page.frames if f.url.startswith(site))
            assert preview.locator("#submitButton").is_disabled()
            assert page.locator("iframe").first.evaluate("e => e.clientHeight") == 400  # FrameHeight

            assignment_id = accept(srv.url, hit_id, WORKER)
            page.goto(f"{srv.url}/worker/task?" + urllib.parse.urlencode(
                {"assignmentId": assignment_id, "hitId": hit_id, "workerId": WORKER, "turkSubmitTo": srv.url}))
            frame = page.frame_locator("#ExternalQuestionIFrame")
            frame.locator("#label").fill("a heron")
            frame.locator("#submitButton").click()
            frame.locator("text=Thank you").wait_for(timeout=10000)
        finally:
            page.close()
        answer = mturk.get_assignment(AssignmentId=assignment_id)["Assignment"]["Answer"]
        assert "<QuestionIdentifier>label</QuestionIdentifier><FreeText>a heron</FreeText>" in answer
