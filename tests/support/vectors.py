"""The reference test vectors of the original system (its functional specification, §10), as text.

TV3 is built from the HUMAN format's own header lines, which are exactly the original's headers.
"""

from __future__ import annotations

from shared.scoring import BUILTIN_WRAPPER_DIR, FormatSpec, load_catalog

FORMATS: dict[str, FormatSpec] = load_catalog([BUILTIN_WRAPPER_DIR]).formats

TV1 = (
    "### Driftkörperanalyse:\nDer Driftkörper zeigt auf TIER-1 eine sichtbare Erscheinung, auf TIER-2 eine "
    "klare Struktur, auf TIER-3 einen Mechanismus und auf TIER-4 einen stabilen Kern.\n\n### Kalibrierung:\n"
    "Das System reagiert auf Feedback mit Anpassung und Transformation; die Dynamik bleibt reguliert.\n\n"
    "### Strömungsverhältnisse:\nEnergie und Information fließen in einem Kreislauf; der Transfer zwischen "
    "den Ebenen ist stetig."
)
TV2 = "### Driftkörperanalyse:\nNur ein Feld wurde ausgefüllt."
TV3_FIELDS = {
    "drift": "Die Lage verschiebt sich langsam, aber stetig.",
    "hintergrund_muster": "Im Hintergrund wirkt ein Muster aus Selbstschutz und Kontrolle.",
    "druckfaktoren": "Druck entsteht durch Erwartungen und Zeitmangel.",
    "tiefe": "Die Situation reicht tiefer als die Oberfläche, Stufe 5.",
    "wirkung": "Seite A zieht sich zurück, Seite B sucht Nähe.",
    "klartext": "Es geht um Überforderung und den Wunsch nach Abstand.",
}
TV3 = "\n\n".join(
    f"{header} {text}"
    for header, text in zip(FORMATS["human"].header_lines(), TV3_FIELDS.values(), strict=True)
)
TV4_KLARTEXT = "Die Kalibrierung zeigt: es geht um Überforderung und den Wunsch nach Abstand."
TV4 = TV3.replace(TV3_FIELDS["klartext"], TV4_KLARTEXT)
TV5 = (
    "1. DRIFT: stabil.\n2. HINTERGRUND-MUSTER: Kontrolle.\n3. DRUCKFAKTOREN: Zeit.\n4. TIEFE: 3.\n"
    "5. WIRKUNG AUF BEIDE SEITEN\nAuf Seite A entsteht Druck, auf Seite B Rückzug.\n6. KLARTEXT: Abstand."
)
TV6 = (
    "1. Σ-DRIFTGRADIENT: abrupt - schneller Wechsel.\n2. Σ-MECHANISMUSKNOTEN: MN-04 Impulsumkehr.\n"
    "3. Σ-FREQUENZFELD: FF-γ Überlast.\n4. Σ-DICHTELEVEL: DL-5 Kompressionsphase.\n"
    "5. Σ-ZWEISTRÖME: DFV-A Flow A dominiert.\n6. Σ-KERNEXTRAKT: Rückzug als Schutz."
)
TV7 = (
    "1. Σ-DRIFTGRADIENT: abrupt.\n2. Σ-MECHANISMUSKNOTEN: MN-04.\n3. Σ-FREQUENZFELD: FF-γ.\n"
    "4. Σ-DICHTELEVEL: DL-5.\n5. Σ-ZWEISTRÖME: DFV-A."
)
TV8 = "Das ist einfach ein Fließtext ohne jede Struktur."
TV14 = (
    "1. DRIFTKÖRPER\nDer Input ist stabil.\n\n2. SUBPROTOKOLL\nEin leises Schutzprogramm läuft mit.\n\n"
    "3. KALIBRIERUNGSFELD\nDas Feld justiert sich an der Erwartung.\n\n4. TIER-ANALYSE\nTIER-Level 4.\n\n"
    "5. RESONANZSPLIT\nSeite A sendet, Seite B weicht aus.\n\n"
    "6. KLARTEXT\nIn einer Welt, die drängt, hält er still."
)
