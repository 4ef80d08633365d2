"""`annotate preview`: one item's HIT as a worker sees it (HTML, served page, screenshot)."""

from __future__ import annotations

import json
import urllib.request

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.errors import UserError
from annotate.preview import chromium_path, preview, serving
from conftest import EXAMPLES


def test_preview_writes_the_workers_page_for_an_item(tmp_path):
    result = preview(EXAMPLES / "shapes-boxes", "3", html_out=tmp_path / "page.html")
    assert result.item_id == "box003"
    page = (tmp_path / "page.html").read_text()
    assert 'data-annotate-type="boxes"' in page and 'id="mturk_form"' in page
    assert "/media/" in page  # the local picture, served by the local marketplace
    by_id = preview(EXAMPLES / "shapes-boxes", "box003", html_out=tmp_path / "again.html")
    assert by_id.item_id == "box003"


def test_preview_serves_a_page_that_is_live_when_accepted():
    with serving(EXAMPLES / "words-text", accept=True) as result:
        page = urllib.request.urlopen(result.url).read().decode()
        assert "assignmentId=" in result.url and "ASSIGNMENT_ID_NOT_AVAILABLE" not in result.url
        assert 'name="word"' in page
    with serving(EXAMPLES / "words-text") as result:
        assert "ASSIGNMENT_ID_NOT_AVAILABLE" in result.url  # MTurk's preview: submit is disabled


def test_local_pictures_are_served_by_the_marketplace():
    import re

    with serving(EXAMPLES / "shapes-boxes", "3") as result:
        page = urllib.request.urlopen(result.url).read().decode()
        [src] = set(re.findall(r'src="(/media/[0-9a-f]{16}/[^"]+)"', page))
        base = result.url.split("/worker/")[0]
        with urllib.request.urlopen(base + src) as picture:
            assert picture.headers["Content-Type"] == "image/png"
            assert picture.read().startswith(b"\x89PNG")


def test_unknown_item_is_a_clear_error():
    with pytest.raises(UserError, match=r"no item 'nope' .*position 1..20"):
        preview(EXAMPLES / "words-text", "nope", html_out=None)


def test_cli_preview_html(tmp_path):
    out = tmp_path / "p.html"
    got = CliRunner().invoke(cli, ["preview", str(EXAMPLES / "news-entities"), "--item", "2", "--html", str(out), "--json"])
    assert got.exit_code == 0, got.output
    summary = json.loads(got.output.strip().splitlines()[-1])
    assert summary["item"] == "n002" and summary["question_bytes"] < 65_535
    assert "The World Bank cut its forecast" in out.read_text()


@pytest.mark.browser
def test_cli_preview_screenshot(tmp_path):
    pytest.importorskip("playwright", reason="Playwright is not installed")
    if chromium_path() is None:
        pytest.skip("no Chromium binary (Debian: apt-get install -y chromium)")
    out = tmp_path / "shot.png"
    got = CliRunner().invoke(cli, ["preview", str(EXAMPLES / "shapes-segmentation"), "--accept", "--screenshot", str(out)])
    assert got.exit_code == 0, got.output
    from PIL import Image

    image = Image.open(out)
    assert image.width == 1000 and image.height > 400
    # Not a blank page: the picture and the class buttons give it many colours.
    assert len(image.convert("RGB").getcolors(1_000_000)) > 50


@pytest.mark.browser
def test_cli_preview_screenshot_of_a_crowd_element_layout(tmp_path):
    """`preview --screenshot` renders a <crowd-form> layout with the marketplace's own elements: the
    picture, the label picker and the Submit button are drawn (not an empty page of unknown tags)."""
    pytest.importorskip("playwright", reason="Playwright is not installed")
    if chromium_path() is None:
        pytest.skip("no Chromium binary (Debian: apt-get install -y chromium)")
    import shutil

    from annotate.demo import use_crowd_template

    batch = tmp_path / "shapes-boxes"
    shutil.copytree(EXAMPLES / "shapes-boxes", batch)
    use_crowd_template(batch)
    out = tmp_path / "crowd.png"
    got = CliRunner().invoke(cli, ["preview", str(batch), "--accept", "--screenshot", str(out)])
    assert got.exit_code == 0, got.output
    from PIL import Image

    image = Image.open(out).convert("RGB")
    colors = {c for _, c in image.getcolors(1_000_000)}
    assert len(colors) > 50
    assert (236, 114, 17) in colors  # the Submit button crowd-form adds (the reference's orange)
