"""Gateway settings: what the server accepts, how long it waits, and whom it serves.

Frozen pydantic models with bounds, so a bad value fails at startup with the field's name. The
miner's process settings compose these (``AxongateSettings`` loads TOML -> env -> flags).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["GatewayConfig", "PolicyConfig"]


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class PolicyConfig(_Frozen):
    """Who may call the gateway and how much; checked after authentication, before any work."""

    allow_hotkeys: frozenset[str] = Field(
        default=frozenset(),
        description="If non-empty, only these hotkeys may call; they still pass the metagraph checks below.",
    )
    deny_hotkeys: frozenset[str] = Field(default=frozenset(), description="Hotkeys always rejected (403).")
    require_registered: bool = Field(
        default=True,
        description="Reject callers the metagraph view does not know (403).",
    )
    min_stake: float = Field(default=0.0, ge=0.0, allow_inf_nan=False, description="Least stake a caller needs.")
    require_validator_permit: bool = Field(default=False, description="Reject callers without a validator permit.")
    rate_per_s: float = Field(
        default=10.0, gt=0.0, allow_inf_nan=False, description="Sustained requests per second per hotkey."
    )
    burst: int = Field(default=20, ge=1, description="Token-bucket size: requests a hotkey may send at once.")
    max_concurrent_per_hotkey: int = Field(
        default=8, ge=1, description="Requests one hotkey may have in flight on this process (429 beyond)."
    )


class GatewayConfig(_Frozen):
    """Network, size and time limits of the gateway process."""

    host: str = Field(default="127.0.0.1", description="Bind address; set 0.0.0.0 explicitly to serve the network.")
    port: int = Field(default=8091, ge=0, le=65535, description="Bind port; 0 picks a free port.")
    max_body_bytes: int = Field(
        default=256 * 1024, ge=1024, le=64 * 1024 * 1024, description="Largest request body accepted (413 beyond)."
    )
    body_timeout_s: float = Field(
        default=10.0, gt=0.0, allow_inf_nan=False, description="Longest a client may take to send its body (408)."
    )
    request_timeout_s: float = Field(
        default=120.0,
        gt=0.0,
        allow_inf_nan=False,
        description="Whole-request deadline, stream included: 504 for unary, a final error chunk for streams.",
    )
    auth_max_age_s: float = Field(
        default=10.0, gt=0.0, le=300.0, allow_inf_nan=False, description="How old a signed nonce may be."
    )
    auth_allowed_skew_s: float = Field(
        default=2.0, ge=0.0, le=60.0, allow_inf_nan=False, description="How far ahead of our clock a nonce may be."
    )
    max_in_flight: int = Field(
        default=256, ge=1, description="Requests served at once on this process; more wait in the admission queue."
    )
    retry_after_s: int = Field(default=1, ge=1, description="Retry-After sent with 503 Overloaded.")
    admission_queue_size: int = Field(
        default=64,
        ge=0,
        description="Requests that may wait for an in-flight slot, highest caller stake first (503 beyond); "
        "0 answers 503 as soon as all slots are busy.",
    )
    admission_max_wait_s: float = Field(
        default=2.0, gt=0.0, le=600.0, allow_inf_nan=False, description="Longest wait for a slot before 503."
    )
    sse_keepalive_s: float = Field(
        default=15.0, gt=0.0, allow_inf_nan=False, description="Idle gap after which an SSE stream sends a comment."
    )
    shutdown_grace_s: float = Field(
        default=30.0, ge=0.0, allow_inf_nan=False, description="How long stop() lets in-flight requests finish."
    )
    redis_url: str | None = Field(
        default=None,
        pattern=r"^(redis|rediss|unix)://",
        description="Shared replay and rate-limit state for several workers or hosts (redis://host:6379/0); "
        "unset keeps it in this process. Unreachable Redis fails closed (503).",
    )
    tls_enabled: bool = Field(
        default=False,
        description="Serve HTTPS with a self-signed Ed25519 certificate whose key is published on chain "
        "(ServeAxonTls) for validators to pin; plain HTTP when off.",
    )
    tls_dir: Path | None = Field(
        default=None, description="Where the TLS key and certificate live; default: <home>/tls."
    )
