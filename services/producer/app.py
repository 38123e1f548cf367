"""The producer: on a tick, learn from new scores, write as many prompts as back pressure allows,
archive what it learned from, and log the generation."""

from __future__ import annotations

import asyncio
import json
import logging
import random
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict

from services.producer.generator import PromptGenerator, PromptRequest, ScoredPrompt, make_generator
from services.producer.learning import Arm, Learner, Observation, observation_from_result
from shared.config import Settings
from shared.messaging import Bus, Event, JobCreated, JobScored, ProducerGeneration, Tick, subjects
from shared.messaging import bus as bus_module
from shared.queue import ARCHIVE, ERROR, INCOMING, PROCESSED, FileQueue, JobMeta, producer_batch, queue_state
from shared.service import presence, reported

log = logging.getLogger(__name__)

EVOLUTION_LOG = "evolution.jsonl"
GENERATOR_SPEND_FILE = "state/generator_spend.json"  # under data_dir: the LLM generator's spend today


class ProducerStats(BaseModel):
    model_config = ConfigDict(frozen=True)
    generation: int
    observed: int
    arms: dict[str, dict[str, float]]
    favoured: list[str]


class Producer:
    def __init__(self, settings: Settings, bus: Bus, generator: PromptGenerator, rng: random.Random) -> None:
        self._settings = settings
        self._config = settings.producer
        self._bus = bus
        self._generator = generator
        self._rng = rng
        self._queue = FileQueue(settings.queue_dir)
        self._learner = Learner(settings.producer.learning, rng)
        self._examined: set[str] = set()  # result files with nothing to learn (failed, no category …)
        self._evolution_log = settings.logs_dir / EVOLUTION_LOG
        self._arms: list[Arm] = [
            (category, style) for category in settings.topics for style in settings.styles
        ]
        if not self._arms:
            raise ValueError("producer needs at least one topic category and one style in the configuration")

    def rebuild(self) -> int:
        """Learn from every result on disk (the source of truth); returns how many were new."""
        paths = [path for folder in (PROCESSED, ERROR, ARCHIVE) for path in self._queue.result_files(folder)]
        return sum(self._learn_file(path) for path in paths)

    def _learn_file(self, path: Path) -> bool:
        """Each result file is read once: learned from, or known to hold nothing to learn."""
        if path.name in self._examined or path.stem in self._learner.seen:
            return False
        self._examined.add(path.name)
        observation = observation_from_result(path, self._settings.queue.max_result_bytes)
        if observation is None or not self._learner.observe(observation):
            return False
        if observation.prompt:  # the generator shows an arm's best and worst prompts to the LLM
            self._generator.remember(
                ScoredPrompt(observation.score, observation.prompt, observation.category, observation.style)
            )
        return True

    async def on_scored(self, event: Event) -> None:
        if isinstance(event, JobScored) and event.category and event.style:
            self._learner.observe(Observation(event.job_id, event.category, event.style, event.score))

    async def on_tick(self, tick: Tick) -> None:
        generation = last_generation(self._evolution_log) + 1
        learned = self.rebuild()
        archived = self._archive_learned()
        incoming = self._queue.count(INCOMING)
        state = queue_state(incoming, self._config.back_pressure)
        wanted = producer_batch(state, tick.batch or self._config.batch)
        produced = await self._produce(wanted, generation) if wanted else 0
        favoured = [f"{category}/{style}" for category, style in self._learner.favoured(self._arms)]
        skipped = None if wanted else f"queue {state} with {incoming} waiting"
        self._log_generation(generation, learned, produced, wanted, state, favoured)
        await self._bus.emit(
            subjects.PRODUCER_GENERATION,
            ProducerGeneration(
                generation=generation,
                learned_from=len(self._learner.seen),
                produced=produced,
                requested=wanted,
                queue_state=state,
                incoming=incoming,
                skipped_reason=skipped,
                archived=archived,
                favoured=favoured,
            ),
        )
        log.info(
            "generation %d: %s, produced %d of %d; learned from %d scored jobs (%d new), archived %d",
            generation,
            state,
            produced,
            wanted,
            len(self._learner.seen),
            learned,
            archived,
        )

    async def _produce(self, count: int, generation: int) -> int:
        produced = 0
        for _ in range(count):
            request = self._next_request()
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
                created=datetime.now(UTC),
            )
            job_id = self._queue.add_job(prompt, meta)
            await self._bus.emit(
                subjects.JOB_CREATED,
                JobCreated(
                    job_id=job_id,
                    **meta.model_dump(include={"topic", "category", "style", "language", "generation"}),
                ),
            )
            produced += 1
        return produced

    def _next_request(self) -> PromptRequest:
        category, style = self._learner.choose(self._arms)
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
        if not self._config.learning.archive_learned:
            return 0
        moved = 0
        for path in list(self._queue.result_files(PROCESSED)):
            if path.stem in self._learner.seen:
                try:
                    self._queue.archive(path)
                    moved += 1
                except FileNotFoundError:
                    continue
        return moved

    def _log_generation(
        self, generation: int, learned: int, produced: int, wanted: int, state: str, favoured: list[str]
    ) -> None:
        record: dict[str, Any] = {
            "timestamp": datetime.now(UTC).isoformat(),
            "generation": generation,
            "learned_new": learned,
            "observed": len(self._learner.seen),
            "queue_state": state,
            "requested": wanted,
            "produced": produced,
            "favoured": favoured,
            "arms": self._learner.summary(),
        }
        self._evolution_log.parent.mkdir(parents=True, exist_ok=True)
        with self._evolution_log.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")

    async def stats(self, _request: bytes) -> ProducerStats:
        """The statistics, first brought up to date with the result files (the source of truth)."""
        self.rebuild()  # on the loop, like every other change to the statistics
        return ProducerStats(
            generation=last_generation(self._evolution_log),
            observed=len(self._learner.seen),
            arms=self._learner.summary(),
            favoured=[f"{c}/{s}" for c, s in self._learner.favoured(self._arms)],
        )


def last_generation(path: Path) -> int:
    """The generation number of the log's last readable line; 0 when there is none."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return 0
    for line in reversed(lines):
        try:
            value = json.loads(line).get("generation")
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, int):
            return value
    return 0


async def run(settings: Settings, stop: asyncio.Event) -> None:
    rng = random.Random(settings.producer.seed)
    FileQueue(settings.queue_dir).ensure()
    async with bus_module.connect(settings.nats, name="producer", stop=stop) as bus:
        generator = make_generator(
            settings.producer.generator,
            settings.producer.templates,
            rng,
            publish=bus.emit,
            spend_file=settings.data_dir / GENERATOR_SPEND_FILE,
        )
        try:
            producer = Producer(settings, bus, generator, rng)
            await bus.subscribe_events(subjects.JOB_SCORED, producer.on_scored)
            log.info("learned from %d results on disk", producer.rebuild())
            await bus.serve(subjects.PRODUCER_STATS, producer.stats, queue="producer")
            ticks = await bus.subscribe_ticks("producer", settings.overlap("producer"))
            async with presence(bus, "producer", settings.heartbeat_s):
                await reported(ticks.run(producer.on_tick, stop), "producer ticks")
        finally:
            await generator.aclose()
