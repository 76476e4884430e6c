"""Throwaway network namespaces, veth pairs and cgroups for tests and demos.

Everything is removed on close, at exit and on SIGINT/SIGTERM.
"""

from pybpf.sandbox.cgroup import Cgroup, cgroup2_root
from pybpf.sandbox.netns import Netns, current_netns_inode
from pybpf.sandbox.process import ChildError, run_in_child
from pybpf.sandbox.sandbox import Endpoint, Sandbox

__all__ = ["Cgroup", "ChildError", "Endpoint", "Netns", "Sandbox", "cgroup2_root",
           "current_netns_inode", "run_in_child"]
