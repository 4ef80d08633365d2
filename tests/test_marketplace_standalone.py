"""The contract against the standalone server: `python -m annotate marketplace serve` in its own
process, spoken to with boto3 only, then stopped with Ctrl-C (SIGINT) as a person would, or with
SIGTERM, also when its parent ignores those signals (a script's background job)."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pytest
from botocore.exceptions import ClientError
from conftest import make_batch
from conftest_marketplace import client, hit_params, html_question, http
from processes import free_port, stop

from annotate.config import load_batch
from annotate.templates import QuestionRenderer

REPO = Path(__file__).resolve().parent.parent


def _ignoring(signals: tuple[int, ...]):
    """A preexec_fn: the child starts with these signals ignored, as a shell's background job does."""
    def setup() -> None:
        for sig in signals:
            signal.signal(sig, signal.SIG_IGN)
    return setup


@contextmanager
def serve(tmp_path: Path, *args: str, stop_with: int = signal.SIGINT, ignored: tuple[int, ...] = ()) -> Iterator[str]:
    """Run `annotate marketplace serve` on a free port; yield its URL; stop it with `stop_with`
    (escalating to SIGKILL if it does not stop), and check that it stopped cleanly by itself."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if k != "ANNOTATE_MARKETPLACE_FAULTS"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    log = open(tmp_path / f"serve-{port}.log", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "annotate", "--home", str(tmp_path / "home"), "marketplace",
                             "serve", "--port", str(port), "--db", str(tmp_path / f"m{port}.db"), *args],
                            stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path, env=env,
                            preexec_fn=_ignoring(ignored) if ignored else None)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 30
        while True:
            if proc.poll() is not None:
                log.seek(0)
                pytest.fail(f"serve exited with {proc.returncode}:\n{log.read()}")
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                    break
            except OSError:
                if time.time() > deadline:
                    pytest.fail("serve did not listen within 30 s")
                time.sleep(0.05)
        yield url
    finally:
        code = stop(proc, stop_with, timeout=15)
        log.seek(0)
        output = log.read()
        log.close()
    assert code == 0, f"exit {code} after {signal.Signals(stop_with).name}:\n{output}"
    assert "stopping" in output and "Traceback" not in output, output


def turk_error(call) -> tuple[str, str, str]:
    with pytest.raises(ClientError) as caught:
        call()
    response = caught.value.response
    return response["Error"]["Code"], response.get("TurkErrorCode", ""), response["Error"]["Message"]


def test_error_codes_and_media(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    (media / "x.svg").write_text("<svg/>")
    with serve(tmp_path, "--media-root", str(media)) as url:
        mturk = client(url, retries=False)
        code, turk, _ = turk_error(lambda: mturk.get_hit(HITId="3" + "X" * 29))
        assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.HITDoesNotExist")

        hit_id = mturk.create_hit(**hit_params(MaxAssignments=5, UniqueRequestToken="tok-1"))["HIT"]["HITId"]
        code, turk, message = turk_error(lambda: mturk.create_hit(**hit_params(UniqueRequestToken="tok-1")))
        assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.HitAlreadyExists") and hit_id in message

        code, turk, _ = turk_error(lambda: mturk.create_additional_assignments_for_hit(
            HITId=hit_id, NumberOfAdditionalAssignments=5))
        assert (code, turk) == ("RequestError", "AWS.MechanicalTurk.InvalidMaximumAssignmentsIncrease")

        big = html_question("<form>" + "x" * 65536 + "</form>")
        code, turk, message = turk_error(lambda: mturk.create_hit(**hit_params(Question=big)))
        assert code == "RequestError" and "65535" in message

        code, _, message = turk_error(lambda: mturk.create_hit(**hit_params(Reward="five cents")))
        assert code == "ParameterValidationError" and "Reward" in message

        status, headers, body = http("GET", url + "/media/0/x.svg")
        assert (status, headers["Content-Type"], body) == (200, "image/svg+xml", "<svg/>")
        assert http("GET", url + "/media/0/../m.db")[0] == 404


def iris_hits(url: str, batch_dir: Path, count: int) -> dict[str, str]:
    """Post the first `count` iris items with the iris template's question; annotation -> HIT id."""
    batch = load_batch(batch_dir)
    renderer = QuestionRenderer(batch, target="local")
    mturk = client(url, retries=False)
    return {batch.annotation(item.id): mturk.create_hit(**hit_params(
        MaxAssignments=1, RequesterAnnotation=batch.annotation(item.id), Question=renderer.question(item)))["HIT"]["HITId"]
        for item in batch.items[:count]}


def wait_answers(url: str, hits: dict[str, str]) -> dict[str, str]:
    """annotation -> the species answered, once every HIT has one (10 s at most)."""
    mturk = client(url, retries=False)
    deadline = time.time() + 10
    got: dict[str, str] = {}
    while len(got) < len(hits) and time.time() < deadline:
        for annotation, hit_id in hits.items():
            for a in mturk.list_assignments_for_hit(HITId=hit_id)["Assignments"]:
                got[annotation] = re.search(r"<QuestionIdentifier>species</QuestionIdentifier><FreeText>(\w+)"
                                            r"</FreeText>", a["Answer"]).group(1)
        time.sleep(0.1)
    return got


def test_simulated_crowd_with_gold_from_a_batch(tmp_path):
    batch_dir = make_batch(tmp_path, name="iris", items=4)
    gold = load_batch(batch_dir).gold_annotations()
    with serve(tmp_path, "--crowd", "simulated", "--gold-from", str(batch_dir), "--workers", "3") as url:
        hits = iris_hits(url, batch_dir, 4)
        assert set(hits) == set(gold) and all(a.startswith("iris/iris-00") for a in hits)
        answers = wait_answers(url, hits)
    assert set(answers) == set(hits)
    assert set(answers.values()) <= {"setosa", "versicolor", "virginica"}


def test_replay_crowd_from_the_command_line(tmp_path):
    batch_dir = make_batch(tmp_path, name="iris", items=3)
    items = [item.id for item in load_batch(batch_dir).items]
    recorded = {items[0]: "setosa", items[1]: "virginica", items[2]: "versicolor"}
    (tmp_path / "answers.csv").write_text("item,worker,label\n" + "".join(
        f"{item},{n},{label}\n" for n, (item, label) in enumerate(recorded.items())))
    with serve(tmp_path, "--crowd", "replay", "--answers", str(tmp_path / "answers.csv"),
               "--annotation-prefix", "iris/") as url:
        answers = wait_answers(url, iris_hits(url, batch_dir, 3))
    assert answers == {f"iris/{item}": label for item, label in recorded.items()}


@pytest.mark.parametrize("stop_with,ignored", [
    (signal.SIGINT, (signal.SIGINT,)),  # `annotate marketplace serve &` in a script, then kill -INT
    (signal.SIGTERM, ()),  # kill
    (signal.SIGTERM, (signal.SIGINT, signal.SIGTERM)),
], ids=["sigint-ignored-by-parent", "sigterm", "sigterm-ignored-by-parent"])
def test_stops_cleanly_whatever_the_parent_ignores(tmp_path, stop_with, ignored):
    with serve(tmp_path, "--crowd", "simulated", stop_with=stop_with, ignored=ignored) as url:
        assert client(url, retries=False).get_account_balance()["AvailableBalance"] == "10000.00"


def test_media_root_may_not_be_a_system_directory(tmp_path):
    from click.testing import CliRunner

    from annotate.cli import cli

    for root in ("/", "/etc"):
        result = CliRunner().invoke(cli, ["--home", str(tmp_path), "marketplace", "serve", "--port", "0",
                                          "--media-root", root])
        assert result.exit_code == 2 and "system directory" in result.output, result.output


@pytest.mark.parametrize("stop_with", [signal.SIGINT, signal.SIGTERM])
def test_preview_serve_stops_cleanly_when_the_parent_ignores_sigint(tmp_path, stop_with):
    batch_dir = make_batch(tmp_path, items=2)
    env = {**os.environ, "PYTHONPATH": str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""),
           "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "annotate", "preview", str(batch_dir), "--serve"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env, cwd=tmp_path,
                            preexec_fn=_ignoring((signal.SIGINT,)))
    try:
        first = proc.stdout.readline()
        assert first.startswith("serving http://127.0.0.1:"), first + proc.stdout.read()
        assert http("GET", first.split()[1])[0] == 200
    finally:
        code = stop(proc, stop_with, timeout=15)
    rest = proc.stdout.read()
    proc.stdout.close()
    assert code == 0 and "Traceback" not in rest, rest
