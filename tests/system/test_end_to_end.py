"""The whole loop over a real nats-server with real files: produce, consume, score, learn, count, tidy.

Ticks are plain core publishes with an empty body and no headers — exactly what ``nats pub`` sends.
The LLM is the built-in offline responder (a real LLM cannot run here).
"""

from __future__ import annotations

import asyncio
import io
import json
import re
from collections import defaultdict
from contextlib import redirect_stdout
from pathlib import Path
from typing import Any

import httpx
import pytest

from services.cleanup.app import run as run_cleanup
from services.consumer.service import run as run_consumer
from services.monitor.app import STATUS_LOG
from services.monitor.app import run as run_monitor
from services.producer.app import run as run_producer
from shared.config import DEFAULT_CONFIG, Settings, load_settings
from shared.messaging import CleanupReport, Event, JobScored, ProducerGeneration, subjects
from shared.queue import ERROR, INCOMING, PROCESSED, PROCESSING, FileQueue
from shared.watch import Change, watching
from syntx.cli.status import status as syntx_status
from tests.support.harness import HEARTBEATS, ServiceRun, free_port, observer, running
from tests.support.natsserver import NatsServer
from tests.support.producers import arm_figures, stats

PRODUCED = 20  # STARVING queue: a full producer batch
CONSUMER_BATCH = 12  # the first consumer tick takes 12, the second the remaining 8


def _settings(tmp_path: Path, nats_server: NatsServer, monitor_port: int) -> Settings:
    consumer = {"batch": CONSUMER_BATCH, "concurrency": 4}
    return load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        monitor={"host": "127.0.0.1", "port": monitor_port, "reconcile_s": 3600},
        producer={"seed": 7, "batch": PRODUCED},
        consumers={"syntex_system": consumer, "sigma": consumer},
        schedules={name: {"enabled": False} for name in ("producer", "monitor", "cleanup")},
    )


def _services() -> dict[str, ServiceRun]:
    async def syntex_system(settings: Settings, stop: asyncio.Event) -> None:
        await run_consumer(settings, stop, "syntex_system")

    async def sigma(settings: Settings, stop: asyncio.Event) -> None:
        await run_consumer(settings, stop, "sigma")

    return {
        "producer": run_producer,
        "consumer.syntex_system": syntex_system,
        "consumer.sigma": sigma,
        "monitor": run_monitor,
        "cleanup": run_cleanup,
    }


def _results(queue: FileQueue) -> dict[str, dict[str, Any]]:
    found: dict[str, dict[str, Any]] = {}
    for folder in (PROCESSED, ERROR):
        for path in queue.result_files(folder):
            assert path.stem not in found, f"{path.stem} has two results"
            found[path.stem] = {"folder": folder, **json.loads(path.read_text(encoding="utf-8"))}
    return found


def _metric(text: str, name: str, labels: str) -> float:
    match = re.search(rf"^{re.escape(name)}\{{{re.escape(labels)}\}} (\S+)$", text, re.MULTILINE)
    assert match, f"{name}{{{labels}}} not in /metrics"
    return float(match.group(1))


def _scored(count: int) -> Any:
    return lambda events: sum(isinstance(event, JobScored) for event in events) >= count


def _kind(kind: type[Event]) -> Any:
    return lambda events: any(isinstance(event, kind) for event in events)


@pytest.mark.timeout(120)
async def test_the_loop_turns_end_to_end(tmp_path: Path, nats_server: NatsServer) -> None:
    monitor_port = free_port()
    settings = _settings(tmp_path, nats_server, monitor_port)
    queue = FileQueue(settings.queue_dir)
    watched = (HEARTBEATS, subjects.JOB_ALL, subjects.PRODUCER_GENERATION, subjects.CLEANUP_REPORT)
    async with observer(nats_server.url, *watched) as (nc, events), running(settings, _services(), events):
        # The producer fills the empty queue on a bare tick.
        await nc.publish(subjects.tick("producer"), b"")
        await events.wait_for(_kind(ProducerGeneration))
        generation = events.of(ProducerGeneration)[0]
        assert (generation.produced, generation.queue_state) == (PRODUCED, "STARVING")
        job_ids = set(queue.job_ids(INCOMING))
        assert len(job_ids) == PRODUCED

        # Both consumers take their batch on bare ticks; every job ends in exactly one result.
        await nc.publish(subjects.tick("consumer.syntex_system"), b"")
        await events.wait_for(_scored(CONSUMER_BATCH))
        await nc.publish(subjects.tick("consumer.sigma"), b"")
        await events.wait_for(_scored(PRODUCED))
        results = _results(queue)
        assert set(results) == job_ids
        assert queue.count(INCOMING) == queue.count(PROCESSING) == 0
        _check_records(results, settings)
        assert {r["wrapper"] for r in results.values()} == {"syntex_system", "sigma"}

        await _check_producer_learned(nc, results)
        await _check_monitor_counts(settings, monitor_port, queue, results)

        # Cleanup reports; the monitor appends the hourly status line on its tick.
        await nc.publish(subjects.tick("cleanup"), b"")
        await events.wait_for(_kind(CleanupReport))
        status_log = settings.logs_dir / STATUS_LOG
        written = asyncio.Event()

        def on_change(change: Change) -> None:
            if change[0] == "written" and change[2] == STATUS_LOG:
                written.set()

        async with watching([settings.logs_dir], on_change):
            await nc.publish(subjects.tick("monitor"), b"")
            await asyncio.wait_for(written.wait(), timeout=10)
        line = status_log.read_text(encoding="utf-8").strip().splitlines()[-1]
        processed, errors = queue.count(PROCESSED), queue.count(ERROR)
        assert re.fullmatch(
            rf"\d{{4}}-\d\d-\d\d \d\d:\d\d \| Incoming: 0 \| Processed: {processed} "
            rf"\| Error: {errors} \| Archive: 0",
            line,
        )


def _check_records(results: dict[str, dict[str, Any]], settings: Settings) -> None:
    for job_id, record in results.items():
        threshold = settings.consumers[record["wrapper"]].threshold
        score = record["score"]
        assert record["job_id"] == job_id
        assert record["status"] == ("passed" if score["total"] >= threshold else "rejected")
        assert record["folder"] == (PROCESSED if record["status"] == "passed" else ERROR)
        assert record["scorer"] and score["scorer"] == record["scorer"]
        assert score["fields"] and all("deductions" in field for field in score["fields"])
        assert record["response"] and record["fields"] and record["prompt"]
        assert record["backend"] == "offline" and record["model"]
        assert record["meta"]["category"] and record["meta"]["style"] and record["meta"]["generation"] == 1
        assert len(record["attempts"]) == 1 and record["attempts"][0]["outcome"] == "answered"
    assert {record["status"] for record in results.values()} <= {"passed", "rejected"}


async def _check_producer_learned(nc: Any, results: dict[str, dict[str, Any]]) -> None:
    scores: dict[str, list[int]] = defaultdict(list)
    for record in results.values():
        scores[f"{record['meta']['category']}/{record['meta']['style']}"].append(record["score"]["total"])

    reply = await stats(nc)
    assert reply.observed == len(results)
    arms = arm_figures(reply)
    assert set(scores) <= set(arms)  # every configured arm has an estimate; these have data
    for arm, estimate in arms.items():  # weights: results discounted by at most 20 jobs of 2000
        assert estimate["weight"] == pytest.approx(len(scores.get(arm, [])), rel=0.02, abs=0.02)
    # posterior means: an arm's own scores shrunk towards what its category and style say
    every = [score for values in scores.values() for score in values]
    weighted = sum(arms[arm]["mean"] * len(values) for arm, values in scores.items()) / len(every)
    assert weighted == pytest.approx(sum(every) / len(every), abs=3)
    assert all(min(every) - 5 <= arms[arm]["mean"] <= max(every) + 5 for arm in scores), arms


async def _check_monitor_counts(
    settings: Settings, port: int, queue: FileQueue, results: dict[str, dict[str, Any]]
) -> None:
    expected = queue.counts()
    captured = io.StringIO()
    with redirect_stdout(captured):
        assert await syntx_status(settings, as_json=True, exact=True) == 0
    status = json.loads(captured.getvalue())
    assert status["counts"] == expected
    assert status["queue_state"] == "STARVING"
    assert status["services"]["producer"] == 1

    async with httpx.AsyncClient() as client:
        text = (await client.get(f"http://127.0.0.1:{port}/metrics")).text
        health = await client.get(f"http://127.0.0.1:{port}/healthz")
    assert health.status_code == 200
    for folder, files in expected.items():
        assert _metric(text, "syntx_queue_jobs", f'folder="{folder}"') == files, folder
    wrappers, statuses = ("sigma", "syntex_system"), ("passed", "rejected")
    scored = {
        (s, w): _metric(text, "syntx_jobs_scored_total", f'status="{s}",wrapper="{w}"')
        for s in statuses
        for w in wrappers
    }
    assert sum(scored.values()) == len(results)
    for schedule in (
        "producer",
        "consumer.syntex_system",
        "consumer.sigma",
    ):  # one tick each, seen by the stream
        assert _metric(text, "syntx_ticks_total", f'schedule="{schedule}"') == 1
    for (status_name, wrapper), count in scored.items():
        assert count == sum(r["status"] == status_name and r["wrapper"] == wrapper for r in results.values())
