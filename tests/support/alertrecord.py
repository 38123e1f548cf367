"""deploy/alerts.test.yml from series recorded from the real monitor:
``python -m tests.support.alertrecord``.

Each fault is made on a real ``syntx up`` (the demo configuration, its own data directory and ports)
while this samples the monitor's ``/metrics`` once a second: a service SIGSTOPped, an LLM backend that
goes away, answers 500 or hangs, the scheduler stopped or a schedule paused, consumers stopped while they
hold claims or while jobs pour in, a queue folder made immutable (``chattr +i``), the nats-server
stopped. The monitor's time thresholds are shortened (:data:`COMPRESSED`) so that each fault shows
within seconds; each sample is then replayed as one scrape of deploy/prometheus.yml (15 s), so the alerts'
``for`` are met after ``for``/15 samples. What each recording should fire is computed by
:mod:`tests.support.rules` and written as the expectation; ``promtool test rules`` checks it independently,
and tests/deploy/test_alerts.py checks that each fault fires its own alert and the healthy hour nothing.

``--hour FILE`` adds a healthy demo's hour: a JSON line ``{"t", "metrics"}`` per scrape, every 15 s, as
taken from a ``syntx up --demo`` left running for an hour (``--sample PORT FILE`` takes it).
Prints the table: fault, health state and reasons, the alerts that fire, when.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import copy
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml
from prometheus_client.parser import text_string_to_metric_families

from services.monitor.alerts import duration
from shared.config import DEFAULT_CONFIG, DEMO_CONFIG, PROJECT_ROOT
from shared.queue import INCOMING, PROCESSED, PROCESSING, FileQueue, JobMeta
from tests.support.cli import SIGMA_ANSWER
from tests.support.consumers import good_answer
from tests.support.harness import free_port
from tests.support.llm_server import Recorded, Reply, ScriptedServer
from tests.support.rules import Rule, firing, load_rules
from tests.support.up import children_of

ROOT = PROJECT_ROOT
RULES = ROOT / "deploy" / "alerts.yml"
TESTS = ROOT / "deploy" / "alerts.test.yml"
STEP_S = 1.0  # real seconds between two samples of /metrics
REPLAY_S = 15  # each sample is replayed as one scrape of deploy/prometheus.yml
HOUR_SAMPLES = 240  # an hour of scrapes every 15 s
QUIET_EVERY = 20  # samples between two checks of a recording where nothing may fire (5 min replayed)
BEFORE = 4  # samples of the healthy system before each fault
RECORDED = ("syntx_health_reason", "syntx_health_state", "syntx_services_up")
COMPRESSED: dict[str, Any] = {  # the monitor's clocks, shortened so that a fault shows within seconds
    "heartbeat_s": 0.5,
    "monitor": {"service_timeout_s": 3, "health": {"schedule_grace_s": 1, "stalled_after_s": 6}},
    "queue": {"lease_s": 4},
}
STUB_BACKEND = {"kind": "syntx", "retries": {"max_attempts": 2, "backoff": {"base_s": 0.2, "max_s": 0.5}}}
STARTUP_S = 60.0
FRESH_CLAIM_S = 0.5  # a claim this young has most of SLOW_CLAIMS' 3 s of work ahead


@dataclass
class System:
    """A running ``syntx up`` and what a fault needs of it."""

    process: asyncio.subprocess.Process
    env: dict[str, str]
    data_dir: Path
    stub: Stub
    stopped: list[int] = field(default_factory=list)  # SIGSTOPped pids, continued before the end
    undo: list[Callable[[], None]] = field(default_factory=list)

    def pids(self, marker: str) -> list[int]:
        """Children of syntx up whose command line holds ``marker``."""
        found = []
        for pid in children_of(self.process.pid):
            with contextlib.suppress(OSError):
                if marker in Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode():
                    found.append(pid)
        return found

    def stop(self, marker: str) -> None:
        pids = self.pids(marker)
        assert pids, f"no child of syntx up runs {marker}"
        for pid in pids:
            os.kill(pid, signal.SIGSTOP)
            self.stopped.append(pid)

    @property
    def queue(self) -> FileQueue:
        return FileQueue(self.data_dir / "queue")


class Stub(ScriptedServer):
    """A loopback LLM (backend kind ``syntx``) whose behaviour a fault switches: good answers in each
    wrapper's format, 500s, or answers held back for ever."""

    def __init__(self) -> None:
        super().__init__(chooser=self._choose)
        self.mode = "ok"

    def _choose(self, request: Recorded) -> Reply:
        if self.mode == "error":
            return Reply(status=500, body=b"backend broken", content_type="text/plain")
        if self.mode == "hang":
            return Reply(action="hang")
        sigma = "Σ" in request.body.decode("utf-8", errors="replace")
        return Reply(json={"response": SIGMA_ANSWER if sigma else good_answer()})


@dataclass(frozen=True)
class Scenario:
    name: str
    target: str | None  # the alert this fault must fire; None: none may fire
    fault: Callable[[System], Awaitable[None]]
    overlay: dict[str, Any] = field(default_factory=dict)
    watch_s: float = 120.0  # the longest recording after the fault (a fault that fires ends it sooner)


async def stop_producer(system: System) -> None:
    system.stop("services.producer")


async def backend_gone(system: System) -> None:
    await system.stub.close()


async def pour_unreadable_jobs(system: System) -> None:
    """Jobs whose file cannot be read (a header that is not YAML): each is filed as malformed, a failure."""
    for index in range(20):
        path = system.queue.job_path(INCOMING, f"20260101T000000{index:06d}Z-broken")
        system.queue.write_atomic(path, b"---\ntopic: [unclosed\n---\nErklaere etwas.\n")


async def backend_hanging(system: System) -> None:
    system.stub.mode = "hang"


async def stop_scheduler(system: System) -> None:
    system.stop("services.scheduler")


async def pause_producer(system: System) -> None:
    code = "import sys; from syntx.main import main; sys.argv[0] = 'syntx'; main()"
    command = [sys.executable, "-c", code, "schedules", "pause", "producer"]
    done = await asyncio.to_thread(subprocess.run, command, env=system.env, capture_output=True, cwd=ROOT)
    assert done.returncode == 0, done.stderr


async def stop_consumers_holding_claims(system: System) -> None:
    """SIGSTOP the consumers just after one claimed a job (its answer is 3 s away: see SLOW_CLAIMS)."""
    async with asyncio.timeout(STARTUP_S):
        while not _fresh_claim(system.data_dir / "queue" / PROCESSING):  # noqa: ASYNC110 - no event here
            await asyncio.sleep(0.05)
    system.stop("services.consumer")


def _fresh_claim(folder: Path) -> bool:
    with contextlib.suppress(FileNotFoundError), os.scandir(folder) as entries:
        return any(time.time() - entry.stat().st_ctime < FRESH_CLAIM_S for entry in entries)
    return False


async def stop_consumers_and_pour_jobs(system: System) -> None:
    system.stop("services.consumer")
    for index in range(60):
        system.queue.add_job(f"Erkläre Flut {index}.", JobMeta(topic="Flut"))


async def freeze_processed(system: System) -> None:
    folder = system.data_dir / "queue" / PROCESSED
    await asyncio.to_thread(_chattr, "+i", folder)
    system.undo.append(lambda: _chattr("-i", folder))


def _chattr(flag: str, path: Path) -> None:
    subprocess.run(["chattr", flag, str(path)], check=True)


async def stop_nats(system: System) -> None:
    system.stop("nats-server")


def _stub_consumers() -> dict[str, Any]:
    """Both consumers on the loopback LLM (each its own copy: the overlay is written without aliases)."""
    return {
        "consumers": {name: {"backend": copy.deepcopy(STUB_BACKEND)} for name in ("syntex_system", "sigma")}
    }


SLOW_CLAIMS = {  # claims held 3 s each; cleanup, which takes over expired claims, at its daily hour
    "consumers": {name: {"backend": {"offline_delay_s": 3}} for name in ("syntex_system", "sigma")},
    "schedules": {"cleanup": {"cron": "0 2 * * *"}},
}
SCENARIOS = (
    Scenario("a service stopped (producer SIGSTOP)", "SyntxServiceSilent", stop_producer),
    Scenario("a backend down (the LLM server goes away)", "SyntxBackendDown", backend_gone,
             _stub_consumers()),
    Scenario("failures (20 jobs whose file cannot be read)", "SyntxErrorShare", pour_unreadable_jobs),
    Scenario("a schedule missed (scheduler SIGSTOP)", "SyntxScheduleMissed", stop_scheduler),
    Scenario("a schedule paused (syntx schedules pause producer)", None, pause_producer, watch_s=45),
    Scenario("a lease overdue (consumers SIGSTOP holding claims)", "SyntxLeaseOverdue",
             stop_consumers_holding_claims, SLOW_CLAIMS),
    Scenario("overflow (consumers SIGSTOP, 60 jobs poured in)", "SyntxOverflow",
             stop_consumers_and_pour_jobs),
    Scenario("queue unwritable (chattr +i queue/processed)", "SyntxQueueUnwritable", freeze_processed),
    Scenario("NATS down (nats-server SIGSTOP)", "SyntxNatsDown", stop_nats),
    Scenario("stalled (the LLM hangs)", "SyntxStalled", backend_hanging, _stub_consumers()),
)  # fmt: skip


@dataclass
class Recording:
    name: str
    target: str | None
    samples: list[dict[str, float]]
    fault_at: int  # the sample taken just after the fault was made
    taken_s: list[float]  # real seconds since the fault, per sample

    def series(self) -> dict[str, list[float | None]]:
        names = sorted({name for sample in self.samples for name in sample})
        return {name: [sample.get(name) for sample in self.samples] for name in names}


def _sampled(text: str) -> dict[str, float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name in RECORDED:
                labels = ",".join(f'{key}="{value}"' for key, value in sorted(sample.labels.items()))
                found[f"{sample.name}{{{labels}}}"] = sample.value
    return found


def _overlay(settings: dict[str, Any], into: Path) -> Path:
    into.write_text(yaml.safe_dump(settings), encoding="utf-8")
    return into


def _merged(*layers: dict[str, Any]) -> dict[str, Any]:
    merged: dict[str, Any] = {}
    for layer in layers:
        for key, value in layer.items():
            if isinstance(value, dict) and isinstance(merged.get(key), dict):
                merged[key] = _merged(merged[key], value)
            else:
                merged[key] = copy.deepcopy(value)
    return merged


@contextlib.asynccontextmanager
async def running(scenario: Scenario, workdir: Path) -> AsyncIterator[tuple[System, int]]:
    stub = Stub()
    await stub.start()
    overlay = _merged(COMPRESSED, scenario.overlay)
    for spec in overlay.get("consumers", {}).values():
        if spec.get("backend", {}).get("kind") == "syntx":
            spec["backend"]["url"] = stub.url
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(
        SYNTX_DATA_DIR=str(workdir / "data"),
        SYNTX_NATS__EMBEDDED_PORT=str(free_port()),
        SYNTX_MONITOR__PORT=str(port),
        SYNTX_CONFIG=f"{DEFAULT_CONFIG}:{DEMO_CONFIG}:{_overlay(overlay, workdir / 'overlay.yaml')}",
    )
    code = "import sys; from syntx.main import main; sys.argv[0] = 'syntx'; main()"
    log = (workdir / "up.log").open("wb")
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", code, "up", env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT
    )
    system = System(process, env, workdir / "data", stub)
    try:
        yield system, port
    finally:
        for pid in system.stopped:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)
        for undo in system.undo:
            undo()
        if process.returncode is None:
            process.send_signal(signal.SIGINT)
            try:
                await asyncio.wait_for(process.wait(), 60)
            except TimeoutError:
                process.kill()
        log.close()
        await stub.close()


async def record(scenario: Scenario, rules: list[Rule], workdir: Path) -> Recording:
    async with running(scenario, workdir) as (system, port), httpx.AsyncClient(timeout=10) as client:
        url = f"http://127.0.0.1:{port}/metrics"
        samples: list[dict[str, float]] = []
        async with asyncio.timeout(STARTUP_S):  # healthy and heard from every service
            while len(samples) < BEFORE or any(_state(s) != "OK" for s in samples[-BEFORE:]):
                ended = system.process.returncode is not None
                assert not ended, (workdir / "up.log").read_text(encoding="utf-8", errors="replace")[-3000:]
                samples.append(await _scrape(client, url))
                await asyncio.sleep(STEP_S)  # the sampling period, not a wait for an event
        samples = samples[-BEFORE:]
        await scenario.fault(system)
        started = time.monotonic()
        taken = [0.0] * len(samples)
        fired_at: int | None = None
        while time.monotonic() - started < scenario.watch_s:
            samples.append(await _scrape(client, url))
            taken.append(time.monotonic() - started)
            recording = Recording(scenario.name, scenario.target, samples, BEFORE, taken)
            now = firing(rules, recording.series(), len(samples) - 1, REPLAY_S)
            if fired_at is None and any(rule.alert == scenario.target for rule in now):
                fired_at = len(samples)
            if fired_at is not None and len(samples) >= fired_at + 2:
                break
            await asyncio.sleep(STEP_S)  # the sampling period, not a wait for an event
    return Recording(scenario.name, scenario.target, samples, BEFORE, taken)


async def _scrape(client: httpx.AsyncClient, url: str) -> dict[str, float]:
    for _attempt in range(int(STARTUP_S / STEP_S)):
        with contextlib.suppress(httpx.HTTPError):
            return _sampled((await client.get(url)).text)
        await asyncio.sleep(STEP_S)  # the monitor is not listening yet: ask again next second
    raise AssertionError(f"no answer from {url}")


def _state(sample: dict[str, float]) -> str:
    states = [name for name, value in sample.items() if name.startswith("syntx_health_state") and value == 1]
    return states[0].split('"')[1] if states else "?"


def hour_recording(path: Path) -> Recording:
    lines = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    samples = [_sampled(line["metrics"]) if line["metrics"] else {} for line in lines][:HOUR_SAMPLES]
    taken = [line["t"] - lines[0]["t"] for line in lines][:HOUR_SAMPLES]
    return Recording("an hour of a healthy demo (syntx up --demo, real time)", None, samples, 0, taken)


# --- deploy/alerts.test.yml -------------------------------------------------------------------------------

HEADER = """\
# Generated by `python -m tests.support.alertrecord` (see its docstring): series recorded from the real
# monitor in each fault, one sample a second replayed as one 15 s scrape, and an hour of a healthy demo
# scraped every 15 s. The expected alerts are what deploy/alerts.yml fires on them (tests/support/rules.py);
# promtool checks it:
#   promtool test rules deploy/alerts.test.yml
"""


def _values(samples: list[float | None]) -> str:
    return " ".join("_" if value is None else f"{value:g}" for value in samples)


def test_group(recording: Recording, rules: list[Rule]) -> dict[str, Any]:
    series = recording.series()
    last = len(recording.samples) - 1
    checks = []
    times = {recording.fault_at, last}
    if recording.target is None:  # nothing may fire: asked every 5 minutes of replay, not only at the end
        times |= set(range(0, last, QUIET_EVERY))
    for at in sorted(times):
        fired = firing(rules, series, at, REPLAY_S)
        for alert in sorted({rule.alert for rule in rules}):
            expected = [
                {"exp_labels": dict(rule.labels), "exp_annotations": dict(rule.annotations)}  # no aliases
                for rule in fired
                if rule.alert == alert
            ]
            checks.append({"eval_time": duration(at * REPLAY_S), "alertname": alert, "exp_alerts": expected})
    return {
        "name": recording.name,
        "interval": f"{REPLAY_S}s",
        "input_series": [{"series": name, "values": _values(values)} for name, values in series.items()],
        "alert_rule_test": checks,
    }


def test_file(recordings: list[Recording], rules: list[Rule]) -> str:
    document = {
        "rule_files": [RULES.name],
        "evaluation_interval": f"{REPLAY_S}s",
        "tests": [test_group(recording, rules) for recording in recordings],
    }
    return HEADER + yaml.safe_dump(document, sort_keys=False, allow_unicode=True, width=1_000_000)


# --- the table ----------------------------------------------------------------------------------------


def table_row(recording: Recording, rules: list[Rule]) -> str:
    series = recording.series()
    last = len(recording.samples) - 1
    seen = {
        name.split('"')[1]: value
        for name, value in recording.samples[last].items()
        if name.startswith("syntx_health_reason") and value
    }
    reasons = ", ".join(f"{code} ({'CRITICAL' if value == 2 else 'WARNING'})" for code, value in seen.items())
    state = _state(recording.samples[last])
    fired = sorted({rule.alert for rule in firing(rules, series, last, REPLAY_S)})
    first_reason = next((i for i in range(recording.fault_at, last + 1) if _reasons_at(recording, i)), None)
    shown = f"{recording.taken_s[first_reason]:.0f} s" if first_reason is not None else "-"
    fire_at = next(
        (
            i
            for i in range(last + 1)
            if any(r.alert == recording.target for r in firing(rules, series, i, REPLAY_S))
        ),
        None,
    )
    fires = duration((fire_at - recording.fault_at) * REPLAY_S) if fire_at is not None else "-"
    return (
        f"| {recording.name} | {state}: {reasons or '-'} | {', '.join(fired) or 'none'} | {shown} | {fires} |"
    )


def _reasons_at(recording: Recording, at: int) -> bool:
    return any(
        name.startswith("syntx_health_reason") and value for name, value in recording.samples[at].items()
    )


def table(recordings: list[Recording], rules: list[Rule]) -> str:
    head = (
        "| fault | health at the end: state and reasons | alerts firing at the end | reason shown after "
        "(real, compressed clocks) | target alert fires after (replayed: 1 sample = 15 s) |\n"
        "|---|---|---|---|---|"
    )
    return "\n".join([head, *(table_row(recording, rules) for recording in recordings)])


async def record_all(names: list[str] | None) -> list[Recording]:
    rules = load_rules(RULES)
    recordings = []
    for scenario in SCENARIOS:
        if names and not any(name in scenario.name for name in names):
            continue
        with tempfile.TemporaryDirectory() as temp:
            recordings.append(await record(scenario, rules, Path(temp)))
        sys.stdout.write(table_row(recordings[-1], rules) + "\n")
        sys.stdout.flush()
    return recordings


def sample_hour(port: int, into: Path, seconds: float) -> None:
    """Scrape ``port``'s /metrics every 15 s into ``into`` (a JSON line each) for ``seconds``."""
    started = time.time()
    with into.open("a", encoding="utf-8") as out, httpx.Client(timeout=10) as client:
        for n in range(int(seconds / REPLAY_S)):
            try:
                text: str | None = client.get(f"http://127.0.0.1:{port}/metrics").text
            except httpx.HTTPError:
                text = None
            out.write(json.dumps({"t": time.time(), "metrics": text}) + "\n")
            out.flush()
            time.sleep(max(0.0, started + (n + 1) * REPLAY_S - time.time()))  # the scrape interval


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", action="append", help="record only the faults whose name holds this")
    parser.add_argument("--hour", type=Path, help="a healthy hour's scrapes (JSON lines) to add")
    parser.add_argument("--sample", nargs=2, metavar=("PORT", "FILE"), help="take an hour's scrapes")
    parser.add_argument("--keep", type=Path, help="also write the fault recordings to this JSON file")
    parser.add_argument("--reuse", type=Path, help="the fault recordings of an earlier --keep, not new ones")
    args = parser.parse_args()
    if args.sample:
        sample_hour(int(args.sample[0]), Path(args.sample[1]), 3600 + REPLAY_S)
        return
    rules = load_rules(RULES)
    recordings = asyncio.run(record_all(args.only)) if args.only or not args.reuse else []
    if args.reuse:  # the earlier recordings, those recorded again now replaced
        kept = [Recording(**recording) for recording in json.loads(args.reuse.read_text(encoding="utf-8"))]
        again = {recording.name: recording for recording in recordings}
        order = [scenario.name for scenario in SCENARIOS]
        names = sorted({*again, *(r.name for r in kept if r.name in order)}, key=order.index)
        recordings = [again.get(name) or next(r for r in kept if r.name == name) for name in names]
    if args.keep:
        args.keep.write_text(json.dumps([vars(recording) for recording in recordings]), encoding="utf-8")
    if args.hour:
        recordings.append(hour_recording(args.hour))
    TESTS.write_text(test_file(recordings, rules), encoding="utf-8")
    sys.stdout.write(table(recordings, rules) + "\n")


if __name__ == "__main__":
    main()
