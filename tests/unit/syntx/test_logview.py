"""Which log files are a service's other instances (``syntx logs``)."""

from __future__ import annotations

from pathlib import Path

from syntx.logview import known_services, with_instances


def test_a_configured_consumer_named_like_an_instance_is_its_own_service(tmp_path: Path) -> None:
    for name in ("consumer.gpt", "consumer.gpt-4", "consumer.sigma", "consumer.sigma-2", "consumer.sigma-12"):
        (tmp_path / f"{name}.log").write_text("", encoding="utf-8")
    (tmp_path / "consumer.sigma-3.log.1").write_text("", encoding="utf-8")  # rotated, current not yet made
    configured = ["consumer.gpt", "consumer.gpt-4", "consumer.sigma"]
    listed = known_services(tmp_path, configured)
    assert listed == configured
    assert with_instances(tmp_path, listed, listed) == [
        "consumer.gpt", "consumer.gpt-4", "consumer.sigma", "consumer.sigma-2", "consumer.sigma-3",
        "consumer.sigma-12",
    ]  # fmt: skip
    assert with_instances(tmp_path, ["consumer.gpt"], listed) == ["consumer.gpt"]
