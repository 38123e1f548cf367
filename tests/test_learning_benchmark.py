"""The learning benchmark's quick mode as a behaviour spec of the learner (no timing involved)."""

from __future__ import annotations

from benchmarks.learning import QUICK_SEEDS, render, run_benchmark, targets_met


def test_the_learner_meets_its_targets_in_the_quick_benchmark() -> None:
    rows = run_benchmark(QUICK_SEEDS)
    met = targets_met(rows, QUICK_SEEDS)
    table = render(rows, QUICK_SEEDS)
    assert met["regret <= 7 % of uniform (factorised)"], table
    assert met["best arm most pulled over the last 500 jobs"], table
    assert met["median recovery <= 300 jobs"], table
    assert met["exploration floor kept"], table
    regret = {(row.variant, row.policy): row.regret for row in rows}
    for variant in ("independent", "factorised", "switch"):
        assert regret[variant, "ours"] < regret[variant, "thompson"] < regret[variant, "uniform"], table
    # the independent world (no structure to share) is the hardest: held to 10 % here, 7 % is the target
    assert regret["independent", "ours"] <= 0.10 * regret["independent", "uniform"], table
