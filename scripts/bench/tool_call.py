#!/usr/bin/env python3
"""``before_tool_call`` in process: toolCheck on (decision cached), two bound credentials.

Usage::

    python scripts/bench/tool_call.py            # full: 100k calls, 3 rounds
    python scripts/bench/tool_call.py --quick    # CI: 5k calls, 1 round

A whole running system against the embedded sandbox, as the host tests run it: the sandbox
on loopback, the callback server, ``open_identity`` with the ``agent-identity dev`` config
plus ``authz.toolCheck``. Alice logs in through the provider's real HTML form; her session
fetches the sandbox's ``openai`` API key and a ``demo-m2m`` token (``vault.fetch``) and
binds both (``vault.set_binding``). Then, per round, ``--calls`` times::

    await ident.hooks.before_tool_call(exec event with a fresh toolCallId, ctx)   # timed
    await ident.hooks.after_tool_call(the same call, ctx)                        # releases

Each ``before_tool_call`` takes the hook's fast path: the TIP from the refresher's cache
(``get_tip_nowait``), ``exec`` allowed by the permission checker's cache
(``check_tool_nowait``; CheckPermission is asked once, on the first call), the two bound
credentials leased (``lease_nowait``), all in the hook's task, with no mailbox round trip and
no deadline scope, and returns ``params.env`` with both. The summary counts the messages the
refresher and the vault handled during the timed rounds (``actor_messages``: 0 when the fast
path is what was measured). The first call of a round and a sample of the others are checked
to really carry both values.

Allocations are measured in a separate pass (``--alloc-calls``, tracemalloc slows calls
down): the peak of traced memory above the level before each call (what one call allocates
at most at once), the traced memory still held after the pass (nothing of a call outlives
it: leases are released, no deadline is registered) and the garbage collections per 1000
calls.

Where the time goes (``"kind": "breakdown"`` lines, ``--breakdown-calls`` each): the parts of
a call timed alone in the same running system: decoding the event and context payloads,
``get_tip_nowait``, a cached ``check_tool_nowait``, ``lease_nowait`` plus ``release_nowait``,
and a bare ``trio.lowlevel.checkpoint()`` (one pass of Trio's run loop; the hook is one).
For comparison, what the fast path avoids: one actor hop (``tips.get_tip``, a cache hit)
and the same hop under ``trio.fail_after`` (each hop then registers a deadline with Trio).

Each call is timed by the wall clock and by the thread's CPU time (``cpu_`` figures: the
call never leaves the process, so these are the same minus the time other processes held
the core; the machine is shared).

Output: a setup line, one line per round, a summary line (medians over rounds; targets
``p50 <= 30 us`` and ``p99 <= 100 us``, by the wall clock in ``target_met`` and by CPU time
in ``target_met_cpu``), the breakdown lines and an ``allocations`` line.
Exit status 1 if the run breaks (a call blocked, a credential missing).
"""

from __future__ import annotations

import argparse
import array
import gc
import sys
import tempfile
import time
import tracemalloc
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import httpx
import trio
from _common import emit, emit_setup, latency_figures, median, parse_args, percentile, progress

from agent_identity.actors.tip_messages import TipInfo
from agent_identity.authz import decode_tip_claims
from agent_identity.config import parse_plugin_config
from agent_identity.host.events import BEFORE_TOOL_CALL, decode_context, decode_event
from agent_identity.host.results import BeforeToolCallResult
from agent_identity.sandbox import open_sandbox
from agent_identity.sandbox.browser import submit_login_form
from agent_identity.sandbox.devconfig import DEV_USER, DEV_USER_PASSWORD, dev_plugin_config
from agent_identity.system import Identity, open_identity
from agent_identity.transports.callback import CALLBACK_PATH, DeferredApp, serve_callback_app

SESSION = "agent:main:telegram:direct:42"
CTX = {"sessionKey": SESSION}
BINDINGS = {"openai": "OPENAI_API_KEY", "demo-m2m": "DEMO_M2M_TOKEN"}
TARGET_P50_US = 30.0
TARGET_P99_US = 100.0
FULL = {"calls": 100_000, "rounds": 3, "alloc_calls": 20_000, "breakdown_calls": 20_000}
QUICK = {"calls": 5_000, "rounds": 1, "alloc_calls": 2_000, "breakdown_calls": 1_000}
WARM_UP = 2_000
CHECK_EVERY = 997  # a prime, so the checked calls do not line up with anything periodic

Scope = dict[str, Any]


class RunBrokenError(Exception):
    """The system did not behave as the benchmark needs: the figures would be wrong."""


@asynccontextmanager
async def running_system(data_dir: Path) -> AsyncIterator[Identity]:
    """The sandbox, the callback server and a system with toolCheck on; Alice bound."""
    async with (
        open_sandbox() as sb,
        httpx.AsyncClient(timeout=30) as browser,
        trio.open_nursery() as nursery,
    ):
        late = DeferredApp()
        base: str = await nursery.start(serve_callback_app, late, "127.0.0.1", 0)
        raw = dev_plugin_config(
            sb,
            callback_url=f"{base}{CALLBACK_PATH}",
            data_dir=data_dir,
            overrides={"authz": {"toolCheck": True}},
        )
        async with open_identity(parse_plugin_config(raw), environ={}) as ident:
            late.app = ident.asgi_app
            await log_in_and_bind(ident, browser)
            yield ident
        nursery.cancel_scope.cancel()


async def log_in_and_bind(ident: Identity, browser: httpx.AsyncClient) -> None:
    if ident.login_flow is None:
        raise RunBrokenError("the dev config has no user pool")
    url = await ident.login_flow.start_login(SESSION)
    page = await submit_login_form(browser, url, username=DEV_USER, password=DEV_USER_PASSWORD)
    if page.status_code != 200:
        raise RunBrokenError(f"the login failed with HTTP {page.status_code}")
    tip = await ident.tips.get_tip(SESSION)
    if not isinstance(tip, TipInfo):
        raise RunBrokenError(f"no TIP after the login: {tip}")
    for provider, env_var in BINDINGS.items():
        fetched = await ident.vault.fetch(SESSION, tip.token, provider)
        if not fetched.success:
            raise RunBrokenError(f"fetching {provider} failed: {fetched.message}")
        bound = await ident.vault.set_binding(SESSION, provider, env_var, environ={})
        if not bound.ok:
            raise RunBrokenError(f"binding {provider} failed: {bound.message}")


def event(n: int) -> dict[str, Any]:
    return {
        "toolName": "exec",
        "params": {"command": "ls -la"},
        "runId": "bench",
        "toolCallId": f"c{n}",
    }


def after(n: int) -> dict[str, Any]:
    return {**event(n), "result": {"exitCode": 0}}


def check(result: BeforeToolCallResult | None) -> None:
    """The call ran with both credentials in its env (and was not blocked)."""
    if result is None or result.block or result.params is None:
        raise RunBrokenError(f"the call was not rewritten as expected: {result!r}")
    env = result.params.get("env", {})
    missing = [name for name in BINDINGS.values() if not env.get(name)]
    if missing:
        raise RunBrokenError(f"credentials missing from the env: {missing}")


async def timed_calls(ident: Identity, first: int, count: int) -> tuple[list[float], list[float]]:
    """``count`` calls; the wall-clock and the thread CPU time of each ``before_tool_call``."""
    hooks = ident.hooks
    before, release = hooks.before_tool_call, hooks.after_tool_call
    wall, cpu = time.perf_counter, time.thread_time
    latencies, cpu_times = [0.0] * count, [0.0] * count
    for i in range(count):
        n = first + i
        call = event(n)
        started, started_cpu = wall(), cpu()
        result = await before(call, CTX)
        cpu_times[i] = cpu() - started_cpu
        latencies[i] = wall() - started
        if i % CHECK_EVERY == 0:
            check(result)
        await release(after(n), CTX)
    return latencies, cpu_times


async def breakdown(ident: Identity, count: int) -> list[dict[str, Any]]:
    """The parts of a call, each timed alone ``count`` times (see the module docstring)."""
    tip = await ident.tips.get_tip(SESSION)
    if not isinstance(tip, TipInfo):
        raise RunBrokenError(f"no TIP: {tip}")
    claims = decode_tip_claims(tip.token)
    permission, vault = ident.permission, ident.vault

    async def hop(_: int) -> None:
        await ident.tips.get_tip(SESSION)

    async def hop_with_deadline(_: int) -> None:
        with trio.fail_after(60):
            await ident.tips.get_tip(SESSION)

    async def tip_nowait(_: int) -> None:
        ident.tips.get_tip_nowait(SESSION)

    async def check_tool_nowait(_: int) -> None:
        permission.check_tool_nowait(claims, "exec", session_key=SESSION)

    async def lease_release_nowait(n: int) -> None:
        vault.lease_nowait(SESSION, f"breakdown:{n}")
        vault.release_nowait(f"breakdown:{n}")

    async def checkpoint(_: int) -> None:
        await trio.lowlevel.checkpoint()

    async def decode(n: int) -> None:
        decode_event(BEFORE_TOOL_CALL, event(n))
        decode_context(BEFORE_TOOL_CALL, CTX)

    parts: dict[str, Callable[[int], Awaitable[None]]] = {
        "decode_payloads": decode,
        "tip_nowait": tip_nowait,
        "check_tool_nowait": check_tool_nowait,
        "lease_and_release_nowait": lease_release_nowait,
        "checkpoint": checkpoint,
        "actor_hop_avoided": hop,
        "actor_hop_under_deadline_avoided": hop_with_deadline,
    }
    lines = []
    clock = time.perf_counter
    for name, part in parts.items():
        samples = [0.0] * count
        for n in range(count):
            started = clock()
            await part(n)
            samples[n] = clock() - started
        found = latency_figures(samples, unit="us")
        lines.append({
            "bench": "tool_call", "kind": "breakdown", "part": name, "count": count,
            "p50_us": found["p50_us"], "p99_us": found["p99_us"],
        })  # fmt: skip
    return lines


async def actor_messages(ident: Identity) -> int:
    """Messages the TIP refresher and the vault have handled so far."""
    tips, vault = await ident.tips.statistics(), await ident.vault.statistics()
    return tips.actor.handled + vault.actor.handled


async def allocations(ident: Identity, first: int, count: int) -> dict[str, Any]:
    """Per-call allocation figures under tracemalloc (a separate, slower pass)."""
    hooks = ident.hooks
    # Filled in place: a growing list of ints would itself be traced as retained memory.
    peaks = array.array("q", bytes(8 * count))
    gc.collect()
    collections_before = sum(s["collections"] for s in gc.get_stats())
    tracemalloc.start()
    start_level, _ = tracemalloc.get_traced_memory()
    for i in range(count):
        n = first + i
        level, _ = tracemalloc.get_traced_memory()
        tracemalloc.reset_peak()
        await hooks.before_tool_call(event(n), CTX)
        _, peak = tracemalloc.get_traced_memory()
        peaks[i] = peak - level
        await hooks.after_tool_call(after(n), CTX)
    gc.collect()
    end_level, _ = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    collections = sum(s["collections"] for s in gc.get_stats()) - collections_before
    return {
        "bench": "tool_call",
        "kind": "allocations",
        "calls": count,
        "peak_bytes_per_call_p50": percentile(list(peaks), 0.5),
        "peak_bytes_per_call_p99": percentile(list(peaks), 0.99),
        "retained_bytes_total": end_level - start_level,
        "retained_bytes_per_call": round((end_level - start_level) / count, 2),
        "gc_collections_per_1k_calls": round(collections * 1000 / count, 2),
    }


async def run(args: argparse.Namespace) -> None:
    preset = QUICK if args.quick else FULL
    calls = args.calls or preset["calls"]
    rounds = args.rounds or preset["rounds"]
    alloc_calls = args.alloc_calls if args.alloc_calls is not None else preset["alloc_calls"]
    breakdown_calls = (
        args.breakdown_calls if args.breakdown_calls is not None else preset["breakdown_calls"]
    )
    emit_setup(
        "tool_call", args, calls=calls, rounds=rounds, warm_up=WARM_UP,
        tool="exec", bound_credentials=list(BINDINGS), authz={"toolCheck": True},
        gc_thresholds=list(gc.get_threshold()),
    )  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="tool-call-") as tmp:
        async with running_system(Path(tmp) / "identity") as ident:
            progress(f"logged in and bound {list(BINDINGS)}; warming up")
            await timed_calls(ident, 0, WARM_UP)
            next_id = WARM_UP
            figures = []
            handled_before = await actor_messages(ident)
            for number in range(rounds):
                progress(f"round {number + 1}/{rounds}: {calls} calls")
                samples, cpu_samples = await timed_calls(ident, next_id, calls)
                next_id += calls
                found = {
                    **latency_figures(samples, unit="us"),
                    **latency_figures(cpu_samples, unit="us", prefix="cpu_"),
                }
                figures.append(found)
                emit({"bench": "tool_call", "kind": "round", "round": number, **found})

            def med(key: str) -> float:
                return round(median([float(f[key]) for f in figures]), 2)

            p50, p99, cpu_p50, cpu_p99 = (
                med("p50_us"),
                med("p99_us"),
                med("cpu_p50_us"),
                med("cpu_p99_us"),
            )
            # Minus the statistics asks of actor_messages() itself (one per actor).
            handled = await actor_messages(ident) - handled_before - 2
            stats = ident.permission.statistics()
            emit({
                "bench": "tool_call", "kind": "summary", "calls": calls, "rounds": rounds,
                "p50_us": p50, "p99_us": p99, "p999_us": med("p999_us"),
                "cpu_p50_us": cpu_p50, "cpu_p99_us": cpu_p99,
                "permission_checks": stats.checks, "permission_cache_hits": stats.cache_hits,
                "actor_messages": handled,
                "target_p50_us": TARGET_P50_US, "target_p99_us": TARGET_P99_US,
                "target_met": p50 <= TARGET_P50_US and p99 <= TARGET_P99_US,
                "target_met_cpu": cpu_p50 <= TARGET_P50_US and cpu_p99 <= TARGET_P99_US,
            })  # fmt: skip
            if breakdown_calls:
                progress(f"breakdown: {breakdown_calls} calls per part")
                for line in await breakdown(ident, breakdown_calls):
                    emit(line)
            if alloc_calls:
                progress(f"allocations: {alloc_calls} calls under tracemalloc")
                emit(await allocations(ident, next_id, alloc_calls))
            vault = await ident.vault.statistics()
            if vault.leases_active:
                raise RunBrokenError(f"{vault.leases_active} leases were never released")


def main(argv: list[str] | None = None) -> int:
    def extra(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--calls", type=int, help="timed calls per round")
        parser.add_argument("--alloc-calls", type=int, help="calls under tracemalloc (0: skip)")
        parser.add_argument("--breakdown-calls", type=int, help="calls per part (0: skip)")

    args = parse_args(__doc__, argv, extra=extra)
    trio.run(run, args)  # a broken run raises: a traceback and exit status 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
