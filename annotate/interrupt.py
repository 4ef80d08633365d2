"""Stop a long-running command on SIGINT or SIGTERM, whatever its parent set up.

A script's background job (`annotate marketplace serve &`, `nohup scripts/test &`) starts with
SIGINT ignored, and Python then installs no KeyboardInterrupt handler: Ctrl-C or `kill -INT` would
do nothing. `kill` (SIGTERM) would end the process without its cleanup. Inside `stop_on_signals()`
both raise KeyboardInterrupt once, so the command's own `except KeyboardInterrupt` stops it; a
second signal while it stops is ignored rather than breaking the cleanup half-way.
"""

from __future__ import annotations

import signal
import threading
from contextlib import contextmanager
from typing import Iterator

SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def stop_on_signals() -> Iterator[None]:
    if threading.current_thread() is not threading.main_thread():  # only the main thread may set handlers
        yield
        return
    stopping = threading.Event()

    def interrupt(signum, frame) -> None:
        if stopping.is_set():
            return
        stopping.set()
        raise KeyboardInterrupt(signal.Signals(signum).name)

    previous = {sig: signal.signal(sig, interrupt) for sig in SIGNALS}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler if handler is not None else signal.SIG_DFL)
