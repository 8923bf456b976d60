"""The neurons' chain seam: the :class:`Chain` protocol and its bittensor SDK implementation.

Neurons depend on :class:`Chain` only. :func:`open_chain` returns an ``SdkChain`` over
``bt.Client`` for finney, testnet, a ws(s) endpoint, or the embedded local chain
(``neurons.chain.localnet``). The SDK is imported on first use of ``open_chain``/``SdkChain``, so
importing this package (for the types, or the CLI's ``--help``) stays cheap.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Protocol

from .config import ChainConfig
from .records import (
    ChainErrorCode,
    ChainReadError,
    ChainWriteError,
    ChainWriteResult,
    LocalnetError,
    MetagraphSnapshot,
    NeuronRecord,
)

if TYPE_CHECKING:
    from .sdk import SdkChain, open_chain

__all__ = [
    "Chain",
    "ChainConfig",
    "ChainErrorCode",
    "ChainReadError",
    "ChainWriteError",
    "ChainWriteResult",
    "LocalnetError",
    "MetagraphSnapshot",
    "NeuronRecord",
    "SdkChain",
    "open_chain",
]


class Chain(Protocol):
    """What a miner or validator needs from the chain, and nothing more.

    Reads raise ``ChainReadError`` (unreachable, timed out, unknown subnet or uid). Writes never
    raise for a chain-side refusal: they return a ``ChainWriteResult`` whose ``error`` says why.
    ``wallet`` is a ``bt.Wallet`` (or anything the SDK accepts as one); its hotkey signs.
    """

    async def block(self) -> int: ...

    async def metagraph(self) -> MetagraphSnapshot: ...

    async def uid_for_hotkey(self, hotkey_ss58: str) -> int | None: ...

    async def require_uid(self, hotkey_ss58: str) -> int: ...

    async def serve_axon(
        self, wallet: Any, ip: str, port: int, *, certificate: bytes | None = None, protocol: int = 4
    ) -> ChainWriteResult: ...

    async def set_weights(
        self, wallet: Any, weights: Mapping[int, float], *, version_key: int | None = None
    ) -> ChainWriteResult: ...

    async def weights_rate_limit(self) -> int: ...

    async def blocks_since_last_update(self, uid: int) -> int: ...

    async def weights(self) -> dict[int, dict[int, float]]: ...

    async def certificate(self, hotkey_ss58: str) -> bytes | None: ...

    async def aclose(self) -> None: ...


def __getattr__(name: str) -> Any:
    if name in ("SdkChain", "open_chain"):
        from . import sdk

        return getattr(sdk, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
