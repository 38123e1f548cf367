"""``syntx score FILE``: parse and score a response (or a result's) and print the breakdown."""

from __future__ import annotations

from pathlib import Path

from shared.config import Settings
from shared.queue import RESULT_SUFFIX, JobResult, ResultFileError
from shared.safe_yaml import YamlRefused, read_text
from shared.scoring import SCORERS, configured_catalog, parse_response, render_breakdown, score_response
from syntx.cli.output import fail, out, usage
from syntx.cli.parser import Invocation, Subparsers, runs
from syntx.suggest import unknown


def register(commands: Subparsers) -> None:
    parser = commands.add_parser("score", help="parse and score a response file and print the breakdown")
    parser.add_argument("file", type=Path, help="a response text file or a result JSON")
    parser.add_argument("--format", help="format name (default: from the result, else detected)")
    parser.add_argument("--prompt", default="", help="the job prompt, for the relevance check")
    parser.add_argument("--scorer", default="default", help=f"one of: {', '.join(SCORERS)}")
    parser.add_argument("--json", action="store_true")
    runs(parser, run)


def run(call: Invocation) -> int:
    return score(
        call.settings, call.args.file, call.args.format, call.args.prompt, call.args.scorer, call.args.json
    )


def score(
    settings: Settings, path: Path, format_name: str | None, prompt: str, scorer: str, as_json: bool
) -> int:
    catalog = configured_catalog(settings.catalog_dirs)
    known = ", ".join(catalog.formats)
    if scorer not in SCORERS:
        return usage(f"syntx score: {unknown('scorer', scorer, SCORERS)}")
    if format_name is not None and format_name not in catalog.formats:
        return usage(f"syntx score: {unknown('format', format_name, catalog.formats)}")
    try:
        if path.suffix == RESULT_SUFFIX:
            record = JobResult.load_copy(path, max_bytes=settings.queue.max_result_bytes)
            text = record.response or ""
            format_name = format_name or record.format
            prompt = prompt or record.prompt or ""
        else:
            text = read_text(path, settings.queue.max_result_bytes)
    except ResultFileError as exc:
        return usage(
            f"syntx score: {path} is not a result JSON: {exc.detail}; name a response text or a result"
        )
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        return usage(f"syntx score: cannot read {path}: {reason}; name a response text or a result JSON")
    except YamlRefused as exc:  # too large, not UTF-8, not a regular file
        return usage(f"syntx score: {path} {exc.reason}; name a response text or a result JSON")
    parsed = parse_response(text, catalog.formats, expected=format_name)
    chosen = format_name or parsed.format
    if chosen is None or chosen not in catalog.formats:
        return fail(f"syntx score: no known format in {path}; name one with --format ({known})")
    result = score_response(text, parsed, catalog.formats[chosen], prompt, scorer=scorer)
    out(result.model_dump_json(indent=2) if as_json else render_breakdown(result))
    return 0
