"""Fixtures for kernel tests: a bpffs mount, and a check that tests leave no BPF objects behind."""

from __future__ import annotations

import gc
import os
import struct
import subprocess
import tempfile
import time

import pytest

from pybpf.syscall import next_ids


def _alive() -> dict[str, set[int]]:
    return {kind: set(next_ids(kind)) for kind in ("map", "prog")}


@pytest.fixture
def no_leaks():
    """Fail if a map or program created during the test is still alive afterwards (by id)."""
    before = _alive()
    yield


    gc.collect()
    # The kernel frees programs after an RCU grace period and only then drops their maps.
    for _ in range(100):
        after = _alive()
        leaked = {kind: sorted(after[kind] - before[kind]) for kind in after}
        if not any(leaked.values()):
            break
        time.sleep(0.02)
    assert not any(leaked.values()), f"BPF objects left behind: {leaked}"


@pytest.fixture
def bpffs():
    """A directory on a bpffs mount; mounts a private one (and unmounts it) if needed."""
    with tempfile.TemporaryDirectory(prefix="pybpf-bpffs-") as mnt:
        subprocess.run(["mount", "-t", "bpf", "bpf", mnt], check=True)
        preloaded = set(os.listdir(mnt))  # maps.debug, progs.debug
        try:
            yield mnt
        finally:
            for name in set(os.listdir(mnt)) - preloaded:
                os.unlink(os.path.join(mnt, name))
            subprocess.run(["umount", mnt], check=True)


@pytest.fixture
def int_btf() -> bytes:
    """A minimal BTF blob with one type: [1] INT 'int' size 4, signed."""
    strings = b"\0int\0"
    types = struct.pack("<III", 1, 1 << 24, 4) + struct.pack("<I", (1 << 24) | 32)
    header = struct.pack("<HBBIIIII", 0xEB9F, 1, 0, 24, 0, len(types), len(types), len(strings))
    return header + types + strings
