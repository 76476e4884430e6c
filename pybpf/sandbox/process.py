"""Run a Python function in a forked child that first moves itself somewhere (a netns, a cgroup).

The child calls ``enter()`` (setns, or a write to cgroup.procs), then the
function, and pickles the outcome through a pipe.  An exception raised in the
child is raised again in the parent, with the child's traceback attached as a
note; a result that cannot be pickled becomes a ChildError.  The child leaves
with os._exit(), so it never runs the parent's atexit or cleanup handlers.
"""

from __future__ import annotations

import os
import pickle
import select
import signal
import time
import traceback
from collections.abc import Callable
from typing import Any

__all__ = ["ChildError", "run_in_child"]


class ChildError(RuntimeError):
    """The child died, timed out or produced something that could not be sent back."""


def run_in_child(enter: Callable[[], None], func: Callable[..., Any], args: tuple = (),
                 kwargs: dict | None = None, timeout: float | None = 30.0) -> Any:
    """fork(); in the child run enter() then func(*args, **kwargs); return or raise its outcome."""
    kwargs = kwargs or {}
    rfd, wfd = os.pipe()
    pid = os.fork()
    if pid == 0:
        _child(rfd, wfd, enter, func, args, kwargs)  # never returns
    os.close(wfd)
    data = None
    try:
        data = _read_all(rfd, timeout)
    finally:
        os.close(rfd)
        if data is None:  # timed out, or interrupted: do not leave the child behind
            os.kill(pid, signal.SIGKILL)
        status = os.waitpid(pid, 0)[1]
    if data is None:
        raise ChildError(f"child {pid} did not finish within {timeout} s (killed)")
    if not data:
        raise ChildError(f"child {pid} exited without a result (wait status {status})")
    ok, value = pickle.loads(data)
    if ok:
        return value
    exc, text = value
    if isinstance(exc, BaseException):
        exc.add_note(f"raised in child process {pid}:\n{text}")
        raise exc
    raise ChildError(text)


def _child(rfd: int, wfd: int, enter, func, args, kwargs) -> None:
    status = 0
    try:
        os.close(rfd)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        try:
            enter()
            payload = (True, func(*args, **kwargs))
        except BaseException as e:  # noqa: BLE001 - everything goes back to the parent
            payload = (False, (e, traceback.format_exc()))
        try:
            data = pickle.dumps(payload)
        except Exception as e:  # noqa: BLE001
            data = pickle.dumps((False, (None, f"outcome could not be pickled: {e!r}")))
        view = memoryview(data)
        while view:
            view = view[os.write(wfd, view):]
    except BaseException:  # noqa: BLE001
        status = 1
    finally:
        os._exit(status)


def _read_all(fd: int, timeout: float | None) -> bytes | None:
    """Read until EOF; None when the deadline passes first."""
    deadline = None if timeout is None else time.monotonic() + timeout
    chunks = []
    while True:
        wait = None if deadline is None else max(0.0, deadline - time.monotonic())
        ready, _, _ = select.select([fd], [], [], wait)
        if not ready:
            return None
        chunk = os.read(fd, 1 << 16)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
