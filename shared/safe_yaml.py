"""The one YAML reader of the project: configuration layers, formats, wrappers' front matter, job headers.

YAML can say in a few hundred bytes what takes gigabytes to build (anchors and aliases: a "billion
laughs"), and a file can be any size. What is read here is bounded before anything is built: a file by
its size in bytes (read no further than the limit) and its encoding (UTF-8), the text by its size,
anchors and aliases refused on the parser's events before a node exists. Nesting stops where libyaml
stops it (1,000 levels), an integer where Python's digit limit does. Every refusal is a
:class:`YamlRefused` whose ``reason`` completes a sentence about the thing read: ``config file X`` +
``is 3145728 bytes, over the limit of 1048576``.
"""

from __future__ import annotations

import errno
import os
import stat
from pathlib import Path
from typing import Any

import yaml

_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)  # libyaml when PyYAML was built with it
ALIASES_REFUSED = "uses YAML anchors or aliases, which are not allowed"


class YamlRefused(ValueError):
    """A file or text not read as YAML; ``reason`` is a phrase: ``is not valid YAML: …``."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def read_text(path: Path, max_bytes: int) -> str:
    """A regular file of at most ``max_bytes`` as UTF-8 text (a BOM dropped, CRLF as LF); at most
    ``max_bytes + 1`` bytes are read. :class:`OSError` (missing, no permission, a directory) passes
    through."""
    # O_NONBLOCK: opening a FIFO does not wait for a writer (a regular file reads as ever)
    with os.fdopen(os.open(path, os.O_RDONLY | os.O_NONBLOCK), "rb") as handle:
        info = os.fstat(handle.fileno())
        if stat.S_ISDIR(info.st_mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(info.st_mode):
            raise YamlRefused("is not a regular file")
        raw = handle.read(max_bytes + 1)
    if len(raw) > max_bytes:
        raise YamlRefused(f"is {max(info.st_size, len(raw))} bytes, over the limit of {max_bytes}")
    try:
        return raw.decode("utf-8-sig").replace("\r\n", "\n")
    except UnicodeDecodeError as exc:
        raise YamlRefused(f"is not UTF-8 text (byte {exc.start}); save it as UTF-8") from None


def load_yaml(source: str, max_bytes: int) -> Any:
    """``source`` parsed as plain YAML data (no tags beyond the safe ones, no anchors, no aliases)."""
    size = len(source.encode("utf-8", errors="surrogatepass"))
    if size > max_bytes:
        raise YamlRefused(f"is {size} bytes, over the limit of {max_bytes}")
    try:
        _refuse_aliases(source)
        return yaml.load(source, Loader=_LOADER)
    except YamlRefused:
        raise
    except yaml.YAMLError as exc:
        raise YamlRefused(f"is not valid YAML: {yaml_problem(exc)}") from None
    except RecursionError:
        raise YamlRefused("is nested too deeply") from None
    except ValueError as exc:  # an integer of more digits than Python converts
        raise YamlRefused(f"is not valid YAML: {' '.join(str(exc).split())}") from None


def load_yaml_file(path: Path, max_bytes: int) -> Any:
    """The YAML data of the file at ``path`` (see :func:`read_text` and :func:`load_yaml`)."""
    return load_yaml(read_text(path, max_bytes), max_bytes)


def yaml_problem(exc: yaml.YAMLError) -> str:
    """One line: what the parser expected and where (PyYAML's own text spans several lines)."""
    if isinstance(exc, yaml.MarkedYAMLError) and exc.problem and exc.problem_mark is not None:
        mark = exc.problem_mark
        return f"{exc.problem} (line {mark.line + 1}, column {mark.column + 1})"
    return " ".join(str(exc).split())


def _refuse_aliases(source: str) -> None:
    """Raise :class:`YamlRefused` when ``source`` uses anchors (``&a``) or aliases (``*a``).

    Checked on the parser's events, before anything is built; a text without ``&`` or ``*`` has none.
    """
    if "&" not in source and "*" not in source:
        return
    for event in yaml.parse(source, Loader=_LOADER):
        if isinstance(event, yaml.AliasEvent) or getattr(event, "anchor", None) is not None:
            raise YamlRefused(ALIASES_REFUSED)
