"""Prometheus exposition: request counters, histogram, actor and TIP figures, no secrets."""

from __future__ import annotations

import re

from agent_identity.system import open_identity
from agent_identity.system.metrics import RequestMetrics, _label, render_metrics

from .conftest import World

_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="[^"\n]*"(,[a-z_]+="[^"\n]*")*\})? [0-9.e+-]+$')


def _parse(text: str) -> dict[str, float]:
    samples: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert line.startswith(("# HELP ", "# TYPE ")), line
            continue
        assert _SAMPLE.match(line), line
        name, value = line.rsplit(" ", 1)
        samples[name] = float(value)
    return samples


def test_request_histogram_is_cumulative() -> None:
    metrics = RequestMetrics()
    metrics.observe("token", 200, 0.0001)
    metrics.observe("token", 200, 0.003)
    metrics.observe("tool", 404, 5.0)
    samples = _parse("\n".join(metrics.lines()))
    assert samples['agent_identity_local_requests_total{endpoint="token",status="200"}'] == 2
    assert samples['agent_identity_local_requests_total{endpoint="tool",status="404"}'] == 1
    assert samples['agent_identity_local_request_seconds_bucket{le="0.0005"}'] == 1
    assert samples['agent_identity_local_request_seconds_bucket{le="0.005"}'] == 2
    assert samples['agent_identity_local_request_seconds_bucket{le="1.0"}'] == 2
    assert samples['agent_identity_local_request_seconds_bucket{le="+Inf"}'] == 3
    assert samples["agent_identity_local_request_seconds_count"] == 3


def test_label_values_are_escaped() -> None:
    assert _label('a"b\\c\nd') == 'a\\"b\\\\c\\nd'


async def test_system_metrics_after_a_login(world: World) -> None:
    async with open_identity(world.config(), environ={}) as ident:
        world.late.app = ident.asgi_app
        assert ident.login_flow is not None
        url = await ident.login_flow.start_login("agent:main:main")
        await world.browse(url)
        await ident.tips.get_tip("agent:main:main")
        text = render_metrics(ident.statistics(), RequestMetrics())
        view = await ident.sessions.get("agent:main:main")
    assert view is not None
    assert view.user_token not in text
    samples = _parse(text)
    assert samples["agent_identity_sessions"] == 1
    assert samples["agent_identity_tip_mints_total"] >= 1
    assert samples["agent_identity_tip_cache_hits_total"] >= 1
    assert samples["agent_identity_tip_held_back_total"] == 0  # no outage, no back-off
    assert samples["agent_identity_control_plane_calls_total"] >= 1
    assert samples['agent_identity_actor_handled_total{actor="session_store"}'] >= 1
    restarts = 'agent_identity_child_restarts_total{supervisor="root",child="session_store"}'
    assert samples[restarts] == 0
