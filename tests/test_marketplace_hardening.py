"""The marketplace against hostile requests (issue 11: B2, B6, B12): media roots registered only by
annotate with the marketplace's own key and only for batch directories; no state-changing request
from a foreign origin; bounded request bodies; worker ids as MTurk issues them; nothing
requester-private on the worker pages."""

from __future__ import annotations

import http.client as httplib
import json
import re
import socket
import sqlite3
import time
import urllib.request
from urllib.parse import urlsplit

import pytest
from conftest import make_batch
from conftest_marketplace import accept, client, hit_params, http

from annotate.marketplace import MarketplaceServer
from annotate.marketplace.media import root_name
from annotate.marketplace.secret import KEY_HEADER, read_key

WORKER = "AWORKERONE1234"


@pytest.fixture
def srv(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="") as server:
        yield server


@pytest.fixture
def batch(tmp_path):
    batch_dir = make_batch(tmp_path / "batches", items=2)
    (batch_dir / "pic.png").write_bytes(b"not really a PNG")
    (batch_dir / ".hidden.png").write_bytes(b"hidden")
    return batch_dir


def register(url: str, root, key: str | None, headers: dict | None = None) -> tuple[int, str]:
    hdrs = dict(headers or {})
    if key is not None:
        hdrs[KEY_HEADER] = key
    status, _, body = http("POST", url + "/_media", {"root": str(root)}, hdrs)
    return status, body


# -- B2: who may register which directory ------------------------------------------------------

def test_the_key_is_made_once_and_kept_in_the_marketplace_database(tmp_path):
    with MarketplaceServer(tmp_path / "m.db", faults="") as first:
        key = first.key
    assert len(key) >= 32 and read_key(tmp_path / "m.db") == key
    with MarketplaceServer(tmp_path / "m.db", faults="") as second:
        assert second.key == key
    assert read_key(tmp_path / "none.db") is None and not (tmp_path / "none.db").exists()


def test_registering_needs_the_key(srv, batch):
    assert register(srv.url, batch, None)[0] == 403
    assert register(srv.url, batch, "0" * 64)[0] == 403
    status, body = register(srv.url, batch, srv.key)
    assert status == 200 and json.loads(body)["prefix"] == f"/media/{root_name(batch)}/"
    assert http("GET", srv.url + f"/media/{root_name(batch)}/pic.png")[0] == 200
    # the batch's own files stay private: the items carry the gold labels
    for private in ("items.csv", "batch.toml", ".hidden.png"):
        assert http("GET", srv.url + f"/media/{root_name(batch)}/{private}")[0] == 404, private


@pytest.mark.parametrize("where", ["/", "/etc", "/usr", "/tmp", "home-no-batch", "symlink-to-root", "dotdot"])
def test_only_batch_directories(srv, tmp_path, where):
    plain = tmp_path / "plain"
    plain.mkdir()
    (tmp_path / "to-root").symlink_to("/")
    root = {"home-no-batch": plain, "symlink-to-root": tmp_path / "to-root",
            "dotdot": f"{tmp_path}/plain/../../../../../../.."}.get(where, where)
    status, body = register(srv.url, root, srv.key)
    assert status == 400, body
    assert http("GET", srv.url + f"/media/{root_name(root)}/etc/passwd")[0] == 404


def test_a_foreign_page_cannot_register_even_with_the_key(srv, batch):
    assert register(srv.url, batch, srv.key, {"Origin": "http://evil.example"})[0] == 403
    assert register(srv.url, batch, srv.key, {"Sec-Fetch-Site": "cross-site"})[0] == 403


def test_old_bad_registrations_stop_serving(tmp_path, batch):
    """A database from before: `/` and a plain directory registered by anyone. Neither serves now."""
    db = tmp_path / "m.db"
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "secret.txt").write_text("do not serve")
    conn = sqlite3.connect(db)
    conn.execute("create table media_roots (name text primary key, path text not null)")
    for root in ("/", str(plain), str(batch)):
        conn.execute("insert into media_roots values (?, ?)", (root_name(root), root))
    conn.commit()
    conn.close()
    with MarketplaceServer(db, faults="") as server:
        assert http("GET", server.url + f"/media/{root_name('/')}/etc/passwd")[0] == 404
        assert http("GET", server.url + f"/media/{root_name(plain)}/secret.txt")[0] == 404
        assert http("GET", server.url + f"/media/{root_name(batch)}/pic.png")[0] == 200  # a batch's: still fine
    rows = sqlite3.connect(db).execute("select path from media_roots").fetchall()
    assert rows == [(str(batch),)]  # the bad ones are gone for good


def test_annotate_registers_with_the_key_from_the_home(ws, tmp_path, monkeypatch):
    """post reads the key of the project's marketplace database; a marketplace on another database
    refuses it, and post says how to give the key (ANNOTATE_MARKETPLACE_KEY) instead of a traceback."""
    from annotate.marketplace import secret
    from annotate.templates import register_local_media

    monkeypatch.setattr(secret, "serving_key", lambda netloc: None)  # as if it ran in another process

    batch_dir = make_batch(tmp_path, items=1)
    with MarketplaceServer(ws.marketplace_db, faults="") as server:
        assert register_local_media(server.url, batch_dir, ws.marketplace_db) == f"/media/{root_name(batch_dir)}/"
    with MarketplaceServer(tmp_path / "other.db", faults="") as other:
        from annotate.errors import UserError

        with pytest.raises(UserError, match="ANNOTATE_MARKETPLACE_KEY"):
            register_local_media(other.url, batch_dir, ws.marketplace_db)


def test_annotate_registers_with_the_key_from_the_environment(ws, tmp_path, monkeypatch):
    from annotate.templates import register_local_media

    batch_dir = make_batch(tmp_path, items=1)
    with MarketplaceServer(tmp_path / "other.db", faults="") as other:
        monkeypatch.setenv("ANNOTATE_MARKETPLACE_KEY", other.key)
        assert register_local_media(other.url, batch_dir, ws.marketplace_db) == f"/media/{root_name(batch_dir)}/"


# -- cross-origin requests ---------------------------------------------------------------------

@pytest.mark.parametrize("headers", [
    {"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"},
    {"Sec-Fetch-Site": "same-site"}, {"Origin": "http://127.0.0.1:1"},
])
def test_foreign_origin_posts_are_refused(srv, headers):
    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]["HITId"]
    status, _, page = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": WORKER}, headers)
    assert status == 403, page
    assignment_id = accept(srv.url, hit_id, WORKER)
    status, _, page = http("POST", srv.url + "/mturk/externalSubmit",
                           [("assignmentId", assignment_id), ("label", "cat")], headers)
    assert status == 403, page
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsPending"] == 1  # nothing submitted
    assert http("POST", srv.url + "/nowhere", {"x": "1"}, headers)[0] == 403


def test_same_origin_posts_work(srv):
    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params(MaxAssignments=2))["HIT"]["HITId"]
    host = urlsplit(srv.url).netloc
    same = {"Origin": srv.url, "Sec-Fetch-Site": "same-origin"}
    status, headers, _ = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": WORKER}, same)
    assert status == 303
    assignment_id = dict(part.split("=") for part in urlsplit(headers["Location"]).query.split("&"))["assignmentId"]
    status, _, page = http("POST", srv.url + "/mturk/externalSubmit",
                           [("assignmentId", assignment_id), ("label", "cat")], same)
    assert status == 200, page
    # localhost and 127.0.0.1 are the same machine's names for a loopback server
    port = host.rsplit(":", 1)[1]
    status, _, _ = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": "ASECOND1"},
                        {"Origin": f"http://localhost:{port}", "Host": f"localhost:{port}"})
    assert status == 303


def test_dns_rebinding_origin_is_refused(srv):
    """A page on evil.example whose name now points at 127.0.0.1 is same-origin with itself only."""
    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    port = urlsplit(srv.url).port
    status, _, _ = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": WORKER},
                        {"Origin": f"http://evil.example:{port}", "Host": f"evil.example:{port}"})
    assert status == 403


def test_the_requester_api_is_not_origin_checked(srv):
    """boto3 sends no Origin; the signed API is a program's, not a page's."""
    mturk = client(srv.url, retries=False)
    assert mturk.get_account_balance()["AvailableBalance"] == "10000.00"


def test_external_question_sites_may_submit(srv):
    """MTurk's ExternalQuestion: the requester's own site posts to externalSubmit across origins."""
    from conftest_marketplace import external_question

    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params(Question=external_question("https://tasks.example.org/t?x=1")))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    other = accept(srv.url, mturk.create_hit(**hit_params(
        Question=external_question("https://tasks.example.org/t")))["HIT"]["HITId"], WORKER)
    assert http("POST", srv.url + "/mturk/externalSubmit", [("assignmentId", assignment_id), ("a", "1")],
                {"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"})[0] == 403
    assert http("POST", srv.url + "/mturk/externalSubmit", [("assignmentId", assignment_id), ("a", "1")],
                {"Origin": "https://tasks.example.org", "Sec-Fetch-Site": "cross-site"})[0] == 200
    assert http("POST", srv.url + "/mturk/externalSubmit", [("assignmentId", other), ("a", "1")],
                {"Origin": "https://tasks.example.org"})[0] == 200


def test_cross_site_get_submission_is_refused(srv):
    from conftest_marketplace import html_question

    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params(Question=html_question("<form></form>")))["HIT"]["HITId"]
    assignment_id = accept(srv.url, hit_id, WORKER)
    url = srv.url + f"/mturk/externalSubmit?assignmentId={assignment_id}&answer=yes"
    assert http("GET", url, headers={"Sec-Fetch-Site": "cross-site"})[0] == 403
    assert http("GET", url, headers={"Sec-Fetch-Site": "same-origin"})[0] == 200


# -- B6: request bodies ------------------------------------------------------------------------

def raw(url: str, head: bytes, body: bytes = b"", timeout: float = 5) -> tuple[int, float]:
    """Send exactly these bytes; the status line's code and how long the answer took."""
    split = urlsplit(url)
    started = time.monotonic()
    with socket.create_connection((split.hostname, split.port), timeout=timeout) as sock:
        sock.sendall(head + body)
        response = httplib.HTTPResponse(sock)
        response.begin()
        response.read()
        return response.status, time.monotonic() - started


@pytest.mark.parametrize("length,status", [("-1", 400), ("abc", 400), ("1e3", 400), ("+5", 400), ("", 400),
                                           ("99999999999999999999", 413), (str(8 * 1024 * 1024 + 1), 413)])
def test_bad_content_length(srv, length, status):
    head = (f"POST /worker/accept HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()
    got, seconds = raw(srv.url, head)  # no body sent: the answer must not wait for one
    assert got == status and seconds < 2


def test_conflicting_lengths_are_refused(srv):
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nContent-Length: 5\r\n\r\n")
    assert raw(srv.url, head, b"{}")[0] == 400
    head = (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\n")
    assert raw(srv.url, head, b"0\r\n\r\n")[0] == 400


def test_chunked_bodies_are_read_and_bounded(srv):
    body = b"hitId=3NOPE&workerId=" + WORKER.encode()
    head = (b"POST /worker/accept HTTP/1.1\r\nHost: x\r\nAccept: application/json\r\n"
            b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n")
    chunked = b"%x\r\n%s\r\n0\r\n\r\n" % (len(body), body)
    assert raw(srv.url, head, chunked)[0] == 404  # read as the form it is: no such HIT
    huge = b"%x\r\n" % (64 * 1024 * 1024)
    got, seconds = raw(srv.url, head, huge)
    assert got == 413 and seconds < 2
    assert raw(srv.url, head, b"zz\r\n")[0] == 400
    assert raw(srv.url, b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip\r\n\r\n")[0] == 501


def test_server_stays_up_after_bad_requests(srv):
    raw(srv.url, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: -1\r\n\r\n")
    assert client(srv.url, retries=False).get_account_balance()["AvailableBalance"] == "10000.00"


# -- B12: worker ids and what workers see ------------------------------------------------------

@pytest.mark.parametrize("worker", [
    "AÅBC123", "A\u0412C123",  # Latin-1 and Cyrillic Ve: look like worker ids, are not
    "\u0410BC123",  # Cyrillic A first
    "A１２３",  # fullwidth digits (str.isalnum() says yes)
    "Aabc123", "A", "B123", "A12 3", "A" + "1" * 64, "A123\n", "",
])
@pytest.mark.parametrize("as_json", [True, False])
def test_worker_ids_are_what_mturk_issues(srv, worker, as_json):
    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    headers = {"Accept": "application/json"} if as_json else {}
    status, _, body = http("POST", srv.url + "/worker/accept", {"hitId": hit_id, "workerId": worker}, headers)
    assert status == 400, body
    if as_json:
        assert json.loads(body)["error"] == "InvalidWorkerId"
    else:
        assert "is not a worker id" in body and "A followed by" in body
    assert mturk.get_hit(HITId=hit_id)["HIT"]["NumberOfAssignmentsPending"] == 0


def test_listing_refuses_a_bad_worker_id(srv):
    assert http("GET", srv.url + "/worker/?format=json&workerId=A%D0%92C1")[0] == 400


def test_good_worker_ids_pass(srv):
    mturk = client(srv.url, retries=False)
    hit_id = mturk.create_hit(**hit_params())["HIT"]["HITId"]
    for worker in ("A1B2C3D4E5F6G7", "AZ", "A" + "9" * 63):
        accept(srv.url, hit_id, worker)


def test_workers_never_see_the_requester_annotation(srv):
    mturk = client(srv.url, retries=False)
    mturk.create_hit(**hit_params(RequesterAnnotation="gold=cat;batch=secret-project"))
    _, _, listing = http("GET", srv.url + "/worker/?format=json")
    _, _, page = http("GET", srv.url + "/worker/")
    assert "secret-project" not in listing and "secret-project" not in page
    assert "requesterAnnotation" not in json.loads(listing)["hits"][0]
    # the marketplace's own crowds, given its key, still know which item a HIT is
    _, _, listing = http("GET", srv.url + "/worker/?format=json", headers={KEY_HEADER: srv.key})
    assert json.loads(listing)["hits"][0]["requesterAnnotation"] == "gold=cat;batch=secret-project"


def test_post_without_the_key_stops_before_writing_anything(ws, tmp_path, monkeypatch):
    """A batch with local images, posted to a marketplace on another database whose key annotate
    cannot find: exit 2 naming ANNOTATE_MARKETPLACE_KEY, no HIT, and the store as it was."""
    import shutil

    from click.testing import CliRunner
    from conftest import EXAMPLES
    from test_bad_input import store_digest

    from annotate.cli import cli
    from annotate.marketplace import secret

    batch_dir = tmp_path / "shapes-multilabel"
    shutil.copytree(EXAMPLES / "shapes-multilabel", batch_dir)
    items = batch_dir / "items.jsonl"
    items.write_text("".join(items.read_text().splitlines(keepends=True)[:3]))
    monkeypatch.setattr(secret, "serving_key", lambda netloc: None)  # as if it ran in another process
    monkeypatch.delenv(secret.ENV_VAR, raising=False)
    before = store_digest(ws.store_path)
    with MarketplaceServer(tmp_path / "other.db", faults="") as other:
        result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(batch_dir), "--endpoint-url", other.url])
        assert result.exit_code == 2, result.output
        assert "ANNOTATE_MARKETPLACE_KEY" in result.output and "Traceback" not in result.output
        assert client(other.url).list_hits()["HITs"] == []
        assert store_digest(ws.store_path) == before
        monkeypatch.setenv(secret.ENV_VAR, other.key)  # given the key, the same post goes through
        result = CliRunner().invoke(cli, ["--home", str(ws.home), "post", str(batch_dir), "--endpoint-url", other.url])
        assert result.exit_code == 0, result.output
        hit = client(other.url).list_hits()["HITs"][0]
        src = re.search(r'src="(/media/[^"]+)"', hit["Question"]).group(1)
        with urllib.request.urlopen(other.url + src, timeout=10) as response:
            assert response.status == 200 and response.read().startswith(b"\x89PNG")
