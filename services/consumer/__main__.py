"""``python -m services.consumer --wrapper sigma`` (or ``SYNTX_CONSUMER=sigma``)."""

from __future__ import annotations

import argparse
import asyncio
import os

from services.consumer.failpoints import FailpointError, Failpoints
from services.consumer.service import run, service_name
from shared.config import Settings
from shared.service import service_main


def main() -> None:
    parser = argparse.ArgumentParser(prog="python -m services.consumer")
    parser.add_argument("--wrapper", default=os.environ.get("SYNTX_CONSUMER"), help="consumer name in config")
    args = parser.parse_args()
    if not args.wrapper:
        parser.error("name the consumer: --wrapper NAME or SYNTX_CONSUMER=NAME")
    name: str = args.wrapper

    try:
        failpoints = Failpoints.from_environment()
    except FailpointError as exc:
        parser.error(str(exc))

    async def body(settings: Settings, stop: asyncio.Event) -> None:
        await run(settings, stop, name, failpoints)

    service_main(service_name(name), body)


if __name__ == "__main__":
    main()
