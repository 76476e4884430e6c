"""Socket filters: a program that decides how much of each packet a socket receives.

SO_ATTACH_BPF (Linux 3.19) puts a BPF_PROG_TYPE_SOCKET_FILTER program on any
socket -- UDP, TCP, raw AF_PACKET -- given as a Python socket object or an fd.
The program returns how many bytes of the packet to keep (0 drops it).  The
filter lives as long as the socket; SO_DETACH_BPF removes it earlier.
SO_ATTACH_REUSEPORT_EBPF (4.6) is the same call for a SO_REUSEPORT group's
selector (BPF_PROG_TYPE_SOCKET_FILTER or SK_REUSEPORT).
"""

from __future__ import annotations

import errno
import socket
import struct
from typing import Any

from pybpf.errors import BPFError
from pybpf.syscall._uapi import ProgType
from pybpf.syscall.attach._net_uapi import (
    SO_ATTACH_BPF,
    SO_ATTACH_REUSEPORT_EBPF,
    SO_DETACH_BPF,
)
from pybpf.syscall.links import AttachError, Attachment, LinkInfo, prog_fd, require_prog_type

__all__ = ["SocketFilterAttachment", "attach_socket_filter", "attach_reuseport"]


def _sock(sock: Any) -> socket.socket:
    if isinstance(sock, socket.socket):
        return sock
    if isinstance(sock, int) or hasattr(sock, "fileno"):
        # a borrowed fd: wrap without taking ownership (detach() before the wrapper dies)
        return socket.socket(fileno=sock if isinstance(sock, int) else sock.fileno())
    raise AttachError(f"expected a socket object or a socket fd, not {sock!r}")


class SocketFilterAttachment(Attachment):
    """A program set on one socket with setsockopt(SOL_SOCKET, SO_ATTACH_BPF)."""

    mechanism = "sockopt"

    def __init__(self, prog: Any, sock: Any, option: int, hook: str):
        super().__init__(hook, prog)
        self._borrowed = not isinstance(sock, socket.socket)
        self.sock = _sock(sock)
        self._option = option
        self._set(prog)

    def _set(self, prog: Any) -> None:
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, self._option,
                                 struct.pack("i", prog_fd(prog)))
        except OSError as e:
            raise BPFError(e.errno, "setsockopt SO_ATTACH_BPF",
                           f"{self.hook}: {e.strerror}") from e

    def update(self, new_prog: Any) -> None:
        """Attach again: the kernel swaps the socket's filter atomically."""
        require_prog_type(new_prog, ProgType.SOCKET_FILTER, self.hook)
        self._set(new_prog)
        self.prog = new_prog

    def _detach(self) -> None:
        try:
            if self._option == SO_ATTACH_BPF and self.sock.fileno() >= 0:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_DETACH_BPF, 0)
        except OSError as e:
            if e.errno not in (errno.ENOENT, errno.EBADF):
                raise
        finally:
            if self._borrowed:
                self.sock.detach()  # give the fd back to its owner without closing it

    def info(self) -> LinkInfo:
        """The socket and the program id."""
        return LinkInfo(self.mechanism, self.hook, super().info().prog_id,
                        target={"fd": self.sock.fileno()})


def attach_socket_filter(prog: Any, sock: Any) -> SocketFilterAttachment:
    """SO_ATTACH_BPF a socket filter program to ``sock`` (socket object or fd)."""
    require_prog_type(prog, ProgType.SOCKET_FILTER, "a socket filter")
    s = sock if isinstance(sock, socket.socket) else None
    label = f"socket filter on fd {s.fileno() if s else sock}"
    return SocketFilterAttachment(prog, sock, SO_ATTACH_BPF, label)


def attach_reuseport(prog: Any, sock: Any) -> SocketFilterAttachment:
    """SO_ATTACH_REUSEPORT_EBPF: choose the socket of a SO_REUSEPORT group for each packet."""
    require_prog_type(prog, (ProgType.SOCKET_FILTER, ProgType.SK_REUSEPORT),
                      "a SO_REUSEPORT group")
    return SocketFilterAttachment(prog, sock, SO_ATTACH_REUSEPORT_EBPF, "reuseport selector")
