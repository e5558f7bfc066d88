"""How every hook fails closed and keeps its deadline.

A hook's body runs under :data:`HOOK_DEADLINE_SECONDS`; any exception (a malformed payload
the body did not catch, an actor that is down, the deadline) becomes the hook's fallback
answer, which fails closed where it matters (``before_tool_call`` blocks, the gate claims
the message). Errors are logged by type only: an exception's text may carry anything (a URL
with a login state, a control-plane message). Cancellation is not an error and propagates.

:func:`guarded` puts the whole body under the deadline. :func:`guarded_steps` is for hot
hooks whose steps are usually answered from memory: entering a deadline scope costs about as
much as the rest of a ``before_tool_call`` answered from caches, so only the steps that
wait are put under it (:func:`within`), and the hook is one checkpoint however its steps
were answered (:func:`step_of_guarded_hook` marks the steps for flake8-async).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any, Final, TypeVar

import trio

__all__ = [
    "HOOK_DEADLINE_SECONDS",
    "guarded",
    "guarded_steps",
    "step_of_guarded_hook",
    "within",
]

logger = logging.getLogger(__name__)

#: How long one hook may take before it gives up (and fails closed). Below the 15 s budget
#: newer hosts give ``before_tool_call``, so the answer is ours, not the host's timeout.
HOOK_DEADLINE_SECONDS: Final = 10.0

_T = TypeVar("_T")
_F = TypeVar("_F", bound=Callable[..., Awaitable[Any]])


async def guarded(hook: str, fallback: _T, fn: Callable[..., Awaitable[_T]], *args: object) -> _T:
    """Run a hook's body within :data:`HOOK_DEADLINE_SECONDS`; on any error, ``fallback``.

    The error is logged by type only: its text may carry anything (a URL with a login
    state, a control-plane message). Cancellation is not an error and propagates.

    Args:
        hook: The hook's name, for the log line.
        fallback: What the hook answers when its body failed (fail closed where it matters).
        fn: The body, called as ``fn(*args)``.
        *args: The hook's arguments (``event`` and ``ctx``).
    """
    try:
        with trio.fail_after(HOOK_DEADLINE_SECONDS):
            return await fn(*args)
    except Exception as error:  # noqa: BLE001 - every hook has one answer for any failure
        return await _failed(hook, error, fallback)


async def guarded_steps(
    hook: str, fallback: _T, fn: Callable[..., Awaitable[_T]], *args: object
) -> _T:
    """:func:`guarded` for hot hooks whose steps are usually answered from memory.

    Entering a deadline scope costs about as much as the rest of a ``before_tool_call``
    answered from caches, so the body gets the deadline (``fn(*args, deadline)``) and
    applies it, with :func:`within`, only to the steps that wait. The hook is one
    checkpoint however its steps were answered.
    """
    deadline = trio.current_time() + HOOK_DEADLINE_SECONDS
    try:
        result = await fn(*args, deadline)
    except Exception as error:  # noqa: BLE001 - every hook has one answer for any failure
        return await _failed(hook, error, fallback)
    await trio.lowlevel.checkpoint()
    return result


def step_of_guarded_hook(fn: _F) -> _F:
    """Mark a step of a :func:`guarded_steps` body that may finish without a checkpoint.

    Trio's rule is that an async function checkpoints; a step answered from memory need
    not, because the hook checkpoints once at the end. ``scripts/check`` tells flake8-async
    (``--no-checkpoint-warning-decorators``) that marked functions are exempt; nothing
    changes at run time.
    """
    return fn


async def within(deadline: float, pending: Awaitable[_T]) -> _T:
    """Await ``pending`` (a step that must wait) under the hook's ``deadline``."""
    with trio.fail_at(deadline):
        return await pending


async def _failed(hook: str, error: Exception, fallback: _T) -> _T:
    logger.warning("%s failed (%s)", hook, type(error).__name__)
    await trio.lowlevel.checkpoint()
    return fallback
