"""The record both readers' tests decode, and the packet that makes a program emit it."""

from pybpf.types import Struct, u64

PACKET = bytes(64)


class Record(Struct):
    seq: u64
    cpu: u64
    magic: u64
    seq_x3: u64
