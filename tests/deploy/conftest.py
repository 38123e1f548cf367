"""What an operator deploys: compose, the cluster, alert rules, the service table against compose."""

from tests.support.running import nats_server, settings, with_nats

__all__ = ["nats_server", "settings", "with_nats"]  # fixtures of this level
