"""The one backoff policy, and its places in the configuration."""

from __future__ import annotations

import random
from pathlib import Path

import pytest

from shared.backoff import Backoff
from shared.config import DEFAULT_CONFIG, ConfigError, RetrySettings, load_settings


def test_without_jitter_the_wait_doubles_from_base_to_the_cap() -> None:
    pause = Backoff(base_s=1.0, max_s=60.0)
    assert [pause.delay(n) for n in range(1, 9)] == [1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 60.0, 60.0]
    assert pause.delay(10_000) == 60.0  # no overflow however long the outage


def test_with_jitter_the_wait_is_drawn_below_the_doubling_ceiling() -> None:
    policy = Backoff(base_s=0.5, max_s=3.0, jitter=True)
    rng = random.Random(7)
    for attempt, ceiling in [(1, 0.5), (2, 1.0), (3, 2.0), (4, 3.0), (30, 3.0)]:
        draws = [policy.delay(attempt, rng) for _ in range(200)]
        assert all(0.0 <= draw <= ceiling for draw in draws)
        assert max(draws) > 0.8 * ceiling  # spread over the whole range, not stuck near zero


def test_a_requested_wait_is_capped_at_max() -> None:
    assert Backoff(base_s=1.0, max_s=5.0).capped(120.0) == 5.0
    assert Backoff(base_s=1.0, max_s=5.0).capped(2.5) == 2.5


def test_the_flat_retry_keys_still_mean_the_backoff_with_jitter() -> None:
    flat = RetrySettings.model_validate({"max_attempts": 4, "backoff_base_s": 0.2, "backoff_max_s": 9})
    nested = RetrySettings.model_validate({"max_attempts": 4, "backoff": {"base_s": 0.2, "max_s": 9}})
    assert (
        flat == nested == RetrySettings(max_attempts=4, backoff=Backoff(base_s=0.2, max_s=9.0, jitter=True))
    )
    assert RetrySettings() == RetrySettings.model_validate({})


def test_every_policy_has_the_same_shape_in_the_configuration(tmp_path: Path) -> None:
    settings = load_settings(
        [DEFAULT_CONFIG],
        data_dir=tmp_path,
        up={"restart": {"base_s": 0.1, "max_s": 0.4}},
        nats={"resubscribe": {"base_s": 3, "max_s": 3}},
        consumers={
            "sigma": {"backend": {"retries": {"backoff": {"base_s": 2, "max_s": 8, "jitter": False}}}}
        },
    )
    assert [settings.up.restart.delay(n) for n in (1, 2, 3, 4)] == [0.1, 0.2, 0.4, 0.4]
    assert settings.nats.resubscribe.delay(5) == 3.0
    assert settings.consumers["sigma"].backend.retries.backoff.delay(3) == 8.0
    assert settings.consumers["sigma"].backend_pause == Backoff(base_s=1.0, max_s=60.0)


def test_a_misspelt_policy_key_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"up\.restart\.base"):
        load_settings([DEFAULT_CONFIG], data_dir=tmp_path, up={"restart": {"base": 1}})


def test_services_must_beat_more_often_than_the_monitor_forgets_them(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="service_timeout_s"):
        load_settings([DEFAULT_CONFIG], data_dir=tmp_path, heartbeat_s=60)
