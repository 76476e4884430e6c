"""Throwaway cgroup v2 directories, and processes run inside them.

A ``Cgroup`` is a directory ``pybpf-<pid>-<n>`` made under the cgroup v2
hierarchy (``/sys/fs/cgroup/unified`` on hybrid systems, else
``/sys/fs/cgroup``) or under another Cgroup.  cgroup BPF programs
(BPF_CGROUP_INET4_CONNECT, BPF_CGROUP_INET_INGRESS, BPF_CGROUP_SOCK_OPS, ...)
attach to its directory fd (``Cgroup.fd``) and see only the sockets of tasks
in it -- more exactly, sockets *created* by tasks while they were in it, since
a socket records its cgroup at creation.

Removal kills what still runs inside (cgroup.kill, 5.14+, else SIGKILL to
each pid in cgroup.procs), waits for the group to empty and rmdirs it; the
kernel then releases the BPF programs attached to it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator
from typing import Any

from pybpf.sandbox import cleanup
from pybpf.sandbox.process import run_in_child

__all__ = ["Cgroup", "cgroup2_root"]

_counter = itertools.count()


def cgroup2_root() -> str:
    """Mount point of the cgroup v2 hierarchy (FileNotFoundError when none is mounted)."""
    with open("/proc/self/mounts") as f:
        mounts = [line.split() for line in f]
    found = [m[1] for m in mounts if m[2] == "cgroup2"]
    if not found:
        raise FileNotFoundError(
            "no cgroup2 file system mounted (mount -t cgroup2 none /sys/fs/cgroup)")
    for preferred in ("/sys/fs/cgroup/unified", "/sys/fs/cgroup"):
        if preferred in found:
            return preferred
    return found[0]


def _own_cgroup2_path() -> str:
    """This process's cgroup v2 path relative to the root ("/" or "/a/b")."""
    with open("/proc/self/cgroup") as f:
        for line in f:
            if line.startswith("0::"):
                return line[3:].strip()
    raise FileNotFoundError("this process is not in any cgroup v2 group")


class Cgroup(cleanup.Owned):
    """A cgroup v2 directory this process created and will remove."""

    def __init__(self, parent: Cgroup | str | None = None, name: str | None = None):
        base = parent.path if isinstance(parent, Cgroup) else (parent or cgroup2_root())
        self.name = name or f"pybpf-{os.getpid()}-{next(_counter)}"
        self.path = os.path.join(base, self.name)
        os.mkdir(self.path)  # FileExistsError: never take over someone else's group
        self._own(f"cgroup {self.path}")
        self._fd: int | None = None

    @property
    def fd(self) -> int:
        """An O_RDONLY fd of the directory: the target_fd of cgroup attachments."""
        if self._fd is None:
            self._fd = os.open(self.path, os.O_RDONLY | os.O_DIRECTORY)
        return self._fd

    @property
    def id(self) -> int:
        """cgroup id (the directory inode on cgroup v2), as bpf_get_current_cgroup_id() returns."""
        return os.stat(self.path).st_ino

    def pids(self) -> list[int]:
        """Processes currently in this group (cgroup.procs)."""
        with open(os.path.join(self.path, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]

    def add(self, pid: int) -> None:
        """Move a process (0: the caller) into this group."""
        with open(os.path.join(self.path, "cgroup.procs"), "w") as f:
            f.write(str(pid))

    @contextlib.contextmanager
    def entered(self) -> Iterator[Cgroup]:
        """Run the body with this whole process inside the group, then move it back."""
        home = cgroup2_root() + _own_cgroup2_path()
        try:  # add inside try: a signal right after joining must still move us back
            self.add(os.getpid())
            yield self
        finally:
            with open(os.path.join(home, "cgroup.procs"), "w") as f:
                f.write(str(os.getpid()))

    def run(self, func: Callable[..., Any], *args: Any, timeout: float | None = 30.0,
            **kwargs: Any) -> Any:
        """Call ``func(*args, **kwargs)`` in a forked child inside the group; return its result."""
        return run_in_child(lambda: self.add(0), func, args, kwargs, timeout)

    def popen(self, argv: list[str], **kwargs: Any) -> subprocess.Popen:
        """Start a command inside the group (arguments as for subprocess.Popen)."""
        procs = os.path.join(self.path, "cgroup.procs")

        def enter() -> None:
            with open(procs, "w") as f:
                f.write("0")

        return subprocess.Popen(argv, preexec_fn=enter, **kwargs)

    def child(self, name: str | None = None) -> Cgroup:
        """A nested group (removed before this one, being newer)."""
        return Cgroup(self, name)

    def _remove(self) -> None:
        """Kill what runs inside and remove the directory."""
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
        if not os.path.isdir(self.path):
            return
        for sub in sorted(os.scandir(self.path), key=lambda e: e.name):
            if sub.is_dir():  # nested groups made without Cgroup(): still ours
                _rmtree_cgroup(sub.path)
        _rmtree_cgroup(self.path)

    def __repr__(self) -> str:
        return f"Cgroup({self.path!r})"


def _rmtree_cgroup(path: str) -> None:
    for sub in os.scandir(path):
        if sub.is_dir():
            _rmtree_cgroup(sub.path)
    procs_file = os.path.join(path, "cgroup.procs")
    me = os.getpid()
    with open(procs_file) as f:
        if str(me) in f.read().split():
            raise RuntimeError(f"this process is still in {path}; leave Cgroup.entered() first")
    deadline = time.monotonic() + 5
    while True:
        with open(procs_file) as f:
            pids = [int(x) for x in f.read().split()]
        if not pids:
            break
        if time.monotonic() > deadline:
            raise TimeoutError(f"processes {pids} do not leave {path}")
        if os.path.exists(os.path.join(path, "cgroup.kill")):
            with open(os.path.join(path, "cgroup.kill"), "w") as f:
                f.write("1")
        else:
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        time.sleep(0.01)
    # a killed task can linger as a zombie member for a moment: retry EBUSY
    while True:
        try:
            os.rmdir(path)
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
