"""The previous learner's settings, frozen at the values config/syntx.yaml shipped with it."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LearningSettings:
    enabled: bool = True
    prior_mean: float = 75.0
    prior_sd: float = 20.0
    effect_sd: float = 5.0
    residual_sd: float = 4.0
    residual_df: float = 3.0
    spread_weight: float = 4.0
    language_sd: float = 5.0
    context_sd: float = 10.0
    score_sd: float = 12.0
    score_sd_weight: float = 10.0
    window_jobs: int = 2000
    block_jobs: int = 100
    half_life_jobs: float = 2000.0
    change_half_life_jobs: float = 300.0
    drift_z: float = 5.0
    drift_min_weight: float = 10.0
    change_recheck_jobs: int = 1
    horizon_half_lives: float = 10.0
    exploration_floor: float = 0.0005
    burn_in_sweeps: int = 8
    draw_sweeps: int = 2
