"""The alert rules of deploy/alerts.yml evaluated over series, as Prometheus does — for machines without
promtool, and to compute what the recordings of tests/support/alertrecord.py should fire.

Enough of Prometheus for these rules: ``<aggregation>(<selector>) <comparison> <number>`` or ``<selector>
<comparison> <number>``, evaluated at every sample (the evaluation interval is the sampling interval); an
alert fires at a sample when its condition held at every evaluation of the last ``for`` (pending from
the first, firing once ``for`` has passed, as Prometheus' rule manager does).
"""

from __future__ import annotations

import math
import operator
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from shared.safe_yaml import load_yaml_file
from tests.support.promql import COMPARISONS, Selector, selectors, threshold, tokens

COMPARE: dict[str, Callable[[float, float], bool]] = {
    "==": operator.eq, "!=": operator.ne, ">": operator.gt,
    "<": operator.lt, ">=": operator.ge, "<=": operator.le,
}  # fmt: skip
RULES_MAX_BYTES = 4 * 1024 * 1024  # the rule file and the recorded test file are a few hundred KB
_DURATION = re.compile(r"(\d+)([smhd])")
_UNIT_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_SERIES = re.compile(r"^(?P<metric>[A-Za-z_:][A-Za-z0-9_:]*)(?:\{(?P<labels>.*)\})?$")
_LABEL = re.compile(r'([A-Za-z_][A-Za-z0-9_]*)\s*=\s*"((?:[^"\\]|\\.)*)"')

# promtool's series notation -> a value per sample (None: absent)
Series = Mapping[str, Sequence[float | None]]


def seconds(text: str) -> int:
    return sum(int(n) * _UNIT_S[unit] for n, unit in _DURATION.findall(text))


@dataclass(frozen=True)
class Rule:
    alert: str
    expr: str
    for_s: int
    labels: dict[str, str]
    annotations: dict[str, str]

    def condition(self, series: Series, at: int) -> bool:
        """The rule's expression at sample ``at``: some matching series (their maximum, for ``max(…)``)
        compared with the threshold."""
        [wanted] = selectors(self.expr)
        values = [
            value
            for name, samples in series.items()
            if _matches(name, wanted) and at < len(samples) and (value := samples[at]) is not None
        ]
        if not values:
            return False
        comparison = next(t.text for t in tokens(self.expr) if t.text in COMPARISONS)
        return COMPARE[comparison](max(values), threshold(self.expr))

    def fires(self, series: Series, at: int, step_s: int) -> bool:
        """Firing at sample ``at``: the condition held at every evaluation of the last ``for``."""
        held_for = math.ceil(self.for_s / step_s)
        return at >= held_for and all(self.condition(series, j) for j in range(at - held_for, at + 1))


def load_rules(path: Path) -> list[Rule]:
    document: Any = load_yaml_file(path, RULES_MAX_BYTES)
    return [
        Rule(
            alert=rule["alert"],
            expr=str(rule["expr"]),
            for_s=seconds(str(rule.get("for", "0s"))),
            labels={key: str(value) for key, value in rule.get("labels", {}).items()},
            annotations={key: str(value) for key, value in rule.get("annotations", {}).items()},
        )
        for group in document["groups"]
        for rule in group["rules"]
    ]


def firing(rules: Sequence[Rule], series: Series, at: int, step_s: int) -> list[Rule]:
    return [rule for rule in rules if rule.fires(series, at, step_s)]


def _matches(name: str, wanted: Selector) -> bool:
    match = _SERIES.match(name)
    if match is None or match["metric"] != wanted.metric:
        return False
    labels = dict(_LABEL.findall(match["labels"] or ""))
    return all(labels.get(key) == value for key, value in wanted.labels.items())
