"""The learner: what the producer learns from scored jobs and how it chooses the next ones.

The producer orchestrates it (reads results, asks for a batch's arms, writes the checkpoint); the CLI
reads what it saved. Modules: :mod:`.observation` (a scored job), :mod:`.results` (reading one from its
result file), :mod:`.memory` (results per block, forgetting on evidence of a change: :mod:`.change`),
:mod:`.posterior` (the score model), :mod:`.choice` (how a batch is drawn), :mod:`.learner` (learning
once, choosing), :mod:`.estimates` (what it believes, as shown), :mod:`.state` (the checkpoint),
:mod:`.rebuild` (catching up from the result files), :mod:`.evolution` (the generation log).
"""

from shared.learning.learner import Learner
from shared.learning.observation import Arm, Observation, arm_name

__all__ = ["Arm", "Learner", "Observation", "arm_name"]
