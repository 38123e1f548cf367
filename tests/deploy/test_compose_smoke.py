"""The compose stack for real: build the image, ``up``, turn the loop with ticks, check health, results,
Prometheus targets and rules, ``down -v``.

Runs wherever a Docker daemon answers and the images docker-compose.yml names are present (or pullable);
skipped with the reason otherwise. Grafana is left out (no image on machines without a registry). All
containers use the host network on loopback ports chosen per run (an override file written into a
temporary directory), so nothing collides with a local ``syntx up``.
Published ports are dropped from the resolved file: on the host network there is nothing to publish.
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import shutil
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
import yaml

from shared.config import PROJECT_ROOT
from tests.support.harness import free_port

log = logging.getLogger(__name__)

ROOT = PROJECT_ROOT
COMPOSE_FILE = ROOT / "docker-compose.yml"
DEPLOY = ROOT / "deploy"
SMOKE_SERVICES = (
    "nats",
    "scheduler",
    "producer",
    "consumer-syntex-system",
    "consumer-sigma",
    "monitor",
    "cleanup",
    "prometheus",
)
SYNTX_SERVICES = SMOKE_SERVICES[1:-1]
CONSUMER_SCHEDULES = ("consumer.syntex_system", "consumer.sigma")
IMAGE = "syntx:smoke-test"
SCRAPE_INTERVAL = "5s"
DAEMON_PROBE_S = 15
BUILD_S = 900
UP_S = 300
LOOP_S = 180
PROMETHEUS_S = 120

T = TypeVar("T")


def compose_command() -> list[str] | None:
    if shutil.which("docker-compose"):
        return ["docker-compose"]
    if shutil.which("docker") and _ok(["docker", "compose", "version"]):
        return ["docker", "compose"]
    return None


def _ok(argv: list[str]) -> bool:
    try:
        return subprocess.run(argv, capture_output=True, timeout=DAEMON_PROBE_S, check=False).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def missing_images() -> list[str]:
    """Images the stack pulls (not built) that the daemon does not have."""
    names = [
        service["image"]
        for name, service in yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"].items()
        if name in SMOKE_SERVICES and "build" not in service
    ]
    base = next(
        line.split()[1] for line in (DEPLOY / "Dockerfile").read_text().splitlines() if "FROM " in line
    )
    return [name for name in [*names, base] if not _ok(["docker", "image", "inspect", name])]


def skip_reason() -> str | None:
    if compose_command() is None:
        return "neither docker-compose nor `docker compose` is installed"
    if not _ok(["docker", "info"]):
        return "no Docker daemon answers (`docker info` fails); start dockerd to run the compose smoke test"
    if missing := missing_images():
        return (
            f"images not present: {', '.join(missing)} (pull them, or build stand-ins where no registry is)"
        )
    return None


pytestmark = pytest.mark.timeout(BUILD_S + UP_S + LOOP_S + PROMETHEUS_S + 300)


@dataclass
class Stack:
    command: list[str]
    ports: dict[str, int]
    env: dict[str, str]

    def run(self, *args: str, timeout: float = 120, check: bool = True) -> str:
        result = subprocess.run(
            [*self.command, *args], capture_output=True, text=True, timeout=timeout, env=self.env, check=False
        )
        if check and result.returncode != 0:
            raise AssertionError(f"{' '.join(args)} -> {result.returncode}\n{result.stdout}\n{result.stderr}")
        return result.stdout

    def syntx(self, *args: str) -> str:
        return self.run("exec", "-T", "monitor", "syntx", *args)

    def status(self) -> dict[str, Any]:
        reply: dict[str, Any] = json.loads(self.syntx("status", "--json", "--exact"))
        return reply

    def health(self) -> dict[str, str]:
        ids = self.run("ps", "-q").split()
        states = json.loads(
            subprocess.run(
                ["docker", "inspect", *ids], capture_output=True, text=True, timeout=60, check=True
            ).stdout
        )
        return {
            item["Config"]["Labels"]["com.docker.compose.service"]: (
                item["State"].get("Health", {}).get("Status", item["State"]["Status"])
            )
            for item in states
        }

    def prometheus(self, path: str) -> Any:
        url = f"http://127.0.0.1:{self.ports['prometheus']}{path}"
        with urllib.request.urlopen(url, timeout=10) as reply:
            return json.loads(reply.read())["data"]


def host_network_override(directory: Path, ports: dict[str, int]) -> Path:
    """Every container on the host network, listening on loopback only, on this run's ports."""
    nats_url = f"nats://127.0.0.1:{ports['nats']}"
    build = {"context": str(ROOT), "dockerfile": "deploy/Dockerfile", "network": "host"}
    app = {"network_mode": "host", "build": build, "environment": {"SYNTX_NATS__URL": nats_url}}
    services: dict[str, Any] = {name: json.loads(json.dumps(app)) for name in SYNTX_SERVICES}
    services["monitor"]["environment"].update(
        SYNTX_MONITOR__HOST="127.0.0.1", SYNTX_MONITOR__PORT=str(ports["monitor"])
    )
    monitor_health = (
        f"import urllib.request; urllib.request.urlopen('http://127.0.0.1:{ports['monitor']}/healthz')"
    )
    services["monitor"]["healthcheck"] = {"test": ["CMD", "python", "-c", monitor_health]}
    services["nats"] = {
        "network_mode": "host",
        "command": [
            "-c",
            "/etc/nats/nats.conf",
            "-js",
            "-sd",
            "/data/jetstream",
            "-a",
            "127.0.0.1",
            "-p",
            str(ports["nats"]),
            "-m",
            str(ports["nats_http"]),
        ],  # fmt: skip
        "healthcheck": {
            "test": ["CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{ports['nats_http']}/healthz"]
        },
    }
    config = yaml.safe_load((DEPLOY / "prometheus.yml").read_text(encoding="utf-8"))
    config["global"].update(scrape_interval=SCRAPE_INTERVAL, evaluation_interval=SCRAPE_INTERVAL)
    targets = {"syntx-monitor": ports["monitor"], "prometheus": ports["prometheus"]}
    for job in config["scrape_configs"]:
        job.pop("scrape_interval", None)
        job["static_configs"] = [{"targets": [f"127.0.0.1:{targets[job['job_name']]}"]}]
    (directory / "prometheus.yml").write_text(yaml.safe_dump(config), encoding="utf-8")
    shutil.copy(DEPLOY / "alerts.yml", directory / "alerts.yml")
    services["prometheus"] = {
        "network_mode": "host",
        "command": [
            "--config.file=/etc/prometheus/prometheus.yml",
            "--storage.tsdb.path=/prometheus",
            f"--web.listen-address=127.0.0.1:{ports['prometheus']}",
        ],
        "volumes": [f"{directory / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"],
        "healthcheck": {
            "test": ["CMD", "wget", "-q", "--spider", f"http://127.0.0.1:{ports['prometheus']}/-/healthy"]
        },
    }
    path = directory / "compose-host-network.yml"
    path.write_text(yaml.safe_dump({"services": services}, sort_keys=False), encoding="utf-8")
    return path


def without_published_ports(merged: Stack, directory: Path) -> Path:
    """The shipped file with the override, as Compose resolves it, minus ``ports:``: the host network has
    nothing to publish, and Compose v1 refuses port bindings there (an override cannot remove them)."""
    config = yaml.safe_load(merged.run("config"))
    for service in config["services"].values():
        service.pop("ports", None)
    path = directory / "compose-resolved.yml"
    path.write_text(yaml.safe_dump(config, sort_keys=False), encoding="utf-8")
    return path


def within(seconds: float, what: str, probe: Callable[[], T | None], every_s: float = 2.0) -> T:
    """Ask an outside system until ``probe`` returns a value; fail with ``what`` after ``seconds``."""
    deadline = time.monotonic() + seconds
    while True:
        found = probe()
        if found is not None:
            return found
        if time.monotonic() > deadline:
            raise AssertionError(f"{what}: not within {seconds:.0f} s")
        time.sleep(every_s)  # polling a system outside this process: there is no event to wait on


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    if reason := skip_reason():
        pytest.skip(reason)
    command = compose_command()
    assert command is not None
    directory = tmp_path_factory.mktemp("compose")
    ports = {name: free_port() for name in ("nats", "nats_http", "monitor", "prometheus")}
    override = host_network_override(directory, ports)
    env = {
        **os.environ,
        "IMAGE": IMAGE,
        "NATS_PASSWORD": secrets.token_hex(16),
        "GRAFANA_ADMIN_PASSWORD": secrets.token_hex(16),  # required by the file; Grafana is not started
    }
    project = f"syntx-smoke-{secrets.token_hex(4)}"
    merged = Stack([*command, "-p", project, "-f", str(COMPOSE_FILE), "-f", str(override)], ports, env)
    built = Stack(
        [*command, "-p", project, "-f", str(without_published_ports(merged, directory))], ports, env
    )
    started = time.monotonic()
    built.run("build", "scheduler", timeout=BUILD_S)
    log.warning("image built in %.0f s", time.monotonic() - started)
    try:
        built.run("up", "-d", *SMOKE_SERVICES, timeout=UP_S)
        yield built
    finally:
        built.run("down", "-v", "--remove-orphans", timeout=UP_S, check=False)


def healthy(stack: Stack) -> dict[str, str]:
    def all_healthy() -> dict[str, str] | None:
        states = stack.health()
        return states if set(states) == set(SMOKE_SERVICES) and set(states.values()) == {"healthy"} else None

    return within(UP_S, "every service healthy", all_healthy)


def test_every_service_becomes_healthy(stack: Stack) -> None:
    log.warning("healthy: %s", healthy(stack))


def test_ticks_turn_the_loop_and_results_are_filed(stack: Stack) -> None:
    healthy(stack)
    stack.syntx("trigger", "producer")
    jobs = within(
        LOOP_S, "jobs created by the producer", lambda: stack.status()["counts"]["incoming"] or None
    )
    share = -(-jobs // len(CONSUMER_SCHEDULES))  # every consumer claims from the one incoming/ folder
    for schedule in CONSUMER_SCHEDULES:
        stack.syntx("trigger", schedule, "--batch", str(share))

    def filed() -> dict[str, Any] | None:
        status = stack.status()
        counts = status["counts"]
        done = counts["incoming"] == 0 and counts["processing"] == 0 and counts["processed"] > 0
        return status if done else None

    status = within(LOOP_S, "every job filed", filed)
    log.warning("results: counts %s, scored %s", status["counts"], status["scored"])
    assert set(status["scored"]) == {"syntex_system", "sigma"}
    assert set(status["services"]) >= {"scheduler", "producer", "monitor", "cleanup", *CONSUMER_SCHEDULES}


def test_prometheus_scrapes_every_target_and_every_rule_is_healthy(stack: Stack) -> None:
    healthy(stack)

    def targets_up() -> list[dict[str, Any]] | None:
        active: list[dict[str, Any]] = stack.prometheus("/api/v1/targets")["activeTargets"]
        return active if active and all(target["health"] == "up" for target in active) else None

    def rules_ok() -> list[dict[str, Any]] | None:
        rules = [rule for group in stack.prometheus("/api/v1/rules")["groups"] for rule in group["rules"]]
        return rules if rules and all(rule["health"] == "ok" for rule in rules) else None

    targets = within(PROMETHEUS_S, "every Prometheus target up", targets_up)
    rules = within(PROMETHEUS_S, "every rule evaluated without error", rules_ok)
    log.warning("targets up: %s", sorted(target["labels"]["job"] for target in targets))
    log.warning("rules ok: %d (%s)", len(rules), ", ".join(sorted(rule["name"] for rule in rules)))


def test_promtool_accepts_the_prometheus_config_as_mounted_and_in_the_repository(stack: Stack) -> None:
    image = yaml.safe_load(COMPOSE_FILE.read_text(encoding="utf-8"))["services"]["prometheus"]["image"]
    as_mounted = ["-v", f"{DEPLOY / 'prometheus.yml'}:/etc/prometheus/prometheus.yml:ro"]
    as_mounted += ["-v", f"{DEPLOY / 'alerts.yml'}:/etc/prometheus/alerts.yml:ro"]
    checks = {
        "as mounted": [*as_mounted, image, "check", "config", "/etc/prometheus/prometheus.yml"],
        "in the repository": [
            "-v",
            f"{ROOT}:/repo:ro",
            "-w",
            "/repo",
            image,
            "check",
            "config",
            "deploy/prometheus.yml",
        ],
    }
    for where, args in checks.items():
        result = subprocess.run(
            ["docker", "run", "--rm", "--network", "none", "--entrypoint", "promtool", *args],
            capture_output=True, text=True, timeout=120, check=False,
        )  # fmt: skip
        assert result.returncode == 0, f"{where}: {result.stdout}{result.stderr}"
        log.warning("promtool check config %s: %s", where, result.stdout.strip().replace("\n", " | "))


def test_nats_refuses_a_client_without_the_password(stack: Stack) -> None:
    healthy(stack)
    syntx = str(Path(sys.executable).with_name("syntx"))
    argv = [syntx, "health", "--service", "monitor", "--any-host", "--wait", "5"]
    base = {key: value for key, value in stack.env.items() if not key.startswith("SYNTX_")}
    base["SYNTX_NATS__URL"] = f"nats://127.0.0.1:{stack.ports['nats']}"
    attempts = {
        "without credentials": base,
        "with the .env password": {
            **base,
            "SYNTX_NATS__USER": "syntx",
            "SYNTX_NATS__PASSWORD": stack.env["NATS_PASSWORD"],
        },
    }
    codes = {}
    for name, env in attempts.items():
        result = subprocess.run(argv, capture_output=True, text=True, timeout=60, env=env, check=False)
        codes[name] = result.returncode
        log.warning("syntx health %s: exit %d %s", name, result.returncode, result.stderr.strip())
    assert codes == {"without credentials": 3, "with the .env password": 0}
