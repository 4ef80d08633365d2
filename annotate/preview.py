"""Preview one item's HIT as a worker sees it: the local marketplace's task page, optionally as a
PNG through headless Chromium.

    result = preview(batch_dir, item="3", screenshot="out.png")

The item is rendered for the local target (local media served by the marketplace, as the demo shows
it), posted to a throwaway embedded marketplace (temporary database), and fetched from the worker site:
`/worker/task?assignmentId=ASSIGNMENT_ID_NOT_AVAILABLE&hitId=…` is what MTurk shows in its
preview frame; with `accept=True` a preview worker accepts the HIT first, so the form is live.
Screenshots use Playwright with the system's Chromium when both are there, else
`chromium --headless --screenshot`.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
import urllib.request
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator
from urllib.parse import urlencode

from annotate.config import Batch, Item, load_batch
from annotate.errors import UserError
from annotate.templates import QuestionRenderer, register_local_media

PREVIEW_ASSIGNMENT_ID = "ASSIGNMENT_ID_NOT_AVAILABLE"
PREVIEW_WORKER = "APREVIEWWORKER0"
# Headless, offline and quiet: no GPU, no background fetches, no first-run or sync dialogs.
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--no-first-run", "--disable-sync"]


@dataclass
class PreviewResult:
    item_id: str
    hit_id: str
    url: str  # valid while the marketplace runs (see `serve`)
    question_bytes: int
    html_path: Path | None = None
    screenshot: Path | None = None
    screenshot_tool: str | None = None


def chromium_path() -> str | None:
    """The system's Chromium (Debian's package), or ANNOTATE_CHROMIUM."""
    for candidate in (os.environ.get("ANNOTATE_CHROMIUM"), "/usr/bin/chromium", shutil.which("chromium"),
                      shutil.which("chromium-browser"), shutil.which("google-chrome")):
        if candidate and os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return None


def pick_item(batch: Batch, item: str | int | None) -> Item:
    """An item by id, else by 1-based position; the first one by default."""
    if item is None:
        return batch.items[0]
    key = str(item)
    for candidate in batch.items:
        if candidate.id == key:
            return candidate
    if key.isdigit() and 1 <= int(key) <= len(batch.items):
        return batch.items[int(key) - 1]
    raise UserError(f"no item {key!r} in {batch.items_file} (give an item id, or a position 1..{len(batch.items)})",
                    field="--item")


@contextmanager
def serving(batch_dir: str | Path, item: str | int | None = None, *, accept: bool = False,
            port: int = 0) -> Iterator[PreviewResult]:
    """A throwaway marketplace holding one HIT for the item, running while the block does (on
    `port`, 0 for any free one)."""
    import boto3

    from annotate.marketplace import MarketplaceServer

    batch = load_batch(batch_dir)
    chosen = pick_item(batch, item)
    question = QuestionRenderer(batch, "local").question(chosen)  # size-checked, as posting does
    with tempfile.TemporaryDirectory(prefix="annotate-preview-") as tmp:
        try:
            server = MarketplaceServer(Path(tmp) / "marketplace.db", port=port, faults="")
        except OSError as exc:
            raise UserError(f"cannot listen on port {port}: {exc.strerror or exc}", field="--port") from None
        with server:
            client = boto3.client("mturk", endpoint_url=server.url, region_name="us-east-1",
                                  aws_access_key_id="preview", aws_secret_access_key="preview")
            register_local_media(server.url, batch.dir)
            hit = client.create_hit(
                Title=batch.hit.title, Description=batch.hit.description, Keywords=batch.hit.keywords,
                Reward=str(batch.hit.reward), MaxAssignments=1, LifetimeInSeconds=batch.hit.lifetime,
                AssignmentDurationInSeconds=batch.hit.assignment_duration, Question=question,
                RequesterAnnotation=batch.annotation(chosen.id))["HIT"]
            if accept:
                url = server.url + _accept(server.url, hit["HITId"])
            else:
                url = server.url + "/worker/task?" + urlencode({"assignmentId": PREVIEW_ASSIGNMENT_ID, "hitId": hit["HITId"]})
            yield PreviewResult(item_id=chosen.id, hit_id=hit["HITId"], url=url, question_bytes=len(question.encode("utf-8")))


def _accept(base: str, hit_id: str) -> str:
    import json

    request = urllib.request.Request(base + "/worker/accept", data=urlencode({"hitId": hit_id, "workerId": PREVIEW_WORKER}).encode(),
                                     headers={"Accept": "application/json"})

    class NoRedirect(urllib.request.HTTPRedirectHandler):
        def redirect_request(self, *args, **kwargs):
            return None

    try:
        body = urllib.request.build_opener(NoRedirect).open(request).read()
    except urllib.error.HTTPError as exc:  # the 303 to the task page carries JSON with its location
        body = exc.read()
    return json.loads(body)["location"]


def preview(
    batch_dir: str | Path,
    item: str | int | None = None,
    *,
    accept: bool = False,
    html_out: str | Path | None = None,
    screenshot: str | Path | None = None,
    width: int = 1000,
    hold: Callable[[PreviewResult], None] | None = None,
    port: int = 0,
) -> PreviewResult:
    """Render the item's HIT; write its page's HTML and/or a PNG of it; `hold` runs while it is served."""
    with serving(batch_dir, item, accept=accept, port=port) as result:
        if html_out is not None:
            with urllib.request.urlopen(result.url, timeout=30) as response:
                page = response.read()
            result.html_path = Path(html_out)
            result.html_path.parent.mkdir(parents=True, exist_ok=True)
            result.html_path.write_bytes(page)
        if screenshot is not None:
            result.screenshot = Path(screenshot)
            result.screenshot.parent.mkdir(parents=True, exist_ok=True)
            result.screenshot_tool = take_screenshot(result.url, result.screenshot, width=width)
        if hold is not None:
            hold(result)
    return result


def take_screenshot(url: str, out: Path, *, width: int = 1000, height: int = 900) -> str:
    """A full-page PNG of `url`; returns the tool used ("playwright" or "chromium")."""
    browser = chromium_path()
    if browser is None:
        raise UserError("no Chromium found for the screenshot: install it (Debian: apt-get install -y chromium) "
                        "or point ANNOTATE_CHROMIUM at a Chrome/Chromium binary")
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    if sync_playwright is not None:
        with sync_playwright() as p:
            instance = p.chromium.launch(executable_path=browser, args=CHROMIUM_ARGS[1:], headless=True)
            try:
                page = instance.new_page(viewport={"width": width, "height": height})
                page.goto(url, wait_until="load")
                page.screenshot(path=str(out), full_page=True)
            finally:
                instance.close()
        return "playwright"
    # No Playwright: Chromium's own one-shot screenshot (viewport-sized, not the full page).
    done = subprocess.run([browser, *CHROMIUM_ARGS, "--hide-scrollbars", f"--window-size={width},{height}",
                           f"--screenshot={out.resolve()}", url], capture_output=True, text=True, timeout=120)
    if done.returncode != 0 or not out.is_file():
        raise UserError(f"chromium could not take the screenshot (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    return "chromium"
