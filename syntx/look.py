"""The commands that look at a running or stopped system: ``logs``, ``results``, ``show``,
``status --watch``. Each returns the process exit code."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from datetime import UTC, datetime

from shared.config import Settings
from shared.names import clipped, folder_name_max
from shared.queue import INCOMING, PROCESSING, FileQueue, job_id_problem
from shared.service import service_names
from syntx import exits, logview, resultview
from syntx.commands import _table, out, status
from syntx.since import BadSince, since_moment
from syntx.suggest import unknown

CLEAR_SCREEN = "\x1b[H\x1b[2J"


def _since(settings: Settings, text: str | None) -> datetime | None:
    return None if text is None else since_moment(text, datetime.now(UTC), settings.zone)


def _refuse(message: str, code: int = exits.USAGE) -> int:
    sys.stderr.write(message + "\n")
    return code


def logs(
    settings: Settings, wanted: list[str], follow: bool, since_text: str | None, count: int | None = None
) -> int:
    """All lines, or the last ``count``; ``-f`` alone starts with the last :data:`logview.FOLLOW_TAIL`."""
    try:
        since = _since(settings, since_text)
    except BadSince as exc:
        return _refuse(f"syntx logs: {exc}")
    if count is not None and count < 0:
        return _refuse(f"syntx logs: --tail {count} is negative; give 0 or more lines")
    logs_dir = settings.logs_dir
    known = logview.known_services(logs_dir, service_names(settings.consumers))
    if strangers := [name for name in wanted if name not in known]:
        return _refuse(f"syntx logs: {unknown('service', strangers[0], known)}")
    services = [name for name in (wanted or known) if logview.log_files(logs_dir, name)]
    if not services:
        hint = f"syntx logs: no log files in {logs_dir} yet; start the system with `syntx up`"
        return _refuse(hint, exits.NOTHING_DONE)
    if not follow:
        logview.show(logs_dir, services, since, count)
        return exits.OK
    if count is None and since is None:
        count = logview.FOLLOW_TAIL
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how follow mode ends
        logview.follow(logs_dir, services, since, count)
    return exits.OK


def results(
    settings: Settings,
    statuses: list[str],
    wrapper: str | None,
    since_text: str | None,
    limit: int,
    as_json: bool,
) -> int:
    if limit < 1:
        return _refuse(f"syntx results: --limit {limit} is too small; give 1 or more")
    if wrapper is not None and wrapper not in settings.consumers:
        return _refuse(f"syntx results: {unknown('consumer', wrapper, sorted(settings.consumers))}")
    try:
        since = _since(settings, since_text)
    except BadSince as exc:
        return _refuse(f"syntx results: {exc}")
    queue = FileQueue(settings.queue_dir)
    wanted = resultview.Wanted(frozenset(statuses), wrapper, since)
    found, unreadable = resultview.find(queue, wanted, limit, settings.queue.max_result_bytes)
    if unreadable:
        sys.stderr.write(f"syntx results: {unreadable} file(s) that are not results skipped\n")
    if as_json:
        out(json.dumps([resultview.summary(item) for item in found], indent=2, ensure_ascii=False))
    elif found:
        header = ["job", "status", "score", "wrapper", "finished", "reason"]
        out(_table(header, [resultview.row(item, settings.zone) for item in found]))
    else:
        out("no results match")
    return exits.OK


def show(settings: Settings, job_id: str, as_json: bool) -> int:
    if problem := job_id_problem(job_id, folder_name_max(settings.queue_dir)):
        return _refuse(
            f"syntx show: {clipped(job_id)!r} is not a job id ({problem}); `syntx results` lists them"
        )
    queue = FileQueue(settings.queue_dir)
    path = queue.result_path(job_id)
    if path is None:
        for folder in (INCOMING, PROCESSING):
            if queue.job_path(folder, job_id).exists():
                waiting = f"syntx show: {job_id} has no result yet: it is in {folder}/"
                return _refuse(waiting, exits.NOTHING_DONE)
        return _refuse(
            f"syntx show: no result for {job_id} in processed/, error/ or the archive; "
            "`syntx results` lists them",
            exits.NOTHING_DONE,
        )
    result = resultview.read_result(path, settings.queue.max_result_bytes)
    if result is None:
        broken = f"syntx show: {path} is not a readable result; look at the file itself"
        return _refuse(broken, exits.NOTHING_DONE)
    item = resultview.Found(path, result)
    out(resultview.as_json(item) if as_json else resultview.details(path, result, settings.zone))
    return exits.OK


def watch_status(settings: Settings, every_s: float, exact: bool) -> int:
    """``syntx status`` again every ``every_s`` until Ctrl-C (exit 0); an unreachable system is shown as
    such and asked again."""
    if every_s <= 0:
        return _refuse(f"syntx status: --watch {every_s:g} is too short; give seconds above 0")
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how watching ends
        asyncio.run(_watch(settings, every_s, exact))
    return exits.OK


async def _watch(settings: Settings, every_s: float, exact: bool) -> None:
    while True:
        if sys.stdout.isatty():
            sys.stdout.write(CLEAR_SCREEN)
        out(f"every {every_s:g}s, Ctrl-C ends — {datetime.now(settings.zone):%Y-%m-%d %H:%M:%S %z}")
        await status(settings, as_json=False, exact=exact)
        sys.stdout.flush()
        await asyncio.sleep(every_s)  # a refresh period, not a wait for an event
