"""Prometheus text exposition of the system (``GET /metrics`` on the local server).

:class:`RequestMetrics` counts the local server's requests by endpoint and status and keeps a
latency histogram; :func:`render_metrics` adds a snapshot of the actors (mailbox depth,
handled, restarts), the TIP cache (hits, misses, mints, refreshes, failures), the control
plane client (calls, retries, errors by code) and the session store. Only counts and gauges:
no label ever carries a session key or a token.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from typing import Final

from agent_identity.kernel import ActorStatistics, SupervisorStatistics
from agent_identity.system.identity import SystemStatistics

__all__ = ["LATENCY_BUCKETS", "RequestMetrics", "render_metrics"]

#: Histogram bucket bounds in seconds (local requests are sub-millisecond when cached).
LATENCY_BUCKETS: Final = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1.0)

_PREFIX: Final = "agent_identity"


class RequestMetrics:
    """Request counters and a latency histogram for one HTTP endpoint family."""

    def __init__(self) -> None:
        self.requests: Counter[tuple[str, int]] = Counter()
        self._buckets = [0] * (len(LATENCY_BUCKETS) + 1)
        self._sum = 0.0
        self._count = 0

    def observe(self, endpoint: str, status: int, seconds: float) -> None:
        """Record one answered request (``endpoint`` is a route name, never a raw path)."""
        self.requests[endpoint, status] += 1
        self._sum += seconds
        self._count += 1
        for index, bound in enumerate(LATENCY_BUCKETS):
            if seconds <= bound:
                self._buckets[index] += 1
                return
        self._buckets[-1] += 1

    def lines(self) -> Iterable[str]:
        """The exposition lines of the counters and the histogram."""
        name = f"{_PREFIX}_local_requests_total"
        yield f"# HELP {name} Local identity server requests by endpoint and status."
        yield f"# TYPE {name} counter"
        for (endpoint, status), count in sorted(self.requests.items()):
            yield f'{name}{{endpoint="{endpoint}",status="{status}"}} {count}'
        name = f"{_PREFIX}_local_request_seconds"
        yield f"# HELP {name} Local identity server request latency."
        yield f"# TYPE {name} histogram"
        cumulative = 0
        for bound, count in zip(LATENCY_BUCKETS, self._buckets, strict=False):
            cumulative += count
            yield f'{name}_bucket{{le="{bound}"}} {cumulative}'
        yield f'{name}_bucket{{le="+Inf"}} {self._count}'
        yield f"{name}_sum {self._sum:.6f}"
        yield f"{name}_count {self._count}"


def _label(value: str) -> str:
    """A label value escaped as the text format requires (codes come from remote services)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _metric(name: str, kind: str, help_text: str, samples: Iterable[str]) -> Iterable[str]:
    full = f"{_PREFIX}_{name}"
    yield f"# HELP {full} {help_text}"
    yield f"# TYPE {full} {kind}"
    for sample in samples:
        yield f"{full}{sample}"


def _actors(stats: SystemStatistics) -> list[ActorStatistics]:
    return [
        stats.session_store.actor,
        stats.login_broker,
        stats.tip_refresher.actor,
        stats.credential_vault.actor,
        stats.approval_broker,
    ]


def _restarts(supervisors: Iterable[SupervisorStatistics]) -> Iterable[str]:
    for supervisor in supervisors:
        for child in supervisor.children:
            yield f'{{supervisor="{supervisor.name}",child="{child.id}"}} {child.restarts}'


def render_metrics(stats: SystemStatistics, requests: RequestMetrics | None = None) -> str:
    """The whole exposition (text format 0.0.4), newline-terminated."""
    actors = _actors(stats)
    tips = stats.tip_refresher
    client = stats.identity_client
    out: list[str] = []
    if requests is not None:
        out.extend(requests.lines())
    out.extend(
        _metric(
            "actor_mailbox_depth",
            "gauge",
            "Messages queued per actor.",
            (f'{{actor="{a.name}"}} {a.mailbox_depth}' for a in actors),
        )
    )
    out.extend(
        _metric(
            "actor_handled_total",
            "counter",
            "Messages handled per actor.",
            (f'{{actor="{a.name}"}} {a.handled}' for a in actors),
        )
    )
    out.extend(
        _metric(
            "child_restarts_total",
            "counter",
            "Restarts per supervised child.",
            _restarts((stats.root, stats.services)),
        )
    )
    out.extend(
        _metric("sessions", "gauge", "Logged-in sessions.", [f" {stats.session_store.sessions}"])
    )
    out.extend(_metric("tip_cached", "gauge", "TIPs in the cache.", [f" {tips.cached}"]))
    for name, value, help_text in (
        ("tip_cache_hits_total", tips.hits, "TIP requests answered from the cache."),
        ("tip_cache_misses_total", tips.misses, "TIP requests that needed a mint."),
        ("tip_mints_total", tips.mints, "TIPs minted."),
        ("tip_refreshes_total", tips.refreshes, "TIPs refreshed before expiry."),
        ("tip_failures_total", tips.failures, "Failed TIP mints."),
        (
            "tip_held_back_total",
            tips.held_back,
            "TIP requests answered with the last failure during a back-off.",
        ),
        ("control_plane_calls_total", client.calls, "Identity control-plane calls."),
        ("control_plane_retries_total", client.retries, "Control-plane retries."),
        ("control_plane_failures_total", client.failures, "Control-plane calls that failed."),
    ):
        out.extend(_metric(name, "counter", help_text, [f" {value}"]))
    out.extend(
        _metric(
            "control_plane_errors_total",
            "counter",
            "Failed control-plane attempts by error code.",
            (f'{{code="{_label(code)}"}} {n}' for code, n in sorted(client.errors_by_code.items())),
        )
    )
    return "\n".join(out) + "\n"
