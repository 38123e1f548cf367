"""``python -m benchmarks.full_disk``: the whole loop (``syntx up --demo``) on a data disk that fills up.

Mounts a tmpfs of ``--size-mb`` (20) as the data directory — queue, logs and the JetStream store on it —
starts ``syntx up --demo`` there (two watching consumers with offline backends, the shipped lease of
120 s), drops ``--jobs`` (300) into incoming/ and, once ``--filled-after`` (30) of them are filed, fills
the disk to its last byte for ``--hold-s`` (30 s), then frees it. It prints:

- during the full disk: jobs in processing/ (at most) and the oldest claim's age, ``.part`` files in
  .tmp/ (at most); after it: ``.part`` files left;
- the lines ``syntx up`` printed — all, while the disk was full, tracebacks, ``--- Logging error ---``,
  services restarted;
- seconds from the space coming back to each consumer's "the queue can be written again" and to the
  first job filed after it; seconds until every job was filed;
- the dropped jobs in / filed / lost / duplicated (a result in more than one place).

Needs root (mount). Everything it starts it stops; the tmpfs is unmounted. ``--keep-log FILE`` keeps
``syntx up``'s output; ``--checkout DIR`` runs the code of another source tree (``git archive`` of an
earlier commit) for a baseline.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.disk import fill, mount_tmpfs, unmount
from benchmarks.ticks import free_ports
from shared.config import PROJECT_ROOT
from shared.queue import ARCHIVE, ERROR, PROCESSED, PROCESSING, TMP, FileQueue, JobMeta
from syntx.embedded_nats import die_with_parent

PROMPT = "Erkläre Thema {n}: wie Katzen ihre Umgebung wahrnehmen und darauf reagieren."
SAMPLE_S = 0.25  # how often the folders are looked at while the disk is full
READY = "connected and ready"
READY_SERVICES = 6
OPENED = "the queue can be written again"
FILED = re.compile(r"job (\S+) (passed|rejected): score")
START_TIMEOUT_S = 60.0
FINISH_TIMEOUT_S = 600.0
STOP_TIMEOUT_S = 60.0


@dataclass
class Output:
    """``syntx up``'s lines with the moment each arrived (read in a thread)."""

    lines: list[tuple[float, str]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def read(self, stream: object) -> None:
        for raw in iter(stream.readline, b""):  # type: ignore[attr-defined]
            with self.lock:
                self.lines.append((time.monotonic(), raw.decode("utf-8", "replace")))

    def since(self, moment: float) -> list[tuple[float, str]]:
        with self.lock:
            return [(at, line) for at, line in self.lines if at >= moment]

    def count(self, text: str) -> int:
        with self.lock:
            return sum(text in line for _, line in self.lines)


@dataclass
class Fault:
    most_claimed: int = 0
    oldest_claim_s: float = 0.0
    most_parts: int = 0


def start(data_dir: Path, checkout: Path) -> tuple[subprocess.Popen[bytes], Output]:
    """``syntx up --demo`` of the code in ``checkout`` (run from there, its packages come first)."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    nats_port, monitor_port = free_ports(2)
    env.update(
        SYNTX_DATA_DIR=str(data_dir),
        SYNTX_NATS__EMBEDDED_PORT=str(nats_port),
        SYNTX_MONITOR__PORT=str(monitor_port),
        SYNTX_CONFIG=str(checkout / "config" / "syntx.yaml"),
    )
    process = subprocess.Popen(
        [sys.executable, "-c", "from syntx.main import main; main(['up', '--demo'])"],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        env=env,
        cwd=checkout,
        preexec_fn=die_with_parent,
    )
    output = Output()
    threading.Thread(target=output.read, args=(process.stdout,), daemon=True).start()
    return process, output


def wait(condition: object, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"full_disk: not within {timeout_s:.0f}s: {what}")
        time.sleep(SAMPLE_S)  # looking at folders and output, which have no event to wait on


def places(queue: FileQueue, jobs: set[str]) -> Counter[str]:
    """How many results each dropped job has, over processed/, error/ and the archive."""
    found: Counter[str] = Counter()
    for folder in (PROCESSED, ERROR, ARCHIVE):
        for path in queue.result_files(folder):
            job_id = path.name.removesuffix(".json")
            if job_id in jobs:
                found[job_id] += 1
    return found


def sample(queue: FileQueue, fault: Fault) -> None:
    now = time.time()
    claims = []
    for entry in os.scandir(queue.folder(PROCESSING)):
        try:
            claims.append(entry.stat(follow_symlinks=False).st_ctime)
        except FileNotFoundError:
            continue
    fault.most_claimed = max(fault.most_claimed, len(claims))
    fault.oldest_claim_s = max(fault.oldest_claim_s, max((now - at for at in claims), default=0.0))
    parts = sum(1 for name in os.listdir(queue.folder(TMP)) if name.endswith(".part"))
    fault.most_parts = max(fault.most_parts, parts)


def run(args: argparse.Namespace, mount: Path) -> dict[str, object]:
    data_dir = mount / "data"
    queue = FileQueue(data_dir / "queue")
    process, output = start(data_dir, args.checkout)
    try:
        wait(lambda: output.count(READY) >= READY_SERVICES, START_TIMEOUT_S, "every service ready")
        queue.ensure()
        jobs = {queue.add_job(PROMPT.format(n=n), JobMeta(topic=f"Thema {n}")) for n in range(args.jobs)}
        wait(lambda: sum(places(queue, jobs).values()) >= args.filled_after, FINISH_TIMEOUT_S, "results")
        filled_at = time.monotonic()
        filler = fill(mount)
        fault = Fault()
        while time.monotonic() - filled_at < args.hold_s:
            sample(queue, fault)
            time.sleep(SAMPLE_S)  # the fault lasts --hold-s: a pace for sampling, not a wait for an event
        freed_at = time.monotonic()
        filler.unlink()
        wait(lambda: set(places(queue, jobs)) == jobs, FINISH_TIMEOUT_S, "every dropped job filed")
        finished_at = time.monotonic()
        time.sleep(args.settle_s)  # what the services say once the fault is over, cleanup's next pass
        return report(queue, jobs, output, fault, filled_at, freed_at, finished_at)
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if args.keep_log is not None:
            args.keep_log.write_text("".join(line for _, line in output.lines), encoding="utf-8")


def report(
    queue: FileQueue,
    jobs: set[str],
    output: Output,
    fault: Fault,
    filled_at: float,
    freed_at: float,
    finished_at: float,
) -> dict[str, object]:
    after_free = output.since(freed_at)
    opened = [at - freed_at for at, line in after_free if OPENED in line]
    first_filed = next((at - freed_at for at, line in after_free if FILED.search(line)), None)
    during = [line for at, line in output.since(filled_at) if at < freed_at]
    results = places(queue, jobs)
    return {
        "jobs in": len(jobs),
        "jobs filed": len(results),
        "lost": len(jobs - set(results)),
        "duplicated": sum(1 for count in results.values() if count > 1),
        "most jobs in processing/ while full": fault.most_claimed,
        "oldest claim while full (s)": round(fault.oldest_claim_s, 1),
        "most .part files in .tmp/ while full": fault.most_parts,
        ".part files left": sum(1 for name in os.listdir(queue.folder(TMP)) if name.endswith(".part")),
        "lines in all": len(output.lines),
        "lines while full": len(during),
        "tracebacks": output.count("Traceback"),
        "'--- Logging error ---'": output.count("--- Logging error ---"),
        "services restarted": output.count("restarting in"),
        "gate opened after space returned (s)": [round(seconds, 2) for seconds in opened],
        "first job filed after space returned (s)": None if first_filed is None else round(first_filed, 2),
        "every job filed after space returned (s)": round(finished_at - freed_at, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.full_disk", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--jobs", type=int, default=300)
    parser.add_argument("--size-mb", type=int, default=20)
    parser.add_argument("--filled-after", type=int, default=30, help="fill the disk once this many are filed")
    parser.add_argument("--hold-s", type=float, default=30.0, help="how long the disk stays full")
    parser.add_argument("--settle-s", type=float, default=5.0, help="watch this long after the last job")
    parser.add_argument("--keep-log", type=Path, help="write syntx up's output here")
    parser.add_argument(
        "--checkout", type=Path, default=PROJECT_ROOT, help="run the code of this source tree (a baseline)"
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="syntx-full-disk-") as temporary:
        mount = Path(temporary) / "disk"
        problem = mount_tmpfs(mount, args.size_mb * 1024 * 1024)
        if problem is not None:
            raise SystemExit(f"full_disk: {problem} (run it as root)")
        try:
            figures = run(args, mount)
        finally:
            unmount(mount)
    width = max(map(len, figures))
    for name, value in figures.items():
        print(f"{name:<{width}}  {value}")  # noqa: T201 - a benchmark prints its table


if __name__ == "__main__":
    main()
