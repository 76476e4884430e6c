"""BPF_PROG_ATTACH / BPF_PROG_DETACH: the pre-link way to put a program on a cgroup or map.

The attachment lives in the target (a cgroup, a sockmap) and survives this
process, so ``ProgAttachment`` registers with pybpf.sandbox.cleanup and is
undone on detach(), at exit and on SIGINT/SIGTERM, unless keep() is called.
"""

from __future__ import annotations

import errno
import os
from typing import Any

from pybpf.errors import BPFError
from pybpf.sandbox import cleanup
from pybpf.syscall._uapi import BPF_F_ALLOW_MULTI, BPF_F_REPLACE, AttachType, Cmd
from pybpf.syscall.bpf import bpf, new_attr
from pybpf.syscall.links import Attachment, LinkInfo, hook_error, prog_fd

__all__ = ["ProgAttachment"]


class ProgAttachment(Attachment):
    """A program attached with BPF_PROG_ATTACH to ``target_fd`` (a dup is kept for detach)."""

    mechanism = "prog_attach"

    def __init__(self, prog: Any, target_fd: int, attach_type: AttachType, hook: str, *,
                 flags: int = 0, replace: Any = None, needs: tuple[int, int] | None = None,
                 target: dict | None = None):
        super().__init__(hook, prog)
        self.attach_type = attach_type
        self.flags = flags
        self._target = dict(target or {})
        self._fd = os.dup(target_fd)
        try:
            self._attach(prog, flags, replace, needs)
        except BaseException:
            os.close(self._fd)
            self._detached = True
            raise
        self._token = cleanup.register(f"{hook} (BPF_PROG_ATTACH)", self.detach)

    def _attach(self, prog: Any, flags: int, replace: Any, needs) -> None:
        attr = new_attr()
        attr.target_fd = self._fd
        attr.attach_bpf_fd = prog_fd(prog)
        attr.attach_type = self.attach_type
        attr.attach_flags = flags
        if replace is not None:
            attr.attach_flags = flags | BPF_F_REPLACE
            attr.replace_bpf_fd = prog_fd(replace)
        try:
            bpf(Cmd.PROG_ATTACH, attr)
        except BPFError as e:
            raise hook_error(e, self.hook, needs) from e

    def update(self, new_prog: Any) -> None:
        """Swap programs: BPF_F_REPLACE in multi mode, else attach over the single slot."""
        self._attach(new_prog, self.flags, self.prog if self._multi else None, None)
        self.prog = new_prog

    @property
    def _multi(self) -> bool:
        return bool(self.flags & BPF_F_ALLOW_MULTI)

    def keep(self) -> None:
        """Leave the program attached after this process exits (forget it)."""
        cleanup.unregister(self._token)
        self._detached = True
        os.close(self._fd)

    def _detach(self) -> None:
        cleanup.unregister(self._token)
        attr = new_attr()
        attr.target_fd = self._fd
        attr.attach_bpf_fd = prog_fd(self.prog)
        attr.attach_type = self.attach_type
        try:
            bpf(Cmd.PROG_DETACH, attr)
        except BPFError as e:
            if e.errno != errno.ENOENT:  # already gone (cgroup removed, or detached by others)
                raise
        finally:
            os.close(self._fd)

    def info(self) -> LinkInfo:
        """Hook, attach type and program id."""
        return LinkInfo(self.mechanism, self.hook, super().info().prog_id,
                        attach_type=self.attach_type, target=self._target)
