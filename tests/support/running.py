"""Fixtures of the levels that run a real nats-server per test (service, system, deploy): the server on a
random port, settings pointed at it, the operator's environment pointed at it. Their conftest imports
them."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG, Settings, load_settings
from tests.support.natsserver import NatsServer, start_nats


@pytest.fixture
def nats_server(tmp_path: Path) -> Iterator[NatsServer]:
    server = start_nats(tmp_path / "jetstream")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def settings(tmp_path: Path, nats_server: NatsServer) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        monitor={"host": "127.0.0.1", "port": 0},
    )


@pytest.fixture
def with_nats(environment: Path, nats_server: NatsServer, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """The operator's environment pointed at this test's nats-server, and the settings it loads."""
    monkeypatch.setenv("SYNTX_NATS__URL", nats_server.url)
    return load_settings()
