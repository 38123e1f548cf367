"""The score model's fixed beliefs before any data: constants of the model, not operator settings.

Scores are 0..100; these are spreads in score points and weights in results (pseudo-observations). Each
is deliberately weak: a few results overrule it.
"""

from __future__ import annotations

LEVEL_MEAN, LEVEL_SD = 75.0, 20.0  # the overall score before any data: anywhere in the upper half
SPREAD_SD, SPREAD_WEIGHT = 5.0, 4.0  # how far categories, styles and arms differ: learned, starting at 5
RESIDUAL_DF = 3.0  # the arm residual is a Student-t: one arm far from its category + style is believed
LANGUAGE_SD, CONTEXT_SD = 5.0, 10.0  # nuisance effects (language; wrapper|backend|model|scorer)
NOISE_SD, NOISE_WEIGHT = 12.0, 10.0  # the spread of one score around its arm's mean, before data
ARM_NOISE_WEIGHT = 5.0  # an arm's own spread is pulled towards the pooled one by this many results
PREDICTION_RESULTS = 2.0  # what an arm's category and style predict counts as at most this many results
