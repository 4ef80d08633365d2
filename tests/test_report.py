"""`annotate report`: a self-contained HTML file whose every plot draws in a real browser."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from annotate.cli import cli
from annotate.demo import run_demo
from annotate.preview import CHROMIUM_ARGS, chromium_path
from annotate.report import write_report
from annotate.workspace import Workspace

try:
    from playwright.sync_api import sync_playwright
except ImportError:  # pragma: no cover - depends on the machine
    sync_playwright = None


def drawn_plots(path) -> list[dict]:
    """Each figure of the report as Chromium lays it out: its name, size and drawn SVG elements."""
    if sync_playwright is None or chromium_path() is None:
        pytest.skip("Playwright or Chromium missing (scripts/test installs both)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS[1:], headless=True)
        page = browser.new_page()
        requests: list[str] = []
        page.on("request", lambda r: requests.append(r.url))
        page.goto(path.resolve().as_uri(), wait_until="load")
        plots = page.evaluate("""() => Array.from(document.querySelectorAll('figure.plot')).map(f => {
            const svg = f.querySelector('svg'), box = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
            return {name: f.dataset.plot, width: box.width, height: box.height,
                    shapes: svg ? svg.querySelectorAll('path, rect, image, text, use').length : 0};
        })""")
        browser.close()
    assert requests == [path.resolve().as_uri()], f"the report fetched something: {requests}"  # self-contained
    return plots


@pytest.mark.browser
def test_report_of_a_classification_batch(tmp_path):
    summary = run_demo("iris", tmp_path, seed=0, train=False)
    ws = Workspace.resolve(summary["home"])
    path = write_report(ws, "iris", tmp_path / "out" / "report.html")
    plots = drawn_plots(path)
    names = [p["name"] for p in plots]
    assert names == ["Progress", "Money", "Answers per item", "Confidence", "Agreement and confusion", "Workers"]
    for plot in plots:
        assert plot["width"] > 150 and plot["height"] > 100 and plot["shapes"] > 10, plot
    text = path.read_text()
    assert "<script" not in text  # plain HTML and SVG: nothing runs, nothing is fetched (checked above)


@pytest.mark.browser
def test_report_draws_consolidated_boxes(tmp_path):
    summary = run_demo("shapes-boxes", tmp_path, seed=0, train=False)
    path = write_report(Workspace.resolve(summary["home"]), "shapes-boxes", tmp_path / "r.html")
    plots = {p["name"]: p for p in drawn_plots(path)}
    assert "Agreement and confusion" not in plots  # single-label only
    samples = plots["Consolidated labels"]
    assert samples["width"] > 300 and samples["shapes"] > 20


def test_report_cli_names_a_missing_batch(tmp_path):
    home = tmp_path / "home"
    result = CliRunner().invoke(cli, ["--home", str(home), "report", "nosuch"])
    assert result.exit_code == 2, result.output
    assert "no store" in result.output
