"""Cluster settings, the cluster's command lines and the overlap policy of a schedule's runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG, ConfigError, Overlap, load_settings
from shared.messaging import OverlapOutcome, Tick
from shared.messaging.overlap import OverlapGate
from syntx.nats_cluster import plan_cluster


@pytest.mark.parametrize(
    "value",
    ["nats://a:4222,nats://b:4222", " nats://a:4222 , nats://b:4222 ", '["nats://a:4222", "nats://b:4222"]'],
)
def test_servers_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("SYNTX_NATS__SERVERS", value)
    assert load_settings([DEFAULT_CONFIG]).nats.effective_servers == ["nats://a:4222", "nats://b:4222"]


def test_servers_beat_the_url_which_beats_the_embedded_server() -> None:
    both = load_settings([DEFAULT_CONFIG], nats={"url": "nats://u:1", "servers": ["nats://s:2"]})
    assert both.nats.effective_servers == ["nats://s:2"] and both.nats.effective_url == "nats://s:2"
    url = load_settings([DEFAULT_CONFIG], nats={"url": "nats://u:1"})
    assert url.nats.effective_servers == ["nats://u:1"]
    embedded = load_settings([DEFAULT_CONFIG], nats={"embedded_port": 4333})
    assert embedded.nats.effective_servers == ["nats://127.0.0.1:4333"]


def test_stream_replicas_are_bounded() -> None:
    with pytest.raises(ConfigError, match="stream_replicas"):
        load_settings([DEFAULT_CONFIG], nats={"stream_replicas": 6})


def test_overlap_defaults_to_skip_for_consumers_and_is_configurable() -> None:
    settings = load_settings(
        [DEFAULT_CONFIG], schedules={"producer": {"cron": "@every 5s", "overlap": "allow"}}
    )
    assert settings.overlap("consumer.sigma") == "skip"
    assert settings.overlap("cleanup") == "queue_one"
    assert settings.overlap("producer") == "allow"
    with pytest.raises(ConfigError, match="overlap"):
        load_settings([DEFAULT_CONFIG], schedules={"producer": {"cron": "@every 5s", "overlap": "sometimes"}})


def test_every_node_routes_to_the_others(tmp_path: Path) -> None:
    plan = plan_cluster(tmp_path, [4222, 4223, 4224], [6222, 6223, 6224])
    assert plan.servers == ["nats://127.0.0.1:4222", "nats://127.0.0.1:4223", "nats://127.0.0.1:4224"]
    first = plan.arguments(plan.nodes[0])
    assert first[first.index("-n") + 1] == "syntx-1" and first[first.index("-sd") + 1] == str(
        tmp_path / "syntx-1"
    )
    assert first[first.index("--cluster") + 1] == "nats://127.0.0.1:6222"
    assert first[first.index("--routes") + 1] == "nats://127.0.0.1:6223,nats://127.0.0.1:6224"
    assert len({node.store_dir for node in plan.nodes}) == 3
    with pytest.raises(ValueError):
        plan_cluster(tmp_path, [4222], [])


class Runs:
    """Runs that last until the test lets them end."""

    def __init__(self) -> None:
        self.started: list[int] = []
        self.release = asyncio.Event()
        self.reports: list[OverlapOutcome] = []

    async def run(self, tick: Tick) -> None:
        self.started.append(tick.batch or 0)
        await self.release.wait()

    def report(self, _schedule: str, outcome: OverlapOutcome) -> None:
        self.reports.append(outcome)


@pytest.mark.parametrize(
    ("policy", "started", "reports"),
    [
        ("skip", [1, 4], ["skipped", "skipped"]),
        ("queue_one", [1, 2, 4], ["queued", "skipped"]),
        ("allow", [1, 2, 3, 4], ["overlapped", "overlapped"]),
    ],
)
async def test_a_tick_during_a_run_follows_the_policy(
    policy: Overlap, started: list[int], reports: list[OverlapOutcome]
) -> None:
    runs = Runs()
    gate = OverlapGate("consumer.sigma", policy, runs.run, runs.report)
    for batch in (1, 2, 3):  # 1 starts; 2 and 3 arrive while it runs
        gate.offer(Tick(batch=batch))
        await asyncio.sleep(0)  # let a started run begin
    runs.release.set()
    async with asyncio.timeout(5):
        await gate.wait()
    gate.offer(Tick(batch=4))  # nothing runs: starts at once
    async with asyncio.timeout(5):
        await gate.wait()
    assert runs.started == started and runs.reports == reports
