"""Local media: files under registered roots only, with their content type; no way out of a root."""

from __future__ import annotations

import http.client as httplib
import os
from urllib.parse import urlsplit

import pytest
from conftest_marketplace import http

from annotate.marketplace import MarketplaceServer

PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256))


def raw_get(url: str, path: str) -> tuple[int, str | None, bytes]:
    """GET with the path sent exactly as written (urllib would normalise `..`)."""
    split = urlsplit(url)
    conn = httplib.HTTPConnection(split.hostname, split.port, timeout=10)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.getheader("Content-Type"), response.read()
    finally:
        conn.close()


@pytest.fixture
def roots(tmp_path):
    images = tmp_path / "images"
    (images / "sub dir").mkdir(parents=True)
    (images / "a.png").write_bytes(PNG)
    (images / "sub dir" / "b.jpg").write_bytes(b"jpeg")
    (images / "notes.unknownext").write_bytes(b"?")
    texts = tmp_path / "texts"
    texts.mkdir()
    (texts / "t.txt").write_text("hello")
    secret = tmp_path / "secret.txt"
    secret.write_text("do not serve")
    os.symlink(secret, images / "escape.txt")
    os.symlink(tmp_path, images / "up")
    os.symlink(images / "a.png", images / "inside.png")
    return images, texts, secret


@pytest.fixture
def srv(tmp_path, roots):
    images, texts, _ = roots
    with MarketplaceServer(tmp_path / "m.db", media_roots=[images, texts]) as server:
        yield server


def test_serves_files_with_their_type(srv):
    assert raw_get(srv.url, "/media/0/a.png") == (200, "image/png", PNG)
    assert raw_get(srv.url, "/media/0/sub%20dir/b.jpg") == (200, "image/jpeg", b"jpeg")
    assert raw_get(srv.url, "/media/1/t.txt") == (200, "text/plain", b"hello")
    assert raw_get(srv.url, "/media/0/notes.unknownext")[1] == "application/octet-stream"
    assert raw_get(srv.url, "/media/0/inside.png")[2] == PNG  # a symlink that stays inside is fine
    status, headers, body = http("HEAD", srv.url + "/media/0/a.png")
    assert status == 200 and headers["Content-Length"] == str(len(PNG)) and body == ""


@pytest.mark.parametrize("path", [
    "/media/0/../secret.txt", "/media/0/%2e%2e/secret.txt", "/media/0/sub%20dir/../../secret.txt",
    "/media/0/..%2fsecret.txt", "/media/1/../images/a.png",  # out of root 1, even into root 0
    "/media/0//etc/passwd", "/media/0/%2Fetc%2Fpasswd",  # absolute paths
    "/media/0/escape.txt", "/media/0/up/secret.txt",  # symlinks out of the root
    "/media/0/", "/media/0/sub%20dir", "/media/0/missing.png", "/media/2/a.png", "/media/x/a.png",
    "/media/-1/a.png", "/media/0/a.png%00.txt", "/media/",
])
def test_nothing_outside_a_root(srv, path):
    status, _, body = raw_get(srv.url, path)
    assert status == 404 and b"do not serve" not in body and b"root:" not in body


def test_register_and_url_for(tmp_path, roots):
    images, texts, secret = roots
    with MarketplaceServer(tmp_path / "m.db") as srv:
        assert raw_get(srv.url, "/media/0/a.png")[0] == 404
        prefix = srv.add_media_root(images)
        assert prefix == srv.url + "/media/0/" and srv.add_media_root(images) == prefix
        url = srv.media_url(images / "sub dir" / "b.jpg")
        assert url == srv.url + "/media/0/sub%20dir/b.jpg"
        assert http("GET", url)[2] == "jpeg"
        with pytest.raises(ValueError, match="not under a media root"):
            srv.media_url(secret)
        with pytest.raises(ValueError, match="not a directory"):
            srv.add_media_root(secret)


def test_worker_pages_still_route(srv):
    assert http("GET", srv.url + "/worker/?format=json")[0] == 200
    assert http("GET", srv.url + "/mediafoo")[0] == 404
