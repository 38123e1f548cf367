"""Every level's fixtures: no operator environment or proxy leaks in, a queue, the operator's environment,
loopback LLM servers. A real nats-server per test comes from :mod:`tests.support.running` (the service,
system and deploy levels); the unit level runs none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from shared.config import CONFIG_ENV, DEFAULT_CONFIG
from shared.llm.transport import PROXY_VARIABLES
from shared.queue import FileQueue
from tests.support.consumers import good_answer
from tests.support.harness import free_port
from tests.support.llm_server import HeldServer, Reply, ScriptedServer


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
    for name in PROXY_VARIABLES:
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def queue(tmp_path: Path) -> FileQueue:
    """An empty queue with its folders, in this test's directory."""
    files = FileQueue(tmp_path / "queue")
    files.ensure()
    return files


@pytest.fixture
def environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The operator's environment: the shipped config, a data directory and free ports of this test (a
    `syntx up` running on this machine's default ports must not change what a test sees)."""
    monkeypatch.setenv(CONFIG_ENV, str(DEFAULT_CONFIG))
    monkeypatch.setenv("SYNTX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SYNTX_NATS__EMBEDDED_PORT", str(free_port()))
    monkeypatch.setenv("SYNTX_MONITOR__PORT", str(free_port()))
    return tmp_path / "data"


@pytest.fixture
async def held_backend() -> AsyncIterator[HeldServer]:
    """A loopback LLM answering every job well — while ``open`` (clear it to hold the answers back)."""
    answering = HeldServer(Reply(json={"response": good_answer()}))
    await answering.start()
    yield answering
    answering.open.set()
    await answering.close()


@pytest.fixture
async def server() -> AsyncIterator[ScriptedServer]:
    """A scriptable LLM backend on loopback (see tests/support/llm_server.py)."""
    scripted = ScriptedServer()
    await scripted.start()
    yield scripted
    await scripted.close()


FIGURES = "chaos"  # the name the chaos tests (tests/support/chaos.py) record their tables under


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Figures a test recorded with ``record_property``, shown after the run whether it passed or not."""
    for reports in terminalreporter.stats.values():
        for report in reports:
            for name, figures in getattr(report, "user_properties", ()):
                if name == FIGURES and getattr(report, "when", None) == "call":
                    terminalreporter.write_sep("-", report.nodeid.split("::")[-1])
                    terminalreporter.write_line(str(figures))
