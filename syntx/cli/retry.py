"""``syntx retry [JOB_ID …]``: jobs from error/ back into incoming/ (:mod:`syntx.requeue`), announced."""

from __future__ import annotations

import asyncio
import sys

from shared.config import Settings
from shared.messaging import BusError, JobCreated, shown_url, subjects
from shared.names import clipped, folder_name_max
from shared.queue import job_id_problem
from syntx.cli.asking import connect
from syntx.cli.output import fail, out, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.requeue import requeue


def register(commands: Subparsers) -> None:
    parser = commands.add_parser("retry", help="put jobs from error/ back into incoming/")
    parser.add_argument("job_ids", nargs="*", help="job ids; none: every failed job")
    parser.add_argument("--rejected", action="store_true", help="also retry jobs rejected for a low score")
    runs(parser, run)


def run(call: Invocation) -> int:
    return asyncio.run(retry(call.settings, call.args.job_ids, call.args.rejected))


async def retry(settings: Settings, job_ids: list[str], include_rejected: bool) -> int:
    name_max = folder_name_max(settings.queue_dir)
    for job_id in job_ids:
        if problem := job_id_problem(job_id, name_max):
            return usage(
                f"syntx retry: {clipped(job_id)!r} is not a job id ({problem}); "
                "use the name of error/<job_id>.json"
            )
    created: list[JobCreated] = []
    moved = requeue(
        settings.queue_dir,
        job_ids,
        include_rejected,
        progress=out,
        max_result_bytes=settings.queue.max_result_bytes,
        on_requeued=created.append,
    )
    if job_ids and not moved:
        return fail(
            "syntx retry: none of the named jobs could be re-queued; "
            "`syntx results --status failed` lists the failed ones"
        )
    if created:
        await _announce(settings, created)
    out(f"{moved} job(s) back in incoming/")
    return 0


async def _announce(settings: Settings, created: list[JobCreated]) -> None:
    """Each re-queued job as a ``job.created`` event, as the producer announces its own. Without NATS the
    files are enough: consumers here see them in ``incoming/``, the monitor counts them at its recount."""
    try:
        async with connect(settings) as bus:
            for event in created:
                await bus.emit(subjects.JOB_CREATED, event)
            await bus.flush()
    except (OSError, TimeoutError, BusError):
        url = shown_url(settings.nats.effective_url)
        sys.stderr.write(
            f"syntx retry: NATS at {url} cannot be reached: the {len(created)} re-queued job(s) are in "
            "incoming/ but not announced (the monitor counts them at its next recount)\n"
        )
