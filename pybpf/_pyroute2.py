"""pyroute2, imported on first use.

Importing pyroute2 takes ~100 ms (it loads every netlink family), and most
uses of pybpf (assembling, building and loading programs) never touch
netlink. The sandbox and the netlink attach paths call these instead of
importing pyroute2 at module level.
"""

from __future__ import annotations

import importlib
from typing import Any


def module(name: str = "pyroute2") -> Any:
    """``pyroute2`` or one of its submodules, imported now if it was not yet."""
    return importlib.import_module(name)


def IPRoute(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 - stands for the class
    """A new ``pyroute2.IPRoute`` socket."""
    return module().IPRoute(*args, **kwargs)


def netns() -> Any:
    """The ``pyroute2.netns`` module (create, remove, setns)."""
    return module("pyroute2.netns")
