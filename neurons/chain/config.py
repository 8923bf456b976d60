"""``ChainConfig``: which chain and subnet a neuron talks to, and how patiently."""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

__all__ = ["ChainConfig"]


class ChainConfig(BaseModel):
    """Chain settings shared by the miner, the validator and the localnet CLI."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    network: str = Field(
        default="local",
        pattern=r"^(local|finney|test|wss?://\S+)$",
        description="`local` (the embedded SQLite chain), `finney`, `test`, or a ws:// / wss:// endpoint.",
    )
    netuid: int = Field(default=1, ge=0, le=4095, description="Subnet the neuron serves or validates.")
    localnet_path: Path | None = Field(
        default=None, description="Local chain file; default `<home>/localnet/chain.sqlite`. Only for network=local."
    )
    weights_version_key: int = Field(
        default=0, ge=0, description="Version key sent with weights; subnets reject keys older than theirs."
    )
    read_timeout_s: float = Field(default=30.0, gt=0, description="Limit for one chain read (metagraph, storage).")
    write_timeout_s: float = Field(
        default=120.0, gt=0, description="Limit for one write, including waiting for inclusion in a block."
    )

    def resolved_localnet_path(self, home: Path) -> Path:
        """The local chain file this config names under data directory ``home``."""
        from .localnet import default_localnet_path

        return Path(self.localnet_path).expanduser() if self.localnet_path else default_localnet_path(home)
