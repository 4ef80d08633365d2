"""Processes the tests start: free ports, stopping by pid with escalation, and the leak check that
runs once after the whole suite (tests/conftest.py calls it from pytest_sessionfinish).

Linux's /proc is the source of truth: a leak is a live (not zombie) descendant of the pytest
process, or any process still listening on a port that a test asked `free_port()` for.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

_ports: set[int] = set()  # every port handed out by free_port() in this session


def free_port() -> int:
    """A free TCP port on 127.0.0.1, remembered so the end-of-suite check can see who still holds it."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    _ports.add(port)
    return port


def stop(proc: subprocess.Popen, first: int = signal.SIGINT, timeout: float = 15.0) -> int:
    """Stop a process the test started, by its pid: `first`, then SIGTERM, then SIGKILL, each
    after `timeout` seconds without an exit. Returns its exit code (negative: the signal that ended it)."""
    for sig in (first, signal.SIGTERM, signal.SIGKILL):
        if proc.poll() is not None:
            break
        try:
            proc.send_signal(sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=timeout if sig != signal.SIGKILL else 30)
            break
        except subprocess.TimeoutExpired:
            continue
    return proc.wait()


def _stat(pid: int) -> tuple[int, str] | None:
    """(parent pid, state letter) of a process, or None if it is gone."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = text[text.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    return int(fields[1]), fields[0]


def _pids() -> list[int]:
    return [int(name) for name in os.listdir("/proc") if name.isdigit()]


def descendants(root: int) -> list[int]:
    """Live processes under `root` (children, their children, ...), zombies left out."""
    children: dict[int, list[int]] = {}
    states: dict[int, str] = {}
    for pid in _pids():
        got = _stat(pid)
        if got is not None:
            children.setdefault(got[0], []).append(pid)
            states[pid] = got[1]
    found, todo = [], list(children.get(root, []))
    while todo:
        pid = todo.pop()
        if states.get(pid) != "Z":
            found.append(pid)
        todo += children.get(pid, [])
    return sorted(found)


def _listening_inodes(ports: set[int]) -> dict[str, int]:
    """socket inode -> port, for TCP sockets listening on one of `ports`."""
    found: dict[str, int] = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            port = int(fields[1].rsplit(":", 1)[1], 16)
            if fields[3] == "0A" and port in ports:  # 0A: LISTEN
                found[fields[9]] = port
    return found


def listeners(ports: set[int]) -> dict[int, int]:
    """pid -> port, for the processes (of ours; others' fds are unreadable) listening on `ports`."""
    inodes = _listening_inodes(ports)
    found: dict[int, int] = {}
    if not inodes:
        return found
    for pid in _pids():
        try:
            fds = os.listdir(f"/proc/{pid}/fd")
        except OSError:
            continue
        for fd in fds:
            try:
                target = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if target.startswith("socket:[") and target[8:-1] in inodes:
                found[pid] = inodes[target[8:-1]]
    return found


def describe(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode("utf-8", "replace").strip()
    except OSError:
        return "?"


def leaked(root: int | None = None) -> dict[int, str]:
    """pid -> why, for every process the suite left behind: descendants of `root` (default: this
    process), and processes other than this one listening on a port from free_port()."""
    root = os.getpid() if root is None else root
    found = {pid: f"a child of the test run: {describe(pid)}" for pid in descendants(root)}
    for pid, port in listeners(_ports).items():
        if pid != root:
            found.setdefault(pid, f"listening on port {port}: {describe(pid)}")
    return found


def kill(pids: list[int], grace: float = 5.0) -> None:
    """SIGTERM, then SIGKILL what is still alive after `grace` seconds; by pid, one at a time."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
    deadline = time.monotonic() + grace
    alive = list(pids)
    while alive and time.monotonic() < deadline:
        alive = [pid for pid in alive if _stat(pid) is not None and _stat(pid)[1] != "Z"]
        time.sleep(0.05)
    for pid in alive:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def pytest_sessionfinish(session, exitstatus) -> None:
    """Fail the run if any process the suite started is still alive; kill those by pid."""
    import pytest

    found = leaked()
    if not found:
        return
    kill(sorted(found))
    lines = [f"  pid {pid}: {why}" for pid, why in sorted(found.items())]
    message = "processes left behind by the tests (now killed):\n" + "\n".join(lines)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(message, red=True, bold=True)
    else:
        print(message)
    session.exitstatus = pytest.ExitCode.TESTS_FAILED
