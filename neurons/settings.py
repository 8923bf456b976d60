"""Settings loading shared by every process: TOML file -> environment -> command-line flags.

Each process has one frozen settings model (``MinerSettings``, ``ValidatorSettings``) that
composes per-concern sub-configs. Precedence, highest first: values passed by the caller
(command-line flags), ``AXONGATE_*`` environment variables (``__`` separates nested fields,
e.g. ``AXONGATE_GATEWAY__PORT=8091``), the TOML file, then field defaults.
"""

from __future__ import annotations

import argparse
import os
from contextvars import ContextVar
from pathlib import Path
from typing import Any, Self

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource

from protocol.errors import ConfigError, describe_validation_error

__all__ = ["AxongateSettings", "WalletConfig", "add_neuron_arguments", "default_home", "neuron_overrides"]

_TOML_FILE: ContextVar[Path | None] = ContextVar("axongate_toml_file", default=None)


def default_home() -> Path:
    """The data directory: ``$AXONGATE_HOME``, else ``~/.axongate``."""
    return Path(os.environ.get("AXONGATE_HOME") or Path.home() / ".axongate").expanduser()


class WalletConfig(BaseModel):
    """Which bittensor wallet to load (btcli layout: ``<path>/<name>/hotkeys/<hotkey>``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(default="default", min_length=1)
    hotkey: str = Field(default="default", min_length=1)
    path: Path = Field(default=Path("~/.bittensor/wallets"))

    def expanded_path(self) -> Path:
        return self.path.expanduser()


class AxongateSettings(BaseSettings):
    """Base for per-process settings; see the module docstring for precedence."""

    model_config = SettingsConfigDict(
        env_prefix="AXONGATE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="forbid",
        nested_model_default_partial_update=True,
    )

    home: Path = Field(default_factory=default_home, description="Data directory (models, local chain, state).")
    log_level: str = Field(default="INFO", pattern=r"^(TRACE|DEBUG|INFO|SUCCESS|WARNING|ERROR|CRITICAL)$")

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        toml_file = _TOML_FILE.get()
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)

    @classmethod
    def load(cls, config_file: Path | None = None, **overrides: Any) -> Self:
        """Build the settings; raises ``ConfigError`` naming every invalid field.

        ``overrides`` are nested dicts of explicitly given values (``None`` values are dropped,
        so unset flags never mask the file or the environment).
        """
        if config_file is not None and not Path(config_file).is_file():
            raise ConfigError(f"config file not found: {config_file}")
        token = _TOML_FILE.set(Path(config_file) if config_file else None)
        try:
            return cls(**_drop_none(overrides))
        except ValidationError as exc:
            raise ConfigError(f"invalid {cls.__name__}: {describe_validation_error(exc)}") from None
        finally:
            _TOML_FILE.reset(token)


def _drop_none(values: dict[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            nested = _drop_none(value)
            if nested:
                out[key] = nested
        elif value is not None:
            out[key] = value
    return out


def add_neuron_arguments(parser: argparse.ArgumentParser, *, config_help: str) -> None:
    """Flags every neuron takes (wallet, chain, engine, data directory); see :func:`neuron_overrides`."""
    parser.add_argument("--config", type=Path, help=config_help)
    parser.add_argument("--wallet", help="wallet name (wallet.name)")
    parser.add_argument("--hotkey", help="hotkey name (wallet.hotkey)")
    parser.add_argument("--wallet-path", type=Path, help="wallets folder (wallet.path)")
    parser.add_argument("--model", help="'smollm2', 'tiny' or a model folder (engine.model)")
    parser.add_argument("--engine", choices=["hf", "vllm"], help="engine kind (engine.kind)")
    parser.add_argument("--network", help="local | finney | test | ws(s)://URL (chain.network)")
    parser.add_argument("--netuid", type=int, help="subnet uid (chain.netuid)")
    parser.add_argument("--home", type=Path, help="data directory (default $AXONGATE_HOME or ~/.axongate)")


def neuron_overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The settings the flags of :func:`add_neuron_arguments` set (``None`` = flag not given)."""
    return {
        "home": args.home,
        "wallet": {"name": args.wallet, "hotkey": args.hotkey, "path": args.wallet_path},
        "chain": {"network": args.network, "netuid": args.netuid},
        "engine": {"model": args.model, "kind": args.engine},
    }
