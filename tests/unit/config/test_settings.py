"""Settings: defaults < YAML files (layered) < SYNTX_* environment < keyword overrides; clear errors."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from shared.config import (
    CONFIG_ENV,
    DEFAULT_CONFIG,
    PROJECT_ROOT,
    ConfigError,
    Settings,
    config_paths,
    load_settings,
)


def write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def base_yaml(tmp_path: Path) -> Path:
    return write(
        tmp_path / "base.yaml",
        "data_dir: /srv/base\n"
        "timezone: Europe/Berlin\n"
        "producer:\n  batch: 12\n  back_pressure: {low: 4, high: 20, overflow: 40}\n"
        "consumers:\n"
        "  sigma:\n    wrapper: sigma\n    batch: 7\n    concurrency: 9\n    threshold: 85\n"
        "    backend: {kind: offline, model: m-base}\n"
        "monitor: {port: 9200, reconcile_s: 10}\n",
    )


def problems(exc: pytest.ExceptionInfo[ConfigError]) -> list[str]:
    return str(exc.value).splitlines()


def test_defaults_without_any_yaml(tmp_path: Path) -> None:
    settings = load_settings([write(tmp_path / "empty.yaml", "")])
    assert settings.data_dir == Path("data")
    assert settings.timezone == "Europe/Berlin"
    assert settings.producer.batch == 20
    assert (settings.producer.back_pressure.low, settings.producer.back_pressure.high) == (5, 25)
    assert set(settings.consumers) == {"syntex_system", "sigma"}
    assert settings.schedules["consumer.sigma"].cron == "0 4,10,16,22 * * *"
    assert settings.cleanup.error_retention_days is None
    assert settings.queue_dir == Path("data") / "queue"


def test_the_shipped_config_loads() -> None:
    settings = load_settings([DEFAULT_CONFIG])
    assert len(settings.topics) == 7
    assert sum(len(topics) for topics in settings.topics.values()) == 56
    assert set(settings.styles) == {"technisch", "kreativ", "akademisch", "casual"}


def test_yaml_overrides_defaults(base_yaml: Path) -> None:
    settings = load_settings([base_yaml])
    assert settings.data_dir == Path("/srv/base")
    assert settings.producer.batch == 12
    assert settings.producer.back_pressure.overflow == 40
    assert settings.monitor.health.window_s == 3600  # default kept inside the section
    assert settings.consumers["sigma"].batch == 7
    assert settings.monitor.host == "127.0.0.1"  # the default: this machine only


def test_later_yaml_files_win_and_merge_deeply(tmp_path: Path, base_yaml: Path) -> None:
    second = write(tmp_path / "second.yaml", "producer:\n  batch: 3\nconsumers:\n  sigma: {batch: 2}\n")
    third = write(tmp_path / "third.yaml", "producer:\n  back_pressure: {low: 2}\n")
    settings = load_settings([base_yaml, second, third])
    assert settings.producer.batch == 3
    assert settings.producer.back_pressure.low == 2
    assert settings.producer.back_pressure.high == 20  # from base
    sigma = settings.consumers["sigma"]
    assert (sigma.batch, sigma.concurrency, sigma.threshold, sigma.backend.model) == (2, 9, 85, "m-base")


def test_environment_overrides_yaml(base_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTX_DATA_DIR", "/srv/env")
    monkeypatch.setenv("SYNTX_NATS__URL", "nats://nats.example:4222")
    monkeypatch.setenv("SYNTX_PRODUCER__BACK_PRESSURE__HIGH", "30")
    monkeypatch.setenv("SYNTX_MONITOR__PORT", "9300")
    settings = load_settings([base_yaml])
    assert settings.data_dir == Path("/srv/env")
    assert settings.nats.url == "nats://nats.example:4222"
    assert settings.producer.back_pressure.high == 30
    assert settings.producer.back_pressure.low == 4  # YAML kept beside the env value
    assert settings.producer.batch == 12
    assert (settings.monitor.port, settings.monitor.reconcile_s) == (9300, 10)


def test_a_partial_env_override_of_one_consumer_keeps_the_rest_from_yaml(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BATCH", "5")
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BACKEND__MODEL", "m-env")
    sigma = load_settings([base_yaml]).consumers["sigma"]
    assert sigma.batch == 5
    assert sigma.backend.model == "m-env"
    assert (sigma.wrapper, sigma.concurrency, sigma.threshold, sigma.backend.kind) == (
        "sigma",
        9,
        85,
        "offline",
    )


def test_keyword_overrides_beat_the_environment(base_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTX_DATA_DIR", "/srv/env")
    monkeypatch.setenv("SYNTX_PRODUCER__BATCH", "8")
    settings = load_settings([base_yaml], data_dir=Path("/srv/kw"), producer={"seed": 4})
    assert settings.data_dir == Path("/srv/kw")
    assert settings.producer.seed == 4
    assert settings.producer.batch == 8  # env below keywords, still merged
    assert settings.producer.back_pressure.high == 20  # YAML below both


def test_config_paths_from_the_environment(tmp_path: Path) -> None:
    assert config_paths({}) == [DEFAULT_CONFIG]
    assert config_paths({CONFIG_ENV: f"{tmp_path}/a.yaml:{tmp_path}/b.yaml"}) == [
        tmp_path / "a.yaml",
        tmp_path / "b.yaml",
    ]


def test_syntx_config_is_read_when_no_paths_are_given(
    tmp_path: Path, base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    second = write(tmp_path / "second.yaml", "producer: {batch: 4}\n")
    monkeypatch.setenv(CONFIG_ENV, f"{base_yaml}:{second}")
    settings = load_settings()
    assert (settings.data_dir, settings.producer.batch) == (Path("/srv/base"), 4)


def test_settings_are_frozen(base_yaml: Path) -> None:
    settings: Settings = load_settings([base_yaml])
    with pytest.raises(ValueError, match="frozen"):
        settings.producer.batch = 1  # type: ignore[misc]


# -- errors: one line per problem, naming key, value and what is allowed -------------------------


@pytest.mark.parametrize(
    ("text", "line"),
    [
        ("bogus: 1\n", "config: bogus = 1 is not a known setting (known here: cleanup, consumers, "),
        (
            "producer:\n  batchsize: 3\n",
            "config: producer.batchsize = 3 is not a known setting "
            "(known here: back_pressure, batch, generator, learning, seed, templates)",
        ),
        (
            "consumers:\n  sigma: {wrapper: sigma, backend: {modell: x}}\n",
            "config: consumers.sigma.backend.modell = 'x' is not a known setting (known here: api_key_env, ",
        ),
        (
            "producer: {batch: 0}\n",
            "config: producer.batch = 0: Input should be greater than or equal to 1",
        ),
        (
            "consumers:\n  sigma: {wrapper: sigma, threshold: 101}\n",
            "config: consumers.sigma.threshold = 101: Input should be less than or equal to 100",
        ),
        (
            "schedules:\n  producer: {cron: '61 * * * *'}\n",
            "config: schedules.producer.cron = '61 * * * *': ",
        ),
        (
            "timezone: Mars/Olympus\n",
            "config: timezone = 'Mars/Olympus': unknown IANA time zone 'Mars/Olympus'",
        ),
        (
            "producer:\n  back_pressure: {low: 30, high: 25}\n",
            "config: producer.back_pressure = {'low': 30, 'high': 25}: "
            "need low < high <= overflow, got 30, 25, 50",
        ),
        (
            "consumers:\n  sigma: {wrapper: sigma, backend: {kind: openai}}\n",
            "config: consumers.sigma.backend = {'kind': 'openai'}: backend kind 'openai' needs a url",
        ),
        (
            "consumers:\n  extra: {batch: 0}\n",
            "config: consumers.extra.batch = 0: Input should be greater than or equal to 1",
        ),
        (
            "consumers:\n  sigma: {instances: 0}\n",
            "config: consumers.sigma.instances = 0: Input should be greater than or equal to 1",
        ),
        (
            "consumers:\n  sigma: {instances: 33}\n",
            "config: consumers.sigma.instances = 33: Input should be less than or equal to 32",
        ),
        (
            "schedules:\n  producer: {cron: '0 * * * *', missed: sometimes}\n",
            "config: schedules.producer.missed = 'sometimes': Input should be 'skip' or 'run_once'",
        ),
    ],
)
def test_a_bad_value_is_one_clear_line(tmp_path: Path, text: str, line: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([write(tmp_path / "bad.yaml", text)])
    lines = problems(caught)
    assert len(lines) == 1, lines
    assert lines[0].startswith(line)


def test_a_bad_cron_says_what_is_allowed(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_settings([write(tmp_path / "bad.yaml", "schedules:\n  producer: {cron: 'x y'}\n")])
    assert problems(caught) == [
        "config: schedules.producer.cron = 'x y': 'x y': cron needs 5 fields (or 6 with seconds first)"
    ]


def test_every_problem_gets_its_own_line(tmp_path: Path) -> None:
    text = "bogus: 1\nproducer: {batch: 0}\ntimezone: Nowhere/City\n"
    with pytest.raises(ConfigError) as caught:
        load_settings([write(tmp_path / "bad.yaml", text)])
    lines = problems(caught)
    assert len(lines) == 3
    assert any(line.startswith("config: bogus ") for line in lines)
    assert any(line.startswith("config: producer.batch = 0") for line in lines)
    assert any(line.startswith("config: timezone = 'Nowhere/City'") for line in lines)


def test_a_bad_environment_value_names_the_key(base_yaml: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTX_PRODUCER__BATCH", "many")
    with pytest.raises(ConfigError) as caught:
        load_settings([base_yaml])
    assert problems(caught) == [
        "config: producer.batch = 'many': "
        "Input should be a valid integer, unable to parse string as an integer"
    ]


def test_a_remote_backend_from_the_environment_needs_a_url(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BACKEND__KIND", "ollama")
    with pytest.raises(ConfigError, match="backend kind 'ollama' needs a url"):
        load_settings([base_yaml])
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BACKEND__URL", "http://127.0.0.1:11434")
    backend = load_settings([base_yaml]).consumers["sigma"].backend
    assert (backend.kind, backend.url, backend.model) == ("ollama", "http://127.0.0.1:11434", "m-base")


def test_a_missing_config_file(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(ConfigError) as caught:
        load_settings([missing])
    assert problems(caught) == [f"config file {missing} does not exist (set {CONFIG_ENV} to another)"]


@pytest.mark.parametrize(
    ("text", "kind"), [("- a\n- b\n", "list"), ("just a string\n", "str"), ("42\n", "int")]
)
def test_yaml_that_is_not_a_mapping(tmp_path: Path, text: str, kind: str) -> None:
    path = write(tmp_path / "list.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings([path])
    assert problems(caught) == [f"config file {path} must hold a mapping at the top, not {kind}"]


@pytest.mark.parametrize(
    ("text", "said"),
    [
        ("data_dir: d\n1: x\n", "config file {path} has a key that is not a name at the top: 1"),
        ("DATA_DIR: d\n", "config: DATA_DIR = 'd' is not a known setting (known here: "),  # as nested keys
    ],
)
def test_a_top_key_is_a_setting_s_name_exactly(tmp_path: Path, text: str, said: str) -> None:
    path = write(tmp_path / "keys.yaml", text)
    with pytest.raises(ConfigError) as caught:
        load_settings([path])
    assert problems(caught)[0].startswith(said.format(path=path))


def test_invalid_yaml_is_reported_on_one_line(tmp_path: Path) -> None:
    path = write(tmp_path / "broken.yaml", "producer:\n  batch: [1, 2\n")
    with pytest.raises(ConfigError) as caught:
        load_settings([path])
    lines = problems(caught)
    assert len(lines) == 1, lines
    assert lines[0].startswith(f"config file {path} is not valid YAML: ")
    assert "line 3" in lines[0]


# Nine aliases per level, eight levels: 400 bytes that build 9^8 (43 million) strings if expanded.
ALIAS_BOMB = "a: &a [lol,lol,lol,lol,lol,lol,lol,lol,lol]\n" + "".join(
    f"{chr(98 + level)}: &{chr(98 + level)} [{','.join([f'*{chr(97 + level)}'] * 9)}]\n" for level in range(7)
)
HOSTILE_CONFIGS: dict[str, tuple[bytes, str]] = {
    "an alias bomb": (ALIAS_BOMB.encode(), "uses YAML anchors or aliases, which are not allowed"),
    "one anchor": (b"producer: &p {batch: 5}\n", "uses YAML anchors or aliases, which are not allowed"),
    "not UTF-8": ("producer: {batch: 5}\n# Grüße\n".encode("latin-1"), "is not UTF-8 text (byte 25)"),
    "3 MB": (b"producer: {batch: 5}\n" + b"#" * 3 * 1024 * 1024, "over the limit of 1048576"),
    "a 5000-digit number": (
        b"producer: {batch: 1" + b"0" * 5000 + b"}\n",
        "is not valid YAML: Exceeds the limit",
    ),
    "deep nesting": (b"producer: " + b"[" * 5000 + b"]" * 5000 + b"\n", "is not valid YAML: "),
    "NUL bytes": (b"producer:\x00 {batch: 5}\n", "is not valid YAML: "),
}


@pytest.mark.parametrize("case", HOSTILE_CONFIGS, ids=str)
def test_a_hostile_configuration_file_is_one_line_naming_it(tmp_path: Path, case: str) -> None:
    content, reason = HOSTILE_CONFIGS[case]
    path = tmp_path / "overlay.yaml"
    path.write_bytes(content)
    with pytest.raises(ConfigError) as caught:
        load_settings([DEFAULT_CONFIG, path])
    [line] = problems(caught)
    assert line.startswith(f"config file {path} ")
    assert reason in line
    assert len(line) < 300


def test_a_configuration_path_that_is_no_regular_file_is_refused_without_reading_it(tmp_path: Path) -> None:
    fifo = tmp_path / "config.fifo"
    os.mkfifo(fifo)  # opening it for reading would wait for a writer forever
    with pytest.raises(ConfigError) as caught:
        load_settings([fifo])
    assert problems(caught) == [f"config file {fifo} is not a regular file"]


def test_a_consumer_without_a_wrapper_uses_its_own_name(tmp_path: Path) -> None:
    config = tmp_path / "syntx.yaml"
    config.write_text("consumers:\n  sigma: {batch: 3}\n", encoding="utf-8")
    assert load_settings([config]).consumers["sigma"].wrapper == "sigma"


def test_the_generator_s_backend_reads_the_older_flat_keys_where_it_says_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "syntx.yaml"
    config.write_text(
        "producer:\n  generator: {kind: openai, url: 'http://flat', model: m-flat, max_tokens: 9,"
        " backend: {model: m-nested}}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("SYNTX_PRODUCER__GENERATOR__TEMPERATURE", "0.1")
    backend = load_settings([config]).producer.generator.backend
    assert (backend.kind, backend.url, backend.model) == ("openai", "http://flat", "m-nested")
    assert (backend.max_new_tokens, backend.temperature, backend.timeouts.total_s) == (9, 0.1, 120.0)


def test_an_llm_generator_without_a_url_is_a_configuration_error(tmp_path: Path) -> None:
    config = tmp_path / "syntx.yaml"
    config.write_text("producer:\n  generator: {kind: openai}\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=r"^config: producer\.generator = .*needs a url"):
        load_settings([config])


def test_your_wrapper_directories_come_after_the_built_in_ones(tmp_path: Path) -> None:
    settings = load_settings([DEFAULT_CONFIG], wrapper_dirs=[tmp_path])
    assert settings.catalog_dirs == [PROJECT_ROOT / "wrappers", tmp_path]


def test_an_openai_or_ollama_backend_needs_a_model(tmp_path: Path) -> None:
    config = tmp_path / "syntx.yaml"
    config.write_text(
        "consumers:\n  sigma: {backend: {kind: ollama, url: 'http://127.0.0.1:11434'}}\n", encoding="utf-8"
    )
    with pytest.raises(ConfigError, match=r"^config: consumers\.sigma\.backend = .*needs a model"):
        load_settings([config])


@pytest.mark.parametrize(
    ("variable", "hint"),
    [
        ("SYNTX_NATS_URL", "; did you mean SYNTX_NATS__URL?"),
        ("SYNTX_NATSURL", "; did you mean SYNTX_NATS__URL?"),
        ("SYNTX_MONITOR_PORT", "; did you mean SYNTX_MONITOR__PORT?"),
        ("SYNTX_WHATEVER_ELSE_ENTIRELY", " (nested keys are joined by __)"),
    ],
)
def test_an_environment_variable_that_names_no_setting_is_an_error(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch, variable: str, hint: str
) -> None:
    monkeypatch.setenv(variable, "nats://elsewhere:4222")
    with pytest.raises(ConfigError) as exc:
        load_settings([base_yaml])
    assert problems(exc) == [f"config: environment variable {variable} is not a setting{hint}"]


def test_variables_the_project_reads_besides_settings_are_not_errors(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write(
        tmp_path / "c.yaml",
        "consumers:\n  sigma:\n    backend:\n"
        "      {kind: openai, url: http://x, model: m, api_key_env: SYNTX_MY_KEY}\n",
    )
    monkeypatch.setenv(CONFIG_ENV, str(config))
    monkeypatch.setenv("SYNTX_FAILPOINTS", "")
    monkeypatch.setenv("SYNTX_MY_KEY", "sk-not-a-setting")
    monkeypatch.setenv("SYNTX_CONSUMERS__FRESH__WRAPPER", "sigma")  # a new consumer from the environment
    settings = load_settings()
    assert settings.consumers["fresh"].wrapper == "sigma"


def test_a_configuration_error_never_prints_a_secret(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BACKEND__API_KEY", "sk-live-1234567890")
    with pytest.raises(ConfigError) as exc:
        load_settings([base_yaml])
    first = problems(exc)[0]
    assert first.startswith("config: consumers.sigma.backend.api_key = '***' is not a known setting"), first
    assert "sk-live" not in str(exc.value)


@pytest.mark.parametrize("key", ["password", "token"])
def test_a_secret_of_the_wrong_type_is_not_shown_either(tmp_path: Path, key: str) -> None:
    config = write(tmp_path / "c.yaml", f"nats: {{{key}: {{hunter2: 1}}}}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings([config])
    assert problems(exc) == [f"config: nats.{key} = '***': Input should be a valid string"]


def test_a_password_inside_a_url_is_masked_in_errors(tmp_path: Path) -> None:
    config = write(tmp_path / "c.yaml", "nats: {url: 'nats://user:hunter2@host:4222', embedded_port: -1}\n")
    with pytest.raises(ConfigError) as exc:
        load_settings([config], wrapper_dirs="nats://user:hunter2@host:4222")
    assert "hunter2" not in str(exc.value) and "nats://***@host:4222" in str(exc.value), str(exc.value)


def test_the_older_flat_retry_keys_are_still_settings_in_the_environment(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_CONSUMERS__SIGMA__BACKEND__RETRIES__BACKOFF_BASE_S", "0.25")
    settings = load_settings([base_yaml])
    assert settings.consumers["sigma"].backend.retries.backoff.base_s == 0.25


def test_a_slot_claim_must_outlive_its_takeover(tmp_path: Path) -> None:
    text = "scheduler: {claim_ttl_s: 2, claim_ahead_s: 0.5, takeover_after_s: 2}\n"
    with pytest.raises(ConfigError) as caught:
        load_settings([write(tmp_path / "bad.yaml", text)])
    (line,) = problems(caught)
    assert "scheduler" in line and "claim_ttl_s must exceed claim_ahead_s + takeover_after_s" in line


def test_a_consumer_named_like_another_one_s_instance_is_one_clear_line(tmp_path: Path) -> None:
    """``sigma`` with three instances runs ``consumer.sigma-2`` and ``-3`` (their output, their log files):
    a consumer named ``sigma-3`` beside it is refused; at two instances it is not."""
    text = "consumers:\n  sigma: {instances: 3}\n  sigma-3: {wrapper: sigma}\n"
    with pytest.raises(ConfigError) as caught:
        load_settings([write(tmp_path / "bad.yaml", text)])
    assert problems(caught) == [
        "config: consumers.sigma-3 has the name of instance 3 of consumers.sigma (instances: 3); rename it"
    ]
    fewer = load_settings([write(tmp_path / "fine.yaml", text.replace("instances: 3", "instances: 2"))])
    assert fewer.consumers["sigma"].instances == 2


@pytest.mark.parametrize(
    ("value", "why"),
    [
        ("../escaped", "it is a path, not a name"),
        ("..", "it is a path, not a name"),
        ("consumer.sigma\n-2", "file name contains control or invisible characters"),
        ("x" * 201, "it is over 200 bytes"),
    ],
)
def test_a_supervised_name_that_is_no_file_name_is_one_clear_line(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch, value: str, why: str
) -> None:
    """``SYNTX_SUPERVISED_AS`` names the process's log file: set by hand to a path it would write outside
    ``logs/``, too long it would not fit a file name."""
    monkeypatch.setenv("SYNTX_SUPERVISED_AS", value)
    with pytest.raises(ConfigError) as caught:
        load_settings([base_yaml])
    (line,) = problems(caught)
    assert line.startswith("config: environment variable SYNTX_SUPERVISED_AS=") and f"({why})" in line


def test_the_names_syntx_up_gives_are_supervised_names(
    base_yaml: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNTX_SUPERVISED_AS", "consumer.sigma-2")
    assert load_settings([base_yaml]).consumers
