"""The marketplace in a process of its own, for a requester that drives it hard.

    with MarketplaceProcess(db_path) as market:   # starts `python -m annotate.marketplace.process`
        boto3.client("mturk", endpoint_url=market.url, ...)

In one process the requester, its crowd and the marketplace's request threads share one GIL: a
replay's ten thousand requests then run on one core however many the machine has. In a child
process the marketplace serves on another core, as MTurk would be elsewhere. (`annotate replay`
uses it with run_replay(own_process=True); on the shared 2-core machine it measured no faster, as
each request mostly waits for its answer either way: see scripts/bench_replay --own-process.)

The child listens on a free port of 127.0.0.1 and prints its URL on one line. It runs until its
standard input closes: the parent closes it to stop it, and so does the kernel when the parent
dies in any way (even SIGKILL), so a child is never left behind. `stop()` then waits for the
child's exit, and ends it by its pid (SIGTERM, then SIGKILL) if it does not exit in time. The child
runs in a process group of its own, so a Ctrl-C at the terminal reaches the parent alone, whose
cleanup stops the child in order. It stays in the parent's session: with the kernel's autogroup
scheduling a session of its own would be scheduled apart from the requester it answers, and on a
busy machine every request's round trip then waits for the other group's turn (measured: a third
slower than the marketplace in the requester's process, instead of as fast or faster). Crowds in the parent find the marketplace's key as for one in-process
(secret.publish), so they see each HIT's RequesterAnnotation as before.
"""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import threading
from collections import deque
from pathlib import Path
from urllib.parse import urlsplit

from annotate.marketplace.secret import ensure_key, publish, withdraw

STARTUP_SECONDS = 60.0  # imports and botocore's service model: a second or two on an idle machine
STOP_SECONDS = 10.0


class MarketplaceError(RuntimeError):
    """The marketplace process did not start (its last words are in the message)."""


class MarketplaceProcess:
    def __init__(self, db_path: str | Path, mode: str = "production", faults: str | None = None):
        self.db_path = str(db_path)
        self.mode = mode
        self.faults = faults
        self.proc: subprocess.Popen | None = None
        self.url = ""
        self._stderr: deque[str] = deque(maxlen=40)
        self._drain: threading.Thread | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc is not None else None

    def start(self) -> "MarketplaceProcess":
        key = ensure_key(self.db_path)  # before the child: the crowds here need it too
        command = [sys.executable, "-m", "annotate.marketplace.process", "--db", self.db_path, "--mode", self.mode]
        if self.faults is not None:
            command += ["--faults", self.faults]
        self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                     process_group=0)
        try:
            # The child's stderr is read all along: a full pipe would stall it.
            self._drain = threading.Thread(target=self._read_stderr, name="marketplace-stderr", daemon=True)
            self._drain.start()
            line = self._first_line()
            if not line.startswith("http://"):
                self.proc.wait(timeout=STOP_SECONDS)
                self._drain.join(timeout=STOP_SECONDS)
                last = "\n".join(self._stderr).strip() or f"exit code {self.proc.returncode}"
                raise MarketplaceError(f"the marketplace process did not start: {last}")
            self.url = line
            publish(urlsplit(self.url).netloc, key)
        except BaseException:
            self.stop()
            raise
        return self

    def _first_line(self) -> str:
        """The child's URL line, or "" when it exits (or says nothing) first."""
        assert self.proc is not None and self.proc.stdout is not None
        got: list[str] = []
        reader = threading.Thread(target=lambda: got.append(self.proc.stdout.readline().decode().strip()),
                                  name="marketplace-url", daemon=True)
        reader.start()
        reader.join(STARTUP_SECONDS)
        return got[0] if got else ""

    def _read_stderr(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            self._stderr.append(raw.decode("utf-8", "replace").rstrip())

    def stop(self) -> None:
        """Close the child's stdin and wait; then SIGTERM, then SIGKILL, by its pid."""
        proc = self.proc
        if proc is None:
            return
        if self.url:
            withdraw(urlsplit(self.url).netloc)
        try:
            if proc.stdin is not None:
                proc.stdin.close()
        except OSError:
            pass  # the child is gone already: its end of the pipe is closed
        for sig in (None, signal.SIGTERM, signal.SIGKILL):
            if sig is not None and proc.poll() is None:
                os.kill(proc.pid, sig)
            try:
                proc.wait(timeout=STOP_SECONDS)
                break
            except subprocess.TimeoutExpired:
                continue
        if proc.stdout is not None:
            proc.stdout.close()
        if self._drain is not None:
            self._drain.join(timeout=STOP_SECONDS)
        if proc.stderr is not None:
            proc.stderr.close()
        self.proc = None

    def __enter__(self) -> "MarketplaceProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m annotate.marketplace.process",
                                 description="The marketplace until standard input closes (see the module notes).")
    ap.add_argument("--db", required=True)
    ap.add_argument("--mode", default="production", choices=["sandbox", "production"])
    ap.add_argument("--faults", default=None)
    args = ap.parse_args(argv)
    # Ctrl-C belongs to the parent (this process is in a process group of its own); SIGTERM stops it.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    from annotate.marketplace import MarketplaceServer

    server = MarketplaceServer(args.db, faults=args.faults, mode=args.mode).start()
    try:
        print(server.url, flush=True)
        # The parent reads one line of stdout and no more: anything printed later goes to stderr,
        # which it drains, so a full pipe can never stall the marketplace.
        os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
        sys.stdin.buffer.read()  # until the parent closes it, or dies
    finally:
        server.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
