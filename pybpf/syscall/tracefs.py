"""tracefs: tracepoint ids, and trace_pipe for bpf_printk() output.

tracefs lives at /sys/kernel/tracing (older systems: /sys/kernel/debug/tracing).
When it is not mounted, pybpf mounts it at /sys/kernel/tracing and unmounts it
again at exit -- only a mount it made itself.

``events/<category>/<name>/id`` gives the PERF_TYPE_TRACEPOINT config for a
tracepoint; ``trace_pipe`` streams the global trace buffer, where
bpf_trace_printk() writes lines like

    python3-1234    [001] ..... 5.678901: bpf_trace_printk: hello 42
"""

from __future__ import annotations

import errno
import os
import re
import select

from pybpf._record import record
from pybpf.errors import PyBPFError
from pybpf.sandbox import cleanup
from pybpf.syscall._ffi import ffi as _ffi
from pybpf.syscall._ffi import libc as _libc

__all__ = ["TracePipe", "TraceLine", "tracefs_root", "tracepoint_id"]

DEFAULT_MOUNT = "/sys/kernel/tracing"
_mounted_here: str | None = None


def _mounts() -> list[tuple[str, str]]:
    with open("/proc/self/mounts") as f:
        return [(p[1], p[2]) for p in (line.split() for line in f)]


def tracefs_root(mount: bool = True) -> str:
    """Where tracefs is mounted; mounts it at /sys/kernel/tracing if needed (and allowed)."""
    global _mounted_here
    for point, fstype in _mounts():
        if fstype == "tracefs":
            return point
    if not mount:
        raise PyBPFError("tracefs is not mounted (mount -t tracefs tracefs /sys/kernel/tracing)")
    if _libc.mount(b"tracefs", DEFAULT_MOUNT.encode(), b"tracefs", 0, _ffi.NULL) != 0:
        err = _ffi.errno
        raise PyBPFError(f"cannot mount tracefs at {DEFAULT_MOUNT}: {os.strerror(err)} "
                         "(needs root)")
    _mounted_here = DEFAULT_MOUNT
    cleanup.register(f"tracefs mount at {DEFAULT_MOUNT}", _unmount)
    return DEFAULT_MOUNT


def _unmount() -> None:
    global _mounted_here
    if _mounted_here and _libc.umount2(_mounted_here.encode(), 0) != 0:
        err = _ffi.errno
        if err != errno.EINVAL:  # EINVAL: not mounted any more
            raise OSError(err, f"umount {_mounted_here}: {os.strerror(err)}")
    _mounted_here = None


def tracepoint_id(category: str, name: str) -> int:
    """The id of tracepoint ``category:name`` (events/<category>/<name>/id)."""
    for part in (category, name):
        if not part or "/" in part or part.startswith("."):
            raise PyBPFError(f"invalid tracepoint name {category}:{name}")
    path = os.path.join(tracefs_root(), "events", category, name, "id")
    try:
        with open(path) as f:
            return int(f.read())
    except FileNotFoundError:
        raise PyBPFError(f"no tracepoint {category}:{name} in this kernel (see "
                         f"{os.path.dirname(os.path.dirname(path))})") from None


@record(slots=False)
class TraceLine:
    """One parsed trace_pipe line."""

    task: str
    pid: int
    cpu: int
    timestamp: float
    function: str
    message: str


_LINE = re.compile(r"^\s*(?P<task>.+?)-(?P<pid>\d+)\s+\[(?P<cpu>\d+)\]\s+\S*\s*"
                   r"(?P<ts>\d+\.\d+):\s+(?P<func>[^:]+):\s?(?P<msg>.*)$")


def parse_line(line: str) -> TraceLine | None:
    """Parse one trace_pipe line (None for lines that do not look like events)."""
    m = _LINE.match(line)
    if not m:
        return None
    return TraceLine(m["task"], int(m["pid"]), int(m["cpu"]), float(m["ts"]), m["func"],
                     m["msg"])


class TracePipe:
    """Reader of trace_pipe (consuming: each line is read once, by one reader)."""

    def __init__(self) -> None:
        self.fd = os.open(os.path.join(tracefs_root(), "trace_pipe"),
                          os.O_RDONLY | os.O_NONBLOCK)
        self._partial = b""

    def read(self, timeout: float = 1.0) -> list[TraceLine]:
        """Lines that arrive within ``timeout`` seconds (returns after the first batch)."""
        ready, _, _ = select.select([self.fd], [], [], timeout)
        if not ready:
            return []
        try:
            chunk = os.read(self.fd, 1 << 16)
        except BlockingIOError:
            return []
        data = self._partial + chunk
        *lines, self._partial = data.split(b"\n")
        out = [parse_line(x.decode(errors="replace")) for x in lines]
        return [x for x in out if x is not None]

    def messages(self, timeout: float = 1.0) -> list[str]:
        """Just the bpf_trace_printk() messages of read()."""
        return [x.message for x in self.read(timeout) if "bpf_trace_printk" in x.function]

    def close(self) -> None:
        """Close the pipe (idempotent)."""
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()
