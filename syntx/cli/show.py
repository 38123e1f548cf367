"""``syntx show JOB_ID``: one job's result: prompt, answer, score breakdown with reasons, attempts."""

from __future__ import annotations

from shared.config import Settings
from shared.names import clipped, folder_name_max
from shared.queue import INCOMING, PROCESSING, FileQueue, job_id_problem
from syntx import exits, resultview
from syntx.cli.output import fail, out, usage
from syntx.cli.parser import Invocation, Subparsers, runs


def register(commands: Subparsers) -> None:
    parser = commands.add_parser(
        "show", help="one job: prompt, answer, score breakdown with reasons, attempts"
    )
    parser.add_argument("job_id")
    parser.add_argument("--json", action="store_true", help="the whole result record")
    runs(parser, run)


def run(call: Invocation) -> int:
    return show(call.settings, call.args.job_id, call.args.json)


def show(settings: Settings, job_id: str, as_json: bool) -> int:
    if problem := job_id_problem(job_id, folder_name_max(settings.queue_dir)):
        return usage(
            f"syntx show: {clipped(job_id)!r} is not a job id ({problem}); `syntx results` lists them"
        )
    queue = FileQueue(settings.queue_dir)
    path = queue.result_path(job_id)
    if path is None:
        return fail(_not_yet(queue, job_id))
    result = resultview.read_result(path, settings.queue.max_result_bytes)
    if result is None:
        return fail(f"syntx show: {path} is not a readable result; look at the file itself")
    item = resultview.Found(path, result)
    out(resultview.as_json(item) if as_json else resultview.details(path, result, settings.zone))
    return exits.OK


def _not_yet(queue: FileQueue, job_id: str) -> str:
    """Why a job has no result: still waiting or in work, or unknown."""
    for folder in (INCOMING, PROCESSING):
        if queue.job_path(folder, job_id).exists():
            return f"syntx show: {job_id} has no result yet: it is in {folder}/"
    return (
        f"syntx show: no result for {job_id} in processed/, error/ or the archive; `syntx results` lists them"
    )
