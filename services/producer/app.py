"""The producer: on a tick, learn from the results scored since the last one, write as many prompts as
back pressure allows, archive what it learned from, checkpoint the learner and log the generation.

The learner is brought up to date at start (its checkpoint plus the results of the jobs that were in
flight, or a cold rebuild from the result files when there is no checkpoint), then from
``syntx.job.scored``: each event names a result file, which is read (and trusted or refused) on the next
tick. A tick costs O(new results); the disk is only read off the event loop. An event's job id becomes
a path only through the name rule (:func:`shared.names.job_id_problem`): ``../x`` names no file.
When the queue cannot be written (a full disk) a tick learns but writes nothing — no jobs, no archive
moves, no checkpoint — until the queue gate opens again (:mod:`shared.queue.gate`).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import TypeVar

from services.producer.generator import PromptGenerator, PromptRequest, ScoredPrompt, make_generator
from shared.config import ConsumerSettings, Settings
from shared.learning import Arm, Learner, arm_name
from shared.learning.evolution import (
    EVOLUTION_LOG,
    Changed,
    GenerationLine,
    append_generation,
    last_generation,
)
from shared.learning.rebuild import (
    LearnReport,
    catch_up,
    cold_rebuild,
    highest_sequence_in_flight,
    learn_paths,
    oldest_in_flight,
)
from shared.learning.state import Checkpoint, Estimates, load_checkpoint, save_checkpoint
from shared.messaging import (
    Bus,
    Event,
    JobCreated,
    JobScored,
    ProducerGeneration,
    ProducerStatsReply,
    ProducerStatsRequest,
    Tick,
    connect,
    subjects,
)
from shared.queue import (
    ARCHIVE,
    INCOMING,
    PROCESSED,
    FileFault,
    FileQueue,
    JobMeta,
    QueueFault,
    QueueGate,
    job_id_problem,
    new_job_id,
    producer_batch,
    queue_state,
)
from shared.queue.faults import on_own
from shared.service import ServiceTasks, instance_name, presence, queue_state_sender

log = logging.getLogger(__name__)
T = TypeVar("T")

__all__ = ["EVOLUTION_LOG", "Producer", "last_generation", "run"]
GENERATOR_SPEND_FILE = "state/generator_spend.json"  # under data_dir: the LLM generator's spend today
REBUILD_KEEP_HORIZONS = 2  # a cold rebuild reads the newest results of this many forgetting horizons
WRITTEN_FOLDERS = (INCOMING, ARCHIVE)  # what the producer writes in the queue: its gate probes these


class Producer:
    def __init__(self, settings: Settings, bus: Bus, generator: PromptGenerator, rng: random.Random) -> None:
        self._settings = settings
        self._queue = FileQueue(settings.queue_dir)
        self.gate = QueueGate(
            self._queue,
            settings.queue.fault_probe,
            queue_state_sender(bus, "producer", instance_name("producer")),
            WRITTEN_FOLDERS,
            waiting="new jobs wait",
        )
        self._config = settings.producer
        self._learning = settings.producer.learning
        self._bus = bus
        self._generator = generator
        self._rng = rng
        self._arms: list[Arm] = [
            (category, style) for category in settings.topics for style in settings.styles
        ]
        if not self._arms:
            raise ValueError("producer needs at least one topic category and one style in the configuration")
        self._learner = Learner(self._learning, self._arms, rng)
        self._estimates: Estimates | None = None  # what the learner believes, as last saved
        self._state_path = settings.data_dir / self._learning.state_file
        self._evolution_log = settings.logs_dir / EVOLUTION_LOG
        self._pending: set[str] = set()  # job ids scored since the last tick
        self._since_tick = LearnReport()  # learned since the last tick (a stats request learns too)
        self._to_archive: list[str] = []
        self._next_sequence = 0
        self._unfinished_since = ""  # the oldest unfinished job id at the last tick
        self._favoured: list[str] | None = None  # at the last generation (None: not known yet)

    @property
    def learner(self) -> Learner:
        return self._learner

    @property
    def queue(self) -> FileQueue:
        return self._queue

    async def start(self) -> LearnReport:
        """Checkpoint plus catch-up, or a cold rebuild; then the first checkpoint. Off the event loop."""
        checkpoint = await asyncio.to_thread(load_checkpoint, self._state_path)
        max_bytes = self._settings.queue.max_result_bytes
        self._unfinished_since = await self._oldest_unfinished()  # before reading: covers what finishes now
        covered_from = self._unfinished_since
        if checkpoint is not None:
            self._learner.restore(checkpoint.learner)
            self._next_sequence = checkpoint.next_sequence
            covered_from = min(covered_from, checkpoint.scan_from or covered_from)
            report = await asyncio.to_thread(catch_up, self._learner, self._queue, covered_from, max_bytes)
        else:
            fresh = Learner(self._learning, self._arms, self._rng)
            keep = int(self._learner.memory.horizon_jobs * REBUILD_KEEP_HORIZONS)
            report = await asyncio.to_thread(cold_rebuild, fresh, self._queue, keep, max_bytes)
            self._learner = fresh
        highest = await asyncio.to_thread(highest_sequence_in_flight, self._queue, self._max_job_bytes)
        self._next_sequence = max(self._next_sequence, report.max_sequence + 1, highest + 1)
        self._to_archive.extend(report.learned)
        await self._writing(
            lambda: self._save(covered_from, learned=True), None
        )  # a full disk: the next tick
        self._favoured = self._favoured_names()
        return report

    def _favoured_names(self) -> list[str]:
        assert self._estimates is not None
        return [row.arm for row in self._estimates.arms if row.favoured]

    async def _oldest_unfinished(self) -> str:
        """Every job whose result is not on disk yet has this id or a later one."""
        return await asyncio.to_thread(oldest_in_flight, self._queue) or new_job_id()

    @property
    def _max_job_bytes(self) -> int:
        limits = [consumer.max_job_bytes for consumer in self._settings.consumers.values()]
        return max(limits, default=ConsumerSettings.model_fields["max_job_bytes"].default)

    async def on_scored(self, event: Event) -> None:
        if not isinstance(event, JobScored) or job_id_problem(event.job_id) is not None:
            return  # an id that is no file stem names no result (the event model refuses it already)
        if not self._learner.knows(event.job_id):
            self._pending.add(event.job_id)

    async def learn_pending(self) -> LearnReport:
        """Read the results named by the events since the last tick (off the loop) and learn them; what
        this call learned, counted for the next generation's line too."""
        pending, self._pending = sorted(self._pending), set()
        if not pending:
            return LearnReport()
        try:
            paths = await asyncio.to_thread(self._result_paths, pending)
        except QueueFault as fault:  # the folders cannot be read now: the next tick reads them
            self._pending.update(pending)
            self.gate.close(fault)
            return LearnReport()
        report = learn_paths(self._learner, paths, self._settings.queue.max_result_bytes)
        self._since_tick.add(report)
        self._to_archive.extend(report.learned)
        self._remember(report)
        return report

    def _remember(self, report: LearnReport) -> None:
        """The generator shows an arm's best and worst scored prompts to an LLM (OPRO-style)."""
        for seen in report.examples:
            assert seen.prompt is not None
            self._generator.remember(ScoredPrompt(seen.score, seen.prompt, seen.category, seen.style))

    def _result_paths(self, job_ids: list[str]) -> list[Path]:
        return [path for job_id in job_ids if (path := self._queue.result_path(job_id)) is not None]

    async def on_tick(self, tick: Tick) -> None:
        try:
            await self._tick(tick)
        except QueueFault as fault:  # a folder could not even be read: said once by the gate
            self.gate.close(fault)

    async def _tick(self, tick: Tick) -> None:
        generation = last_generation(self._evolution_log) + 1
        unfinished_since = await self._oldest_unfinished()
        await self.learn_pending()
        report, self._since_tick = self._since_tick, LearnReport()
        if not self.gate.is_open:
            log.info(
                "generation %d: learned %d; nothing written while the queue cannot be",
                generation,
                len(report.learned),
            )
            return
        archived = await self._writing(lambda: asyncio.to_thread(self._archive_learned), 0)
        incoming = self._queue.count(INCOMING)
        state = queue_state(incoming, self._config.back_pressure)
        wanted = producer_batch(state, tick.batch or self._config.batch)
        arm_jobs = await self._produce(wanted, generation) if wanted else Counter[str]()
        produced = arm_jobs.total()
        skipped = None if wanted else f"queue {state} with {incoming} waiting"
        if report.learned or produced:
            # a result whose event is still on its way belongs to a job unfinished at the last tick or now
            since = min(self._unfinished_since, unfinished_since)
            await self._writing(lambda: self._save(since, learned=bool(report.learned)), None)
        favoured = self._favoured_names()
        self._unfinished_since = unfinished_since
        await self._writing(
            lambda: asyncio.to_thread(self._log_generation, generation, report, arm_jobs, favoured), None
        )
        await self._bus.emit(
            subjects.PRODUCER_GENERATION,
            ProducerGeneration(
                generation=generation,
                learned_from=self._learner.observed,
                produced=produced,
                requested=wanted,
                queue_state=state,
                incoming=incoming,
                skipped_reason=skipped,
                archived=archived,
                favoured=favoured,
                arm_jobs=dict(sorted(arm_jobs.items())),
                mean_score=report.mean_score,
            ),
        )
        log.info(
            "generation %d: %s, produced %d of %d; learned from %d scored jobs (%d new, %d refused), "
            "archived %d",
            generation,
            state,
            produced,
            wanted,
            self._learner.observed,
            len(report.learned),
            report.untrusted,
            archived,
        )

    async def _writing(self, step: Callable[[], Awaitable[T]], otherwise: T) -> T:
        """``step``'s result; ``otherwise`` when the queue cannot be written (the gate closes, says so
        once, and opens again by itself) or the filesystem refuses a name (said; the next tick tries)."""
        try:
            return await step()
        except QueueFault as fault:
            self.gate.close(fault)
        except FileFault as fault:
            log.warning("a file of the producer's cannot be written: %s", fault)
        return otherwise

    async def _save(self, scan_from: str, learned: bool) -> None:
        """The checkpoint, with what the learner believes (worked out again only after learning)."""
        if learned or self._estimates is None:
            self._estimates = await asyncio.to_thread(self._learner.estimator())
        checkpoint = Checkpoint(
            next_sequence=self._next_sequence,
            scan_from=scan_from,
            learner=self._learner.to_state(),
            estimates=self._estimates,
        )
        await asyncio.to_thread(save_checkpoint, self._queue, self._state_path, checkpoint)

    async def _produce(self, count: int, generation: int) -> Counter[str]:
        """Write up to ``count`` jobs; how many went to each arm."""
        produced: Counter[str] = Counter()
        for category, style in self._learner.plan(count):
            request = self._request(category, style)
            try:
                prompt = await self._generator.generate(request)
            except Exception as exc:
                log.warning("generator failed for %s/%s: %s", request.category, request.topic, exc)
                continue
            meta = JobMeta(
                topic=request.topic,
                category=request.category,
                style=request.style,
                language=request.language,
                generation=generation,
                sequence=self._next_sequence,
                created=datetime.now(UTC),
            )
            try:
                job_id = self._queue.add_job(prompt, meta)
            except QueueFault as fault:
                self.gate.close(fault)
                break
            except FileFault as fault:  # a job id of ours refused: the next tick writes the batch
                log.warning("a new job cannot be written: %s", fault)
                break
            self._next_sequence += 1
            await self._bus.emit(
                subjects.JOB_CREATED,
                JobCreated(
                    job_id=job_id,
                    **meta.model_dump(include={"topic", "category", "style", "language", "generation"}),
                ),
            )
            produced[arm_name((category, style))] += 1
        return produced

    def _request(self, category: str, style: str) -> PromptRequest:
        languages = list(self._settings.languages)
        language = self._rng.choices(languages, weights=[self._settings.languages[k] for k in languages])[0]
        return PromptRequest(
            topic=self._rng.choice(self._settings.topics[category]),
            category=category,
            style=style,
            style_phrase=self._settings.styles[style],
            language=language,
        )

    def _archive_learned(self) -> int:
        """Move the passed results just learned from ``processed/`` to the archive (O(new)); those a
        queue fault leaves behind are moved by a later tick."""
        job_ids, self._to_archive = self._to_archive, []
        if not self._learning.archive_learned:
            return 0
        archived = 0
        for number, job_id in enumerate(job_ids):
            try:
                archived += archive_result(self._queue, job_id)
            except QueueFault:
                self._to_archive.extend(job_ids[number:])
                raise
            except FileFault as fault:  # it stays in processed/, where it is read as it is
                log.warning("job %s: its result cannot be archived: %s", job_id, fault)
        return archived

    def _log_generation(
        self, generation: int, report: LearnReport, arm_jobs: Counter[str], favoured: list[str]
    ) -> None:
        assert self._estimates is not None
        drifting = self._estimates.changed
        before = self._favoured if self._favoured is not None else favoured
        line = GenerationLine(
            generation=generation,
            time=datetime.now(UTC),
            produced=arm_jobs.total(),
            learned=len(report.learned),
            mean_score=None if report.mean_score is None else round(report.mean_score, 2),
            score_sd=None if report.score_sd is None else round(report.score_sd, 2),
            jobs=dict(sorted(arm_jobs.items())),
            favoured=favoured,
            memory=self._estimates.memory,
            changed=Changed(
                favoured_in=[arm for arm in favoured if arm not in before],
                favoured_out=[arm for arm in before if arm not in favoured],
                drifting=sorted(drifting),
            ),
        )
        self._favoured = favoured
        with on_own("append a generation", self._evolution_log):
            append_generation(self._evolution_log, line)

    async def stats(self, _request: ProducerStatsRequest) -> ProducerStatsReply:
        """What the learner believes, after learning the results scored since the last tick."""
        if (await self.learn_pending()).learned or self._estimates is None:
            self._estimates = await asyncio.to_thread(self._learner.estimator())
        return ProducerStatsReply(
            generation=last_generation(self._evolution_log),
            observed=self._learner.observed,
            refused=dict(sorted(self._learner.refused.items())),
            estimates=self._estimates,
        )


def archive_result(queue: FileQueue, job_id: str) -> bool:
    """Move a learned, passed result into today's archive folder; False when it is not in ``processed/``."""
    try:
        queue.archive(queue.result_in(PROCESSED, job_id))
    except FileNotFoundError:
        return False
    return True


async def run(settings: Settings, stop: asyncio.Event) -> None:
    rng = random.Random(settings.producer.seed)
    FileQueue(settings.queue_dir).ensure()
    async with connect(settings.nats, name="producer", stop=stop) as bus:
        generator = make_generator(
            settings.producer.generator,
            settings.producer.templates,
            rng,
            publish=bus.emit,
            spend_file=settings.data_dir / GENERATOR_SPEND_FILE,
        )
        try:
            producer = Producer(settings, bus, generator, rng)
            if (unwritable := await asyncio.to_thread(producer.queue.probe, WRITTEN_FOLDERS)) is not None:
                producer.gate.close(unwritable)
            await bus.subscribe_events(subjects.JOB_SCORED, producer.on_scored)
            report = await producer.start()
            log.info(
                "learned from %d results on disk (%d read, %d refused); %d scored jobs in memory",
                len(report.learned),
                report.read,
                report.untrusted,
                producer.learner.observed,
            )
            await bus.serve(ProducerStatsRequest, producer.stats, queue="producer")
            ticks = await bus.subscribe_ticks("producer", settings.overlap("producer"))
            async with presence(bus, "producer", settings.heartbeat_s), ServiceTasks() as tasks:
                tasks.start(producer.gate.keep(stop), "producer queue gate")
                tasks.start(ticks.run(producer.on_tick, stop), "producer ticks")
        finally:
            await generator.aclose()
