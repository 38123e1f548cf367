"""docker-compose.yml is safe by default: checked on the file as written and as Compose resolves it.

Every service has a healthcheck and rotated logs and waits for what it needs to be healthy; published ports
listen on 127.0.0.1 unless the operator sets PUBLISH_ADDRESS; NATS and Grafana need the secrets of .env;
the API key reaches only the services that call an LLM; images have exact tags.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from typing import Any

import pytest

from shared.config import DEFAULT_CONFIG, load_settings
from tests.support.compose import COMPOSE_FILE, ROOT, environment, interpolate, load_yaml

NATS_CONF = ROOT / "deploy" / "nats.conf"
DOCKERFILE = ROOT / "deploy" / "Dockerfile"
PROMETHEUS_FILE = ROOT / "deploy" / "prometheus.yml"

SECRETS = {"NATS_PASSWORD": "from-dot-env", "GRAFANA_ADMIN_PASSWORD": "from-dot-env"}
LLM_CALLERS = {"producer", "consumer-syntex-system", "consumer-sigma"}
APP_SERVICES = {"scheduler", "monitor", "cleanup"} | LLM_CALLERS
SYNTX_HEALTH = {
    "scheduler": "scheduler",
    "producer": "producer",
    "consumer-syntex-system": "consumer.syntex_system",
    "consumer-sigma": "consumer.sigma",
    "cleanup": "cleanup",
}
EXACT_TAG = re.compile(r"^[\w.\-/]+:v?\d+\.\d+\.\d+(?:-[\w.\-]+)?$")


def services(env: dict[str, str] | None = None) -> dict[str, dict[str, Any]]:
    found = interpolate(load_yaml(COMPOSE_FILE), SECRETS if env is None else env)["services"]
    assert isinstance(found, dict)
    return found


def test_compose_refuses_to_start_without_the_secrets_of_dot_env() -> None:
    for missing in SECRETS:
        env = {name: value for name, value in SECRETS.items() if name != missing}
        with pytest.raises(LookupError, match=f"^{missing}: set {missing} in .env"):
            services(env)


def test_every_service_has_a_healthcheck_and_app_services_ask_syntx_health() -> None:
    found = services()
    for name, service in found.items():
        test = service.get("healthcheck", {}).get("test")
        assert test and test[0] == "CMD", f"{name} has no healthcheck"
    for name, service_name in SYNTX_HEALTH.items():
        assert found[name]["healthcheck"]["test"] == ["CMD", "syntx", "health", "--service", service_name]


def test_every_dependency_waits_until_it_is_healthy() -> None:
    for name, service in services().items():
        for dependency, condition in (service.get("depends_on") or {}).items():
            assert condition == {"condition": "service_healthy"}, f"{name} -> {dependency}"
    assert set(services()["prometheus"]["depends_on"]) == {"monitor"}
    assert set(services()["grafana"]["depends_on"]) == {"prometheus"}


def test_every_log_rotates() -> None:
    for name, service in services().items():
        logging = service.get("logging") or {}
        assert logging.get("driver") == "json-file", name
        assert logging["options"]["max-size"] and int(logging["options"]["max-file"]) >= 1, name


def test_published_ports_listen_on_loopback_unless_the_operator_opens_them() -> None:
    published = 0
    for name, service in load_yaml(COMPOSE_FILE)["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("${PUBLISH_ADDRESS:-127.0.0.1}:"), f"{name}: {port}"
            published += 1
    assert published >= 5
    opened = services({**SECRETS, "PUBLISH_ADDRESS": "0.0.0.0"})
    assert all(
        port.startswith("0.0.0.0:") for service in opened.values() for port in service.get("ports", [])
    )
    for service in services().values():
        assert all(port.startswith("127.0.0.1:") for port in service.get("ports", []))


def test_the_api_key_reaches_only_the_services_that_call_an_llm() -> None:
    with_key = {
        name for name, service in services().items() if any("API_KEY" in key for key in environment(service))
    }
    assert with_key == LLM_CALLERS


def test_images_have_exact_tags() -> None:
    for name, service in services().items():
        if "build" in service:
            continue  # built here from the Dockerfile below
        assert EXACT_TAG.match(service["image"]), f"{name}: {service['image']} is not an exact version"
    base = next(line.split()[1] for line in DOCKERFILE.read_text().splitlines() if line.startswith("FROM "))
    assert EXACT_TAG.match(base), base


def test_nats_requires_the_credentials_every_service_connects_with() -> None:
    found = services()
    nats = found["nats"]
    assert nats["command"][:2] == ["-c", "/etc/nats/nats.conf"]
    assert "./deploy/nats.conf:/etc/nats/nats.conf:ro" in nats["volumes"]
    conf = NATS_CONF.read_text(encoding="utf-8")
    assert re.search(r"authorization\s*\{\s*user:\s*\$NATS_USER\s+password:\s*\$NATS_PASSWORD\s*\}", conf)
    credentials = {"NATS_USER": "syntx", "NATS_PASSWORD": SECRETS["NATS_PASSWORD"]}
    assert {key: environment(nats)[key] for key in credentials} == credentials
    for name in APP_SERVICES:
        env = environment(found[name])
        settings = load_settings(
            [DEFAULT_CONFIG], nats={"user": env["SYNTX_NATS__USER"], "password": env["SYNTX_NATS__PASSWORD"]}
        )
        assert settings.nats.user == "syntx", name
        assert (
            settings.nats.password and settings.nats.password.get_secret_value() == SECRETS["NATS_PASSWORD"]
        )


def test_prometheus_cannot_be_reloaded_or_stopped_over_http() -> None:
    assert not [arg for arg in services()["prometheus"]["command"] if "enable-lifecycle" in arg]


def test_grafana_has_no_default_password_and_no_anonymous_access() -> None:
    env = environment(services()["grafana"])
    assert env["GF_SECURITY_ADMIN_PASSWORD"] == SECRETS["GRAFANA_ADMIN_PASSWORD"]
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_promtool_accepts_the_prometheus_config_in_the_repository() -> None:
    """The rule file path is relative: the same file passes here and as mounted (see test_compose_smoke)."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip(
            "promtool not installed (Debian package 'prometheus'); test_compose_smoke checks it in the image"
        )
    result = subprocess.run(
        [promtool, "check", "config", str(PROMETHEUS_FILE)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
