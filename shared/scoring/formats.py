"""Formats and wrappers as data: pydantic models and the catalog loader.

A *format* (``<dir>/formats/<name>.yaml``) lists the sections an answer must have: their keys, canonical
German header labels, alternative spellings, V1 weights and length expectations. A *wrapper*
(``<dir>/<name>.txt``) is a German instruction text with a YAML front matter block naming its format.
Adding either needs no code change; see ``wrappers/README.md``. Both are read by the project's one bounded
YAML reader (:mod:`shared.safe_yaml`): UTF-8, no anchors or aliases, at most :data:`FORMAT_MAX_BYTES` and
:data:`WRAPPER_MAX_BYTES`; anything else is a :class:`CatalogError` naming the file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from shared.config import ConfigError
from shared.safe_yaml import YamlRefused, load_yaml, read_text

BUILTIN_WRAPPER_DIR = Path(__file__).resolve().parents[2] / "wrappers"
PROMPT_PLACEHOLDER = "{prompt}"
# A shipped format is about 2 KB: its fields, their spellings and keywords.
FORMAT_MAX_BYTES = 64 * 1024
# A shipped wrapper is about 1 KB. Every job's prompt is sent inside its template, so a template stays far
# below a model's context (a few hundred KiB at most) and a consumer's memory does not follow its size.
WRAPPER_MAX_BYTES = 64 * 1024
_KEY_PATTERN = r"^[a-z][a-z0-9_]*$"

Layout = Literal["hash", "numbered", "sigma"]


class CatalogError(Exception):
    """A format or wrapper file is malformed, or a wrapper names an unknown format."""


class FieldSpec(BaseModel):
    """One section of a format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    key: str = Field(pattern=_KEY_PATTERN)
    label: str = Field(min_length=1)
    description: str = ""
    aliases: tuple[str, ...] = ()
    weight: float = Field(gt=0)
    min_chars: int = Field(ge=0)
    ideal_chars: int = Field(ge=1)
    keywords: tuple[str, ...] = ()

    @model_validator(mode="after")
    def _ideal_not_below_min(self) -> FieldSpec:
        if self.ideal_chars < self.min_chars:
            raise ValueError(f"ideal_chars ({self.ideal_chars}) is below min_chars ({self.min_chars})")
        return self


class FormatSpec(BaseModel):
    """An answer layout: ordered sections and how their headers look."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(pattern=_KEY_PATTERN)
    description: str = ""
    layout: Layout
    language: str = "de"
    fields: tuple[FieldSpec, ...] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_keys(self) -> FormatSpec:
        keys = [spec.key for spec in self.fields]
        doubled = sorted({key for key in keys if keys.count(key) > 1})
        if doubled:
            raise ValueError(f"field keys must be unique, repeated: {', '.join(doubled)}")
        return self

    @property
    def keys(self) -> list[str]:
        return [spec.key for spec in self.fields]

    @property
    def total_weight(self) -> float:
        return sum(spec.weight for spec in self.fields)

    def field(self, key: str) -> FieldSpec:
        for spec in self.fields:
            if spec.key == key:
                return spec
        raise KeyError(f"format {self.name!r} has no field {key!r}")

    def header_line(self, index: int) -> str:
        """The canonical header of field ``index`` (0-based) exactly as the wrapper asks for it."""
        label = self.fields[index].label
        if self.layout == "hash":
            return f"### {label}:"
        if self.layout == "sigma" and not label.startswith("Σ"):
            label = f"Σ-{label}"
        return f"{index + 1}. {label}:"

    def header_lines(self) -> list[str]:
        return [self.header_line(index) for index in range(len(self.fields))]


class Wrapper(BaseModel):
    """An instruction template that asks the LLM for one format."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1)
    format: str = Field(min_length=1)
    language: str = "de"
    description: str = ""
    template: str
    source: str = ""

    def render(self, prompt: str) -> str:
        """The full LLM prompt: ``{prompt}`` replaced, or the prompt appended after a blank line."""
        if PROMPT_PLACEHOLDER in self.template:
            return self.template.replace(PROMPT_PLACEHOLDER, prompt)
        return f"{self.template.rstrip()}\n\n{prompt}"


class Catalog(BaseModel):
    """Every known format and wrapper, keyed by name."""

    model_config = ConfigDict(frozen=True)

    formats: dict[str, FormatSpec]
    wrappers: dict[str, Wrapper]


def _describe(exc: ValidationError) -> str:
    parts = []
    for error in exc.errors(include_url=False):
        where = ".".join(str(part) for part in error["loc"]) or "<top>"
        message = error["msg"].removeprefix("Value error, ")
        parts.append(f"{where}: {message}")
    return "; ".join(parts)


def _read_text(path: Path, max_bytes: int) -> str:
    try:
        return read_text(path, max_bytes)
    except OSError as exc:
        raise CatalogError(f"{path}: cannot read file: {exc.strerror or type(exc).__name__}") from None
    except YamlRefused as exc:
        raise CatalogError(f"{path}: the file {exc.reason}") from None


def _yaml_mapping(source: str, path: Path, what: str, max_bytes: int) -> dict[str, Any]:
    try:
        data = load_yaml(source, max_bytes)
    except YamlRefused as exc:
        raise CatalogError(f"{path}: {what} {exc.reason}") from None
    if not isinstance(data, dict):
        raise CatalogError(f"{path}: {what} must be a YAML mapping, got {type(data).__name__}")
    return data


def load_format(path: Path) -> FormatSpec:
    data = _yaml_mapping(_read_text(path, FORMAT_MAX_BYTES), path, "format file", FORMAT_MAX_BYTES)
    data.setdefault("name", path.stem)
    try:
        return FormatSpec.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{path}: invalid format: {_describe(exc)}") from exc


def _split_front_matter(text: str, path: Path) -> tuple[str, str]:
    lines = text.split("\n")
    if not lines or lines[0].strip() != "---":
        raise CatalogError(f"{path}: wrapper must start with a front matter block ('---' line)")
    for index in range(1, len(lines)):
        if lines[index].strip() == "---":
            return "\n".join(lines[1:index]), "\n".join(lines[index + 1 :]).strip("\n")
    raise CatalogError(f"{path}: front matter block is not closed by a '---' line")


def load_wrapper(path: Path) -> Wrapper:
    header, body = _split_front_matter(_read_text(path, WRAPPER_MAX_BYTES), path)
    meta = _yaml_mapping(header, path, "front matter", WRAPPER_MAX_BYTES)
    if not body.strip():
        raise CatalogError(f"{path}: wrapper has no instruction text after the front matter")
    data = {"name": path.stem, **meta, "template": body, "source": str(path)}
    try:
        return Wrapper.model_validate(data)
    except ValidationError as exc:
        raise CatalogError(f"{path}: invalid wrapper front matter: {_describe(exc)}") from exc


def _check_references(formats: Mapping[str, FormatSpec], wrappers: Mapping[str, Wrapper]) -> None:
    for wrapper in wrappers.values():
        if wrapper.format not in formats:
            known = ", ".join(sorted(formats)) or "none"
            raise CatalogError(
                f"{wrapper.source}: wrapper {wrapper.name!r} names unknown format {wrapper.format!r} "
                f"(known formats: {known})"
            )


def load_catalog(dirs: Sequence[Path]) -> Catalog:
    """Read ``formats/*.yaml`` and ``*.txt`` of every directory; later directories override earlier ones."""
    formats: dict[str, FormatSpec] = {}
    wrappers: dict[str, Wrapper] = {}
    for directory in dirs:
        if not directory.is_dir():
            raise CatalogError(f"{directory}: wrapper directory does not exist")
        format_files = sorted([*directory.glob("formats/*.yaml"), *directory.glob("formats/*.yml")])
        for path in format_files:
            spec = load_format(path)
            formats[spec.name] = spec
        for path in sorted(directory.glob("*.txt")):
            wrapper = load_wrapper(path)
            wrappers[wrapper.name] = wrapper
    _check_references(formats, wrappers)
    return Catalog(formats=formats, wrappers=wrappers)


def configured_catalog(dirs: Sequence[Path]) -> Catalog:
    """:func:`load_catalog` of the configured directories; a broken file is a configuration error."""
    try:
        return load_catalog(dirs)
    except CatalogError as exc:
        raise ConfigError(f"config: wrapper_dirs: {exc}") from None
