"""File names against the filesystem's limits, end to end: a real consumer (and cleanup) on real files.

A job file whose name breaks the name rule (shared/names.py) is judged before any rename and
quarantined under a name that always fits; nothing else stops, no concurrency slot leaks. The
Hypothesis test drops generated names — every byte but ``/`` and NUL, every length up to NAME_MAX and
beyond — into incoming/ of one running consumer and checks each lands where the rule says.
"""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import AsyncIterator
from pathlib import Path

import nats
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from services.cleanup.tidy import Tidier
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.names import folder_name_max, job_id_problem, name_problem, shown
from shared.queue import (
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    QUARANTINE,
    QUARANTINE_NOTE_SUFFIX,
    FileQueue,
    JobMeta,
    is_job_name,
)
from tests.support.consumers import TICK, WRAPPER, Running, consumer_in_process, until
from tests.support.natsserver import NatsServer

pytestmark = pytest.mark.timeout(180)

CONCURRENCY = 2
PROMPT = "Erkläre, wie Katzen ihre Umgebung wahrnehmen."
NAME_MAX = 255  # what tmpfs and ext4 allow; the tests read the real value where it matters
METADATA = "metadata"  # a job's X.json beside its X.txt: taken along with the job


def names_settings(tmp_path: Path, nats_server: NatsServer, *, watch: bool) -> Settings:
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url, "tick_fetch_wait_s": 0.1},
        consumers={WRAPPER: {"watch": watch, "rescan_s": 0.5, "concurrency": CONCURRENCY, "batch": 5}},
    )


def drop(queue: FileQueue, name: bytes, data: bytes = PROMPT.encode()) -> Path:
    """A file named by raw bytes in incoming/, as a person or a copy tool would leave it."""
    path = os.fsencode(queue.folder(INCOMING)) + b"/" + name
    handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        os.write(handle, data)
    finally:
        os.close(handle)
    return Path(os.fsdecode(path))


def notes(queue: FileQueue) -> dict[str, str]:
    """Quarantine notes by name: each says ``<folder>/<name shown>: <why>``."""
    found = {}
    for entry in os.scandir(queue.folder(QUARANTINE)):
        if entry.name.endswith(QUARANTINE_NOTE_SUFFIX):
            found[entry.name] = Path(entry.path).read_text(encoding="utf-8")
    return found


def quarantined(queue: FileQueue, name: str) -> bool:
    """Whether a note says ``incoming/<name>`` was quarantined (names may hold ": " themselves)."""
    origin = f"{INCOMING}/{shown(name)}: "
    return any(text.startswith(origin) for text in notes(queue).values())


def fits(queue: FileQueue) -> bool:
    limit = folder_name_max(queue.folder(QUARANTINE))
    return all(len(os.fsencode(name)) <= limit for name in os.listdir(queue.folder(QUARANTINE)))


# -- the rows ------------------------------------------------------------------------------------


async def test_a_name_of_100_bytes_0xff_is_quarantined_under_a_name_that_fits(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Before: its escaped quarantine name was 304 characters, the rename failed (name too long), both
    consumers crash-looped — 0 jobs processed, nothing quarantined."""
    settings = names_settings(tmp_path, nats_server, watch=True)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    poison = b"\xff" * 100 + b".txt"
    drop(queue, poison)
    good = queue.add_job(PROMPT, JobMeta(topic="Katzen"))
    async with consumer_in_process(settings) as running:
        await until(lambda: queue.result_path(good) is not None, "the good job is filed")
        await until(lambda: quarantined(queue, os.fsdecode(poison)), "the poison file is quarantined")
        assert not running.task.done()
    [(note, text)] = notes(queue).items()
    assert text.startswith("incoming/" + "\\xff" * 100 + ".txt: ")  # the whole name, escaped, in the note
    target = note.removesuffix(QUARANTINE_NOTE_SUFFIX)
    assert target.startswith("%FF" * 40) and target.endswith(".txt") and fits(queue)
    assert (queue.folder(QUARANTINE) / target).read_bytes() == PROMPT.encode()
    assert os.listdir(queue.folder(INCOMING)) == []


async def test_a_stem_of_240_characters_is_quarantined_and_no_tick_leaks_a_slot(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    """Before, with ``watch: false``: the claim rename failed (name too long) and every tick leaked a
    concurrency slot until the consumer hung ("previous run still running"); stop waited its full 50 s."""
    settings = names_settings(tmp_path, nats_server, watch=False)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    long_stem = "j" * 240
    drop(queue, f"{long_stem}.txt".encode())
    async with consumer_in_process(settings) as running:
        nc = await nats.connect(nats_server.url)
        try:
            for round_ in range(CONCURRENCY + 2):  # more ticks than slots: a leak would hang a tick
                job_id = queue.add_job(PROMPT, JobMeta(topic=f"Katzen {round_}"))
                await nc.publish(TICK, b"")
                await until(lambda: queue.result_path(job_id) is not None, f"tick {round_} files its job")  # noqa: B023
                assert running.consumer.free_slots == CONCURRENCY
        finally:
            await nc.drain()
        assert quarantined(queue, f"{long_stem}.txt")
        running.stop.set()
        async with asyncio.timeout(5):  # nothing in flight: no grace to wait
            await running.task
    [text] = notes(queue).values()
    assert "not a job id: 240 bytes long; a job id has at most 200" in text


def test_cleanup_quarantines_a_stray_of_250_characters_with_its_note(tmp_path: Path) -> None:
    """Before: the stray was moved, but its note's name was too long (a traceback) and cleanup reported
    "quarantined 0"."""
    settings = load_settings([DEFAULT_CONFIG], data_dir=tmp_path / "data", cleanup={"tmp_max_age_s": 0})
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    stray = "s" * 246 + ".dat"
    (queue.folder(INCOMING) / stray).write_text("no job", encoding="utf-8")
    report = Tidier(queue, settings.logs_dir, settings.cleanup, settings.queue.max_result_bytes).run()
    assert (report.quarantined, report.errors) == (1, [])
    assert quarantined(queue, stray) and fits(queue)
    [moved] = report.refused
    assert moved.target.endswith(".dat") and len(moved.target) <= 200


# -- generated names -------------------------------------------------------------------------------------

SLASH = ord("/")
NAME_BYTE = st.integers(1, 254).map(lambda byte: byte + (byte >= SLASH))  # every byte but NUL and "/"
RAW = st.integers(1, NAME_MAX + 45).flatmap(lambda n: st.lists(NAME_BYTE, min_size=n, max_size=n)).map(bytes)
TEXT = st.text(  # any character (surrogates are the raw bytes' part: a name is bytes)
    st.characters(exclude_characters="/\x00", exclude_categories=["Cs"]), min_size=1, max_size=120
).map(os.fsencode)
PRINTABLE = st.text(  # names a person might give: letters, digits, punctuation, symbols in any script
    st.characters(categories=("L", "N", "P", "S"), exclude_characters="/"), min_size=1, max_size=130
).map(os.fsencode)
SUFFIX = st.sampled_from([b".txt", b".txt", b"", b".json", b"_response.txt"])
NAME = (
    st.tuples(st.one_of(RAW, TEXT, PRINTABLE), SUFFIX)
    .map(b"".join)
    .filter(lambda name: name not in (b".", b".."))
)


def expected(name: str, name_max: int) -> str:
    """Where the name rule sends a file of this name: quarantine, a result, or left where it is."""
    if name_problem(name) is not None:
        return QUARANTINE
    if name.startswith(".") or not is_job_name(name):
        return INCOMING  # dot-files and other files are no jobs: left (cleanup judges strays by age)
    if job_id_problem(name.removesuffix(".txt"), name_max) is not None:
        return QUARANTINE
    return PROCESSED


def landed(queue: FileQueue, name: str, where: str) -> bool:
    waiting = os.path.lexists(os.fsencode(queue.folder(INCOMING)) + b"/" + os.fsencode(name))
    if where == QUARANTINE:
        return quarantined(queue, name) and not waiting
    if where == INCOMING:
        return waiting
    if where == METADATA:
        return not waiting
    return queue.result_path(name.removesuffix(".txt")) is not None and not waiting


@pytest.fixture
async def consumer(tmp_path: Path, nats_server: NatsServer) -> AsyncIterator[tuple[Running, FileQueue]]:
    settings = names_settings(tmp_path, nats_server, watch=True)
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    async with consumer_in_process(settings) as running:
        yield running, queue


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(names=st.lists(NAME, min_size=1, max_size=6, unique=True))
async def test_every_name_is_filed_quarantined_or_left_and_the_consumer_keeps_turning(
    consumer: tuple[Running, FileQueue], names: list[bytes]
) -> None:
    running, queue = consumer
    try:
        await names_land(running, queue, names)
    finally:
        for folder in (INCOMING, PROCESSED, ERROR, QUARANTINE):  # a clean queue for the next example
            for entry in os.scandir(os.fsencode(queue.folder(folder))):
                os.unlink(entry.path)


async def names_land(running: Running, queue: FileQueue, names: list[bytes]) -> None:
    name_max = folder_name_max(queue.folder(INCOMING))
    dropped = {}
    for raw in names:
        try:
            drop(queue, raw)
        except OSError as exc:  # beyond NAME_MAX: the filesystem refuses it before the queue sees it
            assert exc.errno == errno.ENAMETOOLONG and len(raw) > name_max
            event("a name beyond NAME_MAX: refused by the filesystem")
            continue
        name = os.fsdecode(raw)
        dropped[name] = expected(name, name_max)
    for name in dropped:  # X.json beside a job X.txt is its metadata (the original layout): it goes along
        job = name.removesuffix(".json") + ".txt"
        if name.endswith(".json") and dropped.get(job) == PROCESSED and dropped[name] == INCOMING:
            dropped[name] = METADATA
    control = queue.add_job(PROMPT, JobMeta(topic="Kontrolle"))
    await until(lambda: all(landed(queue, n, w) for n, w in dropped.items()), f"each of {dropped} lands")
    await until(lambda: queue.result_path(control) is not None, "the loop still turns")
    assert not running.task.done() and running.consumer.free_slots == CONCURRENCY
    assert fits(queue) and not list(queue.job_ids(PROCESSING))
    for where in dropped.values():
        event(f"a name that lands in {where}")
