"""The learner: what the producer learns from scored jobs and how it chooses the next ones.

The producer orchestrates it (reads results, asks for a batch's arms, writes the checkpoint); the CLI
reads what it saved. Modules: :mod:`.observation` (a scored job), :mod:`.memory` (results per block,
forgetting on evidence of a change, :mod:`.change`), :mod:`.posterior` (the score model),
:mod:`.learner` (learning once, choosing), :mod:`.state` (the checkpoint), :mod:`.results` (reading
result files), :mod:`.evolution` (the generation log).
"""

from shared.learning.learner import Learner
from shared.learning.observation import Arm, Observation, arm_name

__all__ = ["Arm", "Learner", "Observation", "arm_name"]
