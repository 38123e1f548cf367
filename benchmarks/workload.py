"""What the benchmark feeds the consumer and reads back: a job, an LLM answer, job writers, results."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from shared.config import PROJECT_ROOT, QueueSettings
from shared.queue import (
    ERROR,
    INCOMING,
    JOB_SUFFIX,
    PROCESSED,
    RESULT_SUFFIX,
    TMP,
    FileQueue,
    JobMeta,
    JobResult,
    render_job,
)
from shared.scoring import FormatSpec, load_catalog

WRAPPER = "syntex_system"
MAX_RESULT_BYTES = QueueSettings().max_result_bytes
PROMPT = (
    "Untersuche „Klimawandel“ aus dem Bereich Gesellschaft: Welche Spannungen, Muster und Strömungen "
    "prägen die öffentliche Debatte heute, und wie reagieren Politik, Wirtschaft und Bürger darauf?"
)
META = JobMeta(topic="Klimawandel", category="gesellschaft", style="akademisch", language="de", generation=1)

# About 400 characters of German per section, no repeated sentences, the format's keywords and the
# prompt's content words in it: parsing and the default scorer do their full work, and the answer passes.
_SECTIONS = (
    "Die öffentliche Debatte über den Klimawandel zeigt an der Oberfläche eine Erscheinung aus Protest, "
    "Gipfeln und Schlagzeilen. Darunter liegt eine Struktur aus Interessen der Wirtschaft, der Politik und "
    "der Bürger, die sich gegenseitig blockieren. Der Mechanismus ist ein Wechsel aus Alarm und Ermüdung, "
    "der Spannungen verstärkt. Als Kern bleibt die Frage, wer die Kosten trägt und wer den Nutzen erhält.",
    "Die Gesellschaft passt sich in kleinen Schritten an: Jede Anpassung erzeugt Feedback aus Märkten, "
    "Wahlen und Medien, das die nächste Veränderung formt. Politik reagiert auf Muster der Zustimmung, "
    "Wirtschaft auf Preise und Regulation, Bürger auf spürbare Folgen im Alltag. Die Dynamik richtet sich "
    "neu aus, sobald eine Transformation bezahlbar und sichtbar wird, und sie stockt, wenn Vertrauen fehlt.",
    "Energie fließt als Geld in Netze, Speicher und Gebäude, Information als Strom von Daten und Meinungen "
    "durch soziale Kanäle. Aufmerksamkeit staut sich bei Katastrophen und fließt rasch wieder ab, wenn neue "
    "Themen auftauchen. Ein Kreislauf aus Transfer von Wissen, Investitionen und Protest hält die Strömungen "
    "in Bewegung. Wo Bürger beteiligt werden, entsteht ein stetiger Fluss statt einzelner Wellen.",
)


def syntex_format() -> FormatSpec:
    catalog = load_catalog([PROJECT_ROOT / "wrappers"])
    return catalog.formats[catalog.wrappers[WRAPPER].format]


def wrapper_template() -> str:
    return load_catalog([PROJECT_ROOT / "wrappers"]).wrappers[WRAPPER].template


def answer_text(fmt: FormatSpec | None = None) -> str:
    """A complete, well-formed ``syntex_system`` answer built from the format's own header lines."""
    headers = (fmt or syntex_format()).header_lines()
    return "\n\n".join(f"{header}\n{body}" for header, body in zip(headers, _SECTIONS, strict=True)) + "\n"


def job_bytes() -> bytes:
    return render_job(PROMPT, META).encode("utf-8")


def job_ids(count: int, start: int = 0, epoch: datetime | None = None) -> list[str]:
    """Ids shaped like ``new_job_id()``'s, one microsecond apart: they sort in creation order."""
    base = (epoch or datetime.now(UTC)).astimezone(UTC)
    return [
        f"{base + timedelta(microseconds=index):%Y%m%dT%H%M%S%f}Z-{index:06x}"
        for index in range(start, start + count)
    ]


def write_jobs_bulk(queue_root: Path, count: int, start: int = 0, folder_name: str = INCOMING) -> list[str]:
    """Write ``count`` jobs straight into ``incoming/`` (or another folder below ``queue_root``) with plain
    os calls (the consumer is not running)."""
    data = job_bytes()
    folder = os.fspath(queue_root / folder_name)
    ids = job_ids(count, start)
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    for job_id in ids:
        fd = os.open(os.path.join(folder, job_id + JOB_SUFFIX), flags, 0o644)
        try:
            os.write(fd, data)
        finally:
            os.close(fd)
    return ids


def release_jobs(queue_root: Path, folder_name: str, ids: list[str]) -> None:
    """Move the jobs ``ids`` written into ``folder_name`` into ``incoming/``, one rename each, oldest first
    (what a producer's renames look like to consumers that watch ``incoming/``, at full speed)."""
    source, target = queue_root / folder_name, queue_root / INCOMING
    for job_id in ids:
        os.rename(source / f"{job_id}{JOB_SUFFIX}", target / f"{job_id}{JOB_SUFFIX}")


def add_job_timed(queue: FileQueue, data: bytes, job_id: str) -> float:
    """``FileQueue.add_job`` step by step (stage in ``.tmp/``, rename); returns the time of the rename."""
    staging = queue.folder(TMP) / f"{job_id}.bench.part"
    with staging.open("wb") as handle:
        handle.write(data)
    renamed_at = time.time()
    os.replace(staging, queue.job_path(INCOMING, job_id))
    return renamed_at


def result_count(queue_root: Path, folders: tuple[str, ...] = (PROCESSED, ERROR)) -> int:
    total = 0
    for folder in folders:
        with os.scandir(queue_root / folder) as entries:
            total += sum(1 for entry in entries if entry.name.endswith(RESULT_SUFFIX))
    return total


@dataclass(frozen=True)
class Finished:
    """One result: when its first attempt started (right after the claim) and when it was filed."""

    job_id: str
    status: str
    started: float
    finished: float


def read_results(queue_root: Path) -> list[Finished]:
    found: list[Finished] = []
    for folder in (PROCESSED, ERROR):
        for path in (queue_root / folder).glob(f"*{RESULT_SUFFIX}"):
            record = JobResult.load(path, max_bytes=MAX_RESULT_BYTES)
            started = record.attempts[0].started_at if record.attempts else record.finished_at
            found.append(
                Finished(
                    job_id=record.job_id,
                    status=record.status,
                    started=started.timestamp(),
                    finished=record.finished_at.timestamp(),
                )
            )
    return found


def jobs_per_second(results: list[Finished]) -> float:
    """Finished jobs over the span from the first claim to the last result."""
    if len(results) < 2:
        return 0.0
    span = max(item.finished for item in results) - min(item.started for item in results)
    return len(results) / span if span > 0 else 0.0
