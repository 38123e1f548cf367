"""The multi-host example in deploy/cluster/ (static: parsed, not run — it needs several hosts)."""

from __future__ import annotations

import json
import re
from importlib import resources
from pathlib import Path
from typing import Any

import jsonschema  # type: ignore[import-untyped,unused-ignore]
import pytest
import yaml

from shared.config import DEFAULT_CONFIG, PROJECT_ROOT, load_settings
from shared.messaging import connect_options
from syntx.main import build_parser

CLUSTER = PROJECT_ROOT / "deploy" / "cluster"
NODES = {"NATS_NODE_1": "10.0.0.11", "NATS_NODE_2": "10.0.0.12", "NATS_NODE_3": "10.0.0.13"}


def _load(name: str) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((CLUSTER / name).read_text(encoding="utf-8"))
    return data


def _substitute(text: str, values: dict[str, str]) -> str:
    return re.sub(r"\$\{(\w+)(?::-[^}]*)?\}", lambda m: values.get(m.group(1), m.group(0)), text)


def _env_example() -> dict[str, str]:
    lines = (CLUSTER / "cluster.env.example").read_text(encoding="utf-8").splitlines()
    pairs = [line.split("#", 1)[0].strip().split("=", 1) for line in lines if "=" in line.split("#", 1)[0]]
    return {key.strip(): value.strip() for key, value in pairs}


def test_every_host_reaches_the_same_three_nodes_and_the_same_queue() -> None:
    env = _env_example()
    assert {key: env[key] for key in NODES} == NODES
    roles = _load("syntx-roles.yml")
    volume = roles["volumes"]["syntx-queue"]["driver_opts"]
    assert volume["type"] == "nfs" and "${SYNTX_NFS_SERVER}" in volume["o"]
    node = _load("nats-node.yml")["services"]["nats"]["command"]
    routes = _substitute(node[node.index("--routes") + 1], env).split(",")
    assert routes == [f"nats://{address}:6222" for address in NODES.values()]
    assert node[node.index("--cluster_name") + 1] == "syntx" and "-js" in node
    profiles = set()
    creds = set()
    for name, service in roles["services"].items():
        environment = service["environment"]
        servers = _substitute(environment["SYNTX_NATS__SERVERS"], env).split(",")
        assert servers == [f"nats://{address}:4222" for address in NODES.values()], name
        assert environment["SYNTX_NATS__STREAM_REPLICAS"] == "3"
        assert "syntx-queue:/data" in service["volumes"] and environment["SYNTX_DATA_DIR"] == "/data"
        profiles.update(service["profiles"])
        creds.add(environment["SYNTX_NATS__CREDS_FILE"])
    assert profiles == {"scheduler", "consumer", "core"}
    assert len(creds) == 5  # one credential per kind of service (both consumers share one)


def test_the_roles_environment_is_valid_configuration(monkeypatch: Any, tmp_path: Path) -> None:
    env = _env_example()
    service = _load("syntx-roles.yml")["services"]["consumer-sigma"]
    for key, value in service["environment"].items():
        monkeypatch.setenv(key, _substitute(str(value), env))
    monkeypatch.setenv("SYNTX_DATA_DIR", str(tmp_path))
    settings = load_settings([DEFAULT_CONFIG])
    assert settings.nats.effective_servers == [f"nats://{address}:4222" for address in NODES.values()]
    assert settings.nats.stream_replicas == 3
    assert settings.consumers["sigma"].watch_polling is True
    options = connect_options(settings.nats, "consumer.sigma")
    assert options["servers"] == settings.nats.effective_servers
    assert options["user_credentials"] == "/run/syntx-creds/consumer.creds"


def test_syntx_up_takes_a_cluster_size() -> None:
    assert build_parser().parse_args(["up", "--cluster", "3"]).cluster == 3
    assert build_parser().parse_args(["up"]).cluster == 1


@pytest.mark.parametrize("name", ["nats-node.yml", "syntx-roles.yml"])
def test_the_files_match_the_compose_specification(name: str) -> None:
    schema_file = resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(schema_file.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    problems = [
        f"{list(error.absolute_path)}: {error.message}" for error in validator.iter_errors(_load(name))
    ]
    assert not problems, "\n".join(problems)
