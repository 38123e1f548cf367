"""``python -m benchmarks.budget``: what one job costs, phase by phase, next to the machine's floor.

One job at a time, in this process, through the consumer's own code (``JobProcessor``'s pieces, the
``syntx`` backend on the instant loopback stub, a real nats-server, the queue on disk): claim, the
"finished before?" lookup, read, backend call, parse, score, attempt history, result record, write
result, drop the claim, publish the event, the log line (to a log file and to ``/dev/null`` as stdout).
Per phase: wall and CPU microseconds per job, averaged over ``--jobs``.

The floor is measured in the same run, on the same disk: a bare ``rename`` between two folders, a bare
write (create, write a result-sized file, close), one NATS publish of an event-sized body, and one
HTTP request over a kept-alive loopback socket with nothing in between (no client library). No consumer
can do a job for less than the sum of those. Everything it starts it stops, temp dirs included.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import shutil
import socket
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar
from zoneinfo import ZoneInfo

from benchmarks.procs import Children, start_nats, start_stub
from benchmarks.report import load_average, machine
from benchmarks.workload import WRAPPER, write_jobs_bulk
from services.consumer.failpoints import Failpoints
from services.consumer.processing import Answer, ConsumerContext, JobProcessor, prompt_context, scored_event
from shared.config import BackendSettings, ConsumerSettings, LoggingSettings, NatsSettings, QueueSettings
from shared.config.settings import PROJECT_ROOT
from shared.llm import Completion, make_backend
from shared.messaging import Bus, JobScored, subjects, utc_now
from shared.messaging.connection import Client as NatsClient
from shared.messaging.messages import encode
from shared.queue import Claims, FileQueue, QueueGate, load_history, new_token, scored_status
from shared.queue.claims import ClaimFile
from shared.scoring import load_catalog, parse_response, score_response
from shared.service.logfile import LogFile
from shared.service.logs import ZonedOneLineFormatter

log = logging.getLogger("benchmarks.budget")
job_log = logging.getLogger("benchmarks.budget.job")  # the consumer's per-job line goes here

T = TypeVar("T")
WARMUP_JOBS = 20


@dataclass
class Phases:
    """Microseconds spent per phase (wall and CPU), summed over the measured jobs."""

    wall: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    cpu: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    jobs: int = 0

    @contextmanager
    def timed(self, phase: str) -> Iterator[None]:
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[phase] += (time.perf_counter() - wall) * 1e6
        self.cpu[phase] += (time.process_time() - cpu) * 1e6

    async def timed_async(self, phase: str, step: Callable[[], Awaitable[T]]) -> T:
        with self.timed(phase):
            return await step()


@dataclass(frozen=True)
class Setup:
    queue: FileQueue
    claims: Claims
    processor: JobProcessor
    context: ConsumerContext
    bus: Bus


async def _no_report(_state: object) -> None:
    return None


def _setup(root: Path, nc: NatsClient, stub_url: str) -> Setup:
    queue = FileQueue(root / "queue")
    queue.ensure()
    claims = Claims(queue, new_token())
    catalog = load_catalog([PROJECT_ROOT / "wrappers"])
    wrapper = catalog.wrappers[WRAPPER]
    queue_settings = QueueSettings()
    bus = Bus(nc, NatsSettings())
    context = ConsumerContext(
        name=WRAPPER,
        owner="budget",
        settings=ConsumerSettings(wrapper=WRAPPER),
        queue_settings=queue_settings,
        wrapper=wrapper,
        format=catalog.formats[wrapper.format],
        formats=dict(catalog.formats),
        backend=make_backend(BackendSettings(kind="syntx", url=stub_url), concurrency=1),
        claims=claims,
        bus=bus,
        failpoints=Failpoints(),
        gate=QueueGate(queue, queue_settings.fault_probe, _no_report),
        stop=asyncio.Event(),
    )
    return Setup(queue, claims, JobProcessor(context), context, bus)


def _as_consumer(record: logging.LogRecord) -> bool:
    record.service = f"consumer.{WRAPPER}"  # what the service's filter adds for the formatter
    return True


def _log_to(logs: Path) -> None:
    """The consumer's handlers: its log file and stdout (here ``/dev/null``), its formatter."""
    settings = LoggingSettings()
    formatter = ZonedOneLineFormatter(ZoneInfo("UTC"), settings.max_message_chars)
    stdout = open(os.devnull, "w", encoding="utf-8")  # noqa: SIM115 - closed with the handler
    handlers: list[logging.Handler] = [
        logging.StreamHandler(stdout),
        LogFile(str(logs / "consumer.log"), max_bytes=settings.max_bytes, backups=settings.backups),
    ]
    for handler in handlers:
        handler.setFormatter(formatter)
        handler.addFilter(_as_consumer)
        job_log.addHandler(handler)
    job_log.propagate = False
    job_log.setLevel(logging.INFO)


async def one_job(setup: Setup, job_id: str, phases: Phases) -> None:
    """The consumer's path for one job that is answered and filed, each phase timed."""
    ctx, queue, processor = setup.context, setup.queue, setup.processor
    timed = phases.timed
    with timed("claim"):
        claim = setup.claims.take(job_id)
        assert isinstance(claim, ClaimFile)
        started, clock = utc_now(), time.monotonic()
    with timed("lookup: finished before?"):
        assert queue.result_path(job_id) is None
    with timed("read job"):
        job = setup.claims.read_job(claim, ctx.settings.max_job_bytes, ctx.settings.max_header_bytes)

    async def call() -> Completion:
        return await ctx.backend.complete(
            ctx.wrapper.render(job.prompt),
            expected_headers=ctx.format.header_lines(),
            context=prompt_context(job),
        )

    completion = await phases.timed_async("backend call", call)
    with timed("parse"):
        parsed = parse_response(completion.text, ctx.formats, expected=ctx.format.name)
    with timed("score"):
        score = score_response(
            completion.text, parsed, ctx.format, job.prompt, scorer=ctx.settings.scorer, wrapper=ctx.wrapper
        )
    with timed("attempt history"):
        history = load_history(queue, job_id).attempts
    with timed("result record"):
        answer = Answer(completion, parsed, score)
        status, reason = scored_status(score.total, ctx.settings.threshold)
        attempt = processor._attempt(len(history) + 1, started, "answered", completion.duration_s)
        result = processor._result(
            job_id,
            status,
            reason,
            job=job,
            attempts=[*history, attempt],
            clock=clock,
            answer=answer,
        )
        record = result.encoded()
    with timed("write result"):
        assert queue.write_result(result.folder, job_id, record, fsync=ctx.queue_settings.fsync)
    with timed("drop claim"):
        setup.claims.forget(claim)
    event = scored_event(ctx, job, answer, result, attempt.number)
    await phases.timed_async("publish event", lambda: setup.bus.emit(subjects.JOB_SCORED, event))
    with timed("log line"):
        job_log.info("job %s %s: score %d (%s)", job_id, status, score.total, reason)
    phases.jobs += 1


async def floor(root: Path, nc: NatsClient, port: int, jobs: int, record: bytes, event: bytes) -> Phases:
    """The bare operations a job cannot do without, ``jobs`` times each."""
    phases = Phases(jobs=jobs)
    here, there = root / "floor-a", root / "floor-b"
    for folder in (here, there):
        folder.mkdir()
    for number in range(jobs):
        (here / f"{number}.txt").write_bytes(b"x" * 400)
    for number in range(jobs):
        with phases.timed("rename"):
            os.rename(here / f"{number}.txt", there / f"{number}.txt")
    for number in range(jobs):
        with phases.timed("write a result-sized file"):
            handle = os.open(there / f"{number}.json", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
            os.write(handle, record)
            os.close(handle)
    for _ in range(jobs):
        await phases.timed_async("NATS publish", lambda: nc.publish("budget.floor", event))
    await phases.timed_async("NATS publish", nc.flush)
    with socket.create_connection(("127.0.0.1", port)) as sock:
        request = _raw_request(port)
        for _ in range(jobs):
            with phases.timed("loopback HTTP request (raw socket)"):
                _round_trip(sock, request)
    return phases


def _raw_request(port: int) -> bytes:
    body = b'{"prompt": "' + b"x" * 2000 + b'"}'
    head = f"POST /api/chat HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: application/json\r\n"
    return head.encode() + f"Content-Length: {len(body)}\r\n\r\n".encode() + body


def _round_trip(sock: socket.socket, request: bytes) -> None:
    sock.sendall(request)
    data = b""
    while b"\r\n\r\n" not in data:
        data += sock.recv(65536)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(head.lower().split(b"content-length:")[1].split(b"\r\n")[0])
    while len(body) < length:
        body += sock.recv(65536)


async def run(workdir: Path, children: Children, jobs: int) -> tuple[Phases, Phases]:
    nats_url = start_nats(children, workdir)
    _stub, port = start_stub(children, workdir, 0.0)
    nc = NatsClient()
    await nc.connect(nats_url)
    _log_to(workdir)
    setup = _setup(workdir / "consumer", nc, f"http://127.0.0.1:{port}")
    try:
        ids = sorted(write_jobs_bulk(setup.queue.root, WARMUP_JOBS + jobs))
        warm = Phases()
        for job_id in ids[:WARMUP_JOBS]:
            await one_job(setup, job_id, warm)
        phases = Phases()
        for job_id in ids[WARMUP_JOBS:]:
            await one_job(setup, job_id, phases)
        record = next(iter(setup.queue.result_files("processed"))).read_bytes()
        bare = await floor(workdir, nc, port, jobs, record, _sample_event())
    finally:
        await setup.context.backend.aclose()
        await nc.close()
    return phases, bare


def _sample_event() -> bytes:
    """An event of the size the consumer publishes per job."""
    event = JobScored(
        job_id="20261207T000000000000Z-000000",
        wrapper=WRAPPER,
        backend="syntx",
        model="bench",
        score=99,
        threshold=90,
        status="passed",
        format="syntex_system",
        llm_seconds=0.001,
        total_seconds=0.002,
        attempt=1,
        scorer="syntx-2",
        topic="Klimawandel",
        category="gesellschaft",
        style="akademisch",
        language="de",
        generation=1,
    )
    return encode(event)


def render(phases: Phases, bare: Phases, about: str) -> str:
    def rows(measured: Phases) -> list[str]:
        total_cpu = sum(measured.cpu.values())
        lines = []
        for phase in measured.wall:
            wall, cpu = measured.wall[phase] / measured.jobs, measured.cpu[phase] / measured.jobs
            lines.append(f"| {phase} | {wall:,.1f} | {cpu:,.1f} | {measured.cpu[phase] / total_cpu:.0%} |")
        wall_sum = sum(measured.wall.values()) / measured.jobs
        lines.append(f"| **sum** | **{wall_sum:,.1f}** | **{total_cpu / measured.jobs:,.1f}** | |")
        return lines

    job_cpu = sum(phases.cpu.values()) / phases.jobs
    floor_cpu = sum(bare.cpu.values()) / bare.jobs
    header = ["| phase | wall µs per job | CPU µs per job | share of CPU |", "|---|---:|---:|---:|"]
    out = [f"One job at a time, {phases.jobs} jobs:", "", *header, *rows(phases), ""]
    out += [f"The floor on this machine, same run, {bare.jobs} of each:", "", *header, *rows(bare), ""]
    out.append(
        f"A job costs {job_cpu:,.0f} µs of CPU, {job_cpu / floor_cpu:.1f}× the floor's {floor_cpu:,.0f} µs: "
        f"at most {1e6 / job_cpu:,.0f} jobs/s on one core (the floor alone: {1e6 / floor_cpu:,.0f})."
    )
    return "\n".join(out) + "\n\n" + about + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.budget", description=__doc__.split("\n")[0])
    parser.add_argument("--jobs", type=int, default=2000, help="measured jobs (and floor repetitions)")
    parser.add_argument(
        "--dir", type=Path, default=None, help="where the temp dir goes (default: system tmp)"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    load_at_start = load_average()
    workdir = Path(tempfile.mkdtemp(prefix="syntx-budget-", dir=args.dir))
    children = Children()
    try:
        phases, bare = asyncio.run(run(workdir, children, args.jobs))
    except KeyboardInterrupt:
        return 130
    finally:
        children.close()
        shutil.rmtree(workdir, ignore_errors=True)
    sys.stdout.write(render(phases, bare, machine(workdir.parent, load_at_start)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
