"""Generated configuration files: every one starts the command or stops it with exit 2 and lines that each
name a configuration problem — never a traceback, never memory that follows what the file says.

Hypothesis writes overlays for config/syntx.yaml (real setting keys and made-up ones, values of every
kind, numbers of up to 8,000 digits, long strings) and spoils them the ways files get spoilt: anchors
and aliases, Latin-1 and UTF-16, a BOM, NUL bytes, cut in the middle, padded past the size cap, or no
YAML at all. Each runs the real command in-process (``syntx results``, which reads the settings and the
data directory and needs no NATS). The same for wrapper and format files, through the catalog loader.
"""

from __future__ import annotations

import contextlib
import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from shared.config import CONFIG_ENV, DEFAULT_CONFIG, Settings
from shared.config.settings import CONFIG_MAX_BYTES
from shared.scoring import BUILTIN_WRAPPER_DIR, CatalogError, load_catalog
from shared.scoring.formats import FORMAT_MAX_BYTES
from syntx.main import main

CONFIG_EXAMPLES = 200
CATALOG_EXAMPLES = 150


def examples(count: int) -> settings:
    return settings(
        max_examples=count,
        deadline=None,
        database=None,  # nothing written into the repository; a failure prints its example
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    )


def _setting_paths(model: type[BaseModel], prefix: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    for name, field in model.model_fields.items():
        path = (*prefix, name)
        yield path
        if isinstance(field.annotation, type) and issubclass(field.annotation, BaseModel):
            yield from _setting_paths(field.annotation, path)


REAL_PATHS = sorted(_setting_paths(Settings)) + [
    ("consumers", "sigma", "batch"),
    ("schedules", "producer", "cron"),
]
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.text(min_size=2000, max_size=20_000)
)
values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
paths = st.sampled_from(REAL_PATHS) | st.lists(st.text(min_size=1, max_size=300), min_size=1, max_size=3).map(
    tuple
)
SPOILS = ("none", "alias", "anchor", "digits", "latin-1", "utf-16", "bom", "nul", "cut", "padded", "not yaml")


def nested(entries: list[tuple[tuple[str, ...], Any]]) -> dict[str, Any]:
    document: dict[str, Any] = {}
    for path, value in entries:
        node = document
        for part in path[:-1]:
            if not isinstance(node.get(part), dict):
                node[part] = {}
            node = node[part]
        node[path[-1]] = value
    return document


@st.composite
def overlays(draw: st.DrawFn) -> tuple[bytes, str]:
    """An overlay file's bytes and how it was spoilt."""
    document = nested(draw(st.lists(st.tuples(paths, values), max_size=6)))
    text = yaml.safe_dump(document, allow_unicode=True, sort_keys=False)
    spoil = draw(st.sampled_from(SPOILS))
    if spoil == "alias":
        text = "x-shared: &shared {batch: 5}\nproducer: *shared\n" + text
    elif spoil == "anchor":  # an anchor alone, never used
        text = "x-anchor: &a 1\n" + text
    elif spoil == "digits":  # written as text: Hypothesis itself cannot show an int of 5,000 digits
        text = f"producer: {{batch: 1{'0' * draw(st.integers(1, 8000))}}}\n" + text
    elif spoil == "nul":
        text = text[: len(text) // 2] + "\x00" + text[len(text) // 2 :]
    elif spoil == "cut":
        text = text[: draw(st.integers(0, len(text)))]
    elif spoil == "padded":
        text += "#" * (CONFIG_MAX_BYTES + draw(st.integers(1, 4096)))
    if spoil == "not yaml":
        return draw(st.binary(max_size=4096)), spoil
    if spoil == "latin-1":
        return (text + "# Grüße\n").encode("latin-1", errors="replace"), spoil
    if spoil == "utf-16":
        return text.encode("utf-16"), spoil
    return (("\ufeff" if spoil == "bom" else "") + text).encode("utf-8", errors="surrogatepass"), spoil


REFUSED_BY = {  # spoils the reader must refuse whatever else the file says, and with which words
    "alias": "uses YAML anchors or aliases",
    "anchor": "uses YAML anchors or aliases",
    "utf-16": "is not UTF-8 text",
    "latin-1": "is not UTF-8 text",
    "padded": f"over the limit of {CONFIG_MAX_BYTES}",
}


def run_command(env: dict[str, str]) -> tuple[int, str]:
    """``syntx results --json`` in-process: its exit code and what it wrote on stderr."""
    said = io.StringIO()
    with (
        mock.patch.dict(os.environ, env),
        contextlib.redirect_stderr(said),
        contextlib.redirect_stdout(io.StringIO()),
    ):
        try:
            main(["results", "--json", "--limit", "1"])
        except SystemExit as exited:
            return int(exited.code or 0), said.getvalue()
    raise AssertionError("main() returned without an exit code")


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("hostile-config")


@examples(CONFIG_EXAMPLES)
@given(overlay=overlays())
def test_a_generated_configuration_starts_or_stops_with_one_line_per_problem(
    workdir: Path, overlay: tuple[bytes, str]
) -> None:
    content, spoil = overlay
    path = workdir / "overlay.yaml"
    path.write_bytes(content)
    env = {CONFIG_ENV: f"{DEFAULT_CONFIG}:{path}", "SYNTX_DATA_DIR": str(workdir / "data")}
    code, said = run_command(env)
    lines = said.splitlines()
    assert code in (0, 2), said
    assert "Traceback" not in said
    if code == 2:
        assert lines and all(line.startswith("syntx results: config") for line in lines), said
        assert all(len(line) < 1000 for line in lines), max(lines, key=len)
    if spoil in REFUSED_BY and (spoil != "latin-1" or not content.isascii()):
        assert code == 2 and len(lines) == 1 and REFUSED_BY[spoil] in lines[0], said


LAYOUTS = st.sampled_from(["hash", "numbered", "sigma", "grid", 7, None])
fields = st.fixed_dictionaries(
    {
        "key": st.from_regex(r"[a-z][a-z0-9_]{0,8}", fullmatch=True) | st.text(max_size=20),
        "label": st.text(max_size=30),
    },
    optional={
        "weight": st.floats() | st.integers(-3, 10**40),
        "min_chars": st.integers(-5, 10**30),
        "ideal_chars": st.integers(-5, 10**30),
        "keywords": st.lists(st.text(max_size=2000), max_size=20),
        "aliases": st.lists(st.text(max_size=40), max_size=5) | st.text(),
    },
)
formats = st.fixed_dictionaries(
    {"layout": LAYOUTS, "fields": st.lists(fields, max_size=4)}, optional={"name": values}
)


@st.composite
def catalog_files(draw: st.DrawFn) -> tuple[bytes, bytes, str]:
    """A format file, a wrapper file naming it, and how one of them was spoilt."""
    format_text = yaml.safe_dump(draw(formats), allow_unicode=True)
    front = yaml.safe_dump(draw(st.fixed_dictionaries({"format": st.just("eigen") | st.text(max_size=10)})))
    wrapper_text = f"---\n{front}---\n{draw(st.text(min_size=1, max_size=500))}\n"
    spoil = draw(st.sampled_from(("none", "alias", "latin-1", "padded", "not yaml")))
    if spoil == "alias":
        format_text = "x: &x [a, b]\ny: [*x, *x]\n" + format_text
    elif spoil == "padded":
        format_text += "#" * (FORMAT_MAX_BYTES + 1)
    elif spoil == "latin-1":
        return format_text.encode(), (wrapper_text + "Grüße\n").encode("latin-1", errors="replace"), spoil
    elif spoil == "not yaml":
        return draw(st.binary(max_size=2048)), draw(st.binary(max_size=2048)), spoil
    return format_text.encode(errors="surrogatepass"), wrapper_text.encode(errors="surrogatepass"), spoil


@examples(CATALOG_EXAMPLES)
@given(files=catalog_files())
def test_generated_wrappers_and_formats_load_or_fail_in_one_line_naming_the_file(
    workdir: Path, files: tuple[bytes, bytes, str]
) -> None:
    format_bytes, wrapper_bytes, spoil = files
    directory = workdir / "wrappers"
    (directory / "formats").mkdir(parents=True, exist_ok=True)
    (directory / "formats" / "eigen.yaml").write_bytes(format_bytes)
    (directory / "eigen.txt").write_bytes(wrapper_bytes)
    try:
        catalog = load_catalog([BUILTIN_WRAPPER_DIR, directory])
    except CatalogError as exc:
        message = str(exc)
        assert "\n" not in message
        assert message.startswith(str(directory)), message
        assert len(message) < 1500, message
        return
    assert spoil in ("none", "not yaml"), spoil  # the others are always refused
    assert "eigen" in catalog.formats
