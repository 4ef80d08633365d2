"""The end-of-suite check (tests/processes.py): a run that leaves a process behind fails, names it,
and kills it; a clean run passes. Checked on a small inner pytest run with the same hook."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from processes import _stat, descendants, free_port, stop

TESTS = Path(__file__).resolve().parent

LEAKY = '''
import subprocess, sys, textwrap
from processes import free_port

def test_forgets_a_child():
    # a child of the test run, never stopped
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    open("child.pid", "w").write(str(proc.pid))

def test_forgets_a_detached_server():
    # a grandchild whose parent exited: no longer a descendant, but it holds a port the test asked for
    port = free_port()
    code = textwrap.dedent(f"""
        import os, socket, sys, time
        s = socket.socket(); s.bind(("127.0.0.1", {port})); s.listen()
        open("server.pid", "w").write(str(os.getpid()))
        time.sleep(300)
    """)
    subprocess.run(["sh", "-c", f"{sys.executable} -c '{code}' </dev/null >/dev/null 2>&1 &"], check=True)
    import os, time
    for _ in range(200):
        if os.path.exists("server.pid"):
            break
        time.sleep(0.05)
'''

CLEAN = '''
import subprocess, sys
from processes import stop

def test_stops_what_it_starts():
    proc = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
    assert stop(proc, timeout=5) != 0
'''


def inner_run(tmp_path: Path, source: str) -> subprocess.CompletedProcess:
    (tmp_path / "conftest.py").write_text("from processes import pytest_sessionfinish  # noqa: F401\n")
    (tmp_path / "test_inner.py").write_text(source)
    env = {**os.environ, "PYTHONPATH": str(TESTS) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    return subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
                           "--rootdir", str(tmp_path), str(tmp_path / "test_inner.py")],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)


def alive(pid: int) -> bool:
    got = _stat(pid)
    return got is not None and got[1] != "Z"


def test_a_leaking_run_fails_and_its_leaks_are_killed(tmp_path):
    result = inner_run(tmp_path, LEAKY)
    out = result.stdout + result.stderr
    assert result.returncode == 1, out
    assert "2 passed" in out and "processes left behind by the tests (now killed)" in out, out
    child, server = int((tmp_path / "child.pid").read_text()), int((tmp_path / "server.pid").read_text())
    assert f"pid {child}: a child of the test run" in out and f"pid {server}: listening on port" in out, out
    deadline = time.monotonic() + 10
    while (alive(child) or alive(server)) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not alive(child) and not alive(server)


def test_a_clean_run_passes(tmp_path):
    result = inner_run(tmp_path, CLEAN)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "left behind" not in result.stdout


def test_stop_escalates_to_sigkill(tmp_path):
    """A process that ignores SIGINT and SIGTERM still ends, by pid, within the timeouts."""
    proc = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import signal, sys, time
        signal.signal(signal.SIGINT, signal.SIG_IGN); signal.signal(signal.SIGTERM, signal.SIG_IGN)
        print("ready", flush=True)
        time.sleep(300)
    """)], stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready"
    started = time.monotonic()
    assert stop(proc, timeout=0.5) == -9
    assert time.monotonic() - started < 5 and proc.pid not in descendants(os.getpid())
    proc.stdout.close()


def test_free_ports_are_remembered():
    from processes import _ports

    assert free_port() in _ports
