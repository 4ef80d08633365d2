"""Shared fixtures: a project home, the embedded marketplace over HTTP, small batches."""

from __future__ import annotations

import csv
import shutil
from pathlib import Path

import pytest

from annotate.workspace import Workspace

REPO = Path(__file__).resolve().parent.parent
EXAMPLES = REPO / "examples"


@pytest.fixture
def ws(tmp_path) -> Workspace:
    return Workspace(tmp_path / "home").ensure()


@pytest.fixture
def marketplace(ws):
    from annotate.marketplace import MarketplaceServer

    with MarketplaceServer(ws.marketplace_db) as server:
        yield server


@pytest.fixture
def srv(tmp_path):
    """The embedded marketplace over HTTP, on a clock the test moves (`srv.clock.advance(seconds)`)."""
    from conftest_marketplace import FakeClock

    from annotate.marketplace import MarketplaceServer

    clock = FakeClock()
    with MarketplaceServer(tmp_path / "m.db", clock=clock) as server:
        server.clock = clock
        yield server


@pytest.fixture
def mturk(srv):
    """boto3 for `srv`, without retries (a test sees every error)."""
    from conftest_marketplace import client

    return client(srv.url, retries=False)


@pytest.fixture(scope="module")
def browser():
    """Debian's Chromium, headless, driven by Playwright (no browser download); the browser tests
    skip, saying why, where either is missing."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:  # pragma: no cover - depends on the machine
        pytest.skip("Playwright is not installed (pip install playwright; no browser download is needed)")
    from annotate.preview import CHROMIUM_ARGS, chromium_path

    path = chromium_path()
    if path is None:
        pytest.skip("no Chromium binary (Debian: apt-get install -y chromium chromium-driver)")
    with sync_playwright() as p:
        instance = p.chromium.launch(executable_path=path, args=CHROMIUM_ARGS[1:], headless=True)
        yield instance
        instance.close()


@pytest.fixture
def aws(monkeypatch):
    """moto's S3, SQS and SageMaker with test credentials, and a bucket `annotate-test`; yields a boto3 Session."""
    import boto3
    from moto import mock_aws

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1"}.items():
        monkeypatch.setenv(key, value)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    with mock_aws():
        session = boto3.Session(region_name="us-east-1")
        session.client("s3").create_bucket(Bucket="annotate-test")
        yield session


def make_batch(root: Path, *, name: str = "iris-small", items: int = 12, extra_toml: str = "", **overrides) -> Path:
    """A copy of the iris example cut to `items` rows, with settings overridden by `extra_toml` text."""
    batch = root / name
    shutil.copytree(EXAMPLES / "iris", batch, ignore=shutil.ignore_patterns("__pycache__"))
    with open(EXAMPLES / "iris" / "items.csv", newline="") as handle:
        rows = list(csv.reader(handle))
    with open(batch / "items.csv", "w", newline="") as handle:
        csv.writer(handle, lineterminator="\n").writerows(rows[: items + 1])
    text = (batch / "batch.toml").read_text().replace('name = "iris"', f'name = "{name}"')
    for key, value in overrides.items():
        section, _, field = key.partition("__")
        text = _set(text, section, field, value)
    (batch / "batch.toml").write_text(text + extra_toml)
    return batch


def _set(text: str, section: str, field: str, value: str) -> str:
    lines = text.splitlines()
    start = lines.index(f"[{section}]")
    for i in range(start + 1, len(lines)):
        if lines[i].startswith("["):
            break
        if lines[i].split("=")[0].strip() == field:
            lines[i] = f"{field} = {value}"
            return "\n".join(lines) + "\n"
    lines.insert(start + 1, f"{field} = {value}")
    return "\n".join(lines) + "\n"


@pytest.fixture
def batch_dir(tmp_path) -> Path:
    return make_batch(tmp_path)


def mturk_client(url: str, **config):
    """boto3 pointed at a marketplace, with any credentials (as a requester's code would be)."""
    import boto3

    return boto3.client("mturk", endpoint_url=url, region_name="us-east-1", aws_access_key_id="x",
                        aws_secret_access_key="x", **config)


def all_hits(client) -> list[dict]:
    """Every HIT, following NextToken."""
    hits, token = [], None
    while True:
        page = client.list_hits(MaxResults=100, **({"NextToken": token} if token else {}))
        hits += page["HITs"]
        token = page.get("NextToken")
        if not token or not page["HITs"]:
            return hits


def run_until_done(ws, batch, url, crowd, passes=80):
    """Crowd works, harvest passes, until the batch is done."""
    from annotate.harvest import harvest

    for _ in range(passes):
        crowd.work()
        [result] = harvest(ws, [batch.name], endpoint_url=url)
        result.raise_failure()
        if result.done:
            return result
    raise AssertionError("harvest never finished")


# Once, after the whole suite: no process a test started may outlive it (see tests/processes.py).
from processes import pytest_sessionfinish  # noqa: E402,F401  (a hook, found by its name)
