"""Attach points, one module per family (the cilium/ebpf link/ layout).

Every function returns an Attachment (see pybpf.syscall.links): a context
manager with detach(), update(), pin() for links, keep() for netlink and
PROG_ATTACH attachments, and info().
"""

from pybpf.syscall.attach.cgroup import CGROUP_HOOKS, attach_cgroup, query_cgroup
from pybpf.syscall.attach.socket import attach_reuseport, attach_socket_filter
from pybpf.syscall.attach.sockmap import SOCKMAP_HOOKS, attach_sockmap
from pybpf.syscall.attach.tc import attach_tc, query_tc
from pybpf.syscall.attach.tracing import (
    attach_raw_tracepoint,
    attach_tracepoint,
    attach_tracing,
    kernel_func_id,
)
from pybpf.syscall.attach.xdp import attach_xdp, query_xdp

__all__ = ["CGROUP_HOOKS", "SOCKMAP_HOOKS", "attach_cgroup", "attach_raw_tracepoint",
           "attach_reuseport", "attach_socket_filter", "attach_sockmap", "attach_tc",
           "attach_tracepoint", "attach_tracing", "attach_xdp", "kernel_func_id",
           "query_cgroup", "query_tc", "query_xdp"]
