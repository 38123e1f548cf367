from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import pytest

from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.queue import FileQueue
from tests.llm_server import ScriptedServer
from tests.natsserver import NatsServer, start_nats


@pytest.fixture(autouse=True)
def _no_syntx_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests build their settings explicitly; an operator's SYNTX_* variables must not leak in."""
    import os

    for name in list(os.environ):
        if name.startswith("SYNTX_"):
            monkeypatch.delenv(name)


@pytest.fixture(autouse=True)
def _no_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tests talk to servers on loopback; no proxy of the machine's may sit in between."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def queue(tmp_path: Path) -> FileQueue:
    """An empty queue with its folders, in this test's directory."""
    files = FileQueue(tmp_path / "queue")
    files.ensure()
    return files


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
async def server() -> AsyncIterator[ScriptedServer]:
    """A scriptable LLM backend on loopback (see tests/llm_server.py)."""
    scripted = ScriptedServer()
    await scripted.start()
    yield scripted
    await scripted.close()


FIGURES = "chaos"  # the name tests/test_chaos.py records its table under


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures a test recorded with ``record_property``, shown after the run whether it passed or not."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, figures in getattr(report, "user_properties", ()):
                if name == FIGURES and getattr(report, "when", None) == "call":
                    terminalreporter.write_sep("-", report.nodeid.split("::")[-1])
                    terminalreporter.write_line(str(figures))
