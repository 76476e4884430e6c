"""A demo-like process for test_cleanup_on_signal: builds things, reports them, waits to be killed.

Creates a sandbox (two namespaces, a veth pair, a cgroup), attaches programs
through the mechanisms that outlive a process (netlink XDP, clsact + cls_bpf,
BPF_PROG_ATTACH on a cgroup) and one that does not (an XDP link), prints what
it made as one JSON line, then sleeps until a signal arrives.
"""

import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "attach"))

import kit  # noqa: E402

from pybpf.sandbox import Sandbox  # noqa: E402
from pybpf.syscall._uapi import ProgType  # noqa: E402
from pybpf.syscall.attach.cgroup import attach_cgroup  # noqa: E402
from pybpf.syscall.attach.tc import attach_tc  # noqa: E402
from pybpf.syscall.attach.xdp import attach_xdp  # noqa: E402
from pybpf.syscall.objects import get_info  # noqa: E402

sb = Sandbox()
left, right = sb.veth_pair()
cg = sb.cgroup()
m = kit.counter_map()
xdp = kit.counter_prog(ProgType.XDP, m, 2)
tc = kit.counter_prog(ProgType.SCHED_CLS, m, 0)
skb = kit.counter_prog(ProgType.CGROUP_SKB, m, 1)
with left.ns.entered():
    attach_xdp(xdp, left.ifname, mechanism="netlink")
    attach_tc(tc, left.ifname, "ingress", mechanism="netlink")
with right.ns.entered():
    keep_link = attach_xdp(xdp, right.ifname, mechanism="link")
attach_cgroup(skb, cg, "egress", mechanism="prog_attach")
ids = [get_info(p.fd, "struct bpf_prog_info").id for p in (xdp, tc, skb)]
print(json.dumps({"netns": [left.ns.name, right.ns.name], "cgroup": cg.path,
                  "veth": [left.ifname, right.ifname], "prog_ids": ids}), flush=True)
while True:
    time.sleep(0.1)
