"""The service table is the one list of services: what reads it agrees with it, and what cannot read it
(docker-compose.yml, the settings' sections, the packages) is held to it here."""

from __future__ import annotations

from importlib.util import find_spec
from typing import Any

from services.monitor.labels import Labels
from shared.config import Settings
from shared.config.sections import default_consumers
from shared.service import SERVICES, service_names
from shared.service_table import SERVICE_TABLE, ServiceRow, default_crons, service_row
from syntx.supervisor import service_specs
from tests.support.compose import COMPOSE_FILE, load_yaml

APP_IMAGE = "x-syntx"  # the compose extension field every SYNTX service is built from


def compose_app_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the SYNTX image (not nats, Prometheus, Grafana)."""
    image = load_yaml(COMPOSE_FILE)[APP_IMAGE]["image"]
    found = load_yaml(COMPOSE_FILE)["services"]
    return {name: service for name, service in found.items() if service.get("image") == image}


def compose_name(row: ServiceRow, wrapper: str | None = None) -> str:
    """Compose names a consumer's service consumer-<wrapper> (a compose name has no dot or underscore)."""
    return row.name if wrapper is None else f"{row.name}-{wrapper.replace('_', '-')}"


def expected_commands() -> dict[str, list[str]]:
    """Every compose service the table asks for, by name, with its command (the default consumers)."""
    expected: dict[str, list[str]] = {}
    for row in SERVICE_TABLE:
        run = ["python", "-m", row.module]
        if row.per_consumer:
            expected |= {compose_name(row, w): [*run, "--wrapper", w] for w in default_consumers()}
        else:
            expected[compose_name(row)] = run
    return expected


def test_docker_compose_runs_each_service_of_the_table_and_nothing_else() -> None:
    commands = {name: service["command"] for name, service in compose_app_services().items()}
    assert commands == expected_commands()


def test_each_row_names_a_runnable_package_and_a_settings_section() -> None:
    for row in SERVICE_TABLE:
        assert find_spec(f"{row.module}.__main__") is not None, f"{row.name}: no {row.module}/__main__.py"
        has_section = row.settings is None or row.settings in Settings.model_fields
        assert has_section, f"{row.name}: Settings has no section {row.settings}"
        assert row.cluster_replicas >= 1, row.name


def test_default_schedules_are_the_tables() -> None:
    schedules = Settings().schedules
    assert {name: spec.cron for name, spec in schedules.items()} == default_crons()
    consumer = service_row("consumer")
    assert consumer is not None
    assert set(consumer.schedules) == {f"consumer.{name}" for name in default_consumers()}


def test_service_names_and_the_monitors_label_bounds_follow_the_table() -> None:
    settings = Settings()
    names = service_names(settings.consumers)
    assert tuple(row.name for row in SERVICE_TABLE) == SERVICES
    consumers = ["consumer.syntex_system", "consumer.sigma"]
    assert names == ["scheduler", "producer", *consumers, "monitor", "cleanup"]
    assert Labels(settings).known["service"] == frozenset(names)


def test_syntx_up_starts_each_service_of_the_table_once_and_replicas_in_a_cluster() -> None:
    settings = Settings()
    alone = service_specs(settings)
    assert [spec.name for spec in alone] == service_names(settings.consumers)
    modules = {row.module for row in SERVICE_TABLE}
    assert all(spec.args[0] == "-m" and spec.args[1] in modules for spec in alone)
    cluster = [spec.name for spec in service_specs(settings, cluster=True)]
    assert cluster == ["scheduler", "scheduler-2", *[spec.name for spec in alone][1:]]


def test_syntx_up_runs_a_consumer_as_many_times_as_its_instances_say() -> None:
    settings = Settings(consumers={"sigma": {"wrapper": "sigma", "instances": 3}})
    specs = [spec for spec in service_specs(settings) if "--wrapper" in spec.args]
    assert [spec.name for spec in specs] == ["consumer.sigma", "consumer.sigma-2", "consumer.sigma-3"]
    assert {spec.args for spec in specs} == {("-m", "services.consumer", "--wrapper", "sigma")}
