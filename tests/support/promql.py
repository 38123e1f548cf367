"""Just enough PromQL for the deployment tests: the series selectors an expression reads, and variables.

A tokenizer plus a walk over its tokens: function names (followed by ``(``), keywords, aggregation
operators, grouping label lists (``by (…)``, ``on (…)`` …), range and subquery brackets and strings are
told apart from metric names, so a label called ``up`` or a string ``"syntx_x"`` is not taken for a
metric. Grafana's ``label_values(metric, label)`` reads ``metric`` only.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

_VARIABLE = re.compile(r"\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*")
_TOKEN = re.compile(
    r"""
    (?P<space>\s+)
  | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
  | (?P<variable>\$\{[^}]*\}|\$[A-Za-z_][A-Za-z0-9_]*)
  | (?P<duration>(?:\d+(?:ms|s|m|h|d|w|y))+(?![A-Za-z0-9_:]))
  | (?P<number>\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)
  | (?P<name>[A-Za-z_:][A-Za-z0-9_:]*)
  | (?P<op>==|!=|=~|!~|>=|<=|[-+*/%^<>=(){}\[\],])
    """,
    re.VERBOSE,
)
GROUPING = {"by", "without", "on", "ignoring", "group_left", "group_right"}
KEYWORDS = GROUPING | {"and", "or", "unless", "bool", "offset"}
AGGREGATIONS = {
    "sum", "min", "max", "avg", "group", "stddev", "stdvar", "count", "count_values",
    "bottomk", "topk", "quantile", "limitk", "limit_ratio",
}  # fmt: skip
COMPARISONS = {"==", "!=", ">", "<", ">=", "<="}
_CLOSING = {"(": ")", "[": "]", "{": "}"}


@dataclass(frozen=True)
class Token:
    kind: str
    text: str


@dataclass(frozen=True)
class Selector:
    metric: str
    labels: dict[str, str] = field(default_factory=dict)  # equality matchers only: name -> value


def tokens(expr: str) -> list[Token]:
    found: list[Token] = []
    at = 0
    while at < len(expr):
        match = _TOKEN.match(expr, at)
        if match is None:
            raise ValueError(f"cannot read PromQL at {expr[at:]!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            found.append(Token(kind, match.group()))
        at = match.end()
    return found


def _matching(items: list[Token], start: int) -> int:
    """Index of the bracket closing the one at ``start``."""
    opening, depth = items[start].text, 0
    for index in range(start, len(items)):
        if items[index].text == opening:
            depth += 1
        elif items[index].text == _CLOSING[opening]:
            depth -= 1
            if depth == 0:
                return index
    raise ValueError(f"unclosed {opening!r}")


def _matchers(items: list[Token]) -> dict[str, str]:
    """``name="value"`` pairs of a ``{…}`` body (its tokens without the braces)."""
    labels = {}
    for index in range(len(items) - 2):
        name, op, value = items[index : index + 3]
        if name.kind == "name" and op.text == "=" and value.kind == "string":
            labels[name.text] = value.text[1:-1]
    return labels


def _selectors(items: list[Token]) -> list[Selector]:
    found: list[Selector] = []
    index = 0
    while index < len(items):
        token = items[index]
        following = items[index + 1].text if index + 1 < len(items) else ""
        if token.text in ("[", "{"):
            index = _matching(items, index)
        elif token.kind == "name" and token.text in GROUPING and following == "(":
            index = _matching(items, index + 1)
        elif token.kind == "name" and token.text == "label_values" and following == "(":
            end = _matching(items, index + 1)
            arguments = items[index + 2 : end]
            commas = [at for at, item in enumerate(arguments) if item.text == ","]
            found += _selectors(arguments[: commas[0]] if commas else arguments)
            index = end
        elif token.kind == "name" and token.text in AGGREGATIONS and following in GROUPING:
            pass  # ``sum by (…) (…)``: an operator, its grouping list comes next
        elif token.kind == "name" and token.text not in KEYWORDS and following != "(":
            labels: dict[str, str] = {}
            if following == "{":
                end = _matching(items, index + 1)
                labels = _matchers(items[index + 2 : end])
                index = end
            found.append(Selector(token.text, labels))
        index += 1
    return found


def selectors(expr: str) -> list[Selector]:
    """The series selectors ``expr`` reads, in order."""
    return _selectors(tokens(expr))


def metric_names(expr: str) -> set[str]:
    return {selector.metric for selector in selectors(expr)}


def variables(expr: str) -> set[str]:
    """Grafana variables used (``$name``, ``${name}``; in label values too), without Grafana's ``$__…``."""
    names = {found.group().strip("${}") for found in _VARIABLE.finditer(expr)}
    return {name.split(":")[0] for name in names if not name.startswith("__")}


def threshold(expr: str) -> float:
    """The constant right of the last top-level comparison: ``x > 6 * 3600`` -> 21600."""
    items = tokens(expr)
    depth, at = 0, -1
    for index, token in enumerate(items):
        depth += token.text in "([{" and token.kind == "op"
        depth -= token.text in ")]}" and token.kind == "op"
        if depth == 0 and token.text in COMPARISONS:
            at = index
    if at < 0:
        raise ValueError(f"no comparison in {expr!r}")
    value = 1.0
    for token in items[at + 1 :]:
        if token.kind == "number":
            value *= float(token.text)
        elif token.text not in ("*", "bool"):
            break
    return value
