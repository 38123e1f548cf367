"""The learner's checkpoint: one JSON document, replaced atomically, saying what it covers.

``data/state/learner.json`` (``producer.learning.state_file``) holds the learner's statistics and the
ids it learned inside the forgetting horizon, the next job sequence number, and ``scan_from``: every
result of a job with an id from there on may be newer than the checkpoint (its job was in flight).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.queue import FileQueue

log = logging.getLogger(__name__)
CHECKPOINT_VERSION = 1


@dataclass(frozen=True)
class Checkpoint:
    learner: dict[str, Any]
    next_sequence: int
    scan_from: str | None


class CheckpointError(Exception):
    """The checkpoint exists but cannot be used (the message says why)."""


def read_checkpoint(path: Path) -> Checkpoint:
    """The checkpoint; FileNotFoundError when there is none, CheckpointError when it is unusable."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
        if document.get("version") != CHECKPOINT_VERSION:
            raise ValueError(f"version {document.get('version')!r}")
        return Checkpoint(
            learner=dict(document["learner"]),
            next_sequence=int(document["next_sequence"]),
            scan_from=document["scan_from"],
        )
    except FileNotFoundError:
        raise
    except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError, AttributeError) as exc:
        raise CheckpointError(str(exc) or type(exc).__name__) from exc


def load_checkpoint(path: Path) -> Checkpoint | None:
    """The checkpoint, or None when there is none or it cannot be used (then the caller rebuilds)."""
    try:
        return read_checkpoint(path)
    except FileNotFoundError:
        return None
    except CheckpointError as exc:
        log.warning("learner checkpoint %s unusable (%s); rebuilding from the result files", path, exc)
        return None


def save_checkpoint(queue: FileQueue, path: Path, checkpoint: Checkpoint) -> None:
    document = {
        "version": CHECKPOINT_VERSION,
        "next_sequence": checkpoint.next_sequence,
        "scan_from": checkpoint.scan_from,
        "learner": checkpoint.learner,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    queue.write_atomic(path, json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))
