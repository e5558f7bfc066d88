"""lone_exception: unwraps nested one-member exception groups, and only those."""

from __future__ import annotations

from agent_identity.kernel import lone_exception


def test_unwraps_nested_single_member_groups() -> None:
    inner = OSError("port taken")
    group = BaseExceptionGroup("outer", [ExceptionGroup("inner", [inner])])
    assert lone_exception(group) is inner


def test_several_members_give_none() -> None:
    group = ExceptionGroup("two", [ValueError("a"), ExceptionGroup("one", [KeyError("b")])])
    assert lone_exception(group) is None
    nested = ExceptionGroup("outer", [ExceptionGroup("two", [ValueError(), KeyError()])])
    assert lone_exception(nested) is None
