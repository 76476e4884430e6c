"""dnat: a real TCP exchange (and UDP) through the rewriter, with checksums the stack accepts."""

import socket

import cli_kit
import pytest

from programs import dnat
from programs.dnat import (
    IPPROTO_TCP,
    IPPROTO_UDP,
    Echo,
    Lab,
    Nat,
    checksum_errors,
    talk,
    tx_checksum_off,
)
from pybpf.sandbox import Sandbox

pytestmark = pytest.mark.kernel
PAYLOAD = bytes(range(256)) * 300   # 76.8 kB, many full-size segments each way
SO_NO_CHECK = 11                    # asm-generic/socket.h: send UDP without a checksum


@pytest.fixture
def lab():
    with Sandbox() as sb:
        lab = Lab(sb)
        with Echo(lab.backend.ns, lab.backend.ipv4) as echo:
            lab.echo = echo
            yield lab


def _nat(lab, variant):
    nat = Nat(variant, (lab.backend.ns, lab.backend.ifname), (lab.client.ns, lab.client.ifname))
    nat.add(IPPROTO_TCP, (lab.SERVICE, 80), (lab.backend.ipv4, lab.echo.tcp_port))
    nat.add(IPPROTO_UDP, (lab.SERVICE, 53), (lab.backend.ipv4, lab.echo.udp_port))
    return nat


@pytest.mark.parametrize("variant", ["tc", "xdp"])
def test_tcp_and_udp_through_the_rewriter(lab, variant):
    with _nat(lab, variant) as nat:
        seen = talk(lab.client.ns, lab.SERVICE, 80, 53, PAYLOAD)
        forward, reverse = nat.counts()
    assert seen["tcp_peer"] == (lab.SERVICE, 80)
    assert seen["tcp_reply"] == PAYLOAD.upper()
    assert seen["udp_reply"] == PAYLOAD[:1000].upper()
    assert seen["udp_from"] == (lab.SERVICE, 53)        # the reply was rewritten back
    # (TC sees GSO super-packets, XDP single frames: counts differ but neither is small)
    assert forward > 10 and reverse > 10
    # the backend saw the real client (destination NAT only), and nobody saw a bad checksum
    assert [peer[0] for _, peer in lab.echo.peers] == [lab.client.ipv4] * 2
    assert checksum_errors(lab.client.ns) == {"tcp": 0, "udp": 0}
    assert checksum_errors(lab.backend.ns) == {"tcp": 0, "udp": 0}


def _udp_without_checksum(ns, service):
    with ns.entered():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with s:
        s.setsockopt(socket.SOL_SOCKET, SO_NO_CHECK, 1)
        s.settimeout(2)
        s.sendto(b"no checksum", (service, 53))
        return s.recvfrom(100)


@pytest.mark.parametrize("variant", ["tc", "xdp"])
def test_udp_without_checksum_stays_without(lab, variant):
    with _nat(lab, variant):
        assert _udp_without_checksum(lab.client.ns, lab.SERVICE) == (b"NO CHECKSUM",
                                                                     (lab.SERVICE, 53))
    assert checksum_errors(lab.backend.ns)["udp"] == 0


def test_receiver_really_checks_checksums(lab, monkeypatch):
    """Control: the same XDP rewrite with the L4 sums left stale breaks the connection."""
    real = dnat._csum_replace
    calls = []

    def stale_l4(p, check, old, new, bits):
        calls.append(bits)
        # the first call per packet is the IP header's: keep it right, spoil the rest
        return real(p, check, old, new, bits) if len(calls) % 3 == 1 else check.cast(dnat.u32)

    monkeypatch.setattr(dnat, "_csum_replace", stale_l4)
    with _nat(lab, "xdp") as nat:
        with pytest.raises(OSError):
            talk(lab.client.ns, lab.SERVICE, 80, 53, b"x")
        assert nat.counts()[0] > 0                      # SYNs were rewritten, then dropped
    assert checksum_errors(lab.backend.ns)["tcp"] > 0


@pytest.mark.parametrize("variant", ["tc", "xdp"])
def test_other_traffic_untouched(lab, variant):
    with lab.backend.ns.entered():
        other = socket.create_server((lab.backend.ipv4, 0))  # a port no rule names
    with other, _nat(lab, variant) as nat:
        with lab.client.ns.entered():
            s = socket.create_connection(other.getsockname(), timeout=2)
        conn, _ = other.accept()
        with s, conn:
            s.sendall(b"direct")
            assert conn.recv(100) == b"direct"
            conn.sendall(b"back")
            assert s.recv(100) == b"back"
        assert nat.counts() == (0, 0)


def test_demo_runs(capsys):
    dnat.demo()
    out = capsys.readouterr().out
    assert out.count("echoed intact") == 2 and out.count("checksum errors: 0") == 2


def test_cli_run_on_the_backend_interface(lab):
    rule = f"tcp:{lab.SERVICE}:80={lab.backend.ipv4}:{lab.echo.tcp_port}"
    proc = cli_kit.start(["dnat", "--iface", lab.backend.ifname, "--rule", rule],
                         ns=lab.backend.ns)
    try:
        assert "0 packets to backends" in cli_kit.line(proc)
        with lab.client.ns.entered():
            s = socket.create_connection((lab.SERVICE, 80), timeout=2)
        with s:
            assert s.getpeername() == (lab.SERVICE, 80)
            s.sendall(b"via the cli")
            s.shutdown(socket.SHUT_WR)
            assert s.recv(100) == b"VIA THE CLI"
    finally:
        cli_kit.interrupt(proc)
    assert checksum_errors(lab.backend.ns)["tcp"] == 0


def test_cli_run_xdp_variant_on_a_router():
    """client -- router -- backend: the XDP variant rewrites on the router's two interfaces."""
    service = Lab.SERVICE
    with Sandbox() as sb:
        client_ns, router_ns, backend_ns = sb.netns(), sb.netns(), sb.netns()
        client, rc = sb.veth(client_ns, router_ns, ipv4=("10.211.0.1/24", "10.211.0.254/24"))
        backend, rb = sb.veth(backend_ns, router_ns, ipv4=("10.212.0.1/24", "10.212.0.254/24"))
        client_ns.add_route("default", gateway=rc.ipv4)
        backend_ns.add_route("default", gateway=rb.ipv4)
        with router_ns.entered(), open("/proc/sys/net/ipv4/ip_forward", "w") as f:
            f.write("1")                 # this namespace's own sysctl
        for end in (client, backend):    # XDP sees whole frames: complete checksums on the wire
            tx_checksum_off(end.ns, end.ifname)
        with Echo(backend_ns, backend.ipv4) as echo:
            rule = f"tcp:{service}:80={backend.ipv4}:{echo.tcp_port}"
            proc = cli_kit.start(["dnat", "--variant", "xdp", "--iface", rc.ifname,
                                  "--reply-iface", rb.ifname, "--rule", rule], ns=router_ns)
            try:
                assert "0 packets to backends" in cli_kit.line(proc)
                with client_ns.entered():
                    s = socket.create_connection((service, 80), timeout=2)
                with s:
                    assert s.getpeername() == (service, 80)
                    s.sendall(PAYLOAD)
                    s.shutdown(socket.SHUT_WR)
                    got = b""
                    while chunk := s.recv(65536):
                        got += chunk
                counts = ["0"] * 5   # "N packets to backends, M replies rewritten"
                while "0" in (counts[0], counts[4]) and (text := cli_kit.line(proc, 3)):
                    counts = text.split()
            finally:
                cli_kit.interrupt(proc)
        assert got == PAYLOAD.upper()
        assert echo.peers == [("tcp", echo.peers[0][1])] and echo.peers[0][1][0] == client.ipv4
        assert int(counts[0]) > 0 and int(counts[4]) > 0, counts
        assert checksum_errors(backend_ns)["tcp"] == 0 and checksum_errors(client_ns)["tcp"] == 0


@pytest.mark.parametrize("argv, message", [
    (["--variant", "xdp", "--iface", "lo"], "needs --reply-iface"),
    (["--iface", "lo", "--reply-iface", "lo"], "--reply-iface is for the XDP variant"),
    (["--variant", "xdp", "--iface", "nosuch0", "--reply-iface", "lo"], "no interface nosuch0"),
    (["--iface", "lo", "--rule", "sctp:1.2.3.4:80=5.6.7.8:90"], "is not PROTO:SERVICE:PORT"),
])
def test_cli_run_refuses_bad_options(argv, message):
    if "--rule" not in argv:
        argv = [*argv, "--rule", "tcp:192.0.2.10:80=10.0.0.5:8080"]
    assert message in cli_kit.refused(["dnat", *argv])
