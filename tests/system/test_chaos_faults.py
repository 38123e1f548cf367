"""Chaos of the machine (marked ``chaos``; seeded, about two minutes): the whole loop under ``syntx up`` —
the configuration of tests/system/test_chaos.py, two watching consumer processes per wrapper — with its data
directory (queue, logs, the JetStream store) on a tmpfs, while five faults come one after another in an
order the seed shuffles:

- **full disk**: the tmpfs filled to its last byte for ``FULL_DISK_S``; a consumer SIGKILLed meanwhile;
- **unwritable results**: ``processed/`` and ``error/`` immutable (``chattr +i``) for three leases; a
  consumer SIGKILLed meanwhile;
- **NATS paused**: the embedded nats-server stopped (SIGSTOP) for 30 s, then resumed;
- **flood**: 100,000 job files moved into ``incoming/`` (written beside the queue first, as the README
  asks of a script) and left there ``FLOOD_HOLD_S``; then the ones still waiting are taken out again
  (into ``withdrawn/``, beside the queue). Four consumers of two offline calls of 0.2 s file at most 40
  jobs a second: all 100,000 would take over 40 minutes, far beyond the suite's budget. So every flood
  job ends with exactly one result or, unclaimed and untouched, in ``withdrawn/`` — both counted over
  the folders;
- **hostile publisher**: malformed bodies (empty, random bytes, nested 60 deep, a 5,000-digit number, a
  70,000-character field, a ``../`` job id, over the body limit, JSON of the wrong kind, another
  subject's message) on every subject under ``syntx.>`` — each request answered with an error — and
  files with hostile names dropped into ``incoming/`` (a name of ``0xff`` bytes, a 240-character stem,
  control characters, a backslash, a symlink, a FIFO, a folder).

While a fault lasts, the test writes ``FEED_BATCH`` jobs into ``incoming/`` every ``FEED_EVERY_S`` (a
script of an operator's; a write the full disk refuses is counted, not retried). After it ends: the
seconds to the next result filed, to the next tick a service takes up, and to the loop turning again —
every stored tick taken, the queue drained, a producer tick's jobs scored. Before the next fault, every
tick is taken, so a producer run never overlaps a flood (whose notifications the test may lose).

Jobs in: the jobs written at the start and during the faults, the flood, and every job file the producer
moved into ``incoming/`` (file notifications). At the end, counted over the folders: each has exactly one
result or — a flood job — lies unanswered in ``withdrawn/`` (a withdrawn one with a result was answered
by a consumer too slow to renew its claim in time: the claim was taken over, and the file back in
``incoming/`` was a leftover its next claim drops); none is left in ``incoming/`` or ``processing/``, no
``.part`` in ``.tmp/``, and ``quarantine/`` holds the hostile names and nothing else. No service restarted
but the ones SIGKILLed, no traceback. A fault this machine cannot make (no mount, no chattr) is left out
and the test reports itself skipped with the reason, after checking the others.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from shared.config import NatsSettings
from shared.messaging import Bus, connect, encode, message_problem, subjects
from shared.messaging.bodies import BODY_MAX_BYTES
from shared.messaging.messages import EVENT_TYPES, REQUEST_TYPES
from shared.queue import (
    ARCHIVE,
    ERROR,
    INCOMING,
    PROCESSED,
    QUARANTINE,
    QUARANTINE_NOTE_SUFFIX,
    TMP,
    FileQueue,
    JobMeta,
    QueueFault,
)
from shared.service_table import INSTANCE_MARK
from shared.timing import set_within
from shared.watch import watching
from tests.support.chaos import (
    FIGURES,
    LEASE_S,
    LOG_FINDINGS,
    NATS,
    SEED,
    SERVICES,
    TICK_TAKEN,
    Arrivals,
    Tally,
    Ticker,
    Up,
    chaos_config,
    environment,
    said,
    syntx_up,
    turn,
)
from tests.support.consumers import add_jobs
from tests.support.diskfaults import fill, immutable, immutable_problem, tmpfs_if_permitted
from tests.support.harness import behind_the_bus, flood
from tests.support.messages import valid_messages
from tests.support.stopped import paused

pytestmark = pytest.mark.chaos

DISK_BYTES = 640 * 1024 * 1024  # the tmpfs: the flood's 100,000 files take a page (4 KiB) each
JOBS_AT_START = 200
FEED_BATCH = 8  # jobs written into incoming/ every FEED_EVERY_S while a fault lasts: 16 a second,
FEED_EVERY_S = 0.5  # well below what the consumers file (40 a second), so a backlog is the fault's doing
FULL_DISK_S = 10.0  # longer than two leases: claims of a killed consumer expire meanwhile
UNWRITABLE_S = 3 * LEASE_S  # as the row: the result folders unwritable for three leases
NATS_PAUSE_S = 30.0
FLOOD_FILES = 100_000
FLOOD = "100,000-file flood"  # the fault whose notifications the test may lose
FLOOD_HOLD_S = 10.0  # the flood waits in incoming/ this long while the loop works through it
HOSTILE_ROUNDS = 10  # every hostile body on every subject, this many times
TURN_S = 120.0  # the longest the loop may take to turn after a fault (a full backlog included)
CONSUMERS = tuple(service for service in SERVICES if service.startswith("consumer."))
# a consumer's instances share its schedule: consumer.sigma and consumer.sigma-2 tick on consumer.sigma
CONSUMER_SCHEDULES = tuple(dict.fromkeys(service.partition(INSTANCE_MARK)[0] for service in CONSUMERS))
WITHDRAWN = "withdrawn"  # beside the queue: flood files taken out of incoming/ again
HOSTILE_NAMES: tuple[bytes, ...] = (
    b"\xff" * 100 + b".txt",  # not UTF-8; escaped, its quarantine name is 300+ characters
    b"a" * 240 + b".txt",  # a stem longer than a job id may be
    b"line\nbreak.txt",
    b"escape\x1b[31m.txt",
    b"back\\slash.txt",
)
HOSTILE_KINDS = ("symlink.txt", "fifo.txt", "folder.txt")  # not regular files
FAULT_LINES = {  # what the services said about the faults, counted over the output of syntx up
    "queue closed": "the queue cannot be written",
    "queue opened": "the queue can be written again",
    "malformed dropped": "dropping malformed message",
    "logging errors": "--- Logging error ---",
    "nats-server restarted (its store failed)": "restarting the embedded nats-server",
}

SAID = {what: marker for what, marker in LOG_FINDINGS.items() if what != "services restarted"} | FAULT_LINES


# -- the run --------------------------------------------------------------------------------------


@dataclass
class Fault:
    """One fault of the schedule and what the loop did about it."""

    name: str
    started: float = 0.0
    ended: float = 0.0  # the fault was lifted
    filed: int = 0  # results filed while it lasted
    next_result_s: float | None = None
    next_tick_s: float | None = None
    turned_s: float | None = None
    killed: list[str] = field(default_factory=list)
    note: str = ""


@dataclass
class Run:
    seed: int
    up: Up
    queue: FileQueue
    arrivals: Arrivals
    ticker: Ticker
    bus: Bus
    rng: random.Random
    disk: Path | None  # the tmpfs; None: none could be mounted (see skipped)
    withdrawn_dir: Path
    fed: set[str] = field(default_factory=set)
    unfed: int = 0  # jobs the feeding script could not write (a full disk)
    flood: set[str] = field(default_factory=set)
    withdrawn: set[str] = field(default_factory=set)
    hostile_stems: set[str] = field(default_factory=set)
    requests: list[bool] = field(default_factory=list)  # each hostile request: answered with an error
    flood_window: tuple[float, float] = (0.0, 0.0)  # notifications may be lost only within
    skipped: dict[str, str] = field(default_factory=dict)  # fault -> why it cannot be made here
    faults: list[Fault] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def kill_a_consumer(self, fault: Fault) -> None:
        service = self.rng.choice(CONSUMERS)
        pid = self.up.children().get(service)
        assert pid is not None, f"{service} is not running"
        os.kill(pid, signal.SIGKILL)
        fault.killed.append(service)


async def _lasting(seconds: float, halfway: Callable[[], None] | None = None) -> None:
    """The fault lasts ``seconds`` (a duration, not a wait for an event); ``halfway`` runs half-way."""
    await asyncio.sleep(seconds / 2)
    if halfway is not None:
        halfway()
    await asyncio.sleep(seconds / 2)


@asynccontextmanager
async def feeding(run: Run) -> AsyncIterator[None]:
    """Jobs written into incoming/ at a steady pace while the block runs."""
    stop = asyncio.Event()

    def write(batch: int) -> None:
        for n in range(FEED_BATCH):
            try:
                run.fed.add(run.queue.add_job(f"Erkläre Thema {batch}.{n}.", JobMeta(topic=f"feed {batch}")))
            except QueueFault:
                run.unfed += 1

    async def feed() -> None:
        batch = 0
        while not stop.is_set():
            await asyncio.to_thread(write, batch)
            batch += 1
            await set_within(stop, FEED_EVERY_S)

    feeder = asyncio.create_task(feed(), name="feeding jobs")
    try:
        yield
    finally:
        stop.set()
        await feeder


# -- the faults ---------------------------------------------------------------------------------


async def full_disk(run: Run, fault: Fault) -> None:
    assert run.disk is not None
    filler = await asyncio.to_thread(fill, run.disk)
    try:
        await _lasting(FULL_DISK_S, lambda: run.kill_a_consumer(fault))
    finally:
        filler.unlink()
        fault.ended = time.monotonic()


async def unwritable_results(run: Run, fault: Fault) -> None:
    with immutable(run.queue.folder(PROCESSED), run.queue.folder(ERROR)):
        await _lasting(UNWRITABLE_S, lambda: run.kill_a_consumer(fault))
    fault.ended = time.monotonic()


async def nats_paused(run: Run, fault: Fault) -> None:
    pid = run.up.children().get(NATS)
    assert pid is not None, "syntx up has no nats-server child"
    with paused(pid):
        await _lasting(NATS_PAUSE_S)
    fault.ended = time.monotonic()


async def flood_of_files(run: Run, fault: Fault) -> None:
    """The flood is written beside the queue first and moved in, as the README asks of a script."""
    staged, incoming = run.withdrawn_dir.with_name("flood"), run.queue.folder(INCOMING)
    staged.mkdir()
    await asyncio.to_thread(flood, staged, FLOOD_FILES)
    run.flood = {name.removesuffix(".txt") for name in os.listdir(staged)}
    fault.started = time.monotonic()  # the fault: the files moving in
    await asyncio.to_thread(_move_all, staged, incoming)
    landed = time.monotonic()
    await _lasting(FLOOD_HOLD_S)
    run.withdrawn_dir.mkdir()
    run.withdrawn = await asyncio.to_thread(_move_all, incoming, run.withdrawn_dir, "flood-")
    fault.ended = time.monotonic()
    claimed = FLOOD_FILES - len(run.withdrawn)
    fault.note = (
        f"{FLOOD_FILES:,} moved in within {landed - fault.started:.1f}s; {claimed:,} claimed meanwhile, "
        f"{len(run.withdrawn):,} withdrawn"
    )


def _move_all(source: Path, target: Path, prefix: str = "") -> set[str]:
    """Move the files of ``source`` whose names start with ``prefix`` into ``target``; the job ids moved.
    A file gone meanwhile (a consumer claimed it first) is skipped."""
    moved = set()
    for name in sorted(os.listdir(source)):
        if name.startswith(prefix):
            try:
                os.rename(source / name, target / name)
            except FileNotFoundError:
                continue
            moved.add(name.removesuffix(".txt"))
    return moved


async def hostile_publisher(run: Run, fault: Fault) -> None:
    run.hostile_stems = _drop_hostile_names(run.queue.folder(INCOMING))
    bodies = {subject: _hostile_bodies(subject, run.rng) for subject in _subjects()}
    for _ in range(HOSTILE_ROUNDS):
        for subject, each in bodies.items():
            for body in each:
                if subject in REQUEST_TYPES:
                    run.requests.append(await _answered_with_an_error(run.bus, subject, body))
                else:
                    await run.ticker.nc.publish(subject, body)
    await run.ticker.nc.flush()
    fault.ended = time.monotonic()
    sent = sum(map(len, bodies.values())) * HOSTILE_ROUNDS
    fault.note = f"{sent} malformed bodies on {len(bodies)} subjects, {len(run.hostile_stems)} hostile names"


FAULTS: dict[str, Callable[[Run, Fault], Awaitable[None]]] = {
    "full disk": full_disk,
    "unwritable results": unwritable_results,
    "NATS paused 30 s": nats_paused,
    FLOOD: flood_of_files,
    "hostile publisher": hostile_publisher,
}


# -- hostile bodies and names -------------------------------------------------------------------


def _subjects() -> list[str]:
    schedules = ("producer", "monitor", "cleanup", *CONSUMER_SCHEDULES)
    return [*EVENT_TYPES, *REQUEST_TYPES, subjects.SERVICE_PING, *map(subjects.tick, schedules)]


def _valid(subject: str) -> dict[str, Any]:
    if subject in EVENT_TYPES:
        loaded: dict[str, Any] = json.loads(encode(valid_messages()[subject]))
        return loaded
    return {"batch": 1} if subject.startswith(subjects.tick("")) else {}


def _hostile_bodies(subject: str, rng: random.Random) -> list[bytes]:
    """Bodies no service may accept on ``subject``: only those the one decoder calls malformed."""
    valid = _valid(subject)
    text = (
        "job_id" if "job_id" in valid else next((k for k, v in valid.items() if isinstance(v, str)), "text")
    )
    number = next((k for k, v in valid.items() if type(v) in (int, float)), "n")
    other = next(each for each in EVENT_TYPES if each != subject)
    made = [
        b"",
        b"\xff" + rng.randbytes(200),
        b"[" * 60 + b"]" * 60,
        _spliced(valid, number, "1" + "0" * 4999),
        json.dumps({**valid, text: "x" * 70_000}).encode(),
        json.dumps({**valid, "job_id": "../../../outside/victim"}).encode(),
        b"{" + b" " * BODY_MAX_BYTES + b"}",
        b"null",
        b'[1, "two", {"three": 3}]',
        encode(valid_messages()[other]),
    ]
    return [body for body in made if message_problem(subject, body) is not None]


def _spliced(body: dict[str, Any], key: str, literal: str) -> bytes:
    """``body`` as JSON with ``key`` holding ``literal`` as written (a number of any length)."""
    placeholder = "\u0000placeholder"
    return json.dumps({**body, key: placeholder}).replace(json.dumps(placeholder), literal).encode()


async def _answered_with_an_error(bus: Bus, subject: str, body: bytes) -> bool:
    try:
        reply = json.loads(await bus.request(subject, body, wait_s=5))
    except (TimeoutError, ValueError):
        return False
    return isinstance(reply, dict) and reply.get("kind") == "error"


def _drop_hostile_names(incoming: Path) -> set[str]:
    """Files no consumer may take for a job; their stems as the test's notifications show them."""
    for name in HOSTILE_NAMES:
        with open(os.fsencode(incoming) + b"/" + name, "wb") as handle:
            handle.write(b"Erkl\xc3\xa4re Katzen.\n")
    (incoming / "symlink.txt").symlink_to("/etc/hostname")
    os.mkfifo(incoming / "fifo.txt")
    (incoming / "folder.txt").mkdir()
    return {os.fsdecode(name).removesuffix(".txt") for name in HOSTILE_NAMES} | {
        kind.removesuffix(".txt") for kind in HOSTILE_KINDS
    }


# -- the schedule -------------------------------------------------------------------------------


async def run_fault(run: Run, name: str) -> None:
    """One fault: jobs fed while it lasts; then how soon results, ticks and the loop came back."""
    if name in run.skipped:
        return
    await run.ticker.settled(within_s=TURN_S)  # no producer run left to overlap the fault
    fault = Fault(name, started=time.monotonic())
    if name == FLOOD:
        run.flood_window = (fault.started, float("inf"))
    async with feeding(run):
        await FAULTS[name](run, fault)
    try:
        generation = await turn(run.ticker, run.arrivals, run.queue, within_s=TURN_S)
    except AssertionError as exc:
        ago = time.monotonic() - fault.ended
        raise AssertionError(f"after {name} (lifted {ago:.1f}s ago): {exc}") from exc
    assert generation.produced == generation.requested > 0, generation
    fault.turned_s = time.monotonic() - fault.ended
    if name == FLOOD:
        run.flood_window = (fault.started, time.monotonic())
    fault.filed = run.arrivals.filed_between(fault.started, fault.ended)
    fault.next_result_s = run.arrivals.next_filed_after(fault.ended)
    fault.next_tick_s = run.up.first_after(fault.ended, TICK_TAKEN)
    run.faults.append(fault)


def _seconds(value: float | None) -> str:
    return "never" if value is None else f"{value:.1f}s"


def _fault_rows(run: Run) -> list[str]:
    rows = [f"{'fault':<20} {'held':>6} {'filed':>6} {'result':>7} {'tick':>7} {'turned':>7}  killed, notes"]
    for fault in run.faults:
        notes = ", ".join([*fault.killed, *([fault.note] if fault.note else [])])
        rows.append(
            f"{fault.name:<20} {fault.ended - fault.started:>5.1f}s {fault.filed:>6} "
            f"{_seconds(fault.next_result_s):>7} {_seconds(fault.next_tick_s):>7} "
            f"{_seconds(fault.turned_s):>7}  {notes}"
        )
    rows += [f"{name:<20} skipped: {why}" for name, why in run.skipped.items()]
    return rows


def _figures(run: Run, tally: Tally, left: Leftovers) -> str:
    folders = ", ".join(f"{folder} {tally.by_folder[folder]}" for folder in (PROCESSED, ERROR, ARCHIVE))
    statuses = ", ".join(f"{status} {n}" for status, n in sorted(tally.statuses.items()))
    produced = len(tally.jobs_in) - JOBS_AT_START - len(run.fed) - len(run.flood)
    flood_out = len(run.flood & tally.out)
    killed = sum(len(fault.killed) for fault in run.faults)
    times = run.timings
    return "\n".join(
        [
            f"seed         {run.seed} (faults in this order: {', '.join(f.name for f in run.faults)})",
            f"jobs in      {len(tally.jobs_in):,} ({JOBS_AT_START} at the start, {len(run.fed)} while faults "
            f"lasted ({run.unfed} more refused by the full disk), {len(run.flood):,} flood, "
            f"{produced} by the producer)",
            f"jobs out     {len(tally.out):,} ({folders}; {statuses}); flood: {flood_out:,} with a "
            f"result, {len(tally.unanswered):,} withdrawn unclaimed, "
            f"{len(tally.withdrawn - tally.unanswered)} withdrawn answered (taken over from a slow consumer)",
            f"lost         {len(tally.lost)}",
            f"duplicated   {len(tally.duplicated)}",
            f"stuck        {len(tally.stuck)} (incoming {len(tally.waiting)}, "
            f"processing {len(tally.claimed)})",
            f"unknown      {len(tally.unknown)} results of jobs that never went in",
            f"SIGKILLs     {killed} consumers, while the queue could not be written; "
            f"{len(_restarted(run.up))} services restarted",
            f"requests     {sum(run.requests)} of {len(run.requests)} hostile requests answered with "
            "an error",
            f"leftovers    quarantine {left.quarantined} (hostile names {len(run.hostile_stems)}), "
            f"staging .part {left.parts}",
            f"logs         {said(run.up, SAID)}",
            f"ticks        {run.ticker.sent} producer ticks stored, {run.ticker.unstored} not",
            f"notified     {len(run.arrivals.overflows)} lost notifications (within the flood)",
            f"duration     {times['faults']:.1f}s faults, {times['total']:.1f}s in all",
            "seconds from a fault's end to the next result filed, the next tick taken, the loop turned:",
            *_fault_rows(run),
        ]
    )


@dataclass(frozen=True)
class Leftovers:
    quarantined: int  # entries of quarantine/ (its notes aside)
    parts: int  # staging files in .tmp/

    @classmethod
    def of(cls, queue: FileQueue) -> Leftovers:
        quarantine = [
            n for n in os.listdir(queue.folder(QUARANTINE)) if not n.endswith(QUARANTINE_NOTE_SUFFIX)
        ]
        parts = [name for name in os.listdir(queue.folder(TMP)) if name.endswith(".part")]
        return cls(len(quarantine), len(parts))


def _restarted(up: Up) -> list[str]:
    """The services syntx up restarted (not the nats-server: see FAULT_LINES)."""
    return [line for line in up.lines if "; restarting in" in line and NATS not in line]


def _skipped(tmp: Path, disk_problem: str | None) -> dict[str, str]:
    skipped = {}
    if disk_problem is not None:
        skipped["full disk"] = disk_problem
    if (problem := immutable_problem(tmp / "chattr probe")) is not None:
        skipped["unwritable results"] = problem
    return skipped


@pytest.mark.timeout(480)
async def test_chaos_full_disk_unwritable_results_stalled_nats_flood_and_hostile_publisher_lose_nothing(
    tmp_path: Path, record_property: Callable[[str, object], None]
) -> None:
    started = time.monotonic()
    with tmpfs_if_permitted(tmp_path / "disk", DISK_BYTES) as disk_problem:
        data_dir = tmp_path / "disk" / "data"
        env = environment(chaos_config(SEED), tmp_path / "chaos.yaml", data_dir)
        queue = FileQueue(data_dir / "queue")
        arrivals = Arrivals(add_jobs(queue, JOBS_AT_START, "chaos "))
        nats_settings = NatsSettings(url=f"nats://127.0.0.1:{env['SYNTX_NATS__EMBEDDED_PORT']}")
        order = list(FAULTS)
        rng = random.Random(SEED)
        rng.shuffle(order)
        async with (
            watching([queue.root], arrivals.on_change, recursive=True, comings_and_goings=True),
            syntx_up(env) as up,
        ):
            await up.wait_for("connected and ready", len(SERVICES), within_s=60)
            async with (
                connect(nats_settings, name="chaos test") as bus,
                behind_the_bus(nats_settings, "chaos test") as nc,
            ):
                disk = None if disk_problem else tmp_path / "disk"
                run = Run(SEED, up, queue, arrivals, Ticker(bus, nc), bus, rng, disk, data_dir / WITHDRAWN)
                run.skipped = _skipped(tmp_path, disk_problem)
                await bus.subscribe_events(subjects.PRODUCER_GENERATION, run.ticker.on_generation)
                try:
                    for name in order:
                        await run_fault(run, name)
                finally:
                    (tmp_path / "syntx-up.out").write_text(up.output(), encoding="utf-8")
                run.timings["faults"] = time.monotonic() - started
            up.process.send_signal(signal.SIGINT)
            code = await asyncio.wait_for(up.process.wait(), timeout=60)
        run.timings["total"] = time.monotonic() - started
        jobs_in = (arrivals.jobs - run.hostile_stems) | run.fed | run.flood
        withdrawn = {name.removesuffix(".txt") for name in os.listdir(run.withdrawn_dir)}
        tally = Tally.of(queue, jobs_in, frozenset(withdrawn))
        left = Leftovers.of(queue)
    figures = _figures(run, tally, left)
    record_property(FIGURES, figures)

    assert code == 0, up.output()[-3000:]
    low, high = run.flood_window
    assert all(low <= moment <= high for moment in arrivals.overflows), "notifications lost outside the flood"
    assert not tally.lost and not tally.duplicated and not tally.stuck, (
        f"{figures}\nlost {sorted(tally.lost)[:5]} duplicated {sorted(tally.duplicated)[:5]} "
        f"stuck {sorted(tally.stuck)[:5]}"
    )
    assert not tally.unknown and len(tally.out) + len(tally.unanswered) == len(tally.jobs_in), figures
    assert withdrawn == run.withdrawn and withdrawn <= run.flood, figures
    assert not tally.statuses["unreadable"] and not tally.statuses["malformed"], figures  # all were valid
    assert left.parts == 0, figures
    assert left.quarantined == len(run.hostile_stems), figures
    assert all(run.requests), figures
    assert len(run.faults) + len(run.skipped) == len(FAULTS), figures
    killed = sum(len(fault.killed) for fault in run.faults)
    assert len(_restarted(up)) == killed and not up.count("Traceback"), figures
    if run.skipped:
        pytest.skip("; ".join(f"{name} not made here: {why}" for name, why in run.skipped.items()))
