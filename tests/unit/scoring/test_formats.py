"""The format/wrapper catalog: the shipped data files, rendering, user directories and error messages."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.scoring import (
    BUILTIN_WRAPPER_DIR,
    Catalog,
    CatalogError,
    Wrapper,
    load_catalog,
    parse_response,
    score_response,
)
from shared.scoring.formats import FORMAT_MAX_BYTES, WRAPPER_MAX_BYTES

# A format whose keywords are a "billion laughs": 300 bytes that build 10^7 strings when aliases expand.
ALIAS_BOMB_KEYWORDS = (
    "layout: hash\n"
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol","lol"]\n'
    "b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
    "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d,*d]\n"
    "f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e,*e]\n"
    "fields: [{key: a, label: A, weight: 1, min_chars: 1, ideal_chars: 2, keywords: [*f,*f,*f,*f,*f,*f]}]\n"
)


def builtin() -> Catalog:
    return load_catalog([BUILTIN_WRAPPER_DIR])


def test_builtin_catalog_has_the_three_original_formats_and_wrappers() -> None:
    catalog = builtin()
    assert set(catalog.formats) == {"syntex_system", "sigma", "human"}
    assert set(catalog.wrappers) == {"syntex_system", "sigma", "human"}
    for name, wrapper in catalog.wrappers.items():
        assert wrapper.format == name
        assert wrapper.language == "de"
        assert catalog.formats[catalog.wrappers[name].format].name == name


def test_field_keys_and_v1_weights_match_the_original() -> None:
    formats = builtin().formats
    expected = {
        "syntex_system": {"driftkorper": 33, "kalibrierung": 34, "stromung": 33},
        "sigma": {
            "sigma_drift": 15, "sigma_mechanismus": 20, "sigma_frequenz": 15,
            "sigma_dichte": 20, "sigma_strome": 20, "sigma_extrakt": 10,
        },
        "human": {
            "drift": 15, "hintergrund_muster": 20, "druckfaktoren": 15,
            "tiefe": 20, "wirkung": 20, "klartext": 10,
        },
    }  # fmt: skip
    for name, weights in expected.items():
        fmt = formats[name]
        assert fmt.keys == list(weights)
        assert {spec.key: spec.weight for spec in fmt.fields} == weights
        assert fmt.total_weight == 100
        assert all(spec.ideal_chars >= spec.min_chars for spec in fmt.fields)


def test_header_lines_are_the_canonical_headers() -> None:
    formats = builtin().formats
    assert formats["syntex_system"].header_lines() == [
        "### Driftkörperanalyse:",
        "### Kalibrierung:",
        "### Strömungsverhältnisse:",
    ]
    assert formats["sigma"].header_lines() == [
        "1. Σ-DRIFTGRADIENT:",
        "2. Σ-MECHANISMUSKNOTEN:",
        "3. Σ-FREQUENZFELD:",
        "4. Σ-DICHTELEVEL:",
        "5. Σ-ZWEISTRÖME:",
        "6. Σ-KERNEXTRAKT:",
    ]
    assert formats["human"].header_lines() == [
        "1. DRIFT:",
        "2. HINTERGRUND-MUSTER:",
        "3. DRUCKFAKTOREN:",
        "4. TIEFE:",
        "5. WIRKUNG AUF BEIDE SEITEN:",
        "6. KLARTEXT:",
    ]


def test_every_wrapper_asks_for_exactly_its_format_headers() -> None:
    catalog = builtin()
    for name, wrapper in catalog.wrappers.items():
        rendered = wrapper.render("Wie verändert Homeoffice die Zusammenarbeit?")
        lines = rendered.splitlines()
        for header in catalog.formats[catalog.wrappers[name].format].header_lines():
            assert header in lines, (name, header)
        assert rendered.rstrip().endswith("Wie verändert Homeoffice die Zusammenarbeit?")
        assert "{prompt}" not in rendered
        assert not rendered.startswith("---")


def test_a_wrapper_without_placeholder_appends_the_prompt_after_a_blank_line() -> None:
    wrapper = Wrapper(name="x", format="human", template="Antworte knapp.\n")
    assert wrapper.render("Frage?") == "Antworte knapp.\n\nFrage?"
    assert Wrapper(name="y", format="human", template="A {prompt} B").render("P") == "A P B"


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


USER_FORMAT = """\
name: dialektik
description: These, Gegenthese, Synthese
layout: hash
fields:
  - {key: these, label: These, aliases: [Thesis], weight: 40, min_chars: 20, ideal_chars: 60}
  - {key: gegenthese, label: Gegenthese, aliases: [Antithesis], weight: 30, min_chars: 20, ideal_chars: 60}
  - {key: synthese, label: Synthese, weight: 30, min_chars: 20, ideal_chars: 60}
"""
USER_WRAPPER = (
    "---\nformat: dialektik\ndescription: drei Schritte\n---\nDenke dialektisch über {prompt} nach.\n"
)


def test_a_user_directory_adds_a_format_and_a_wrapper_without_code_change(tmp_path: Path) -> None:
    write(tmp_path / "formats" / "dialektik.yaml", USER_FORMAT)
    write(tmp_path / "dialektik.txt", USER_WRAPPER)
    catalog = load_catalog([BUILTIN_WRAPPER_DIR, tmp_path])
    assert {"syntex_system", "sigma", "human", "dialektik"} <= set(catalog.formats)
    fmt = catalog.formats[catalog.wrappers["dialektik"].format]
    assert fmt.header_lines() == ["### These:", "### Gegenthese:", "### Synthese:"]
    assert catalog.wrappers["dialektik"].render("Arbeit") == "Denke dialektisch über Arbeit nach."
    answer = (
        "### Thesis\nArbeit im Büro schafft Nähe und schnelle Abstimmung im Team.\n"
        "### Antithesis:\nArbeit zu Hause spart Wege und schafft ruhige Zeit für Konzentration.\n"
        "### Synthese:\nEin Wechsel aus beiden Orten verbindet Nähe im Team mit Ruhe für die Arbeit."
    )
    parsed = parse_response(answer, catalog.formats)
    assert parsed.format == "dialektik"
    assert parsed.fields["these"].startswith("Arbeit im Büro")
    assert score_response(answer, parsed, fmt, "Arbeit", "v1").total == 100
    assert score_response(answer, parsed, fmt, "Arbeit").total >= 90


def test_a_later_directory_overrides_a_builtin_wrapper(tmp_path: Path) -> None:
    write(tmp_path / "human.txt", "---\nformat: human\n---\nEigene Anweisung.\n")
    catalog = load_catalog([BUILTIN_WRAPPER_DIR, tmp_path])
    assert catalog.wrappers["human"].template == "Eigene Anweisung."
    assert catalog.wrappers["human"].source == str(tmp_path / "human.txt")
    assert catalog.wrappers["sigma"].source.startswith(str(BUILTIN_WRAPPER_DIR))


@pytest.mark.parametrize(
    ("relative", "content", "message"),
    [
        ("formats/bad.yaml", "name: [unclosed\n", "format file is not valid YAML: did not find expected ','"),
        (
            "formats/bad.yaml",
            ALIAS_BOMB_KEYWORDS,
            "format file uses YAML anchors or aliases, which are not allowed",
        ),
        ("formats/bad.yaml", "layout: hash\n#" + "x" * FORMAT_MAX_BYTES, "over the limit of 65536"),
        ("formats/bad.yaml", "- just\n- a list\n", "must be a YAML mapping"),
        ("formats/bad.yaml", "layout: hash\nfields: []\n", "fields: Tuple should have at least 1 item"),
        (
            "formats/bad.yaml",
            "fields: [{key: a, label: A, weight: 1, min_chars: 1, ideal_chars: 2}]\n",
            "layout",
        ),
        (
            "formats/bad.yaml",
            "layout: grid\nfields: [{key: a, label: A, weight: 1, min_chars: 1, ideal_chars: 2}]\n",
            "layout: Input should be 'hash', 'numbered' or 'sigma'",
        ),
        (
            "formats/bad.yaml",
            "layout: hash\nfields: [{key: a, label: A, weight: 0, min_chars: 1, ideal_chars: 2}]\n",
            "fields.0.weight: Input should be greater than 0",
        ),
        (
            "formats/bad.yaml",
            "layout: hash\nfields: [{key: a, label: A, weight: 1, min_chars: 50, ideal_chars: 20}]\n",
            "ideal_chars (20) is below min_chars (50)",
        ),
        (
            "formats/bad.yaml",
            "layout: hash\nfields:\n"
            "  - {key: a, label: A, weight: 1, min_chars: 1, ideal_chars: 2}\n"
            "  - {key: a, label: B, weight: 1, min_chars: 1, ideal_chars: 2}\n",
            "field keys must be unique, repeated: a",
        ),
        ("bad.txt", "Kein Vorspann.\n", "must start with a front matter block"),
        ("bad.txt", "---\nformat: human\nText ohne Ende\n", "front matter block is not closed"),
        ("bad.txt", "---\nformat: human\n---\n\n", "no instruction text"),
        ("bad.txt", "---\nlanguage: de\n---\nText\n", "format: Field required"),
        ("bad.txt", "---\nformat: human\ncolour: red\n---\nText\n", "colour: Extra inputs are not permitted"),
        ("bad.txt", "---\nformat: tabelle\n---\nText\n", "names unknown format 'tabelle'"),
        ("bad.txt", "---\nformat: &f human\n---\nText\n", "front matter uses YAML anchors or aliases"),
        ("bad.txt", "---\nformat: human\n---\n" + "Text " * 30 * 1024, "over the limit of 65536"),
    ],
)
def test_catalog_errors_name_the_file_and_the_problem(
    tmp_path: Path, relative: str, content: str, message: str
) -> None:
    path = write(tmp_path / relative, content)
    with pytest.raises(CatalogError) as caught:
        load_catalog([BUILTIN_WRAPPER_DIR, tmp_path])
    assert str(path) in str(caught.value)
    assert message in str(caught.value)
    assert "\n" not in str(caught.value)


def test_a_wrapper_that_is_not_utf8_is_one_line_naming_it(tmp_path: Path) -> None:
    path = tmp_path / "latin1.txt"
    path.write_bytes("---\nformat: human\n---\nErkläre bitte.\n".encode("latin-1"))
    with pytest.raises(CatalogError) as caught:
        load_catalog([BUILTIN_WRAPPER_DIR, tmp_path])
    assert str(caught.value) == f"{path}: the file is not UTF-8 text (byte 26); save it as UTF-8"


def test_a_30_mb_template_is_refused_after_reading_no_more_than_the_limit(tmp_path: Path) -> None:
    path = tmp_path / "huge.txt"
    with path.open("wb") as handle:
        handle.write(b"---\nformat: human\n---\n")
        handle.truncate(30 * 1024 * 1024)  # sparse: 30 MB of NUL bytes without writing them
    with pytest.raises(CatalogError) as caught:
        load_catalog([BUILTIN_WRAPPER_DIR, tmp_path])
    assert (
        str(caught.value)
        == f"{path}: the file is {30 * 1024 * 1024} bytes, over the limit of {WRAPPER_MAX_BYTES}"
    )


def test_a_missing_directory_is_a_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        load_catalog([tmp_path / "nowhere"])
