"""Scorers: ``v1`` reproduces the original numbers (§2.7, §10); ``syntx-2`` grades depth and explains."""

from __future__ import annotations

import re

import pytest

from shared.scoring import (
    BUILTIN_WRAPPER_DIR,
    SCORERS,
    ScoreResult,
    load_catalog,
    parse_response,
    render_breakdown,
    score_response,
)
from tests.support.vectors import TV1, TV2, TV3, TV4, TV5, TV6, TV7, TV8, TV14

CATALOG = load_catalog([BUILTIN_WRAPPER_DIR])
PROMPT = "Wie verändert Homeoffice die Zusammenarbeit in Teams?"

SUBSTANTIVE_SYNTEX = [
    "Homeoffice verändert die Zusammenarbeit in Teams zuerst an der Oberfläche: Besprechungen wandern in "
    "Videokonferenzen, Flurgespräche fallen weg und Nachrichten ersetzen den kurzen Blick über den "
    "Schreibtisch. Darunter liegt eine neue Struktur, in der Absprachen schriftlich festgehalten werden und "
    "Verantwortung klarer verteilt sein muss. Der Mechanismus dahinter ist Vertrauen statt Sichtbarkeit. "
    "Als stabiler Kern bleibt das gemeinsame Ziel, das ein Team auch über Entfernung zusammenhält.",
    "Teams passen sich an, indem sie feste Zeiten für den Austausch vereinbaren und Werkzeuge für gemeinsame "
    "Dokumente einführen. Rückmeldungen kommen seltener beiläufig, deshalb planen Führungskräfte regelmäßige "
    "Einzelgespräche ein. Mit der Zeit pendelt sich ein Rhythmus aus Präsenztagen und ruhigen Tagen zu Hause "
    "ein, der Konzentration und Nähe ausbalanciert.",
    "Informationen fließen im Homeoffice vor allem über Chat und E-Mail, wodurch Wissen leichter "
    "dokumentiert, aber auch schneller übersehen wird. Energie staut sich dort, wo Entscheidungen auf "
    "Antworten warten oder Kolleginnen nicht erreichbar sind. Aufmerksamkeit verteilt sich auf viele Kanäle "
    "gleichzeitig, und gute Teams lenken sie bewusst zurück auf wenige Orte der Zusammenarbeit.",
]
ENGLISH_SYNTEX = [
    "Remote work changes how teams collaborate, first on the surface: meetings move into video calls, the "
    "small talk in the hallway is gone and messages replace the quick look across the desk. Below that there "
    "is a new structure in which agreements have to be written down and responsibility has to be assigned "
    "more clearly than before. The mechanism behind it is trust instead of visibility, and the stable core "
    "is the shared goal that keeps a team together over a distance.",
    "Teams adapt by agreeing on fixed times for exchange and by introducing tools for shared documents. "
    "Feedback arrives less casually, so that managers plan regular one-to-one meetings with each person. "
    "Over time a rhythm of office days and quiet days at home settles in, and it balances focus and "
    "closeness.",
    "Information flows mostly through chat and e-mail, which makes knowledge easier to record but also "
    "easier to overlook. Energy builds up where decisions are waiting for answers or where colleagues "
    "cannot be reached. Attention is spread over many channels at once, and good teams steer it back "
    "to a few places.",
]


def answer_for(format_name: str, bodies: list[str]) -> str:
    headers = CATALOG.formats[format_name].header_lines()
    return "\n\n".join(f"{header}\n{body}" for header, body in zip(headers, bodies, strict=True))


def score(text: str, scorer: str = "default", fmt: str | None = None, prompt: str = PROMPT) -> ScoreResult:
    parsed = parse_response(text, CATALOG.formats, fmt)
    name = fmt or parsed.format or "human"
    return score_response(text, parsed, CATALOG.formats[name], prompt, scorer, wrapper=CATALOG.wrappers[name])


def lost_points(result: ScoreResult) -> float:
    notes = [*result.deductions, *(note for field in result.fields for note in field.deductions)]
    return sum(float(value) for note in notes for value in re.findall(r"\(-(\d+(?:\.\d+)?)\)", note))


@pytest.mark.parametrize(
    ("text", "expected_format", "original", "ours"),
    [
        (TV1, "syntex_system", 100, 100),
        (TV2, "syntex_system", 53, 53),
        (TV3, "human", 98, 98),
        # TV4: the original misdetected the format and scored an empty HUMAN answer (28); we parse all six.
        (TV4, "human", 28, 98),
        (TV5, "human", 98, 98),
        (TV6, "sigma", 98, 98),
        # TV7: we keep sigma_dichte = "DL-5." where the original cut it to "DL-"; presence is unchanged.
        (TV7, "sigma", 87, 87),
        (TV8, "human", 0, 0),
        # TV14: the original counted "KÖRPER…" as the DRIFT field (25 % completeness); we only see KLARTEXT.
        (TV14, "human", 46, 35),
    ],
)
def test_v1_reproduces_the_original_on_correctly_parsed_answers(
    text: str, expected_format: str, original: int, ours: int
) -> None:
    result = score(text, "v1", fmt=expected_format)
    assert result.scorer == "v1"
    assert result.total == ours
    assert (original == ours) == (text not in (TV4, TV14))


def test_v1_components_of_tv7() -> None:
    result = score(TV7, "v1")
    assert (result.completeness, result.structure) == (90.0, 80.0)
    assert [field.present for field in result.fields] == [True] * 5 + [False]
    assert any("6." in note for note in result.deductions)


def test_default_scores_a_complete_substantive_answer_at_least_90() -> None:
    text = answer_for("syntex_system", SUBSTANTIVE_SYNTEX)
    fmt = CATALOG.formats["syntex_system"]
    assert all(
        len(body) >= spec.ideal_chars for body, spec in zip(SUBSTANTIVE_SYNTEX, fmt.fields, strict=True)
    )
    result = score(text)
    assert result.scorer == "syntx-2"
    assert result.total >= 90, render_breakdown(result)
    assert result.deductions == []


def test_default_human_answer_with_preamble_scores_at_least_90() -> None:
    bodies = [
        "Die Zusammenarbeit verschiebt sich langsam vom Büro ins Homeoffice, und diese Bewegung lässt sich "
        "kaum umkehren. Teams finden neue Routinen, statt zur alten Ordnung zurückzukehren.",
        "Im Hintergrund wirkt ein Muster aus Kontrolle und Vertrauen: Manche Führungskräfte messen Leistung "
        "noch an Anwesenheit, während die Teams längst über Ergebnisse gesteuert werden wollen. Dieser "
        "stille Widerspruch prägt viele Gespräche.",
        "Druck entsteht durch ständige Erreichbarkeit, volle Kalender mit Videokonferenzen und die Sorge, im "
        "Homeoffice übersehen zu werden, wenn Beförderungen anstehen.",
        "Die Sache reicht tief, ich ordne sie auf Stufe 5 von 7 ein. Es geht nicht nur um den Arbeitsort, "
        "sondern um die Frage, wie Zugehörigkeit entsteht, wenn sich Menschen nur noch selten persönlich "
        "begegnen.",
        "Seite A, die Führung, erlebt Kontrollverlust und reagiert mit mehr Terminen und Berichten. Seite B, "
        "die Mitarbeitenden, gewinnt Freiheit und Ruhe, fühlt sich aber schneller abgehängt, wenn "
        "Informationen nur im Büro geteilt werden.",
        "Homeoffice funktioniert, wenn Teams Vertrauen aufbauen und ihre Zusammenarbeit bewusst gestalten, "
        "statt sie dem Zufall zu überlassen.",
    ]
    result = score("Hier ist meine Analyse.\n\n" + answer_for("human", bodies))
    assert result.total >= 90, render_breakdown(result)


def test_tv1_is_complete_but_thin_and_every_section_says_why() -> None:
    result = score(TV1, prompt="")
    assert 80 <= result.total < 90
    assert result.completeness == 100.0
    assert all(field.deductions and field.deductions[0].startswith("thin:") for field in result.fields)
    assert abs(100 - result.total - lost_points(result)) <= 1


def test_thin_answers_tv3_and_tv2_explain_their_deductions() -> None:
    for text in (TV3, TV2):
        result = score(text)
        assert result.total < 90
        assert abs(100 - result.total - lost_points(result)) <= 1, render_breakdown(result)
    assert any(field.deductions == ["missing (-22.1)"] for field in score(TV2).fields)


def test_repetitive_answer_is_penalised() -> None:
    filler = "Homeoffice verändert die Zusammenarbeit in Teams spürbar. "
    result = score(answer_for("syntex_system", [filler * 8] * 3))
    assert result.total < 90
    assert any(note.startswith("repetition:") for note in result.deductions)


def test_off_topic_answer_is_penalised() -> None:
    result = score(
        answer_for("syntex_system", SUBSTANTIVE_SYNTEX), prompt="Welche Rolle spielt Musik im Alter?"
    )
    assert result.total < 90
    assert any(note.startswith("relevance: 0 of") for note in result.deductions)


def test_wrong_language_is_penalised() -> None:
    result = score(answer_for("syntex_system", ENGLISH_SYNTEX), prompt="Remote work and teams")
    assert result.total < 90
    assert any(note.startswith("language:") for note in result.deductions), render_breakdown(result)


def test_echoing_the_wrapper_instructions_is_penalised() -> None:
    template = CATALOG.wrappers["syntex_system"].template
    echoed = [line for line in template.splitlines() if line.startswith("[")]
    bodies = [f"{echo}\n{body}" for echo, body in zip(echoed, SUBSTANTIVE_SYNTEX, strict=True)]
    result = score(answer_for("syntex_system", bodies))
    assert result.total < 90
    assert any(note.startswith("echo: 3 sentence") for note in result.deductions), render_breakdown(result)


def test_structure_deductions_for_duplicates_order_and_layout() -> None:
    bodies = SUBSTANTIVE_SYNTEX
    text = (
        f"**Kalibrierung:**\n{bodies[1]}\n\n### Driftkörperanalyse:\n{bodies[0]}\n\n"
        f"### Strömungsverhältnisse:\n{bodies[2]}\n\n### Kalibrierung:\nNoch einmal."
    )
    result = score(text)
    notes = " | ".join(result.deductions)
    assert "not in the format's order" in notes
    assert "duplicated section(s) ignored: kalibrierung" in notes
    assert "headers not written like '### Driftkörperanalyse:'" in notes
    assert result.structure < 70
    assert abs(100 - result.total - lost_points(result)) <= 1


def test_empty_and_unstructured_answers_score_zero() -> None:
    for scorer in ("default", "v1"):
        assert score("", scorer, fmt="sigma").total == 0
        assert score(TV8, scorer, fmt="human").total == 0
    assert score("", fmt="sigma").deductions == ["empty answer (-100)"]


def test_scoring_against_another_format_says_so() -> None:
    result = score(TV3, fmt="syntex_system")
    assert result.total == 0
    assert score_response(TV3, parse_response(TV3, CATALOG.formats), CATALOG.formats["sigma"], "").total == 0


def test_registry_and_unknown_scorer() -> None:
    assert {"v1", "syntx-2", "default"} <= set(SCORERS)
    with pytest.raises(ValueError, match="unknown scorer 'v9'"):
        score(TV1, "v9")


def test_render_breakdown_is_a_readable_table() -> None:
    text = render_breakdown(score(TV2))
    assert text.splitlines()[0].startswith("scorer syntx-2  format syntex_system  total ")
    assert "kalibrierung (Kalibrierung)" in text
    assert "missing (-22.1)" in text
    assert "deductions:" in text
