"""``syntx health --service NAME``: the container healthcheck, against a real NATS and real heartbeats."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from shared.config import Settings, load_settings
from shared.messaging import connect
from shared.service import presence
from tests.support.cli import syntx
from tests.support.harness import free_port
from tests.support.natsserver import NatsServer, start_nats

USER, PASSWORD = "syntx", "s3cret-for-this-test"


@pytest.fixture
def locked_nats(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "jetstream-locked", auth=(USER, PASSWORD))
    try:
        yield server
    finally:
        server.stop()


@asynccontextmanager
async def announced(settings: Settings, service: str) -> AsyncIterator[None]:
    """A service's presence, as every service runs it: a heartbeat now, on a period and on each ping."""
    async with (
        connect(settings.nats, name=service) as bus,
        presence(bus, service, settings.heartbeat_s),
    ):
        yield


async def health(*argv: str) -> int | str | None:
    async with asyncio.timeout(15):
        return await asyncio.to_thread(syntx, "health", *argv)


async def test_a_running_service_is_healthy(with_nats: Settings, capsys: pytest.CaptureFixture[str]) -> None:
    async with announced(with_nats, "consumer.sigma"):
        assert await health("--service", "consumer.sigma") == 0
    assert capsys.readouterr().err == ""


async def test_another_service_does_not_answer_for_the_one_asked(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with announced(with_nats, "scheduler"):
        assert await health("--service", "consumer.sigma", "--wait", "0.5") == 1
    assert capsys.readouterr().err == (
        f"syntx health: no heartbeat from consumer.sigma on {socket.gethostname()} within 0.5 s"
        f" via {with_nats.nats.url}\n"
    )


async def test_a_stopped_service_is_unhealthy(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    async with announced(with_nats, "producer"):
        assert await health("--service", "producer") == 0
    assert await health("--service", "producer", "--wait", "0.5", "--any-host") == 1
    assert "syntx health: no heartbeat from producer within 0.5 s" in capsys.readouterr().err


async def test_an_unknown_service_is_a_usage_error(
    with_nats: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    assert await health("--service", "consumer.nosuch") == 2
    err = capsys.readouterr().err
    assert err.startswith("syntx health: unknown service 'consumer.nosuch'; name one of: scheduler,")
    assert err.count("\n") == 1
    assert await health("--service", "consumer.sigam") == 2
    assert "unknown service 'consumer.sigam' (did you mean 'consumer.sigma'?)" in capsys.readouterr().err


async def test_without_nats_one_line_and_exit_3(
    environment: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    url = f"nats://127.0.0.1:{free_port()}"
    monkeypatch.setenv("SYNTX_NATS__URL", url)
    assert await health("--service", "monitor", "--wait", "1") == 3
    captured = capsys.readouterr()
    assert captured.err.startswith(f"syntx health: cannot reach NATS at {url} (")
    assert captured.err.count("\n") == 1 and captured.out == ""


async def test_services_and_the_check_use_the_nats_credentials(
    environment: Path,
    locked_nats: NatsServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("SYNTX_NATS__URL", locked_nats.url)
    monkeypatch.setenv("SYNTX_NATS__USER", USER)
    monkeypatch.setenv("SYNTX_NATS__PASSWORD", PASSWORD)
    settings = load_settings()
    async with announced(settings, "cleanup"):
        assert await health("--service", "cleanup") == 0
        monkeypatch.setenv("SYNTX_NATS__PASSWORD", "wrong")
        assert await health("--service", "cleanup", "--wait", "1") == 3
    err = capsys.readouterr().err
    assert err.startswith(f"syntx health: cannot reach NATS at {locked_nats.url} (")
    assert PASSWORD not in err and "wrong" not in err
