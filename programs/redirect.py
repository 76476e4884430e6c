"""7a/b. Traffic redirection: frames moved between interfaces, or to other CPUs, by programs.

The sandbox is two hosts, A and B, joined through a middle namespace M that
has no bridge and does no IP forwarding: every frame that crosses M does so
because a program moved it.  ``ports`` maps the interface a frame arrived on
to the one it leaves by (both directions are entries).

* ``tc_redirect`` (TC ingress, ``bpf_redirect``): to the egress of the other
  interface; A and B share a subnet, so M behaves as a wire.
* ``tc_redirect_peer`` (TC ingress, ``bpf_redirect_peer``): straight into the
  ingress of the *peer* of the other veth (the interface inside B or A),
  skipping the veth transmit and the backlog queue.
* ``tc_redirect_neigh`` (TC ingress, ``bpf_redirect_neigh``): A and B are on
  different subnets with M as their gateway; the kernel's FIB and neighbour
  tables fill in the MAC addresses, so M routes without ip_forward.
* ``xdp_to_device`` (XDP, ``bpf_redirect_map`` on a DEVMAP_HASH): the same wire,
  before any skb exists.  (A veth only takes redirected frames when its
  peer runs XDP, so A and B run ``xdp_pass``; and a redirected frame is a new
  packet to the receiver, so A and B send complete checksums: veth transmit
  checksum offload off, as on a real NIC's wire.)
* ``xdp_to_cpu`` (XDP, ``bpf_redirect_map`` on a CPUMAP): on B's interface,
  each frame is queued to the CPU named in ``steer_to``; the kernel thread of
  that CPU builds the skb, and ``on_cpu`` (an XDP program run by the cpumap
  on the target CPU) counts which CPU it runs on.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import time

from programs.dnat import tx_checksum_off
from programs.tool import Attached, Tool, ToolError
from pybpf._record import replace
from pybpf.dsl import (
    ETH_P_IP,
    TC_ACT_OK,
    XDP_PASS,
    Array,
    CpuMap,
    DevMapHash,
    Ethernet,
    Hash,
    PerCpuArray,
    Struct,
    tc,
    u32,
    u64,
    xdp,
)
from pybpf.dsl.program import xdp_cpumap
from pybpf.types import s32

TYPE_CHECKING = False  # as typing's: importing typing costs ~5 ms (with re) at start-up
if TYPE_CHECKING:
    import argparse

    from pybpf.sandbox import Sandbox

ports = Hash(u32, u32, max_entries=64)        # ingress ifindex -> egress ifindex
redirected = PerCpuArray(u32, u64, max_entries=1)
devices = DevMapHash(64)                      # ingress ifindex -> egress ifindex


class CpuMapValue(Struct):
    """struct bpf_cpumap_val: queue size, and a program for the target CPU (an fd on write)."""

    qsize: u32
    prog_fd: s32


cpus = CpuMap(8, qsize_value=CpuMapValue)
steer_to = Array(u32, u32, max_entries=1)     # the CPU to send frames to
seen_on = Array(u32, u64, max_entries=8)      # CPU -> frames the cpumap program ran on


def _count(p) -> None:
    with redirected.lookup(p.const(0, u32)) as n:
        n.atomic_add(1)


def _tc_program(helper: str):
    def body(p):
        if helper == "redirect_neigh":  # M routes IPv4; its own ARP must reach its stack
            eth = p.packet.header(Ethernet)
            with p.if_(eth.proto != ETH_P_IP):
                p.return_(TC_ACT_OK)
        with ports.lookup(p.ctx.ifindex) as out:
            _count(p)
            if helper == "redirect_neigh":
                p.return_(p.call(helper, out.value, 0, 0, 0))   # no params: use the FIB
            else:
                p.return_(p.call(helper, out.value, 0))
        p.return_(TC_ACT_OK)
    return body


tc_redirect = tc(name="tc_redirect")(_tc_program("redirect"))
tc_redirect_peer = tc(name="tc_redirect_peer")(_tc_program("redirect_peer"))
tc_redirect_neigh = tc(name="tc_redirect_neigh")(_tc_program("redirect_neigh"))


@xdp
def xdp_to_device(p):
    """Send each frame out of the interface paired with the one it came in on."""
    _count(p)
    p.return_(devices.redirect(p.ctx.ingress_ifindex, XDP_PASS))


@xdp
def xdp_to_cpu(p):
    """Queue each frame to the CPU in steer_to[0]; its stack processing happens there."""
    with steer_to.lookup(p.const(0, u32)) as cpu:
        _count(p)
        p.return_(cpus.redirect(cpu.value, XDP_PASS))
    p.return_(XDP_PASS)


@xdp_cpumap
def on_cpu(p):
    """Run by the cpumap on the target CPU: count frames per CPU, then pass."""
    with seen_on.lookup(p.call("get_smp_processor_id")) as n:
        n.atomic_add(1)
    p.return_(XDP_PASS)


@xdp
def xdp_pass(p):
    """Let everything through (a veth receives redirected frames only with XDP on it)."""
    p.return_(XDP_PASS)


MODES = {
    "redirect": "TC bpf_redirect to the other interface's egress",
    "redirect_peer": "TC bpf_redirect_peer into the other veth peer's ingress",
    "redirect_neigh": "TC bpf_redirect_neigh: routed by FIB + neighbour lookup, no ip_forward",
    "devmap": "XDP_REDIRECT through a DEVMAP_HASH",
    "cpumap": "XDP_REDIRECT to another CPU through a CPUMAP",
}


# -- the sandbox ---------------------------------------------------------------------------

_subnets = itertools.cycle(range(10, 250))


class Hosts:
    """A --(a, ma)-- M --(mb, b)-- B, or A --(a, b)-- B for the cpumap."""

    def __init__(self, sb: Sandbox, mode: str):
        s = next(_subnets)  # distinct subnets for several Hosts at once
        self.ns_a, self.ns_b = sb.netns(), sb.netns()
        if mode == "cpumap":
            self.a, self.b = sb.veth(self.ns_a, self.ns_b,
                                     ipv4=(f"10.201.{s}.1/24", f"10.201.{s}.2/24"))
            self.middle = None
            self._full_checksums()
            return
        self.ns_m = sb.netns()
        if mode == "redirect_neigh":   # two subnets, M is the gateway of both
            self.a, self.ma = sb.veth(self.ns_a, self.ns_m,
                                      ipv4=(f"10.202.{s}.1/24", f"10.202.{s}.254/24"))
            self.b, self.mb = sb.veth(self.ns_b, self.ns_m,
                                      ipv4=(f"10.203.{s}.1/24", f"10.203.{s}.254/24"))
            self.ns_a.add_route("default", gateway=self.ma.ipv4)
            self.ns_b.add_route("default", gateway=self.mb.ipv4)
        else:                          # one subnet: M must act as a wire
            self.a, self.ma = sb.veth(self.ns_a, self.ns_m)
            self.b, self.mb = sb.veth(self.ns_b, self.ns_m)
            self.ns_a.add_address(self.a.ifname, f"10.204.{s}.1/24")
            self.ns_b.add_address(self.b.ifname, f"10.204.{s}.2/24")
            self.a = replace(self.a, ipv4=f"10.204.{s}.1")
            self.b = replace(self.b, ipv4=f"10.204.{s}.2")
        self.middle = (self.ma, self.mb)
        if mode == "devmap":
            self._full_checksums()

    def _full_checksums(self) -> None:
        # An XDP-redirected frame becomes a new skb that the receiver checks from scratch:
        # A and B must send complete checksums, not the partial ones veth offload leaves.
        for end in (self.a, self.b):
            tx_checksum_off(end.ns, end.ifname)


class Redirector(Attached):
    """The programs of ``mode`` loaded and attached in a Hosts sandbox."""

    def __init__(self, hosts: Hosts, mode: str, cpu: int = 1):
        if mode not in MODES:
            raise ToolError(f"mode {mode!r} is not one of {', '.join(MODES)}")
        self.mode = mode
        super().__init__()
        try:
            self._setup(hosts, mode, cpu)
        except BaseException:
            self._stack.close()
            raise

    def _load(self, prog, **maps):
        return self._stack.enter_context(prog.load(maps=maps))

    def _attach(self, end, fn) -> None:
        with end.ns.entered():
            self._stack.enter_context(fn(end.ifname))

    def _setup(self, hosts: Hosts, mode: str, cpu: int) -> None:
        from pybpf.syscall.attach import attach_tc, attach_xdp
        if mode == "cpumap":
            with hosts.ns_b.entered():
                prog, self.seen_on = _steer(self._stack, hosts.b.ifname, cpu)
            self.counter = prog["redirected"]
            return
        ma, mb = hosts.middle
        if mode == "devmap":
            prog = self._load(xdp_to_device)
            table = prog["devices"]
            for end in (hosts.a, hosts.b):   # receivers of redirected frames need XDP
                self._attach(end, lambda i: attach_xdp(self._load(xdp_pass), i))
        else:
            prog = self._load({"redirect": tc_redirect, "redirect_peer": tc_redirect_peer,
                               "redirect_neigh": tc_redirect_neigh}[mode])
            table = prog["ports"]
        self.counter = prog["redirected"]
        # A DEVMAP resolves an ifindex when the entry is written, in the writer's namespace:
        # write inside M, or the entries would name this namespace's interfaces.
        with hosts.ns_m.entered():
            table[ma.ifindex], table[mb.ifindex] = mb.ifindex, ma.ifindex
        for end in (ma, mb):
            if mode == "devmap":
                self._attach(end, lambda i: attach_xdp(prog, i))
            else:
                self._attach(end, lambda i: attach_tc(prog, i, "ingress"))

    def count(self) -> int:
        """Frames redirected so far (summed over CPUs)."""
        return sum(self.counter[0])

    def cpus(self) -> dict[int, int]:
        """cpumap mode: CPU -> frames the cpumap program ran on."""
        return {cpu: n for cpu, n in self.seen_on.items() if n}


def exchange(hosts: Hosts, payload: bytes = b"ping" * 4000) -> dict:
    """A TCP echo from A to a server in B and a UDP datagram; what came back."""
    import socket
    with hosts.ns_b.entered():
        srv = socket.create_server((hosts.b.ipv4, 0))
        usrv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        usrv.bind((hosts.b.ipv4, 0))
    out = {}
    with srv, usrv:
        with hosts.ns_a.entered():
            cli = socket.create_connection(srv.getsockname(), timeout=2)
            ucli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        conn, out["peer"] = srv.accept()
        with cli, conn, ucli:
            conn.settimeout(2)
            cli.sendall(payload)
            got = b""
            while len(got) < len(payload):
                got += conn.recv(65536)
            conn.sendall(got[::-1])
            back = b""
            while len(back) < len(payload):
                back += cli.recv(65536)
            out["tcp_ok"] = got == payload and back == payload[::-1]
            ucli.sendto(b"datagram", usrv.getsockname())
            usrv.settimeout(2)
            out["udp"] = usrv.recvfrom(100)[0]
    return out


def reachable(hosts: Hosts) -> bool:
    """Can A open a TCP connection to B at all (within 0.2 s)?"""
    import socket
    with hosts.ns_b.entered():
        srv = socket.create_server((hosts.b.ipv4, 0))
    with srv, hosts.ns_a.entered(), socket.socket() as s:
        s.settimeout(0.2)
        try:
            s.connect(srv.getsockname())
            return True
        except OSError:
            pass
    # forget the failed ARP lookup, or A's next connect waits for the retry a second later
    with hosts.ns_a.ipr() as ipr:
        for entry in ipr.get_neighbours(ifindex=hosts.a.ifindex):
            ipr.neigh("del", dst=entry.get_attr("NDA_DST"), ifindex=hosts.a.ifindex)
    return False


_BEFORE = {None: "A and B share a veth", False: "unreachable before",
           True: "ALREADY reachable before"}


def demo() -> None:
    from pybpf.sandbox import Sandbox
    for mode, what in MODES.items():
        with Sandbox() as sb:
            hosts = Hosts(sb, mode)
            before = reachable(hosts) if mode != "cpumap" else None
            with Redirector(hosts, mode) as r:
                seen = exchange(hosts)
                line = (f"{mode:<15} {what}\n{'':<15} "
                        f"{_BEFORE[before]}; "
                        f"tcp {'ok' if seen['tcp_ok'] else 'FAILED'}, udp "
                        f"{'ok' if seen['udp'] == b'datagram' else 'FAILED'}, "
                        f"{r.count()} frames redirected")
                if mode == "cpumap":
                    line += f", processed on CPU(s) {r.cpus()}"
            print(line)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--mode", choices=tuple(MODES), default="redirect")
    parser.add_argument("--iface", nargs="+", required=True, metavar="IF",
                        help="two interfaces to join: frames arriving on one leave by the other "
                             "(cpumap: one interface, whose frames are processed on --cpu)")
    parser.add_argument("--cpu", type=int, default=0,
                        help="cpumap: the CPU that builds the skbs of the frames (default 0)")


def _ifindexes(names: list[str], wanted: int) -> list[int]:
    import socket
    if len(names) != wanted:
        raise ToolError(f"--iface takes {wanted} interface(s) in this mode, got {len(names)}")
    if len(set(names)) != len(names):
        raise ToolError("give two different interfaces")
    try:
        return [socket.if_nametoindex(name) for name in names]
    except OSError:
        raise ToolError(f"no interface{'s' if wanted > 1 else ''} {' and '.join(names)} in this "
                        "network namespace") from None


def _steer(stack: contextlib.ExitStack, iface: str, cpu: int):
    """cpumap: frames arriving on ``iface`` queued to ``cpu``; (program, per-CPU counts map)."""
    from pybpf.syscall.attach import attach_xdp
    limit = min(os.cpu_count() or 1, cpus.max_entries)
    if not 0 <= cpu < limit:
        raise ToolError(f"--cpu {cpu} is not a CPU of this machine (0..{limit - 1})")
    target = stack.enter_context(on_cpu.load())
    prog = stack.enter_context(xdp_to_cpu.load())
    prog["steer_to"][0] = cpu
    prog["cpus"][cpu] = CpuMapValue(qsize=256, prog_fd=target.fd)
    stack.enter_context(attach_xdp(prog, iface))
    return prog, target["seen_on"]


def run(args: argparse.Namespace) -> None:
    from pybpf.syscall.attach import attach_tc, attach_xdp
    idx = _ifindexes(args.iface, 1 if args.mode == "cpumap" else 2)
    with contextlib.ExitStack() as stack:
        seen_on = None
        if args.mode == "cpumap":
            prog, seen_on = _steer(stack, args.iface[0], args.cpu)
            where = f"frames arriving on {args.iface[0]} processed on CPU {args.cpu}"
        else:
            if args.mode == "devmap":
                prog = stack.enter_context(xdp_to_device.load())
                table = prog["devices"]
            else:
                prog = stack.enter_context({"redirect": tc_redirect,
                                            "redirect_peer": tc_redirect_peer,
                                            "redirect_neigh": tc_redirect_neigh}[args.mode].load())
                table = prog["ports"]
            table[idx[0]], table[idx[1]] = idx[1], idx[0]
            for name in args.iface:
                stack.enter_context(attach_xdp(prog, name) if args.mode == "devmap"
                                    else attach_tc(prog, name, "ingress"))
            where = f"joining {args.iface[0]} and {args.iface[1]}"
        last = None
        with contextlib.suppress(KeyboardInterrupt):
            # ready (and Ctrl-C safe): tests and scripts wait for this line
            print(f"{where} ({MODES[args.mode]}); Ctrl-C to stop", flush=True)
            while True:
                now = (sum(prog["redirected"][0]),
                       {c: n for c, n in seen_on.items() if n} if seen_on is not None else None)
                if now != last:
                    print(f"{now[0]} frames redirected"
                          + (f", processed on CPU(s) {now[1]}" if seen_on is not None else ""),
                          flush=True)
                last = now
                time.sleep(1)


TOOL = Tool(
    name="redirect",
    summary="TC/XDP: move frames between interfaces (redirect, peer, neigh, devmap) or CPUs (cpumap)",
    programs=lambda: [tc_redirect, tc_redirect_peer, tc_redirect_neigh, xdp_to_device, xdp_to_cpu,
                      on_cpu, xdp_pass],
    demo=demo,
    add_arguments=add_arguments,
    run=run,
)
