"""A local endpoint with SageMaker's inference contract: GET /ping, POST /invocations.

It serves a locally trained model through the training script's own hooks (model_fn,
input_fn, predict_fn, output_fn), as the framework serving containers do. Run in the
foreground, or in the background as `python -m annotate.sagemaker.endpoint`, which writes
an endpoint record (pid, port) under <home>/endpoints/ for `predict` and `teardown`.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from annotate.errors import UserError
from annotate.sagemaker.local import TrainingResult, load_job

HOST = "127.0.0.1"


def endpoints_dir(home: Path) -> Path:
    return Path(home) / "endpoints"


def record_path(home: Path, name: str) -> Path:
    return endpoints_dir(home) / f"{name}.json"


def save_record(home: Path, record: dict[str, Any]) -> Path:
    path = record_path(home, record["name"])
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2, sort_keys=True), encoding="utf-8")
    tmp.replace(path)  # readers never see half a record
    return path


def load_record(home: Path, name: str) -> dict[str, Any] | None:
    path = record_path(home, name)
    return json.loads(path.read_text(encoding="utf-8")) if path.exists() else None


class LocalModel:
    """A trained model behind the script's inference hooks."""

    def __init__(self, job: TrainingResult):
        if job.target != "local" or not job.model_dir:
            raise UserError(f"job '{job.job_name}' was not trained locally: deploy it with --target aws", field="job")
        if job.status != "Completed":
            raise UserError(f"job '{job.job_name}' is {job.status}, not Completed", field="job")
        script = Path(job.source_dir) / job.program
        spec = importlib.util.spec_from_file_location(f"annotate_model_{job.algorithm}", script)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        self.job = job
        self.module = module
        self.model = module.model_fn(job.model_dir)

    def invoke(self, body: bytes, content_type: str | None, accept: str | None) -> tuple[bytes, str]:
        data = self.module.input_fn(body, content_type or "text/csv")
        prediction = self.module.predict_fn(data, self.model)
        response, mime = self.module.output_fn(prediction, accept or "application/json")
        return (response.encode() if isinstance(response, str) else response), mime


def make_server(model: LocalModel, host: str = HOST, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 (http.server's naming)
            if self.path == "/ping":
                self._reply(200, b"", "text/plain")
            else:
                self._reply(404, b"not found\n", "text/plain")

        def do_POST(self):  # noqa: N802
            if self.path != "/invocations":
                self._reply(404, b"not found\n", "text/plain")
                return
            try:
                length = int(self.headers.get("Content-Length") or 0)
            except ValueError:
                self._reply(400, b"bad Content-Length\n", "text/plain")
                return
            body = self.rfile.read(length)
            try:
                response, mime = model.invoke(body, self.headers.get("Content-Type"), self.headers.get("Accept"))
            except ValueError as exc:  # bad input (content type, shape, numbers): the caller's to fix
                status = 415 if "content type" in str(exc) or "accept type" in str(exc) else 400
                self._reply(status, f"{exc}\n".encode(), "text/plain")
                return
            except Exception as exc:  # the model failed on this input: answer, as SageMaker's containers do
                self._reply(500, f"the model failed on this input: {type(exc).__name__}: {exc}\n".encode(),
                            "text/plain")
                return
            self._reply(200, response, mime)

        def _reply(self, status: int, body: bytes, mime: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", mime)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format, *args):  # noqa: A002 - keep the terminal for predictions
            return

    return ThreadingHTTPServer((host, port), Handler)


@dataclass
class RunningEndpoint:
    """An in-process endpoint (tests, notebooks): `with serve_in_thread(job) as ep: ep.url`."""

    server: ThreadingHTTPServer
    thread: threading.Thread

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.stop()


def serve_in_thread(job: TrainingResult, host: str = HOST, port: int = 0) -> RunningEndpoint:
    server = make_server(LocalModel(job), host, port)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    return RunningEndpoint(server, thread)


def serve_foreground(home: Path, job_name: str, *, name: str | None = None, host: str = HOST, port: int = 8080,
                     ready=None) -> None:
    """Serve until interrupted; the endpoint record lives as long as the server."""
    job = load_job(home, job_name)
    server = make_server(LocalModel(job), host, port)
    record = _record(name or job_name, job, os.getpid(), *server.server_address[:2])
    save_record(home, record)
    signal.signal(signal.SIGTERM, lambda *_: threading.Thread(target=server.shutdown).start())
    if ready:
        ready(record)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("stopping", file=sys.stderr)
    finally:
        server.server_close()
        current = load_record(home, record["name"])
        if current and current.get("pid") == os.getpid():
            record_path(home, record["name"]).unlink()


def _record(name: str, job: TrainingResult, pid: int, host: str, port: int) -> dict[str, Any]:
    return {"name": name, "target": "local", "job": job.job_name, "algorithm": job.algorithm, "labels": job.labels,
            "pid": pid, "host": host, "port": port, "url": f"http://{host}:{port}"}


def start_background(home: Path, job_name: str, *, name: str | None = None, host: str = HOST, port: int = 0,
                     timeout: float = 90.0) -> dict[str, Any]:
    """Start the endpoint as a detached process and return its record once /ping answers."""
    job = load_job(home, job_name)
    if job.target != "local" or job.status != "Completed":
        raise UserError(f"job '{job_name}' is not a completed local training job", field="job")
    name = name or job_name
    existing = load_record(home, name)
    if existing and existing.get("target") == "local" and _alive(existing.get("pid")):
        raise UserError(f"local endpoint '{name}' is already running at {existing['url']} "
                        f"(annotate teardown {name})", field="endpoint")
    log = endpoints_dir(home) / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    command = [sys.executable, "-m", "annotate.sagemaker.endpoint", "--home", str(home), "--job", job_name,
               "--name", name, "--host", host, "--port", str(port)]
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        record = load_record(home, name)
        if record and record.get("pid") == proc.pid and ping(record["url"]):
            return record
        if proc.poll() is not None:
            raise UserError(f"local endpoint exited with code {proc.returncode}: "
                            f"{log.read_text(encoding='utf-8').strip()[-500:]}")
        time.sleep(0.1)
    os.kill(proc.pid, signal.SIGTERM)
    raise UserError(f"local endpoint did not answer /ping within {timeout:.0f}s (log: {log})")


def ping(url: str, timeout: float = 2.0) -> bool:
    try:
        with urllib.request.urlopen(f"{url}/ping", timeout=timeout) as response:
            return response.status == 200
    except (urllib.error.URLError, ConnectionError, TimeoutError):
        return False


def invoke_local(url: str, body: bytes, content_type: str, accept: str = "application/json") -> tuple[bytes, str]:
    request = urllib.request.Request(f"{url}/invocations", data=body, method="POST",
                                     headers={"Content-Type": content_type, "Accept": accept})
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return response.read(), response.headers.get("Content-Type", "")
    except urllib.error.HTTPError as exc:
        raise UserError(f"endpoint refused the input ({exc.code}): {exc.read().decode(errors='replace').strip()}")
    except urllib.error.URLError as exc:
        raise UserError(f"local endpoint at {url} is not answering ({exc.reason}): deploy it again")


def _alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def stop_local(home: Path, name: str, timeout: float = 10.0) -> bool:
    """Stop a background endpoint by its recorded pid; True if one was running."""
    record = load_record(home, name)
    if not record or record.get("target") != "local":
        return False
    pid = record.get("pid")
    running = _alive(pid)
    if running:
        os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while _alive(pid) and time.monotonic() < deadline:
            _reap(pid)
            time.sleep(0.05)
    record_path(home, name).unlink(missing_ok=True)
    return running


def _reap(pid: int) -> None:
    """Collect our own child's exit status so it does not linger as a zombie."""
    try:
        os.waitpid(pid, os.WNOHANG)
    except ChildProcessError:
        return


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m annotate.sagemaker.endpoint")
    parser.add_argument("--home", required=True)
    parser.add_argument("--job", required=True)
    parser.add_argument("--name")
    parser.add_argument("--host", default=HOST)
    parser.add_argument("--port", type=int, default=8080)
    args = parser.parse_args(argv)
    serve_foreground(Path(args.home), args.job, name=args.name, host=args.host, port=args.port)


if __name__ == "__main__":
    main()
