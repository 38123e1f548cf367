"""From a result file to something the learner may learn, or the reason it may not.

Trusted only: status passed or rejected, an integer score 0..100 from a known scorer, the job id inside
matching the file name, and the producer's metadata (category, style, sequence). Everything else is
refused with a reason; nothing here raises for a bad file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from services.producer.learning import Observation
from shared.scoring import SCORERS

SCORED = ("passed", "rejected")
KNOWN_SCORERS = frozenset(name for name in SCORERS if name != "default")


@dataclass(frozen=True)
class NotLearned:
    """Why a result teaches nothing; ``untrusted`` marks results that claim a score they cannot prove."""

    reason: str
    untrusted: bool = False


def read_observation(path: Path, max_bytes: int) -> Observation | NotLearned:
    """The one place results are read for learning."""
    try:
        with path.open("rb") as handle:
            raw = handle.read(max_bytes + 1)
    except OSError as exc:
        return NotLearned(f"unreadable: {exc.strerror or exc}")
    if len(raw) > max_bytes:
        return NotLearned(f"over {max_bytes} bytes", untrusted=True)
    try:
        record = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return NotLearned("not JSON", untrusted=True)
    if not isinstance(record, dict):
        return NotLearned("not a result record", untrusted=True)
    return observation_from_record(record, path.stem)


def observation_from_record(record: dict[str, Any], file_stem: str) -> Observation | NotLearned:
    if record.get("status") not in SCORED:
        return NotLearned("not scored")
    if record.get("job_id") != file_stem:
        return NotLearned("job id does not match the file name", untrusted=True)
    score = record.get("score")
    total = score.get("total") if isinstance(score, dict) else None
    if not isinstance(total, int) or isinstance(total, bool) or not 0 <= total <= 100:
        return NotLearned("score is not an integer 0..100", untrusted=True)
    scorer = record.get("scorer") or (score.get("scorer") if isinstance(score, dict) else None)
    if scorer not in KNOWN_SCORERS:
        return NotLearned("unknown scorer", untrusted=True)
    meta = record.get("meta")
    if not isinstance(meta, dict):
        return NotLearned("no job metadata")
    category, style, sequence = meta.get("category"), meta.get("style"), meta.get("sequence")
    if not (isinstance(category, str) and isinstance(style, str)):
        return NotLearned("no category and style")
    if not isinstance(sequence, int) or isinstance(sequence, bool) or sequence < 0:
        return NotLearned("no producer sequence number")
    language = meta.get("language")
    context = "|".join(str(record.get(key) or "-") for key in ("wrapper", "backend", "model")) + f"|{scorer}"
    return Observation(
        job_id=file_stem,
        sequence=sequence,
        category=category,
        style=style,
        language=language if isinstance(language, str) else "-",
        context=context,
        score=total,
    )
