"""Settings precedence (flags > environment > TOML > defaults) and clear errors for bad values."""

from __future__ import annotations

from pathlib import Path

import pytest

from neurons.miner import MinerSettings
from neurons.validator import ValidatorSettings
from protocol.errors import ConfigError

REPO = Path(__file__).resolve().parents[2]


def test_shipped_configs_load_and_match_the_defaults() -> None:
    miner = MinerSettings.load(REPO / "configs" / "miner.toml")
    validator = ValidatorSettings.load(REPO / "configs" / "validator.toml")
    assert miner.gateway == MinerSettings().gateway
    assert miner.policy == MinerSettings().policy
    assert miner.policy.require_validator_permit
    assert validator.scoring == ValidatorSettings().scoring
    assert validator.loop == ValidatorSettings().loop


def test_flags_beat_environment_beat_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "miner.toml"
    config.write_text('[gateway]\nport = 7000\nhost = "127.0.0.2"\n[engine]\nmodel = "tiny"\n')
    monkeypatch.setenv("AXONGATE_GATEWAY__PORT", "7100")

    from_file_and_env = MinerSettings.load(config)
    assert from_file_and_env.gateway.port == 7100  # environment beats the file
    assert from_file_and_env.gateway.host == "127.0.0.2"  # the file beats the default
    assert from_file_and_env.engine.model == "tiny"

    with_flag = MinerSettings.load(config, gateway={"port": 7200, "host": None})
    assert with_flag.gateway.port == 7200  # a flag beats both
    assert with_flag.gateway.host == "127.0.0.2"  # an unset flag (None) masks nothing


def test_invalid_values_name_the_field(tmp_path: Path) -> None:
    config = tmp_path / "validator.toml"
    config.write_text("[loop]\nquery_timeout_s = -1\n[scoring]\nema_alpha = 2\n")
    with pytest.raises(ConfigError) as excinfo:
        ValidatorSettings.load(config)
    message = str(excinfo.value)
    assert "loop.query_timeout_s" in message and "scoring.ema_alpha" in message


def test_unknown_keys_and_missing_file_are_errors(tmp_path: Path) -> None:
    config = tmp_path / "miner.toml"
    config.write_text("[gateway]\nprot = 8091\n")
    with pytest.raises(ConfigError, match=r"gateway\.prot"):
        MinerSettings.load(config)
    with pytest.raises(ConfigError, match="config file not found"):
        MinerSettings.load(tmp_path / "absent.toml")


def test_cli_reports_bad_settings_as_a_message_and_exit_code_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from neurons.cli import main

    config = tmp_path / "validator.toml"
    config.write_text("[loop]\nquery_timeout_s = 0\n")
    assert main(["validator", "--config", str(config)]) == 2
    assert "loop.query_timeout_s" in capsys.readouterr().err
    assert main(["miner", "--config", str(tmp_path / "absent.toml"), "--port", "9"]) == 2
    assert "config file not found" in capsys.readouterr().err
