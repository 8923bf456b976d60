"""How worker processes read their settings: the miner's TOML, environment overrides, clear refusals."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from gateway.asgi import create_worker_app, load_worker_settings
from protocol.errors import ConfigError

HOTKEY = "5FHneW46xGXgs5mUiveU4sbTyGBzmstUspZC92UhjJM694ty"


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for name in list(os.environ):
        if name.startswith("AXONGATE_GATEWAY__") or name.startswith("AXONGATE_WORKER__") or name == "AXONGATE_CONFIG":
            monkeypatch.delenv(name)


def test_reads_the_miner_toml_and_lets_the_environment_override(tmp_path: Path, monkeypatch: Any) -> None:
    config = tmp_path / "miner.toml"
    config.write_text(
        'log_level = "INFO"\n'
        '[wallet]\nname = "default"\n'
        '[gateway]\nport = 9000\nredis_url = "redis://10.0.0.5:6379/2"\nauth_max_age_s = 8.0\n'
        "[policy]\nburst = 5\n"
        f'[worker]\nhotkey_ss58 = "{HOTKEY}"\ncomponents = "worker_components:build"\n'
    )
    monkeypatch.setenv("AXONGATE_CONFIG", str(config))
    monkeypatch.setenv("AXONGATE_GATEWAY__REDIS_URL", "redis://127.0.0.1:6380/0")
    settings = load_worker_settings()
    assert settings.gateway.redis_url == "redis://127.0.0.1:6380/0"
    assert (settings.gateway.port, settings.gateway.auth_max_age_s, settings.policy.burst) == (9000, 8.0, 5)
    assert settings.worker.hotkey_ss58 == HOTKEY


def test_workers_refuse_to_start_without_shared_state(monkeypatch: Any) -> None:
    monkeypatch.setenv("AXONGATE_WORKER__HOTKEY_SS58", HOTKEY)
    monkeypatch.setenv("AXONGATE_WORKER__COMPONENTS", "worker_components:build")
    with pytest.raises(ConfigError, match="redis_url"):
        load_worker_settings()


def test_missing_fields_and_files_are_named(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.setenv("AXONGATE_GATEWAY__REDIS_URL", "redis://127.0.0.1:6380/0")
    with pytest.raises(ConfigError, match="worker"):
        load_worker_settings()
    monkeypatch.setenv("AXONGATE_CONFIG", str(tmp_path / "absent.toml"))
    with pytest.raises(ConfigError, match=r"absent\.toml"):
        load_worker_settings()


def test_unimportable_components_fail_at_startup(monkeypatch: Any) -> None:
    monkeypatch.setenv("AXONGATE_GATEWAY__REDIS_URL", "redis://127.0.0.1:6380/0")
    monkeypatch.setenv("AXONGATE_WORKER__HOTKEY_SS58", HOTKEY)
    monkeypatch.setenv("AXONGATE_WORKER__COMPONENTS", "no_such_module_here:build")
    with pytest.raises(ConfigError, match="no_such_module_here"):
        create_worker_app()
