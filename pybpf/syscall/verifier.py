"""Verifier and BTF logs: growing the buffer, reading the failing instruction and statistics.

The kernel writes its log into a user buffer (``log_buf``/``log_size``; for
BTF_LOAD the ``btf_log_*`` fields).  When the buffer is too small the load
fails with ENOSPC; since 6.4 the kernel also reports the size it needed in
``log_true_size``.  Like libbpf and cilium/ebpf we load without a log first
(fast), and on failure load again with a log, growing the buffer until the
whole log fits.
"""

from __future__ import annotations

import errno

from pybpf._record import record
from pybpf.errors import BPFError
from pybpf.syscall._ffi import address, ffi
from pybpf.syscall.bpf import ENOTSUPP, bpf

#: Largest log the kernel accepts (kernel/bpf/log.c: len_total > UINT_MAX >> 2 is EINVAL).
MAX_LOG_SIZE = 0xFFFFFFFF >> 2
#: First buffer tried; grown to log_true_size (6.4+) or doubled on ENOSPC.
INITIAL_LOG_SIZE = 64 * 1024

LOG_LEVEL_BRANCH = 1  # BPF_LOG_LEVEL1: the instructions the verifier walked on error
LOG_LEVEL_VERBOSE = 2  # BPF_LOG_LEVEL2: every state
LOG_LEVEL_STATS = 4  # BPF_LOG_STATS: the "processed N insns" summary


@record(slots=False)
class LogFields:
    """Names of the log attributes of one command inside ``union bpf_attr``."""

    level: str
    size: str
    buf: str
    true_size: str


PROG_LOG = LogFields("log_level", "log_size", "log_buf", "log_true_size")
BTF_LOG = LogFields("btf_log_level", "btf_log_size", "btf_log_buf", "btf_log_true_size")


@record(slots=False)
class VerifierStats:
    """The verifier's BPF_LOG_STATS line: work done while proving the program safe."""

    processed_insns: int
    insn_limit: int
    max_states_per_insn: int
    total_states: int
    peak_states: int
    mark_read: int
    verification_time_us: int | None = None
    stack_depth: tuple[int, ...] = ()


# The log patterns are strings compiled (and cached) by re when a log is first parsed:
# a load that succeeds never reads one.
_STATS = (
    r"processed (\d+) insns \(limit (\d+)\) max_states_per_insn (\d+) total_states (\d+) "
    r"peak_states (\d+) mark_read (\d+)"
)


def parse_stats(log: str) -> VerifierStats | None:
    """The statistics in a log, or None when the log has none."""
    import re  # here, not at the top: a load that reads no log never pays its ~2 ms import
    m = re.search(_STATS, log)
    if not m:
        return None
    t = re.search(r"verification time (\d+) usec", log)
    d = re.search(r"stack depth ([\d+]+)", log)
    return VerifierStats(
        *map(int, m.groups()),
        verification_time_us=int(t.group(1)) if t else None,
        stack_depth=tuple(int(x) for x in d.group(1).split("+") if x) if d else (),
    )


def load_with_log(cmd, attr, fields: LogFields, *, log_level: int = 0,
                  log_size: int = INITIAL_LOG_SIZE) -> tuple[int, str]:
    """Run a loading command, returning ``(fd, log)``.

    With ``log_level`` 0 the first attempt has no log; if it fails the command
    is repeated with level 1 to capture the reason.  The buffer grows until the
    log is complete; on final failure the BPFError carries ``.log``.
    """
    if log_level == 0:
        try:
            return bpf(cmd, attr), ""
        except BPFError as e:
            if e.errno not in (errno.EACCES, errno.EINVAL, errno.E2BIG, errno.ENOSPC,
                               errno.EFAULT, errno.ENOENT, ENOTSUPP):
                raise
        log_level = LOG_LEVEL_BRANCH
    size = max(256, min(log_size, MAX_LOG_SIZE))
    while True:
        buf = ffi.new("char[]", size)
        setattr(attr, fields.level, log_level)
        setattr(attr, fields.size, size)
        setattr(attr, fields.buf, address(buf))
        setattr(attr, fields.true_size, 0)
        try:
            fd = bpf(cmd, attr)
        except BPFError as e:
            needed = getattr(attr, fields.true_size)
            if e.errno == errno.ENOSPC and size < MAX_LOG_SIZE:
                size = min(MAX_LOG_SIZE, needed if needed > size else size * 4)
                continue
            e.log = ffi.string(buf).decode(errors="replace")
            raise
        finally:
            setattr(attr, fields.buf, 0)
            setattr(attr, fields.size, 0)
            setattr(attr, fields.level, 0)
        return fd, ffi.string(buf).decode(errors="replace")


_INSN_LINE = r"^(\d+): \(([0-9a-f]{2})\) (.*?)(?:\s+;.*)?$"
_SOURCE_LINE = r"^; (.*?) @ (\S+:\d+)$"
_TRAILER = (
    r"^(processed \d+ insns|verification time|stack depth|max_states_per_insn|"
    r"-- END PROG LOAD LOG --)"
)


@record(slots=False)
class Failure:
    """What a verifier log says about a rejected program."""

    summary: str
    insn_index: int | None
    insn_text: str | None  # the verifier's own rendering, e.g. "(85) call bpf_foo#99"
    source: str | None  # "file:line: text" from BTF line info echoed in the log


def parse_failure(log: str) -> Failure:
    """Find the error message, the failing instruction and the source line in a log."""
    import re  # as in parse_stats: only a failed load reads its log
    lines = [ln.rstrip() for ln in log.splitlines() if ln.strip()]
    while lines and re.match(_TRAILER, lines[-1]):
        lines.pop()
    summary = lines[-1] if lines else "no verifier log"
    index = insn_text = source = None
    for pos in range(len(lines) - 1, -1, -1):
        m = re.match(_INSN_LINE, lines[pos])
        if m:
            index, insn_text = int(m.group(1)), f"({m.group(2)}) {m.group(3)}"
            for back in range(pos - 1, -1, -1):
                s = re.match(_SOURCE_LINE, lines[back])
                if s:
                    source = f"{s.group(2)}: {s.group(1).strip()}"
                    break
            break
    explicit = re.search(r"\binsn (\d+)\b", summary)
    if explicit and index is None:
        index = int(explicit.group(1))
    return Failure(summary, index, insn_text, source)
