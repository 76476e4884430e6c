"""sockmap/sockhash programs: verdicts on the messages and streams of sockets in a map.

    msg_verdict      SK_MSG, on each sendmsg() of a socket in the map       4.17
    stream_verdict   SK_SKB, on each received skb (after the parser)        4.14
    stream_parser    SK_SKB, sizes the messages of a stream                 4.14
    skb_verdict      SK_SKB, per skb without a parser (TCP and UDP)        5.15

The target is the map (BPF_MAP_TYPE_SOCKMAP or SOCKHASH), not a socket.
Mechanisms: "link" (BPF_LINK_CREATE on the map fd, Linux 6.10+) or
"prog_attach" (BPF_PROG_ATTACH on the map fd, undone by pybpf on
detach/exit/signals); "auto" picks by kernel version.
"""

from __future__ import annotations

from typing import Any

from pybpf.syscall._uapi import AttachType, ProgType
from pybpf.syscall.attach._progattach import ProgAttachment
from pybpf.syscall.links import (
    AttachError,
    Attachment,
    kernel_version,
    link_create,
    require_prog_type,
)

__all__ = ["SOCKMAP_HOOKS", "attach_sockmap"]

#: kind -> (attach type, program type, first kernel)
SOCKMAP_HOOKS = {
    "msg_verdict": (AttachType.SK_MSG_VERDICT, ProgType.SK_MSG, (4, 17)),
    "stream_verdict": (AttachType.SK_SKB_STREAM_VERDICT, ProgType.SK_SKB, (4, 14)),
    "stream_parser": (AttachType.SK_SKB_STREAM_PARSER, ProgType.SK_SKB, (4, 14)),
    "skb_verdict": (AttachType.SK_SKB_VERDICT, ProgType.SK_SKB, (5, 15)),
}
SOCKMAP_LINK_KERNEL = (6, 10)


def attach_sockmap(prog: Any, sockmap: Any, kind: str, *, mechanism: str = "auto"
                   ) -> Attachment:
    """Attach ``prog`` as the ``kind`` program of ``sockmap`` (a map object or its fd)."""
    try:
        attach_type, prog_type, needs = SOCKMAP_HOOKS[kind]
    except KeyError:
        raise AttachError(f"unknown sockmap program kind {kind!r}; known: "
                          f"{', '.join(SOCKMAP_HOOKS)}") from None
    if mechanism not in ("auto", "link", "prog_attach"):
        raise AttachError(f"sockmap mechanism {mechanism!r} is not one of auto, link, "
                          "prog_attach")
    map_fd = sockmap if isinstance(sockmap, int) else getattr(sockmap, "fd", None)
    if not isinstance(map_fd, int):
        raise AttachError(f"expected a sockmap/sockhash map or its fd, not {sockmap!r}")
    hook = f"sockmap {kind} on map fd {map_fd}"
    require_prog_type(prog, prog_type, hook)
    if mechanism == "auto":
        mechanism = "link" if kernel_version() >= SOCKMAP_LINK_KERNEL else "prog_attach"
    if mechanism == "link":
        return link_create(prog, map_fd, attach_type, hook, needs=SOCKMAP_LINK_KERNEL)
    return ProgAttachment(prog, map_fd, attach_type, hook, needs=needs,
                          target={"map_fd": map_fd})
