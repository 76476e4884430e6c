"""Enums built the way the standard library builds its own, for the modules every cold
start imports (the opcode fields, registers, ALU operations, BTF kinds)."""

import enum


def simple_enum(etype: type[enum.Enum]):
    """Class decorator: ``cls`` as an ``etype`` enum, built by ``enum._simple_enum``.

    The standard library builds its own large enums this way (http.HTTPStatus,
    re.RegexFlag): the same class at half the import cost of an ordinary
    subclass, which matters because these modules load on every cold start.
    ``_simple_enum`` leaves each member behind a property on the class, so
    ``Size.DW`` would run Python code on every access (~0.13 us more); the members
    are put back in the class dict, where an ordinary enum keeps them.  It skips
    the duplicate-value check: keep ``@enum.unique`` on top.  tests/asm/test_enums.py
    compares every such enum with an ordinary one of the same members.
    """
    make = enum._simple_enum(etype)

    def build(cls):
        built = make(cls)
        for name, member in built._member_map_.items():
            type.__setattr__(built, name, member)  # EnumType.__setattr__ refuses members
        return built

    return build
