"""Guaranteed removal of host resources: at exit, on exceptions, on SIGINT/SIGTERM.

Everything pybpf creates outside its own process and that the kernel would not
reclaim when the process dies -- named network namespaces (bind mounts under
/run/netns), cgroup directories, netlink attachments (an XDP program set with
IFLA_XDP, a clsact qdisc and its cls_bpf filters) -- registers an undo action
here.  bpf_link attachments need no entry: the kernel detaches them when the
last file descriptor of the link is closed, which process exit does.

Undo actions run last-in first-out, once each, and only in the process that
registered them: a child made by fork() inherits the list and the signal
handlers but never runs them.  This module knows nothing of BPF; both the
sandbox and the legacy attach paths of pybpf.syscall build on it.
"""

from __future__ import annotations

import atexit
import itertools
import os
import signal
import sys
import threading
from collections.abc import Callable

__all__ = ["Owned", "register", "unregister", "run_all", "pending"]

_lock = threading.RLock()
_actions: dict[int, tuple[str, Callable[[], None]]] = {}
_ids = itertools.count(1)
_owner_pid: int | None = None
_installed = False
_previous: dict[int, object] = {}


def register(description: str, undo: Callable[[], None]) -> int:
    """Remember ``undo`` (run at exit or on SIGINT/SIGTERM); returns a token for unregister()."""
    global _owner_pid
    with _lock:
        if _owner_pid != os.getpid():
            # first use in this process (or in a forked child): start afresh
            _actions.clear()
            _owner_pid = os.getpid()
        _install()
        token = next(_ids)
        _actions[token] = (description, undo)
        return token


def unregister(token: int) -> None:
    """Forget an undo action because its owner already released the resource."""
    with _lock:
        _actions.pop(token, None)


class Owned:
    """A host resource this process made: registered here as it is made (``_own``), removed
    by ``close()`` (once; later calls do nothing) or at the end of a ``with`` block.
    Subclasses say how in ``_remove``."""

    def _own(self, description: str) -> None:
        self._token = register(description, self._remove)
        self._closed = False

    def _remove(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Remove the resource now (idempotent)."""
        if self._closed:
            return
        self._closed = True
        try:
            self._remove()
        finally:
            unregister(self._token)

    def __enter__(self):
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def pending() -> list[str]:
    """Descriptions of the resources that would be removed now, newest first."""
    with _lock:
        if _owner_pid != os.getpid():
            return []
        return [desc for _, (desc, _) in sorted(_actions.items(), reverse=True)]


def run_all() -> list[tuple[str, BaseException]]:
    """Run every pending undo action, newest first; returns the failures (never raises)."""
    failures: list[tuple[str, BaseException]] = []
    with _lock:
        if _owner_pid != os.getpid():
            return failures
        while _actions:
            token = max(_actions)
            desc, undo = _actions.pop(token)
            try:
                undo()
            except BaseException as e:  # noqa: BLE001 - cleanup must go on
                failures.append((desc, e))
    for desc, e in failures:
        print(f"pybpf: could not remove {desc}: {e}", file=sys.stderr)
    return failures


def _on_signal(signum, frame):
    run_all()
    previous = _previous.get(signum, signal.SIG_DFL)
    if callable(previous):
        # Python's default SIGINT handler raises KeyboardInterrupt: keep that behaviour
        previous(signum, frame)
        return
    # SIG_DFL: die of the same signal so the parent sees the usual status
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


def _install() -> None:
    """Install the atexit hook and the SIGINT/SIGTERM handlers (once, main thread only)."""
    global _installed
    if _installed:
        return
    _installed = True
    atexit.register(run_all)
    if threading.current_thread() is not threading.main_thread():
        return
    for signum in (signal.SIGINT, signal.SIGTERM):
        current = signal.getsignal(signum)
        # Leave ignored signals and handlers the application installed alone
        if current in (signal.SIG_DFL, signal.default_int_handler):
            _previous[signum] = current
            signal.signal(signum, _on_signal)
