"""Learning benchmark: the producer's learner against uniform choice, plain Thompson sampling and the
learner as it was before, in the same run, on simulated worlds (benchmarks/learning_world.py).

    python -m benchmarks.learning                      # 30 fresh random seeds per world (printed)
    python -m benchmarks.learning --seeds-from 123456  # the same seeds again
    python -m benchmarks.learning --quick              # CI: seeds 0-9, without the previous learner

Our learner runs with the configuration shipped in config/syntx.yaml (one configuration for every
world). A run is 2,000 jobs in batches of 20. Per world and rule: regret (the sum over jobs of the best
mean minus the chosen arm's mean) averaged over seeds and as a share of uniform's; in how many seeds the
best arm (at the end) was the most pulled over the last 500 jobs; in the worlds with a switch, the
median number of jobs after it until the new best arm is the most pulled over a window of 100 jobs; and
lock-outs: seeds in which an arm more than 5 points better than the most pulled one got under 1 % of
the last 500 jobs. For our learner, false changes: changes found in a world that does not change.
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import os
import random
import secrets
import statistics
import sys
from collections import Counter
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field

from benchmarks.learning_rules import DEFAULT_RULES, RULES, Ours, Rule
from benchmarks.learning_world import JOBS, VARIANTS, Arm, World, make_world

BATCH = 20
SEEDS, QUICK_SEEDS = 30, 10
LAST_JOBS = 500
RECOVERY_WINDOW = 100
LOCKOUT_LEAD, LOCKOUT_SHARE = 5.0, 0.01
QUICK_RULES = ("uniform", "thompson", "ours")  # the previous learner costs ~2.5x ours: full runs only
GAUSSIAN = ("independent", "factorised")
log = logging.getLogger("benchmarks.learning")


@dataclass(frozen=True)
class Target:
    """What our learner must show in a world: regret at most ``regret`` of uniform's, the best arm the
    most pulled in all but ``misses`` of 30 seeds, median recovery at most ``recovery`` jobs."""

    regret: float | None = None
    misses: int | None = None
    recovery: int | None = None


TARGETS = {
    "independent": Target(regret=0.05, misses=1),
    "factorised": Target(regret=0.05, misses=1),
    "switch": Target(recovery=200),
    "passfail": Target(regret=0.14, misses=1),
    "passfail-switch": Target(recovery=300),
    "drift": Target(misses=3),
}


@dataclass(frozen=True)
class Run:
    regret: float
    best_most_pulled: bool
    recovery: int | None  # worlds with a switch: jobs after it until the new best leads (or all left)
    locked_out: bool
    changed: bool  # our learner found a change


@dataclass
class Row:
    world: str
    rule: str
    runs: list[Run] = field(default_factory=list)

    @property
    def regret(self) -> float:
        return statistics.fmean(run.regret for run in self.runs)

    @property
    def best_seeds(self) -> int:
        return sum(run.best_most_pulled for run in self.runs)

    @property
    def recovery(self) -> float | None:
        values = [run.recovery for run in self.runs if run.recovery is not None]
        return statistics.median(values) if values else None

    @property
    def lockouts(self) -> int:
        return sum(run.locked_out for run in self.runs)

    @property
    def changes(self) -> int:
        return sum(run.changed for run in self.runs)


def simulate(world: World, rule: Rule, rng: random.Random) -> Run:
    """2,000 jobs in batches; a batch's scores reach the rule ``world.delay_batches`` batches later."""
    chosen: list[Arm] = []
    regret = 0.0
    in_flight: list[list[tuple[int, Arm, int]]] = []
    changed = False
    for start in range(0, JOBS, BATCH):
        plan = rule.plan(BATCH)
        batch = [
            (start + offset, arm, world.score(arm, start + offset, rng)) for offset, arm in enumerate(plan)
        ]
        regret += sum(world.best_mean(job) - world.mean(arm, job) for job, arm, _ in batch)
        chosen.extend(plan)
        in_flight.append(batch)
        while len(in_flight) > world.delay_batches:
            rule.learn(in_flight.pop(0))
        changed = changed or (isinstance(rule, Ours) and rule.changed())
    last = Counter(chosen[-LAST_JOBS:])
    best = world.best(JOBS - 1)
    most = max(last, key=lambda arm: (last[arm], arm == best))
    return Run(
        regret=regret,
        best_most_pulled=most == best,
        recovery=_recovery(world, chosen) if world.switch_at is not None else None,
        locked_out=_locked_out(world, last, most),
        changed=changed,
    )


def _locked_out(world: World, last: Counter[Arm], most: Arm) -> bool:
    """An arm more than ``LOCKOUT_LEAD`` better than the most pulled one (averaged over the last jobs)
    that got under ``LOCKOUT_SHARE`` of them."""

    def mean(arm: Arm) -> float:
        return statistics.fmean(world.mean(arm, job) for job in range(JOBS - LAST_JOBS, JOBS, BATCH))

    floor = mean(most) + LOCKOUT_LEAD
    return any(last[arm] < LOCKOUT_SHARE * LAST_JOBS and mean(arm) > floor for arm in world.arms)


def _recovery(world: World, chosen: list[Arm]) -> int:
    assert world.switch_at is not None
    best = world.best(world.switch_at)
    for end in range(world.switch_at + BATCH, JOBS + 1, BATCH):
        window = Counter(chosen[max(world.switch_at, end - RECOVERY_WINDOW) : end])
        if max(window, key=lambda arm: (window[arm], arm == best)) == best:
            return end - world.switch_at
    return JOBS - world.switch_at


def run_benchmark(
    seeds: list[int], rules: tuple[str, ...], worlds: tuple[str, ...] = VARIANTS, processes: int | None = None
) -> list[Row]:
    """Every rule in every world on every seed; the runs spread over ``processes`` worker processes (one
    per core unless given; 1 runs them here). Each run draws from random streams named by its rule,
    world and seed, so the figures do not depend on how the runs are spread."""
    cases = [(name, rule, seed) for name in worlds for rule in rules for seed in seeds]
    workers = processes or _cores()
    if workers == 1:
        runs = [_run_case(case) for case in cases]
    else:  # spawned, not forked: the caller may have threads (a test runner, an event loop)
        with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            runs = list(pool.map(_run_case, cases))
    rows: list[Row] = []
    for start in range(0, len(cases), len(seeds)):
        name, rule, _ = cases[start]
        rows.append(Row(name, rule, runs[start : start + len(seeds)]))
        log.info("%s %s: %.0f", name, rule, rows[-1].regret)
    return rows


def _cores() -> int:
    """The cores this process may run on (all of them where the system does not say)."""
    if hasattr(os, "sched_getaffinity"):  # Linux
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def _run_case(case: tuple[str, str, int]) -> Run:
    name, rule, seed = case
    world = make_world(name, seed)
    policy = RULES[rule](list(world.arms), random.Random(f"{rule}-{name}-{seed}"))
    return simulate(world, policy, random.Random(f"noise-{name}-{seed}"))


LOCKOUTS = "no lock-out in any world"


def target_names(worlds: tuple[str, ...] = VARIANTS) -> list[str]:
    """The targets our learner is held to in ``worlds``, by name."""
    names = []
    for world, target in TARGETS.items():
        if world not in worlds:
            continue
        if target.regret is not None:
            names.append(f"{world}: regret <= {target.regret:.0%} of uniform's")
        if target.misses is not None:
            names.append(f"{world}: best most pulled in >= {30 - target.misses}/30")
        if target.recovery is not None:
            names.append(f"{world}: median recovery <= {target.recovery}")
    return [*names, LOCKOUTS]


def targets_met(rows: list[Row], seeds: int) -> dict[str, bool]:
    """Our learner's targets (``TARGETS``) in the worlds run, misses scaled to the number of seeds
    (rounded down), and no lock-out in any world: each by its name in :func:`target_names`."""
    uniform = {row.world: row.regret for row in rows if row.rule == "uniform"}
    ours = {row.world: row for row in rows if row.rule == "ours"}
    checks = []
    for world, target in TARGETS.items():
        if world not in ours:
            continue
        row = ours[world]
        if target.regret is not None:
            checks.append(row.regret <= target.regret * uniform[world])
        if target.misses is not None:
            checks.append(row.best_seeds >= seeds - target.misses * seeds // 30)
        if target.recovery is not None:
            checks.append(row.recovery is not None and row.recovery <= target.recovery)
    checks.append(all(row.lockouts == 0 for row in ours.values()))
    return dict(zip(target_names(tuple(ours)), checks, strict=True))


def render(rows: list[Row], seeds: list[int]) -> str:
    uniform = {row.world: row.regret for row in rows if row.rule == "uniform"}
    count = len(seeds)
    lines = [
        f"learning benchmark: {JOBS} jobs in batches of {BATCH}, {count} seeds per world: {_seeds(seeds)}",
        f"{'world':<16} {'rule':<9} {'regret':>7} {'of uniform':>10} {'best most pulled':>16} "
        f"{'recovery':>9} {'lock-outs':>9} {'false changes':>13}",
    ]
    for row in rows:
        recovery = "-" if row.recovery is None else f"{row.recovery:.0f}"
        lockouts = "-" if row.rule == "uniform" else str(row.lockouts)
        stable = row.world not in ("switch", "passfail-switch", "drift")
        changes = f"{row.changes}/{count}" if row.rule == "ours" and stable else "-"
        lines.append(
            f"{row.world:<16} {row.rule:<9} {row.regret:>7.0f} {row.regret / uniform[row.world]:>10.1%} "
            f"{row.best_seeds:>10}/{count:<5} {recovery:>9} {lockouts:>9} {changes:>13}"
        )
    for target, met in targets_met(rows, count).items():
        lines.append(f"target {target}: {'met' if met else 'NOT met'}")
    return "\n".join(lines)


def _seeds(seeds: list[int]) -> str:
    return f"{seeds[0]}-{seeds[-1]}" + ("" if seeds[0] == 0 else f" (again: --seeds-from {seeds[0]})")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.learning", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--quick", action="store_true", help=f"CI: seeds 0-{QUICK_SEEDS - 1}, no previous learner"
    )
    parser.add_argument("--seeds", type=int, default=None, help=f"seeds per world ({SEEDS})")
    parser.add_argument("--seeds-from", type=int, default=None, help="the first seed (default: a fresh one)")
    parser.add_argument("--worlds", default=",".join(VARIANTS), help="comma-separated")
    parser.add_argument("--rules", default=None, help=f"comma-separated, of {', '.join(RULES)}")
    parser.add_argument("--processes", type=int, default=None, help="worker processes (one per core)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    count = args.seeds or (QUICK_SEEDS if args.quick else SEEDS)
    first = (
        args.seeds_from if args.seeds_from is not None else (0 if args.quick else secrets.randbelow(10**6))
    )
    seeds = list(range(first, first + count))
    sys.stdout.write(f"seeds {_seeds(seeds)}\n")
    rules = tuple(args.rules.split(",")) if args.rules else (QUICK_RULES if args.quick else DEFAULT_RULES)
    rules = rules if "uniform" in rules else ("uniform", *rules)  # regret is shown as a share of its
    rows = run_benchmark(seeds, rules, tuple(args.worlds.split(",")), args.processes)
    sys.stdout.write(render(rows, seeds) + "\n")
    return 0 if all(targets_met(rows, count).values()) else 1


if __name__ == "__main__":
    raise SystemExit(main())
