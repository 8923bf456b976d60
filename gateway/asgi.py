"""Several gateway worker processes behind one port, sharing replay and rate state in Redis.

Run ``uvicorn gateway.asgi:create_worker_app --factory --workers 4 --host ... --port ...``, with
``--http gateway.coalesce:HttpToolsProtocol`` to write each response in one syscall as the
miner's own server does. Every worker calls :func:`create_worker_app`, which reads the same
settings (so all workers build identical apps): the TOML file named by ``AXONGATE_CONFIG``
(the miner's file: ``[gateway]``, ``[policy]`` and ``[worker]`` tables are read, others
ignored), overridden by ``AXONGATE_*`` environment variables with ``__`` nesting
(``AXONGATE_GATEWAY__REDIS_URL=redis://...``).

``gateway.redis_url`` is required: with per-process state, a request replayed to a sibling
worker would be served again. What the workers serve comes from ``worker.components``, the import
path (``"package.module:function"``) of a function taking the :class:`WorkerSettings` and
returning :class:`WorkerComponents`: the inference service and the metagraph view (the gateway
cannot import the miner's engine or chain code itself).

Replay caches and per-hotkey rate buckets are shared through Redis; the in-flight caps
(``gateway.max_in_flight``, ``policy.max_concurrent_per_hotkey``) stay per worker, so the
whole server admits up to ``workers`` times those numbers.

Each response carries ``X-Axongate-Worker: <pid>``, so operators (and tests) can see which
process served a connection; the Redis pool is closed at lifespan shutdown.
"""

from __future__ import annotations

import importlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource, SettingsConfigDict, TomlConfigSettingsSource
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from gateway.app import create_app
from gateway.config import GatewayConfig, PolicyConfig
from gateway.policy import MetagraphView, Policy
from gateway.service import InferenceService
from gateway.state import GatewayStores, build_stores
from protocol.errors import ConfigError, describe_validation_error

__all__ = [
    "CONFIG_FILE_ENV",
    "WORKER_HEADER",
    "WorkerComponents",
    "WorkerConfig",
    "WorkerSettings",
    "create_worker_app",
    "load_worker_settings",
]

CONFIG_FILE_ENV = "AXONGATE_CONFIG"
"""Environment variable naming the TOML settings file (optional)."""
WORKER_HEADER = "X-Axongate-Worker"
"""Response header carrying the serving worker's process id."""


class WorkerConfig(BaseModel):
    """Who the workers serve as, and where their service comes from."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    hotkey_ss58: str = Field(min_length=1, description="The miner's hotkey: requests must be signed for it.")
    components: str = Field(
        pattern=r"^[\w.]+:[\w.]+$",
        description="Import path 'module:function' of a function (WorkerSettings) -> WorkerComponents.",
    )


class WorkerSettings(BaseSettings):
    """Settings every worker reads; precedence: environment, then the ``AXONGATE_CONFIG`` TOML file."""

    model_config = SettingsConfigDict(
        env_prefix="AXONGATE_",
        env_nested_delimiter="__",
        frozen=True,
        extra="ignore",
        nested_model_default_partial_update=True,
    )

    gateway: GatewayConfig = GatewayConfig()
    policy: PolicyConfig = PolicyConfig()
    worker: WorkerConfig

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
        toml_file = os.environ.get(CONFIG_FILE_ENV)
        if toml_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(toml_file)))
        return tuple(sources)


@dataclass(frozen=True)
class WorkerComponents:
    """What one worker serves: the inference service and the caller policy's metagraph view."""

    service: InferenceService
    metagraph: MetagraphView


def load_worker_settings() -> WorkerSettings:
    """Read the settings; raises ``ConfigError`` naming every invalid or missing field."""
    toml_file = os.environ.get(CONFIG_FILE_ENV)
    if toml_file and not Path(toml_file).is_file():
        raise ConfigError(f"{CONFIG_FILE_ENV} names a missing file: {toml_file}")
    try:
        settings = WorkerSettings()  # type: ignore[call-arg]  # fields come from env/TOML
    except ValidationError as exc:
        raise ConfigError(f"invalid worker settings: {describe_validation_error(exc)}") from None
    if settings.gateway.redis_url is None:
        raise ConfigError(
            "gateway.redis_url is required for worker processes (AXONGATE_GATEWAY__REDIS_URL): "
            "without shared state a request replayed to another worker would be served again"
        )
    return settings


def _load_components(settings: WorkerSettings) -> WorkerComponents:
    module_name, _, attribute = settings.worker.components.partition(":")
    try:
        target: Any = importlib.import_module(module_name)
        for part in attribute.split("."):
            target = getattr(target, part)
    except (ImportError, AttributeError) as exc:
        raise ConfigError(f"cannot import worker.components {settings.worker.components!r}: {exc}") from None
    components = target(settings)
    if not isinstance(components, WorkerComponents):
        raise ConfigError(f"worker.components returned {type(components).__name__}, not WorkerComponents")
    return components


def create_worker_app() -> ASGIApp:
    """Build this worker's gateway app (the uvicorn ``--factory`` entry point); see the module docstring.

    Raises ``ConfigError`` for bad settings, so a misconfigured worker fails at startup.
    """
    settings = load_worker_settings()
    components = _load_components(settings)
    stores = build_stores(settings.gateway, hotkey_ss58=settings.worker.hotkey_ss58)
    policy = Policy(settings.policy, components.metagraph, rate_store=stores.rate_store)
    app = create_app(
        components.service,
        hotkey_ss58=settings.worker.hotkey_ss58,
        config=settings.gateway,
        policy=policy,
        nonce_store=stores.nonce_store,
        legacy_nonce_store=stores.legacy_nonce_store,
        epistula_store=stores.epistula_store,
    )
    return _WorkerApp(app, stores)


class _WorkerApp:
    """Pure ASGI wrapper: tag responses with the worker pid; close the stores at lifespan shutdown."""

    def __init__(self, app: ASGIApp, stores: GatewayStores) -> None:
        self._app = app
        self._stores = stores
        self._pid_header = (WORKER_HEADER.lower().encode(), str(os.getpid()).encode())

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":

            async def send_tagged(message: Message) -> None:
                if message["type"] == "http.response.start":
                    message = {**message, "headers": [*message.get("headers", []), self._pid_header]}
                await send(message)

            await self._app(scope, receive, send_tagged)
        elif scope["type"] == "lifespan":

            async def send_closing(message: Message) -> None:
                if message["type"] == "lifespan.shutdown.complete":
                    await self._stores.aclose()
                await send(message)

            await self._app(scope, receive, send_closing)
        else:
            await self._app(scope, receive, send)
