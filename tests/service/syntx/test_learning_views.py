"""Views of the producer's learning: the compact evolution log (written by the real producer over a real
nats-server), ``syntx learning`` as a table, as JSON and as a picture (real files), and the monitor's
arm-share and mean-score metrics (real nats-server)."""

from __future__ import annotations

import asyncio
import json
import random
import struct
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from services.monitor.app import Monitor
from shared.config import CONFIG_ENV, DEFAULT_CONFIG, Settings, load_settings
from shared.learning import Learner, Observation
from shared.learning.evolution import (
    EVOLUTION_LOG,
    MAX_LINE_BYTES,
    TAIL_BYTES,
    Changed,
    GenerationLine,
    append_generation,
    last_generation,
    read_generations,
)
from shared.learning.state import Checkpoint, read_checkpoint, save_checkpoint
from shared.messaging import (
    Event,
    ProducerGeneration,
    ProducerStatsReply,
    ProducerStatsRequest,
    ServiceHeartbeat,
    connect,
    subjects,
)
from shared.queue import FileQueue
from syntx.learningplot import rolling_means, short_memory_spans, shown_arms
from syntx.main import main
from tests.support.harness import HEARTBEATS, free_port, observer
from tests.support.natsserver import NatsServer
from tests.support.producers import (
    producer_running,
    producer_settings,
    score_jobs,
    stats_once_learned,
    tick,
)

BEST = "technologie/akademisch"
WORST = "kritisch/casual"
OTHER = "bildung/casual"


def line(generation: int, jobs: dict[str, int], **fields: object) -> GenerationLine:
    return GenerationLine.model_validate(
        {
            "generation": generation,
            "time": datetime(2026, 11, 30, 4, tzinfo=UTC) + timedelta(minutes=generation),
            "produced": sum(jobs.values()),
            "jobs": jobs,
        }
        | fields
    )


# -- the evolution log -----------------------------------------------------------------------------


def test_a_generation_line_is_compact_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / EVOLUTION_LOG
    written = line(
        3,
        {BEST: 15, OTHER: 5},
        learned=20,
        mean_score=91.25,
        favoured=[BEST, OTHER, WORST],
        memory="short",
        changed=Changed(favoured_in=[BEST], drifting=[WORST]),
    )
    append_generation(path, written)
    append_generation(path, line(4, {}))
    raw = path.read_text(encoding="utf-8").splitlines()
    assert len(raw[0]) < 400 and " " not in raw[0].replace("Z", "")  # no padding, no per-arm summaries
    assert json.loads(raw[0])["changed"] == {"favoured_in": [BEST], "drifting": [WORST]}
    assert json.loads(raw[1]) == {"generation": 4, "time": "2026-11-30T04:04:00Z", "produced": 0}
    assert list(read_generations(path)) == [written, line(4, {})]


def test_reading_skips_what_is_not_a_generation_and_reads_older_lines(tmp_path: Path) -> None:
    path = tmp_path / EVOLUTION_LOG
    older = {"timestamp": "2026-11-29T10:00:00+00:00", "generation": 1, "learned_new": 4, "produced": 20}
    lines = [
        json.dumps(older | {"arms": {BEST: {"weight": 1, "mean": 90, "sd": 3}}, "favoured": [BEST]}),
        "{truncated",
        "[1]",
        json.dumps({"generation": 0, "time": "2026-11-29T10:00:00Z"}),
        json.dumps({"generation": 2, "time": "2026-11-29T10:00:00Z", "jobs": {"x": "many"}}),
        json.dumps({"generation": 3, "time": "2026-11-29T10:00:00Z", "note": "x" * MAX_LINE_BYTES}),
        line(4, {BEST: 20}).to_line(),
    ]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    generations = list(read_generations(path))
    assert [g.generation for g in generations] == [1, 4]
    assert (generations[0].learned, generations[0].jobs, generations[0].favoured) == (4, {}, [BEST])
    assert list(read_generations(tmp_path / "missing.jsonl")) == []


def test_last_generation_reads_only_the_tail(tmp_path: Path) -> None:
    path = tmp_path / EVOLUTION_LOG
    body = "".join(line(generation, {BEST: 20}).to_line() + "\n" for generation in range(1, 6001))
    path.write_bytes(b"\xff\xfe not text at all\n" + body.encode() + b'{"generation": "x"}\n{cut off')
    assert path.stat().st_size > 2 * TAIL_BYTES
    assert last_generation(path) == 6000  # the undecodable head is never read


async def test_the_producer_logs_jobs_per_arm_the_mean_score_and_what_changed(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        first = await tick(nc, events)
        scores = [60 + 5 * index for index in range(8)]
        await score_jobs(nc, queue, scores)
        second = await tick(nc, events, count=2)

    logged = list(read_generations(settings.logs_dir / EVOLUTION_LOG))
    assert [g.generation for g in logged] == [1, 2]
    assert sum(logged[0].jobs.values()) == logged[0].produced == first.produced == 20
    assert logged[0].jobs == first.arm_jobs and logged[1].jobs == second.arm_jobs
    assert (logged[0].learned, logged[0].mean_score, first.mean_score) == (0, None, None)
    assert logged[1].learned == 8
    assert logged[1].mean_score == second.mean_score == pytest.approx(sum(scores) / 8)
    assert logged[0].favoured == first.favoured and logged[1].favoured == second.favoured
    assert logged[1].changed.favoured_in == [a for a in second.favoured if a not in first.favoured]
    assert logged[1].changed.favoured_out == [a for a in first.favoured if a not in second.favoured]
    assert logged[0].memory == "long"


# -- syntx learning ----------------------------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, nats_server: NatsServer) -> Path:
    """The command's data directory, on a nats-server where no producer answers unless a test runs one."""
    monkeypatch.setenv(CONFIG_ENV, str(DEFAULT_CONFIG))
    monkeypatch.setenv("SYNTX_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SYNTX_NATS__URL", nats_server.url)
    return tmp_path / "data"


def syntx(*argv: str) -> int | str | None:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return exited.value.code


def write_learner(settings: Settings, scores: dict[str, list[int]], context: str = "sigma") -> None:
    arms = [(category, style) for category in settings.topics for style in settings.styles]
    learner = Learner(settings.producer.learning, arms, random.Random(1))
    sequence = 0
    for arm, values in scores.items():
        category, style = arm.split("/")
        for score in values:
            learner.observe(
                Observation(
                    f"job-{sequence}", sequence, category, style, "de", f"{context}|x|y|syntx-2", score
                )
            )
            sequence += 1
    queue = FileQueue(settings.queue_dir)
    queue.ensure()
    checkpoint = Checkpoint(
        next_sequence=sequence, scan_from=None, learner=learner.to_state(), estimates=learner.estimates()
    )
    save_checkpoint(queue, checkpoint_path(settings), checkpoint)


def checkpoint_path(settings: Settings) -> Path:
    return settings.data_dir / settings.producer.learning.state_file


def planted(data_dir: Path) -> Settings:
    settings = load_settings()
    write_learner(settings, {BEST: [97, 99, 98, 96] * 5, WORST: [40, 45, 50, 42] * 5, OTHER: [80] * 4})
    log = settings.logs_dir / EVOLUTION_LOG
    append_generation(log, line(1, {OTHER: 20}))
    append_generation(log, line(2, {WORST: 20}, learned=20, mean_score=80.0))
    append_generation(log, line(3, {BEST: 10, OTHER: 10}, learned=20, mean_score=45.5))
    append_generation(
        log,
        line(
            4,
            {BEST: 20},
            learned=20,
            mean_score=88.5,
            memory="short",
            favoured=[BEST, OTHER],
            changed=Changed(favoured_in=[BEST], favoured_out=[WORST], drifting=[WORST]),
        ),
    )
    return settings


def test_learning_shows_every_arm_with_estimate_share_and_trend(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = planted(data_dir)
    assert syntx("learning", "--last", "40") == 0
    text = capsys.readouterr().out
    saved = datetime.fromtimestamp(checkpoint_path(settings).stat().st_mtime, settings.zone)
    assert text.splitlines()[0] == (
        f"from the checkpoint saved at {saved:%Y-%m-%d %H:%M:%S %z} (the producer did not answer)"
    )
    table = [row.removeprefix("*").split() for row in text.splitlines() if " - " in row and "/" in row]
    assert len(table) == len(settings.topics) * len(settings.styles)
    rows = {cells[0]: cells for cells in table}
    estimates = [float(cells[2]) for cells in table]
    assert all(cells[1].isdigit() for cells in table)
    assert estimates == sorted(estimates, reverse=True) and table[-1][0] == WORST
    favoured = [row.split()[1] for row in text.splitlines() if row.startswith("*  ")]
    assert BEST in favoured and len(favoured) == 3
    best = rows[BEST]
    assert best[-3:] == ["75%", "+75.0", "pp"]  # 30 of the last 40 jobs, none of the 40 before
    assert rows[OTHER][-3:] == ["25%", "-25.0", "pp"] and rows[WORST][-3:] == ["0%", "-50.0", "pp"]
    assert best[1] == "20" and rows[OTHER][1] == "4"  # results remembered, whole numbers
    low, high = float(best[3]), float(best[5])
    assert low < float(best[2]) < high <= 100
    chances = {cells[0]: float(cells[6].rstrip("%")) for cells in table}  # of being the best arm
    assert max(chances, key=chances.__getitem__) == BEST and chances[WORST] == 0
    assert "results: the scored jobs behind the estimate" in text and "not the jobs made" in text
    assert "share: of the last 40 jobs (generations 3-4); trend: against the 40 before (1-2)" in text
    assert "context   sigma|x|y|syntx-2" in text
    assert "generation 4 at " in text and "mean score 88.5 (generation 3: 45.5)" in text
    assert (
        f"changed: now favoured {BEST}; no longer favoured {WORST}; memory long -> short; "
        f"recent scores drift for {WORST}" in text
    )


def test_learning_json_for_machines(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    planted(data_dir)
    assert syntx("learning", "--json", "--last", "40") == 0
    document = json.loads(capsys.readouterr().out)
    assert document["source"] == "checkpoint" and document["checkpoint_saved"]
    arms = {row["arm"]: row for row in document["arms"]}
    assert document["arms"][-1]["arm"] == WORST
    estimates = [row["estimate"] for row in document["arms"]]
    assert estimates == sorted(estimates, reverse=True)
    assert all(0 <= row["low"] <= row["estimate"] <= row["high"] <= 100 for row in document["arms"])
    assert all(isinstance(row["results"], int) for row in document["arms"]) and arms[BEST]["results"] == 20
    assert sum(row["chance_best"] for row in document["arms"]) == pytest.approx(1.0, abs=0.01)
    assert (arms[BEST]["share"], arms[BEST]["previous_share"], arms[BEST]["trend"]) == (0.75, 0.0, 0.75)
    assert (arms[OTHER]["share"], arms[OTHER]["previous_share"], arms[OTHER]["trend"]) == (0.25, 0.5, -0.25)
    assert arms[WORST]["share"] == 0.0 and arms[WORST]["previous_share"] == 0.5
    assert arms[BEST]["low"] < arms[BEST]["estimate"] < arms[BEST]["high"]
    assert arms[BEST]["estimate"] - arms[WORST]["estimate"] > 30
    assert arms[BEST]["favoured"] and not arms[WORST]["favoured"]
    assert document["window"] == {"jobs": 40, "first_generation": 3, "last_generation": 4}
    assert document["previous_window"] == {"jobs": 40, "first_generation": 1, "last_generation": 2}
    assert document["learned"] == 44 and document["generation"] == 4
    assert set(document["effects"]) == {"category", "style", "language", "context"}
    assert sum(document["effects"]["category"].values()) == pytest.approx(0.0, abs=0.05)
    assert document["changed"] == {
        "favoured_in": [BEST],
        "favoured_out": [WORST],
        "drifting": [WORST],
        "memory_switched": "long -> short",
    }


def test_learning_without_state_says_so_in_one_line(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert syntx("learning") == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("no learner state at ") and "learner.json" in error[0]

    state = data_dir / "state" / "learner.json"
    state.parent.mkdir(parents=True)
    state.write_text('{"version": 1, "next_sequence": 0, "scan_from": null, "learner": {"version": 2}}')
    assert syntx("learning") == 1
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and "unusable" in error[0] and "rebuilds it from the result files" in error[0]
    state.write_text("{not json")
    assert syntx("learning", "--json") == 1
    assert "unusable" in capsys.readouterr().err


async def test_learning_shows_what_the_running_producer_learned_since_its_last_tick(
    data_dir: Path, tmp_path: Path, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    settings = producer_settings(tmp_path, nats_server, seed=3)
    assert settings.data_dir == data_dir
    queue = FileQueue(settings.queue_dir)
    async with producer_running(settings) as (nc, events):
        await tick(nc, events)
        await score_jobs(nc, queue, [97] * 5)
        believed = await stats_once_learned(nc, 5)
        assert await asyncio.to_thread(syntx, "learning") == 0
        text = capsys.readouterr().out
        assert await asyncio.to_thread(syntx, "learning", "--json") == 0
        document = json.loads(capsys.readouterr().out)
    saved = read_checkpoint(checkpoint_path(settings))
    assert saved.learner.observed == 0  # the last tick learned nothing: what is shown came live

    assert text.splitlines()[:2] == [
        "live from the running producer",
        "learner: 5 scored jobs learned, 0 results refused; long memory: the newest 2000 jobs in full, "
        "older ones halving every as many",
    ]
    assert (document["source"], document["checkpoint_saved"], document["learned"]) == ("producer", None, 5)
    assert [(row["arm"], row["estimate"]) for row in document["arms"]] == [
        (row.arm, round(row.mean, 2)) for row in believed.estimates.arms
    ]
    assert saved.estimates is not None and sum(row.results for row in saved.estimates.arms) == 0
    assert sum(row["results"] for row in document["arms"]) == 5

    assert await asyncio.to_thread(syntx, "learning") == 0  # the producer has stopped
    fallback = capsys.readouterr()
    saved_at = datetime.fromtimestamp(checkpoint_path(settings).stat().st_mtime, settings.zone)
    assert fallback.out.splitlines()[:2] == [
        f"from the checkpoint saved at {saved_at:%Y-%m-%d %H:%M:%S %z} (the producer did not answer)",
        "learner: 0 scored jobs learned, 0 results refused; long memory: the newest 2000 jobs in full, "
        "older ones halving every as many",
    ]
    assert fallback.err == ""


async def test_learning_falls_back_to_the_checkpoint_when_the_producer_cannot_answer(
    data_dir: Path, nats_server: NatsServer, capsys: pytest.CaptureFixture[str]
) -> None:
    planted(data_dir)
    async with connect(load_settings().nats, name="failing producer") as bus:
        await bus.serve(ProducerStatsRequest, failing, queue="producer")
        assert await asyncio.to_thread(syntx, "learning") == 0
    said = capsys.readouterr()
    assert said.out.splitlines()[0].endswith(" (the producer's answer could not be used)")
    assert "learner: 44 scored jobs learned" in said.out
    assert said.err == (
        "syntx learning: the producer could not answer on syntx.producer.stats: the service could not "
        "answer: the disk is gone\n"
    )


async def failing(_request: ProducerStatsRequest) -> ProducerStatsReply:
    raise OSError("the disk is gone")


def test_learning_falls_back_to_the_checkpoint_when_nats_is_down(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    planted(data_dir)
    monkeypatch.setenv("SYNTX_NATS__URL", f"nats://127.0.0.1:{free_port()}")
    assert syntx("learning") == 0
    said = capsys.readouterr()
    assert said.out.splitlines()[0].endswith(" (the producer did not answer)")
    assert said.err == ""


def png_size(path: Path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", header[16:24])
    return width, height


def test_learning_plot_draws_png_and_svg(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    planted(data_dir)
    picture = tmp_path / "learning.png"
    assert syntx("learning", "--plot", str(picture)) == 0
    assert capsys.readouterr().out.startswith(f"wrote {picture} (4 generations from ")
    assert png_size(picture) == (1320, 840)
    from matplotlib.image import imread

    pixels = imread(str(picture))
    assert len({tuple(pixel) for row in pixels[::20] for pixel in row[::20]}) > 5  # not a blank page

    vector = tmp_path / "learning.svg"
    assert syntx("learning", "--plot", str(vector)) == 0
    assert vector.read_text(encoding="utf-8").lstrip().startswith("<?xml") and "<svg" in vector.read_text()


def test_learning_plot_refuses_what_it_cannot_draw(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert syntx("learning", "--plot", str(tmp_path / "a.png")) == 1
    assert "no generation with produced jobs" in capsys.readouterr().err
    planted(data_dir)
    assert syntx("learning", "--last", "0") == 2
    assert capsys.readouterr().err == "--last 0: the share window needs at least 1 job\n"
    assert syntx("learning", "--plot", str(tmp_path / "a.jpg")) == 2
    assert ".png or .svg" in capsys.readouterr().err
    assert syntx("learning", "--plot", str(tmp_path / "missing" / "a.png")) == 2
    assert capsys.readouterr().err.startswith("cannot write ")
    monkeypatch.setitem(sys.modules, "matplotlib.figure", None)  # as if the extra were not installed
    assert syntx("learning", "--plot", str(tmp_path / "a.png")) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [
        "drawing needs the plot extra: pip install -e '.[plot]' (matplotlib; or pip install 'syntx[plot]')"
    ]
    assert not (tmp_path / "a.png").exists()


def test_the_plot_colours_the_arms_that_took_the_most_jobs() -> None:
    early_arms = {f"bildung/arm{rank}": 10 - rank for rank in range(8)}  # 10, 9, 8 ... jobs a generation
    early = [line(g, early_arms) for g in range(1, 11)]
    late = [line(g, {BEST: 20}) for g in range(11, 13)]  # 40 jobs in all: fewer than bildung/arm5's 50
    shown = shown_arms(early + late, 40)
    assert shown == [*(f"bildung/arm{rank}" for rank in range(5)), BEST]
    memories = ["long", "short", "short", "long", "short"]
    generations = [line(g, {BEST: 1}, memory=m) for g, m in enumerate(memories, start=1)]
    assert short_memory_spans(generations) == [(2, 3), (5, 5)]


def test_the_plot_leaves_generations_without_jobs_empty() -> None:
    from matplotlib.figure import Figure

    from syntx.learningplot import _draw_shares

    generations = [line(1, {BEST: 4, OTHER: 2}), line(2, {}), line(4, {BEST: 6})]  # 2 produced none, 3 absent
    axes = Figure().subplots()
    _draw_shares(axes, generations, 40)
    bars = [bar for container in axes.containers for bar in container if bar.get_height() > 0]
    assert sorted({round(bar.get_x() + bar.get_width() / 2) for bar in bars}) == [1, 4]
    assert all(bar.get_width() == 1.0 for bar in bars)


def test_the_rolling_mean_covers_the_newest_hundred_results_with_its_band() -> None:
    generations = [
        line(g, {BEST: 1}, learned=50, mean_score=50.0 + 10 * g, score_sd=10.0) for g in range(1, 5)
    ]
    generations.insert(2, line(3, {}))  # nothing learned: no point there
    points = {point.generation: point for point in rolling_means(generations)}
    assert set(points) == {1, 2, 3, 4}
    assert points[1].mean == pytest.approx(60.0)  # 50 results: drawn, not yet 100
    assert points[2].mean == pytest.approx(65.0)  # generations 1-2: 100 results
    assert points[4].mean == pytest.approx(85.0)  # generations 3-4 (the empty one skipped)
    spread = (49 * 100 * 2 + 50 * 25 * 2) / 99  # within and between the two generations
    assert points[4].half_band == pytest.approx(1.96 * (spread / 100) ** 0.5)


# -- the monitor --------------------------------------------------------------------------------------


async def test_the_monitor_exports_arm_shares_and_mean_score_with_bounded_arms(
    tmp_path: Path, nats_server: NatsServer
) -> None:
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path / "data",
        nats={"url": nats_server.url},
        monitor={"host": "127.0.0.1", "port": 0, "reconcile_s": 3600},
    )
    monitor = Monitor(settings)
    seen: list[int] = []
    done = asyncio.Event()
    original = monitor.tracker.on_event

    async def on_event(event: Event) -> None:
        await original(event)
        if isinstance(event, ProducerGeneration):
            seen.append(event.generation)
            if len(seen) == 2:
                done.set()

    monitor.tracker.on_event = on_event  # type: ignore[method-assign]
    stop = asyncio.Event()
    generations = [
        ProducerGeneration(
            generation=1,
            learned_from=0,
            produced=20,
            requested=20,
            queue_state="STARVING",
            incoming=0,
            arm_jobs={BEST: 15, OTHER: 3, "made/up": 2},
            mean_score=91.5,
        ),
        ProducerGeneration(
            generation=2, learned_from=20, produced=0, requested=0, queue_state="HIGH", incoming=30
        ),
    ]
    async with (
        observer(nats_server.url, HEARTBEATS) as (_nc, events),
        connect(settings.nats, name="monitor") as bus,
    ):
        task = asyncio.create_task(monitor.serve(bus, stop))
        await events.wait_for(
            lambda evs: any(isinstance(e, ServiceHeartbeat) and e.service == "monitor" for e in evs)
        )
        for generation in generations:
            await bus.emit(subjects.PRODUCER_GENERATION, generation)
        await asyncio.wait_for(done.wait(), timeout=10)
        stop.set()
        await asyncio.wait_for(task, timeout=30)

    text = monitor.metrics_reply().body.decode()
    shares = {
        arm: float(value)
        for arm, value in (
            (row.split('arm="')[1].split('"')[0], row.split()[-1])
            for row in text.splitlines()
            if row.startswith("syntx_producer_arm_share{")
        )
    }
    assert set(shares) == {f"{c}/{s}" for c in settings.topics for s in settings.styles} | {"other"}
    assert (shares[BEST], shares[OTHER], shares["other"]) == (0.75, 0.15, 0.1)
    assert sum(shares.values()) == pytest.approx(1.0)
    assert "syntx_producer_mean_score 91.5" in text.splitlines()
