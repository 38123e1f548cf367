"""``syntx up``: the whole system on this machine (:mod:`syntx.supervisor`)."""

from __future__ import annotations

import asyncio

from shared.config import Settings
from syntx import exits
from syntx.cli.output import fail
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.embedded_nats import EmbeddedNatsError
from syntx.holders import InUse, check_port, data_dir_claimed
from syntx.supervisor import Supervisor


def register(commands: Subparsers) -> None:
    up = commands.add_parser(
        "up", help="run the whole system on this machine (embedded NATS unless configured)"
    )
    up.add_argument(
        "--demo", action="store_true", help="layer config/demo.yaml: the loop turns within a minute"
    )
    up.add_argument(
        "--llm",
        choices=["local"],
        help="local: start a llama.cpp server (llm.local) and point every consumer at it",
    )
    up.add_argument(
        "--cluster",
        type=int,
        default=1,
        choices=range(1, 6),
        metavar="N",
        help="embedded NATS as an N-node JetStream cluster (1-5) with two scheduler replicas",
    )
    runs(up, run)


def run(call: Invocation) -> int:
    return asyncio.run(up(call.settings, call.paths, call.args.cluster))


async def up(settings: Settings, paths: list[str], cluster_size: int = 1) -> int:
    try:
        with data_dir_claimed(settings.data_dir):
            _check_ports(settings, cluster_size)
            return await Supervisor(settings, paths, cluster_size).run()
    except InUse as exc:
        return fail(str(exc), exits.IN_USE)
    except (EmbeddedNatsError, TimeoutError) as exc:
        return fail(
            f"syntx up: the embedded nats-server did not start ({exc or 'not ready in time'}); "
            "its last lines are above — free its port or its store directory and start again"
        )


def _check_ports(settings: Settings, cluster_size: int = 1) -> None:
    """Refuse to start beside a process on a port ``syntx up`` would listen on, naming that process."""
    if settings.nats.url is None and not settings.nats.servers:
        for index in range(cluster_size):
            port = settings.nats.embedded_port + index
            check_port("127.0.0.1", port, "embedded NATS", "SYNTX_NATS__EMBEDDED_PORT")
        for index in range(cluster_size if cluster_size > 1 else 0):
            port = settings.up.cluster_route_port + index
            check_port("127.0.0.1", port, "embedded NATS routes", "SYNTX_UP__CLUSTER_ROUTE_PORT")
    check_port(settings.monitor.host, settings.monitor.port, "monitor metrics", "SYNTX_MONITOR__PORT")
