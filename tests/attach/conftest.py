"""Fixtures for attach tests: a sandboxed veth pair with UDP traffic, and counters."""

import socket

import kit
import pytest

from pybpf.sandbox import Sandbox


class Udp:
    """Datagrams from the left end of a veth pair to a server on the right end."""

    def __init__(self, left, right):
        self.left, self.right = left, right
        with right.ns.entered():
            self.server = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self.server.bind((right.ipv4, 0))
            self.server.settimeout(0.3)
        with left.ns.entered():
            self.client = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.port = self.server.getsockname()[1]

    def exchange(self, n: int = 5, payload: bytes = b"x") -> int:
        """Send n datagrams; return how many arrived."""
        for _ in range(n):
            self.client.sendto(payload, (self.right.ipv4, self.port))
        got = 0
        try:
            while True:
                self.server.recv(2048)
                got += 1
        except TimeoutError:
            return got

    def close(self):
        self.client.close()
        self.server.close()


@pytest.fixture
def sandbox():
    with Sandbox() as sb:
        yield sb


@pytest.fixture
def pair(sandbox):
    return sandbox.veth_pair()


@pytest.fixture
def udp(pair):
    u = Udp(*pair)
    assert u.exchange(3) == 3  # the path works before anything is attached
    yield u
    u.close()


@pytest.fixture
def counter():
    with kit.counter_map() as m:
        yield m
