"""``python -m benchmarks.hostile_config``: what hostile configuration costs the command that reads it.

Each row runs one real command as its own process and reads, once it has exited, its peak resident set
(``ru_maxrss`` of :func:`os.wait4`), its exit code and the last line it printed:

- a consumer (``python -m services.consumer``) whose wrapper directory holds a 30 MB template;
- ``syntx status`` with a configuration overlay that is a YAML alias bomb (400 bytes, 9^8 nodes);
- ``syntx score`` with a format whose keywords are an alias bomb, and with a wrapper that is not UTF-8;
- as baselines, the same commands refused for an ordinary mistake (an unknown wrapper, a wrong value).

Every hostile row must be refused (exit 2, one line) at about its baseline's memory. A row that runs
longer than ``--timeout`` seconds is killed and reported. Everything it writes goes to a temp dir.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from shared.config import DEFAULT_CONFIG, PROJECT_ROOT

TEMPLATE_MB = 30
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [{','.join([f'*{chr(97 + level)}'] * 9)}]\n" for level in range(7)
)
FORMAT_BOMB = (
    "layout: hash\n"
    + ALIAS_BOMB
    + "fields: [{key: a, label: A, weight: 1, min_chars: 1, ideal_chars: 2, keywords: [*h, *h]}]\n"
)
ANSWER = "### DRIFT:\nEin Text.\n"
SYNTX = str(Path(sys.executable).parent / "syntx")
LOG_PREFIX = re.compile(r"^\S+ [A-Z]+ +\S+ \S+: ")  # a service's log line: time, level, service, logger
MARGIN_MB = 20.0  # a refused row may exceed its baseline by this much (the size of what it read)


@dataclass(frozen=True)
class Row:
    name: str
    code: int | None
    said: str
    peak_mb: float
    seconds: float


@dataclass(frozen=True)
class Case:
    name: str
    argv: list[str]
    env: dict[str, str]
    baseline: str | None = None  # the row this one is compared with


def run_case(case: Case, timeout_s: float, workdir: Path) -> Row:
    """Run ``case`` to its end (killed after ``timeout_s``); reaped with :func:`os.wait4` for its usage."""
    said_path = workdir / "stderr.txt"
    started = time.monotonic()
    with said_path.open("wb") as said:
        process = subprocess.Popen(case.argv, env=case.env, stdout=said, stderr=said, cwd=PROJECT_ROOT)
    status, usage = _reaped(process.pid, started + timeout_s)
    process.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    last = said_path.read_text(encoding="utf-8", errors="replace").strip().rpartition("\n")[2]
    last = LOG_PREFIX.sub("", last).replace(str(workdir), "<tmp>")
    return Row(case.name, process.returncode, last, usage.ru_maxrss / 1024, time.monotonic() - started)


def _reaped(pid: int, deadline: float) -> tuple[int, resource.struct_rusage]:
    while time.monotonic() < deadline:
        done, status, usage = os.wait4(pid, os.WNOHANG)
        if done:
            return status, usage
        time.sleep(0.05)  # polling a child's exit: there is no event to wait on without reaping it
    os.kill(pid, signal.SIGKILL)
    _pid, status, usage = os.wait4(pid, 0)
    return status, usage


def environment(workdir: Path, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith("SYNTX_")}
    env.update(SYNTX_DATA_DIR=str(workdir / "data"), SYNTX_NATS__URL="nats://127.0.0.1:9", **extra)
    return env


def cases(workdir: Path) -> list[Case]:
    consumer = [sys.executable, "-m", "services.consumer", "--wrapper"]
    big = workdir / "big"
    big.mkdir()
    with (big / "big.txt").open("w", encoding="utf-8") as handle:
        handle.write("---\nformat: sigma\n---\n")
        for _ in range(TEMPLATE_MB):
            handle.write("Erkläre bitte genau. " * 49_932)  # ~1 MB of text per round
    (workdir / "bomb.yaml").write_text(ALIAS_BOMB, encoding="utf-8")
    (workdir / "wrong.yaml").write_text("producer: {batch: lots}\n", encoding="utf-8")
    (workdir / "formats" / "formats").mkdir(parents=True)
    (workdir / "formats" / "formats" / "bomb.yaml").write_text(FORMAT_BOMB, encoding="utf-8")
    (workdir / "latin1").mkdir()
    (workdir / "latin1" / "eigen.txt").write_bytes("---\nformat: sigma\n---\nErkläre.\n".encode("latin-1"))
    (workdir / "answer.txt").write_text(ANSWER, encoding="utf-8")
    answer = str(workdir / "answer.txt")

    def dirs(path: Path) -> dict[str, str]:
        return environment(workdir, SYNTX_WRAPPER_DIRS=f'["{path}"]')

    def layered(path: Path) -> dict[str, str]:
        return environment(workdir, SYNTX_CONFIG=f"{DEFAULT_CONFIG}:{path}")

    return [
        Case("consumer, unknown wrapper", [*consumer, "nosuch"], environment(workdir)),
        Case(
            "consumer, 30 MB template",
            [*consumer, "big"],
            dirs(big) | {"SYNTX_CONSUMERS__BIG__BATCH": "1"},
            "consumer, unknown wrapper",
        ),
        Case("status, wrong value", [SYNTX, "status"], layered(workdir / "wrong.yaml")),
        Case("status, alias bomb", [SYNTX, "status"], layered(workdir / "bomb.yaml"), "status, wrong value"),
        Case("score, shipped formats", [SYNTX, "score", answer], environment(workdir)),
        Case(
            "score, keyword bomb",
            [SYNTX, "score", answer],
            dirs(workdir / "formats"),
            "score, shipped formats",
        ),
        Case(
            "score, latin-1 wrapper",
            [SYNTX, "score", answer],
            dirs(workdir / "latin1"),
            "score, shipped formats",
        ),
    ]


def render(rows: list[Row], compared: dict[str, str | None]) -> tuple[str, bool]:
    by_name = {row.name: row for row in rows}
    lines = [f"{'scenario':<26} {'exit':>4} {'peak RSS MB':>11} {'vs base':>8} {'seconds':>7}  last line"]
    fine = True
    for row in rows:
        base = compared.get(row.name)
        ratio = f"{row.peak_mb / by_name[base].peak_mb:.2f}x" if base else "-"
        if base and (row.code != 2 or row.peak_mb > by_name[base].peak_mb + MARGIN_MB):
            fine = False
        figures = f"{row.code!s:>4} {row.peak_mb:>11.1f} {ratio:>8} {row.seconds:>7.2f}"
        lines.append(f"{row.name:<26} {figures}  {row.said[:110]}")
    return "\n".join(lines), fine


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.hostile_config", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds before a row is killed")
    args = parser.parse_args(argv)
    workdir = Path(tempfile.mkdtemp(prefix="syntx-hostile-config-"))
    try:
        chosen = cases(workdir)
        rows = [run_case(case, args.timeout, workdir) for case in chosen]
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    table, fine = render(rows, {case.name: case.baseline for case in chosen})
    sys.stdout.write(table + "\n")
    sys.stdout.write(
        ("every hostile row refused near its baseline\n") if fine else "A HOSTILE ROW WAS NOT REFUSED\n"
    )
    return 0 if fine else 1


if __name__ == "__main__":
    sys.exit(main())
