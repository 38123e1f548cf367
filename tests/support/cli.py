"""The ``syntx`` command run in-process, as the operator calls it (``main([...])``)."""

from __future__ import annotations

import pytest

from syntx.main import main

SIGMA_ANSWER = (
    "1. Σ-DRIFTGRADIENT: abrupt - schneller Wechsel.\n2. Σ-MECHANISMUSKNOTEN: MN-04 Impulsumkehr.\n"
    "3. Σ-FREQUENZFELD: FF-γ Überlast.\n4. Σ-DICHTELEVEL: DL-5 Kompressionsphase.\n"
    "5. Σ-ZWEISTRÖME: DFV-A Flow A dominiert.\n6. Σ-KERNEXTRAKT: Rückzug als Schutz."
)


def syntx(*argv: str) -> int | str | None:
    """Run the command; return its exit code."""
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    return exited.value.code
