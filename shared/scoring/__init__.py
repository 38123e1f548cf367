"""From an answer to a score: wrapper and format catalogs, the section parser, the scorers, their models."""

from __future__ import annotations

from shared.scoring.formats import (
    BUILTIN_WRAPPER_DIR,
    Catalog,
    CatalogError,
    FormatSpec,
    Wrapper,
    configured_catalog,
    load_catalog,
)
from shared.scoring.models import (
    ScoreResult,
)
from shared.scoring.parsing import (
    ParsedResponse,
    parse_response,
)
from shared.scoring.scorers import (
    SCORER_NAMES,
    SCORERS,
    render_breakdown,
    score_response,
)

__all__ = [
    "BUILTIN_WRAPPER_DIR",
    "Catalog",
    "CatalogError",
    "FormatSpec",
    "ParsedResponse",
    "SCORERS",
    "SCORER_NAMES",
    "ScoreResult",
    "Wrapper",
    "configured_catalog",
    "load_catalog",
    "parse_response",
    "render_breakdown",
    "score_response",
]
