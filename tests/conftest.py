"""Shared test policy.

Tests marked ``kernel`` need root and a BPF-capable kernel. Outside CI they
skip when that is missing; with ``CI=true`` every skip is turned into a
failure, because CI runs as root on a kernel with full BPF support.
"""

import os

import pytest

IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def pytest_collection_modifyitems(config, items):
    if os.geteuid() == 0:
        return
    skip = pytest.mark.skip(reason="needs root (bpf() and netlink)")
    for item in items:
        if "kernel" in item.keywords:
            item.add_marker(skip)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    report = outcome.get_result()
    if IN_CI and report.skipped:
        report.outcome = "failed"
        report.longrepr = f"skipped in CI (CI=true forbids skips): {report.longrepr}"


# -- nothing left behind ------------------------------------------------------------------
# The whole session is checked: whatever the tests created in the kernel (programs, maps,
# links), in the network (namespaces, veths, qdiscs in the root namespace), in bpffs and in
# the cgroup v2 tree must be gone at the end, or the run fails.

def _snapshot() -> dict:
    import glob
    import subprocess

    snap = {}
    try:
        from pybpf.syscall import next_ids

        for kind in ("prog", "map", "link"):
            snap[kind] = set(next_ids(kind))
    except Exception as e:  # no bpf() here: nothing to compare
        snap["bpf-error"] = {str(e)}
    out = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    snap["netns"] = {line.split()[0] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    snap["links"] = {line.split(": ")[1].split("@")[0] for line in out.splitlines()}
    qdiscs = set()
    for dev in snap["links"]:
        q = subprocess.run(["tc", "qdisc", "show", "dev", dev], capture_output=True,
                           text=True).stdout
        qdiscs |= {f"{dev}: {line.split()[1]}" for line in q.splitlines()
                   if "clsact" in line or "ingress" in line}
    snap["qdiscs"] = qdiscs
    snap["pins"] = set(glob.glob("/sys/fs/bpf/**", recursive=True)) - {"/sys/fs/bpf/"}
    snap["cgroups"] = {p for p in glob.glob("/sys/fs/cgroup/unified/**/", recursive=True)}
    return snap


_BEFORE: dict = {}


def pytest_sessionstart(session):
    if os.geteuid() == 0:
        _BEFORE.update(_snapshot())


def pytest_sessionfinish(session, exitstatus):
    if not _BEFORE or getattr(session.config, "workerinput", None) is not None:
        return
    import gc
    import time

    gc.collect()  # objects whose tests dropped them without closing are finalised now
    time.sleep(0.2)  # links and programs are freed by the kernel asynchronously
    after = _snapshot()
    if any(after.get(k, set()) - _BEFORE.get(k, set()) for k in after):
        time.sleep(1.0)  # what is still there a second later was not in flight
        again = _snapshot()
        after = {k: after[k] & again.get(k, set()) for k in after}
    left = {k: sorted(map(str, after.get(k, set()) - _BEFORE.get(k, set())))
            for k in after if k != "bpf-error"}
    left = {k: [x for x in v if not _owned_by_other_live_process(x)] for k, v in left.items()}
    left = {k: v for k, v in left.items() if v}
    if left:
        lines = "\n".join(f"  {k}: {', '.join(v[:10])}" for k, v in left.items())
        session.config.pluginmanager.get_plugin("terminalreporter").write_line(
            f"LEFT BEHIND by the test session (must be cleaned up):\n{lines}", red=True)
        if IN_CI:  # outside CI other processes (parallel sessions) may own what we see
            session.exitstatus = 1


def _owned_by_other_live_process(name: str) -> bool:
    """Sandbox objects are named pybpf-<pid>-<n>: one of another live process is not ours."""
    import re

    m = re.search(r"pybpf-(\d+)-", name)
    if not m or int(m.group(1)) == os.getpid():
        return False
    return os.path.exists(f"/proc/{m.group(1)}")
