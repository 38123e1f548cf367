"""Exactly once, under faults: hundreds of jobs, two competing consumer processes, and
(a) a misbehaving loopback backend — slow, hanging, 500, 429 with Retry-After, HTML, truncated, reset;
(b) consumers SIGKILLed at every step of a job — after the claim, during the call, after the call,
    after writing the result (before the claim is removed) — and restarted.
Every job must end exactly once in processed/ or error/; none lost, none left in incoming/ or processing/.
The LLM itself is faked (a real one cannot run here): the backend answers with the offline responder's text.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import re
import signal
import sys
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from services.cleanup.tidy import Tidier
from shared.config import PROJECT_ROOT, CleanupSettings, QueueSettings
from shared.llm.offline import offline_answer
from shared.queue import (
    ATTEMPTS,
    ERROR,
    INCOMING,
    PROCESSED,
    PROCESSING,
    Claims,
    FileQueue,
    new_token,
    recover_expired,
)
from shared.scoring import load_catalog
from shared.watch import Change, watching
from syntx.embedded_nats import die_with_parent
from tests.support.consumers import add_jobs
from tests.support.llm_server import Recorded, Reply, ScriptedServer
from tests.support.natsserver import NatsServer

JOBS = 300
LEASE_S = 1.0  # short: claims of killed consumers are taken over within the test
WRAPPER = "syntex_system"
PREFIX = f"SYNTX_CONSUMERS__{WRAPPER.upper()}__"
FAILPOINT_KILL = re.compile(r"failpoint \w+: killing this process$")


# asyncio reports 255 for a child whose exit status it could not collect ("Unknown child process")
LOST_EXIT_STATUS = 255


@dataclass
class Fleet:
    """Consumer processes that are restarted whenever they die, until the fleet is stopped."""

    env: dict[str, str]
    logs: Path
    size: int = 2
    processes: dict[int, asyncio.subprocess.Process] = field(default_factory=dict)
    log_paths: dict[int, Path] = field(default_factory=dict)
    deaths: Counter[int] = field(default_factory=Counter)
    last_codes: dict[int, int] = field(default_factory=dict)  # exit codes of the processes stopped
    killed_pids: set[int] = field(default_factory=set)
    started: int = 0
    killed: int = 0
    stopping: bool = False

    async def start(self) -> None:
        for slot in range(self.size):
            await self._spawn(slot)
        self._keepers = [asyncio.create_task(self._keep(slot)) for slot in range(self.size)]

    async def _spawn(self, slot: int) -> None:
        self.started += 1
        self.log_paths[slot] = self.logs / f"consumer-{self.started}.log"
        log = self.log_paths[slot].open("wb")
        self.processes[slot] = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.consumer",
            "--wrapper",
            WRAPPER,
            env=self.env,
            stdout=log,
            stderr=asyncio.subprocess.STDOUT,
            preexec_fn=die_with_parent,  # a test run killed hard leaves no consumer behind
        )
        log.close()

    async def _keep(self, slot: int) -> None:
        while True:
            code = await self.processes[slot].wait()
            if self.stopping:
                self.last_codes[slot] = code
                return
            if code == LOST_EXIT_STATUS and self._killed(slot):
                code = -signal.SIGKILL  # its log ends with the failpoint's kill
            self.deaths[code] += 1
            if code == 2:  # a configuration error: restarting cannot help
                raise AssertionError("consumer rejected its configuration:\n" + self.log_text()[-2000:])
            await self._spawn(slot)
            if self.stopping:  # started while the others were told to stop: stop it as well
                self.processes[slot].send_signal(signal.SIGTERM)

    def kill_one(self, rng: random.Random) -> None:
        """SIGKILL one consumer, if it runs its service: killing consumers still starting up at a fixed
        pace could keep a busy machine from processing anything at all."""
        slot = rng.randrange(self.size)
        process = self.processes[slot]
        if process.returncode is None and self._serving(slot):
            process.send_signal(signal.SIGKILL)
            self.killed_pids.add(process.pid)
            self.killed += 1

    async def stop(self) -> list[int]:
        """SIGTERM to every consumer; the exit codes of those that ran their service and were not killed.

        Left out: one still starting (Python's default SIGTERM action ends it before the service has
        installed its handler — it holds no claim yet), and one SIGKILLed — from outside just before the
        stop, or by itself at a failpoint (its log ends with that). Failpoints stay armed while a stop
        lets in-flight jobs finish: a crash then must lose nothing either; those deaths count as deaths.
        """
        self.stopping = True
        for process in self.processes.values():
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        await asyncio.wait_for(asyncio.gather(*self._keepers), timeout=30)
        codes = []
        for slot, code in self.last_codes.items():
            if code == LOST_EXIT_STATUS:  # asyncio could not collect it; the process's log says how it ended
                code = -signal.SIGKILL if self._killed(slot) else 0 if self._stopped(slot) else code
            if code == -signal.SIGKILL and self._killed(slot):
                self.deaths[code] += 1
            elif code != -signal.SIGTERM or self._serving(slot):
                codes.append(code)
        return codes

    def _killed(self, slot: int) -> bool:
        if self.processes[slot].pid in self.killed_pids:
            return True
        lines = self.log_paths[slot].read_text(errors="replace").splitlines()
        return bool(lines) and FAILPOINT_KILL.search(lines[-1]) is not None

    def _stopped(self, slot: int) -> bool:
        lines = self.log_paths[slot].read_text(errors="replace").splitlines()
        return bool(lines) and lines[-1].endswith(" stopped")

    def _serving(self, slot: int) -> bool:
        return "claims as" in self.log_paths[slot].read_text(errors="replace")

    def log_text(self) -> str:
        return "".join(path.read_text(errors="replace") for path in sorted(self.logs.glob("*.log")))


def _environment(tmp_path: Path, nats_server: NatsServer, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        {
            "SYNTX_DATA_DIR": str(tmp_path / "data"),
            "SYNTX_NATS__URL": nats_server.url,
            "SYNTX_QUEUE__LEASE_S": str(LEASE_S),
            "SYNTX_QUEUE__FSYNC": "false",
            f"{PREFIX}WATCH": "true",
            f"{PREFIX}CONCURRENCY": "4",
            f"{PREFIX}SHUTDOWN_GRACE_S": "5",
            **extra,
        }
    )
    return env


@asynccontextmanager
async def _all_results(queue: FileQueue, expected: set[str]) -> AsyncIterator[asyncio.Event]:
    """An event set once every expected job has a result file (seen through file notifications)."""
    seen: set[str] = set()
    done = asyncio.Event()

    def on_change(change: Change) -> None:
        kind, folder, name = change
        if kind == "added" and folder in (PROCESSED, ERROR) and name.endswith(".json"):
            seen.add(name.removesuffix(".json"))
            if seen >= expected:
                done.set()

    async with watching([queue.folder(PROCESSED), queue.folder(ERROR)], on_change):
        yield done


def _finish_claims_left_by_the_last_kill(queue: FileQueue) -> None:
    """A consumer killed after filing a result and before dropping its claim, just as the test stops the
    fleet, leaves that claim behind with nobody left to drop it; the next consumer to start does (its
    start-up recovery, once the lease has run out). Do what it does: each such claim is of a job whose
    result exists ("finished") — any other would be a job lost."""
    later = queue.file_clock() + LEASE_S + 1
    recovered = recover_expired(Claims(queue, new_token()), LEASE_S, max_attempts=100, now=later)
    assert all(item.outcome == "finished" for item in recovered), recovered


def _assert_exactly_once(queue: FileQueue, expected: set[str], settings_logs: Path) -> Counter[str]:
    results: Counter[str] = Counter()
    statuses: Counter[str] = Counter()
    for folder in (PROCESSED, ERROR):
        for path in queue.result_files(folder):
            results[path.stem] += 1
            statuses[json.loads(path.read_text(encoding="utf-8"))["status"]] += 1
    assert set(results) == expected, (
        f"missing {len(expected - set(results))}, extra {set(results) - expected}"
    )
    assert max(results.values()) == 1, [job for job, count in results.items() if count > 1]
    assert queue.count(INCOMING) == 0 and list(queue.file_names(PROCESSING)) == []
    # stale attempt files of finished jobs
    Tidier(queue, settings_logs, CleanupSettings(), QueueSettings().max_result_bytes).run()
    assert list(queue.file_names(ATTEMPTS)) == []
    return statuses


def _chaos(rng: random.Random) -> Reply | None:
    roll = rng.random()
    faults: list[tuple[float, Reply]] = [
        (0.08, Reply(status=500, body=b"boom", content_type="text/plain")),
        (
            0.05,
            Reply(status=429, body=b"slow down", content_type="text/plain", headers={"Retry-After": "0.05"}),
        ),
        (0.03, Reply(status=200, body=b"<html>proxy error</html>", content_type="text/html")),
        (0.04, Reply(action="truncate", json={"response": "abgeschnitten"})),
        (0.04, Reply(action="reset")),
        (0.02, Reply(action="hang")),
    ]
    for chance, reply in faults:
        if roll < chance:
            return reply
        roll -= chance
    return None


@pytest.mark.timeout(180)
async def test_a_misbehaving_backend_never_loses_or_duplicates_a_job(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    catalog = load_catalog([PROJECT_ROOT / "wrappers"])
    headers = catalog.formats[catalog.wrappers[WRAPPER].format].header_lines()
    rng = random.Random(5)
    kinds: Counter[str] = Counter()

    def choose(request: Recorded) -> Reply:
        fault = _chaos(rng)
        slow = rng.random() < 0.1
        if fault is not None:
            kinds[f"{fault.action}:{fault.status}"] += 1
            return fault
        kinds["slow" if slow else "ok"] += 1
        text = offline_answer(request.json()["prompt"], headers)
        return Reply(json={"response": text}, delay_s=0.2 if slow else 0.0)

    server = ScriptedServer(chooser=choose)
    await server.start()
    env = _environment(
        tmp_path,
        nats_server,
        **{
            f"{PREFIX}BACKEND__KIND": "syntx",
            f"{PREFIX}BACKEND__URL": server.url,
            f"{PREFIX}BACKEND__TIMEOUTS__READ_S": "0.5",
            f"{PREFIX}BACKEND__TIMEOUTS__TOTAL_S": "5",
            f"{PREFIX}BACKEND__RETRIES__MAX_ATTEMPTS": "3",
            f"{PREFIX}BACKEND__RETRIES__BACKOFF_BASE_S": "0.01",
            f"{PREFIX}BACKEND__RETRIES__BACKOFF_MAX_S": "0.1",
        },
    )
    queue = FileQueue(tmp_path / "data" / "queue")
    expected = add_jobs(queue, JOBS, "t")
    fleet = Fleet(env, tmp_path)
    try:
        async with _all_results(queue, expected) as done:
            await fleet.start()
            await asyncio.wait_for(done.wait(), timeout=150)
        assert await fleet.stop() == [0, 0]
    finally:
        fleet.stopping = True
        await server.close()
    statuses = _assert_exactly_once(queue, expected, tmp_path / "data" / "logs")
    assert not fleet.deaths, fleet.log_text()[-3000:]
    assert all(
        kinds[k] > 0 for k in ("reply:500", "reply:429", "truncate:200", "reset:200", "hang:200", "slow")
    )
    assert statuses["passed"] + statuses["rejected"] > JOBS * 0.9, statuses


@pytest.mark.timeout(180)
async def test_consumers_killed_at_every_step_never_lose_or_duplicate_a_job(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    chance = 0.025  # per step and pass: every kill point is hit in practice (P(a point never hit) < 0.1 %)
    points = ("after_claim", "after_call", "after_result")
    env = _environment(
        tmp_path,
        nats_server,
        SYNTX_FAILPOINTS=",".join(f"{point}={chance}" for point in points),
        SYNTX_QUEUE__MAX_ATTEMPTS="100",  # crashes count as attempts; here every job must still get answered
        **{f"{PREFIX}BACKEND__KIND": "offline", f"{PREFIX}BACKEND__OFFLINE_DELAY_S": "0.03"},
    )
    queue = FileQueue(tmp_path / "data" / "queue")
    expected = add_jobs(queue, JOBS, "t")
    fleet = Fleet(env, tmp_path)
    rng = random.Random(9)
    try:
        async with _all_results(queue, expected) as done:
            await fleet.start()
            while not done.is_set():  # and kill one now and then from outside, mostly during a call
                try:
                    await asyncio.wait_for(done.wait(), timeout=0.7)
                except TimeoutError:
                    fleet.kill_one(rng)
        assert set(await fleet.stop()) <= {0}
    finally:
        fleet.stopping = True
    _finish_claims_left_by_the_last_kill(queue)
    statuses = _assert_exactly_once(queue, expected, tmp_path / "data" / "logs")
    assert statuses["failed"] == 0, statuses
    log = fleet.log_text()
    hits = {point: log.count(f"failpoint {point}: killing") for point in points}
    assert all(hits.values()) and fleet.killed, (hits, fleet.killed)
    assert fleet.deaths[-signal.SIGKILL] >= sum(hits.values()), (fleet.deaths, hits)
    assert "lease expired" in log or "already has a result" in log
