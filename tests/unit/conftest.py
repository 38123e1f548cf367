"""One package in this process: no nats-server, no child process of ours. A test that needs either belongs
under tests/service/ or tests/system/; starting a nats-server here fails at once."""

from __future__ import annotations

from typing import NoReturn

import pytest

from syntx import embedded_nats
from tests.support import natsserver


@pytest.fixture(autouse=True)
def _no_nats_server(monkeypatch: pytest.MonkeyPatch) -> None:
    def refused(*_args: object, **_kwargs: object) -> NoReturn:
        raise AssertionError("a unit test starts no nats-server: move it to tests/service/ or tests/system/")

    monkeypatch.setattr(natsserver, "nats_server_binary", refused)  # every server the tests start
    monkeypatch.setattr(embedded_nats, "nats_server_binary", refused)  # syntx up's own
