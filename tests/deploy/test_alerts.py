"""Alerts are health: the rule file is generated from the health reasons, every reason the monitor can give
has its alert, and the series recorded from the real monitor in each fault fire that fault's alert (a
healthy hour nothing) — checked here without promtool; tests/deploy/test_deploy.py runs promtool on the
same file.
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry

from services.monitor import alerts
from services.monitor.health import Observations, judge
from services.monitor.labels import Labels
from services.monitor.metrics import MonitorMetrics
from services.monitor.reasons import BY_CODE, REASON_RULES
from services.monitor.status import Tracker
from shared.config import DEFAULT_CONFIG, HealthSettings, load_settings
from shared.safe_yaml import load_yaml_file
from tests.support.alertrecord import RULES, SCENARIOS, TESTS
from tests.support.rules import RULES_MAX_BYTES, Rule, firing, load_rules, seconds

HOUR = "an hour of a healthy demo"


def test_the_rule_file_is_generated_from_the_health_reasons() -> None:
    assert RULES.read_text(encoding="utf-8") == alerts.rendered(), (
        "deploy/alerts.yml differs: python -m services.monitor.alerts > deploy/alerts.yml"
    )


QUIET = Observations(
    queue_state="BALANCED",
    incoming=10,
    outcomes=(10, 0, 0),
    oldest_claim_age_s=None,
    backends_down=[],
    wrappers=2,
    silent_services=[],
    expected_services=5,
    missed_schedules=[],
)
FAULTS: list[dict[str, Any]] = [
    {"outcomes": (5, 0, 5)},  # error_share CRITICAL
    {"outcomes": (7, 0, 3)},  # error_share WARNING
    {"outcomes": (0, 10, 0)},  # rejected_share
    {"queue_state": "HIGH"},
    {"queue_state": "OVERFLOW"},
    {"oldest_claim_age_s": 10_000.0},
    {"missed_schedules": ["schedule producer has not fired"]},
    {"backends_down": ["sigma"]},
    {"backends_down": ["sigma", "syntex_system"]},
    {"queue_faults": ("consumer.sigma: rename in processed: EPERM",)},
    {"silent_services": ["producer"]},
    {"silent_services": ["producer", "scheduler", "cleanup"]},
    {"nats_down_s": 5.0},
    {"stalled_s": 2000.0, "claimed": 3},
]


def test_every_reason_and_severity_judge_gives_has_its_alert() -> None:
    said = set()
    for fault in FAULTS:
        seen = Observations(**{**vars(QUIET), **fault})
        said |= {(reason.code, reason.severity) for reason in judge(seen, HealthSettings(), 120.0).reasons}
    catalogue = {(rule.code, severity) for rule in REASON_RULES for severity in rule.severities}
    assert said == catalogue
    rules = load_rules(RULES)
    for code, severity in catalogue:
        [rule] = [
            r for r in rules if r.labels.get("reason") == code and r.labels["severity"] == severity.lower()
        ]
        assert rule.alert == BY_CODE[code].alert and rule.for_s == BY_CODE[code].for_s


def test_a_silent_service_is_exported_as_0_not_dropped() -> None:
    settings = load_settings([DEFAULT_CONFIG])
    metrics = MonitorMetrics(CollectorRegistry())
    tracker = Tracker(metrics, Labels(settings), settings.monitor, ["producer", "scheduler"])
    assert tracker.refresh_services() == {}
    value = metrics.registry.get_sample_value
    assert (
        value("syntx_services_up", {"service": "producer"}),
        value("syntx_services_up", {"service": "x"}),
    ) == (
        0,
        None,
    )


def _groups() -> list[dict[str, Any]]:
    document: Any = load_yaml_file(TESTS, RULES_MAX_BYTES)
    groups: list[dict[str, Any]] = document["tests"]
    return groups


def _series(group: dict[str, Any]) -> dict[str, list[float | None]]:
    return {
        item["series"]: [None if value == "_" else float(value) for value in str(item["values"]).split()]
        for item in group["input_series"]
    }


def _fired(rules: list[Rule], group: dict[str, Any], eval_time: str) -> set[tuple[str, str]]:
    step = seconds(group["interval"])
    at = seconds(eval_time) // step
    return {(rule.alert, rule.labels["severity"]) for rule in firing(rules, _series(group), at, step)}


def test_the_recorded_expectations_are_what_the_rules_fire() -> None:
    """Each expectation promtool checks is what these rules fire on the recorded series
    (tests/support/rules.py)."""
    rules = load_rules(RULES)
    for group in _groups():
        for check in group["alert_rule_test"]:
            fired = {(alert, severity) for alert, severity in _fired(rules, group, check["eval_time"])}
            expected = {
                (check["alertname"], alert["exp_labels"]["severity"]) for alert in check["exp_alerts"]
            }
            assert expected == {
                (alert, severity) for alert, severity in fired if alert == check["alertname"]
            }, (
                group["name"],
                check,
            )


def test_each_recorded_fault_fires_its_alert_a_paused_schedule_and_a_healthy_hour_nothing() -> None:
    rules = load_rules(RULES)
    groups = {group["name"]: group for group in _groups()}
    assert {scenario.name for scenario in SCENARIOS} <= set(groups), "python -m tests.support.alertrecord"
    for scenario in SCENARIOS:
        group = groups[scenario.name]
        end = max(seconds(check["eval_time"]) for check in group["alert_rule_test"])
        fired = {alert for alert, _severity in _fired(rules, group, f"{end}s")}
        if scenario.target is None:
            assert "SyntxScheduleMissed" not in fired and not fired, (scenario.name, fired)
        else:
            assert scenario.target in fired, (scenario.name, fired)
    [hour] = [group for name, group in groups.items() if name.startswith(HOUR)]
    samples = len(next(iter(_series(hour).values())))
    assert samples >= 240, "an hour of scrapes every 15 s"
    step = seconds(hour["interval"])
    assert not any(firing(rules, _series(hour), at, step) for at in range(samples))
