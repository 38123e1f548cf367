"""The whole loop: syntx up and the services as processes, chaos runs, end to end; and the learning
benchmark over its ten worlds (half a minute of sampling, too long for the unit level)."""

from tests.support.running import nats_server, settings, with_nats

__all__ = ["nats_server", "settings", "with_nats"]  # fixtures of this level
