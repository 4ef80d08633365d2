"""The marketplace's HTTP server: the requester API on `POST /`, worker pages elsewhere,
registered local media under `/media/`.

Every other request that changes state (accept, submit, `POST /_media`, any POST but the requester
API's) must come from the marketplace's own pages or from a program, never from another web page
(origin.py); `POST /_media` also needs the marketplace's key (secret.py). Request bodies are
bounded: a Content-Length that is not a plain number answers 400, one over 8 MB 413, before a byte
of the body is read; chunked bodies are read up to the same bound.

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
import re
import sys
import threading
import time
import traceback
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Callable, Mapping, Sequence
from urllib.parse import parse_qsl, urlsplit

from annotate.marketplace import layouts
from annotate.marketplace.faults import ENV_VAR, Faults, FaultSpec
from annotate.marketplace.media import MediaFiles, register_media
from annotate.marketplace.models import Marketplace
from annotate.marketplace.notifications import Deliverer
from annotate.marketplace.origin import foreign
from annotate.marketplace.responses import MTurkResponses, service_model
from annotate.marketplace.secret import KEY_HEADER, ensure_key, key_matches, publish, withdraw
from annotate.marketplace.worker import SUBMIT_PATH, WorkerSite, parse_form

log = logging.getLogger("annotate.marketplace")
MAX_BODY = 8 * 1024 * 1024
_DIGITS = re.compile(rb"[0-9]{1,19}")
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,16}")


class _Refused(Exception):
    """A request refused before it is routed: the status and the reason."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


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

    def _body(self) -> bytes:
        """The request body, or _Refused: never more than MAX_BODY bytes read, whatever the headers say."""
        lengths = self.headers.get_all("Content-Length") or []
        encodings = self.headers.get_all("Transfer-Encoding") or []
        if encodings:
            if lengths:  # which one frames the body is how requests are smuggled: neither
                raise _Refused(400, "Content-Length and Transfer-Encoding together")
            if [e.strip().lower() for e in encodings] != ["chunked"]:
                raise _Refused(501, f"Transfer-Encoding {', '.join(encodings)} is not supported (only chunked)")
            return self._chunked()
        if not lengths:
            return b""
        if len(lengths) > 1:
            raise _Refused(400, "more than one Content-Length")
        raw = lengths[0].strip().encode("latin-1", "replace")
        if not _DIGITS.fullmatch(raw):
            if raw.isdigit():  # more digits than any length could need
                raise _Refused(413, "request body too large")
            raise _Refused(400, f"Content-Length {lengths[0]!r} is not a number of bytes")
        length = int(raw)
        if length > MAX_BODY:
            raise _Refused(413, "request body too large")
        body = self.rfile.read(length) if length else b""
        if len(body) < length:
            raise _Refused(400, "the body is shorter than its Content-Length")
        return body

    def _chunked(self) -> bytes:
        body = bytearray()
        while True:
            line = self.rfile.readline(1024)
            if not line.endswith(b"\n"):
                raise _Refused(400, "malformed chunk")
            size_text = line.split(b";", 1)[0].strip()
            if not _CHUNK_SIZE.fullmatch(size_text):
                raise _Refused(400, "malformed chunk size")
            size = int(size_text, 16)
            if size == 0:
                for _ in range(64):  # trailer fields, then the blank line
                    if self.rfile.readline(8192) in (b"\r\n", b"\n", b""):
                        return bytes(body)
                raise _Refused(400, "too many trailer fields")
            if len(body) + size > MAX_BODY:
                raise _Refused(413, "request body too large")
            chunk = self.rfile.read(size)
            if len(chunk) < size or self.rfile.readline(3) not in (b"\r\n", b"\n"):
                raise _Refused(400, "malformed chunk")
            body += chunk

    def _handle(self) -> None:
        marketplace = self.server.marketplace
        try:
            try:
                body = self._body()
            except _Refused as refused:
                self.close_connection = True  # the rest of the body, if any, is never read
                self._send(refused.status, {"Content-Type": "text/plain"}, refused.message.encode("utf-8"))
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
            query = parse_qsl(split.query, keep_blank_values=True)
            form = parse_form(self.headers.get("Content-Type") or "", body) if self.command == "POST" else []
            if self.command == "POST" or split.path == SUBMIT_PATH:
                why = foreign(self.headers, self.server.server_address[0])
                # MTurk's ExternalQuestion: the requester's own site posts the answer from its origin.
                if why is not None and not (split.path == SUBMIT_PATH and marketplace.site.from_external_site(
                        form if self.command == "POST" else query, self.headers)):
                    self._send(*marketplace.site.refused(why, self.headers, query))
                    return
            if self.command == "POST" and split.path == "/_media":
                # The local emulator's own extension (no MTurk counterpart): annotate, holding the
                # marketplace's key, registers a batch directory whose files HITs may show.
                if not key_matches(marketplace.key, self.headers.get(KEY_HEADER)):
                    self._send(403, {"Content-Type": "application/json"},
                               b'{"error": "registering media needs the marketplace\'s key (header X-Annotate-Key)"}')
                    return
                self._send(*register_media(marketplace.media, form))
                return
            host = self.headers.get("Host") or f"{self.server.server_address[0]}:{self.server.server_address[1]}"
            answer = marketplace.site.handle(self.command, split.path, query, form, self.headers, f"http://{host}",
                                             body=body)
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
                 hit_layouts: Mapping[str, str | Path] | None = None, notification_endpoint: str | None = None,
                 mode: str = "production"):
        if faults is None:
            faults = os.environ.get(ENV_VAR, "")
        spec = faults if isinstance(faults, FaultSpec) else FaultSpec.parse(faults)
        self.faults: Faults | None = Faults(spec) if spec.active else None
        self.backend = Marketplace(db_path, clock=clock, mode=mode)
        self.key = ensure_key(db_path)
        self.media = MediaFiles(media_roots, db_path=db_path)
        self.responses = MTurkResponses(self.backend)
        self.site = WorkerSite(self.backend, key=self.key)
        for layout_id, layout in (hit_layouts or {}).items():
            self.register_layout(layout_id, layout)
        # Notifications go out from a thread of their own (None: the endpoint named by the
        # queue URL, or ANNOTATE_MARKETPLACE_NOTIFICATION_ENDPOINT).
        self.deliverer = Deliverer(self.backend.db_path, notification_endpoint, clock=self.backend.now)
        service_model()  # load botocore's model now, not on the first request
        self._httpd = _HTTPServer((host, port), _Handler)
        self._httpd.marketplace = self
        self._httpd.verbose = verbose
        self.backend.base_url = self.url  # GetFileUploadURL's URLs point here
        self._thread: threading.Thread | None = None
        publish(urlsplit(self.url).netloc, self.key)  # for the crowds this process runs beside it

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

    def register_layout(self, layout_id: str, layout: str | Path) -> None:
        """Register a HIT layout for HITLayoutId: its HTML (or HTMLQuestion) as text, or a file holding it.

        ValueError for a bad id or an empty layout; OSError when the file cannot be read."""
        content = layout.read_text(encoding="utf-8") if isinstance(layout, Path) else layout
        with self.backend._tx() as conn:
            layouts.register(conn, layout_id, content, self.backend.now())

    def inject_fault(self, operation: str | None = None, error: str = "ServiceFault", times: int = 1) -> None:
        """Fail the next `times` calls of `operation` (None: any) with ServiceFault or ThrottlingException."""
        self.responses.inject_fault(operation, error, times)

    def start(self) -> "MarketplaceServer":
        self.deliverer.start()
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="marketplace", daemon=True)
        self._thread.start()
        return self

    def serve_forever(self) -> None:
        self.deliverer.start()
        try:
            self._httpd.serve_forever(poll_interval=0.25)
        finally:
            self._httpd.server_close()
            self.deliverer.stop()

    def stop(self) -> None:
        if self._thread is not None:
            self._httpd.shutdown()
            self._thread.join(timeout=5)
            self._thread = None
        withdraw(urlsplit(self.url).netloc)
        self._httpd.server_close()
        self.deliverer.stop()
        self.backend.close()

    def __enter__(self) -> "MarketplaceServer":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
