"""The job file: a prompt, optionally preceded by a small metadata header.

```
---
topic: Klimawandel
category: gesellschaft
style: kreativ
language: de
generation: 3
created: 2025-12-06T14:00:00+00:00
---
Erkläre kreativ und metaphorisch: ...
```

A plain ``.txt`` with no header is a valid job too; jobs in the original layout carry their
metadata in a same-named ``.json`` beside the ``.txt``.
"""

from __future__ import annotations

import json
from datetime import date, datetime
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

from shared.config import DEFAULT_MAX_HEADER_BYTES
from shared.safe_yaml import YamlRefused, load_yaml

HEADER_FENCE = "---"
_ORIGINAL_KEYS = ("topic", "category", "style", "language", "generation")
_PLAIN_VALUES = (str, int, float, bool, date, type(None))  # datetime is a date


class JobFileError(ValueError):
    """The job file cannot be read as a job; the message says why."""


class JobMeta(BaseModel):
    model_config = ConfigDict(frozen=True, extra="allow")
    topic: str | None = None
    category: str | None = None
    style: str | None = None
    language: str | None = None
    generation: int | None = None
    sequence: int | None = None  # the producer's running number of the job (the learner's clock)
    created: datetime | None = None


class Job(BaseModel):
    model_config = ConfigDict(frozen=True)
    job_id: str
    prompt: str
    meta: JobMeta = JobMeta()


def render_job(prompt: str, meta: JobMeta) -> str:
    fields = {key: value for key, value in meta.model_dump(mode="json").items() if value is not None}
    header = yaml.safe_dump(fields, allow_unicode=True, sort_keys=False).strip()
    return f"{HEADER_FENCE}\n{header}\n{HEADER_FENCE}\n{prompt.strip()}\n"


def parse_job(
    job_id: str,
    raw: bytes,
    max_bytes: int,
    sidecar: bytes | None = None,
    *,
    max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
) -> Job:
    """Decode and validate a job file; raise :class:`JobFileError` with a precise reason.

    The header is limited to ``max_header_bytes`` and may not use YAML anchors or aliases (a few
    hundred bytes of aliases expand to gigabytes), so what is parsed is bounded by what was read.
    """
    if len(raw) > max_bytes:
        raise JobFileError(f"job file is {len(raw)} bytes, over the limit of {max_bytes}")
    if b"\x00" in raw:
        raise JobFileError("job file is binary (contains NUL bytes)")
    try:
        text = raw.decode("utf-8").replace("\r\n", "\n").lstrip("\ufeff")
    except UnicodeDecodeError as exc:
        raise JobFileError(f"job file is not valid UTF-8 (byte {exc.start})") from exc
    meta, prompt = _split_header(text, max_header_bytes)
    if sidecar is not None:
        meta = {**_sidecar_meta(sidecar), **meta}
    if not prompt.strip():
        raise JobFileError("job file holds no prompt text")
    try:
        return Job(job_id=job_id, prompt=prompt.strip(), meta=JobMeta.model_validate(meta))
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        raise JobFileError(f"job header field {first['loc'][0]!s}: {first['msg']}") from exc


def _split_header(text: str, max_header_bytes: int) -> tuple[dict[str, Any], str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != HEADER_FENCE:
        return {}, text
    try:
        end = next(i for i, line in enumerate(lines[1:], start=1) if line.strip() == HEADER_FENCE)
    except StopIteration:
        raise JobFileError("job header opened with '---' is never closed") from None
    try:
        header = load_yaml("\n".join(lines[1:end]), max_header_bytes) or {}
    except YamlRefused as exc:
        raise JobFileError(f"job header {exc.reason}") from None
    if not isinstance(header, dict):
        raise JobFileError("job header must be 'key: value' lines")
    for key, value in header.items():
        if not isinstance(value, _PLAIN_VALUES):
            kind = type(value).__name__
            raise JobFileError(
                f"job header field {key!s}: must be a plain value (text, number, date), not {kind}"
            )
    return {str(key): value for key, value in header.items()}, "\n".join(lines[end + 1 :])


def _sidecar_meta(sidecar: bytes) -> dict[str, Any]:
    """Metadata of the original layout (``X.json`` beside ``X.txt``); unreadable ones are ignored."""
    try:
        data = json.loads(sidecar.decode("utf-8"))
    except (ValueError, RecursionError):  # not UTF-8, not JSON, numbers too long to convert, too deep
        return {}
    if not isinstance(data, dict):
        return {}
    return {key: data[key] for key in _ORIGINAL_KEYS if data.get(key) is not None}
