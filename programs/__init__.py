"""The guide's hooks as small tools, one module each.

Every module defines ``TOOL``, a ``programs.tool.Tool`` describing it: its
name, one-line summary, the DSL programs it loads (for ``pybpf dump``), a
``demo()`` that runs it inside a sandbox it builds and removes, and a
``run(args)`` for a real interface or cgroup named by the user.
"""

from programs.tool import Tool, all_tools, find

__all__ = ["Tool", "all_tools", "find"]
