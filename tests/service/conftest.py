"""One service in this process against a real nats-server per test (tests/support/running.py)."""

from tests.support.running import nats_server, settings, with_nats

__all__ = ["nats_server", "settings", "with_nats"]  # fixtures of this level
