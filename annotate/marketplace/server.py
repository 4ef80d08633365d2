"""The marketplace's HTTP server: the requester API on `POST /`, worker pages elsewhere,
registered local media under `/media/`.

    srv = MarketplaceServer(db_path, host="127.0.0.1", port=0, clock=None,
                            faults=None, media_roots=()).start()
    boto3.client("mturk", endpoint_url=srv.url, region_name="us-east-1", ...)
    srv.stop()

`mode` is "production" (HITs cost money; the default, which annotate's local target uses so
budgets and fees are exercised) or "sandbox" (the fixed $10,000.00 balance).
`faults` (a SPEC string or FaultSpec; see faults.py) makes the requester API slow and unreliable
on purpose. Without the argument the server reads ANNOTATE_MARKETPLACE_FAULTS, so the marketplace
that annotate embeds in each command honours it too; `faults=""` turns faults off whatever the
environment says.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Sequence
from urllib.parse import parse_qsl, urlsplit

from annotate.marketplace.faults import ENV_VAR, Faults, FaultSpec
from annotate.marketplace.media import MediaFiles, register_media
from annotate.marketplace.models import Marketplace
from annotate.marketplace.responses import MTurkResponses, service_model
from annotate.marketplace.worker import WorkerSite, parse_form

log = logging.getLogger("annotate.marketplace")
MAX_BODY = 8 * 1024 * 1024


class _Handler(BaseHTTPRequestHandler):
    # HTTP/1.1 keep-alive: boto3's pooled connections reuse one handler thread (and its SQLite
    # connection) for many requests. Every response therefore carries Content-Length.
    protocol_version = "HTTP/1.1"
    server_version = "annotate-marketplace"
    disable_nagle_algorithm = True  # headers and body go out in separate writes; no 40 ms stalls
    server: "_HTTPServer"

    def log_message(self, format: str, *args) -> None:  # noqa: A002 - the stdlib's signature
        if self.server.verbose:
            sys.stderr.write("%s - %s\n" % (self.address_string(), format % args))

    def _send(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            return None
        return self.rfile.read(length) if length else b""

    def _handle(self) -> None:
        marketplace = self.server.marketplace
        try:
            body = self._body()
            if body is None:
                self.close_connection = True
                self._send(413, {"Content-Type": "text/plain"}, b"request body too large")
                return
            split = urlsplit(self.path)
            target = self.headers.get("X-Amz-Target")
            if self.command == "POST" and target is not None and split.path == "/":
                self._requester_call(target, body)
                return
            media = marketplace.media.handle(self.command, split.path)
            if media is not None:
                self._send(*media)
                return
            if self.command == "POST" and split.path == "/_media":
                # The local emulator's own extension (no MTurk counterpart): the requester on this
                # machine registers a directory whose files HITs may show.
                self._send(*register_media(marketplace.media, parse_form(self.headers.get("Content-Type") or "", body)))
                return
            form = parse_form(self.headers.get("Content-Type") or "", body) if self.command == "POST" else []
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            answer = marketplace.site.handle(self.command, split.path, parse_qsl(split.query, keep_blank_values=True),
                                             form, self.headers, f"http://{host}")
            if answer is None:
                self._send(404, {"Content-Type": "text/plain"}, b"not found")
            else:
                self._send(*answer)
        except Exception:  # a bug: answer as MTurk does (ServiceFault) and keep the server up
            log.error("marketplace request failed:\n%s", traceback.format_exc())
            self.close_connection = True
            self._send(500, {"Content-Type": "application/x-amz-json-1.1"},
                       b'{"__type": "ServiceFault", "Message": "Internal error in the marketplace emulator.", '
                       b'"TurkErrorCode": "AWS.MechanicalTurk.InternalError"}')

    def _requester_call(self, target: str, body: bytes) -> None:
        marketplace = self.server.marketplace
        refused = marketplace.responses.refuse_unsigned(self.headers)
        if refused is not None:  # as AWS: authentication comes before throttling or the operation
            self._send(*refused)
            return
        faults = marketplace.faults
        if faults is None:
            self._send(*marketplace.responses.dispatch(target, body))
            return
        if faults.spec.latency:
            time.sleep(faults.spec.latency)
        kind = faults.draw()
        if kind in ("throttle", "rate"):
            self._send(*marketplace.responses.error(400, "ThrottlingException", "Rate exceeded", None))
        elif kind == "error":
            # botocore retries a 503 ServiceUnavailable; MTurk's ServiceFault shape, with its code.
            self._send(*marketplace.responses.error(
                503, "ServiceUnavailable", "Amazon Mechanical Turk is temporarily unavailable. Try your call again.",
                "AWS.MechanicalTurk.ServiceUnavailable"))
        elif kind == "drop":
            marketplace.responses.dispatch(target, body)  # the write happens ...
            self.close_connection = True  # ... and the answer is lost: close without a byte
        else:
            self._send(*marketplace.responses.dispatch(target, body))

    do_GET = do_POST = do_HEAD = _handle


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 128
    marketplace: "MarketplaceServer"
    verbose: bool


class MarketplaceServer:
    """An MTurk-compatible marketplace on 127.0.0.1 (the requester API and the worker pages)."""

    def __init__(self, db_path: str | Path, host: str = "127.0.0.1", port: int = 0,
                 clock: Callable[[], float] | None = None, verbose: bool = False,
                 faults: str | FaultSpec | None = None, media_roots: Sequence[str | Path] = (),
                 mode: str = "production"):
        if faults is None:
            faults = os.environ.get(ENV_VAR, "")
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.faults: Faults | None = Faults(spec) if spec.active else None
        self.backend = Marketplace(db_path, clock=clock, mode=mode)
        self.media = MediaFiles(media_roots, db_path=db_path)
        self.responses = MTurkResponses(self.backend)
        self.site = WorkerSite(self.backend)
        service_model()  # load botocore's model now, not on the first request
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.marketplace = self
        self._httpd.verbose = verbose
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def worker_url(self) -> str:
        return self.url + "/worker/"

    def add_media_root(self, root: str | Path) -> str:
        """Serve the files under `root`; returns the URL prefix they are served under."""
        return f"{self.url}/media/{self.media.add_root(root)}/"

    def media_url(self, file: str | Path) -> str:
        """The URL of a file under a registered media root."""
        return self.url + self.media.url_path(file)

    def inject_fault(self, operation: str | None = None, error: str = "ServiceFault", times: int = 1) -> None:
        """Fail the next `times` calls of `operation` (None: any) with ServiceFault or ThrottlingException."""
        self.responses.inject_fault(operation, error, times)

    def start(self) -> "MarketplaceServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="marketplace", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        try:
            self._httpd.serve_forever(poll_interval=0.25)
        finally:
            self._httpd.server_close()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        self._httpd.server_close()
        self.backend.close()

    def __enter__(self) -> "MarketplaceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
