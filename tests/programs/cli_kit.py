"""Running `pybpf run NAME ...` in a subprocess for tests of the tools' real-system mode.

The tools print one line ending in "Ctrl-C to stop" once attached, then their
events or counters, flushed as they happen; SIGINT must detach and exit 0.
"""

from __future__ import annotations

import os
import select
import signal
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def start(argv: list[str], ns=None, timeout: float = 10.0) -> subprocess.Popen:
    """Start `pybpf run ...` (inside network namespace ``ns`` if given); return once attached."""
    cmd = [sys.executable, "-u", "-m", "pybpf.cli", "run", *argv]
    launch = ns.popen if ns is not None else subprocess.Popen
    proc = launch(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=ROOT, bufsize=0)
    proc.pending = b""
    first = line(proc, timeout)
    if "Ctrl-C" not in first:
        proc.kill()
        out, err = proc.communicate(timeout=10)
        raise AssertionError(f"`pybpf run` did not start: {first}{out!r}{err.decode()}")
    return proc


def refused(argv: list[str]) -> str:
    """`pybpf run ...` must refuse ``argv`` before attaching anything: exit status not 0, a
    message and no traceback on stderr; returns stderr."""
    out = subprocess.run([sys.executable, "-m", "pybpf.cli", "run", *argv],
                         capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert out.returncode != 0, out.stderr
    assert "Traceback" not in out.stderr, out.stderr
    return out.stderr


def line(proc: subprocess.Popen, timeout: float = 5.0) -> str:
    """The next line the tool prints ("" if none within ``timeout`` s).

    Reads the pipe with os.read: a buffered reader would swallow later lines
    into its buffer, where select() cannot see them.
    """
    fd = proc.stdout.fileno()
    deadline = time.monotonic() + timeout
    while b"\n" not in proc.pending:
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([fd], [], [], left)[0]:
            return ""
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        proc.pending += chunk
    text, _, proc.pending = proc.pending.partition(b"\n")
    return text.decode() + "\n"


def interrupt(proc: subprocess.Popen) -> str:
    """Ctrl-C: the tool must detach and exit with status 0; returns the rest of its output."""
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0, err.decode()
    return (proc.pending + out).decode()
