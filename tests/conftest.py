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
