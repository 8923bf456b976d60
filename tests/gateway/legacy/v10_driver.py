"""Drive the stock bittensor 10.5.0 SDK against axongate; runs in ``.venv-legacy``, not the main venv.

Usage: ``python v10_driver.py COMMAND_JSON OUT_JSON``. Commands:

- ``{"op": "hashes", "synapses": [kwargs, ...]}``: the stock ``Synapse.body_hash`` and the JSON
  body a ``Dendrite`` would send for each ``Inference(**kwargs)`` of ``protocol/legacy.py``.
- ``{"op": "scenarios", "port": .., "miner": ss58, "stranger": ss58, "names": [...]}``: query the
  gateway with the stock ``bt.Dendrite`` (validator ``//Alice``) in each named scenario and
  report what the dendrite concluded (status, message, outputs, request fields).

``protocol/legacy.py`` is loaded from its file, as a validator that copied it would use it.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[3]


def _load_synapses() -> Any:
    spec = importlib.util.spec_from_file_location("axongate_legacy", ROOT / "protocol" / "legacy.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _hashes(command: dict[str, Any]) -> list[dict[str, Any]]:
    legacy = _load_synapses()
    out = []
    for kwargs in command["synapses"]:
        synapse = legacy.Inference(**kwargs)
        out.append({"body": json.dumps(synapse.model_dump()), "body_hash": synapse.body_hash})
    return out


def _resign(dendrite: Any, synapse: Any) -> None:
    """Sign ``synapse`` again after a test changed its nonce (what a stale or replayed request looks like)."""
    message = (
        f"{synapse.dendrite.nonce}.{synapse.dendrite.hotkey}.{synapse.axon.hotkey}."
        f"{synapse.dendrite.uuid}.{synapse.body_hash}"
    )
    synapse.dendrite.signature = "0x" + dendrite.keypair.sign(message).hex()


def _describe(synapse: Any) -> dict[str, Any]:
    fields = synapse.model_dump(
        include={"messages", "max_tokens", "temperature", "top_p", "top_k", "seed", "text", "token_ids"}
        | {"logprobs", "ranks", "finish_reason", "usage", "model", "stream_error", "weights_sha256", "engine"}
    )
    return {
        "is_success": synapse.is_success,
        "status_code": synapse.dendrite.status_code,
        "status_message": synapse.dendrite.status_message,
        "axon_process_time": synapse.axon.process_time,
        **fields,
    }


async def _scenarios(command: dict[str, Any]) -> dict[str, Any]:
    import bittensor as bt
    import bittensor.utils.networking as networking
    from bittensor_wallet import Keypair

    # Stay off the network: the Dendrite asks public services for its IP unless told otherwise.
    networking.get_external_ip = lambda: "127.0.0.2"
    legacy = _load_synapses()
    validator = Keypair.create_from_uri("//Alice")
    denied = Keypair.create_from_uri("//Dave")

    opened: list[Any] = []

    class TamperingDendrite(bt.Dendrite):
        """The stock Dendrite, with an optional hook that alters a request after it was signed."""

        def __init__(self, keypair: Any, tamper: Any = None) -> None:
            super().__init__(wallet=keypair)
            self.tamper = tamper
            opened.append(self)

        def preprocess_synapse_for_request(self, target_axon_info: Any, synapse: Any, timeout: float = 12.0) -> Any:
            synapse = super().preprocess_synapse_for_request(target_axon_info, synapse, timeout)
            if self.tamper is not None:
                self.tamper(self, synapse)
            return synapse

    def axon(hotkey: str) -> Any:
        return bt.AxonInfo(version=1, ip="127.0.0.1", port=command["port"], ip_type=4, hotkey=hotkey, coldkey=hotkey)

    miner = axon(command["miner"])

    def request(cls: Any = legacy.Inference, **overrides: Any) -> Any:
        kwargs = {
            "messages": [legacy.ChatMessage(role="user", content="hello 'miner' \"é\"")],
            "max_tokens": 6,
            "temperature": 0.7,
            "seed": 5,
        }
        return cls(**{**kwargs, **overrides})

    async def unary(dendrite: Any, target: Any = miner, synapse: Any = None) -> dict[str, Any]:
        result = await dendrite.forward(target, synapse or request(), timeout=10, deserialize=False)
        return _describe(result)

    async def stream(dendrite: Any) -> dict[str, Any]:
        generator = await dendrite.forward(miner, request(legacy.InferenceStream), timeout=10, streaming=True)
        items = [item async for item in generator]
        final = items[-1]
        return {
            **_describe(final),
            "final_type": type(final).__name__,
            "chunks": [item.model_dump() for item in items[:-1]],
        }

    async def replay() -> dict[str, Any]:
        first: dict[str, Any] = {}

        def same_nonce(dendrite: Any, synapse: Any) -> None:
            if not first:
                first.update(nonce=synapse.dendrite.nonce, signature=synapse.dendrite.signature)
            synapse.dendrite.nonce = first["nonce"]
            synapse.dendrite.signature = first["signature"]

        dendrite = TamperingDendrite(validator, same_nonce)
        return {"first": await unary(dendrite), "second": await unary(dendrite)}

    def shift_nonce(seconds: float, version: int | None = None) -> Any:
        def tamper(dendrite: Any, synapse: Any) -> None:
            synapse.dendrite.nonce = time.time_ns() + int(seconds * 1e9)
            if version is not None:
                synapse.dendrite.version = version
            _resign(dendrite, synapse)

        return tamper

    def forge(dendrite: Any, synapse: Any) -> None:
        signature = bytearray.fromhex(synapse.dendrite.signature[2:])
        signature[7] ^= 0x01
        synapse.dendrite.signature = "0x" + signature.hex()

    async def concurrent(count: int = 64) -> dict[str, Any]:
        dendrite = TamperingDendrite(validator)
        results = await dendrite.forward([miner] * count, request(), timeout=20, deserialize=False)
        return {"statuses": sorted({r.dendrite.status_code for r in results}), "ok": sum(r.is_success for r in results)}

    class Nope(bt.Synapse):
        pass

    scenarios = {
        "unary": lambda: unary(TamperingDendrite(validator)),
        "stream": lambda: stream(TamperingDendrite(validator)),
        "capabilities": lambda: unary(TamperingDendrite(validator), synapse=legacy.Capabilities()),
        "forged": lambda: unary(TamperingDendrite(validator, forge)),
        "stale": lambda: unary(TamperingDendrite(validator, shift_nonce(-60))),
        "stale_old_version": lambda: unary(TamperingDendrite(validator, shift_nonce(-3600, version=6_000_000))),
        "future": lambda: unary(TamperingDendrite(validator, shift_nonce(+60))),
        "replay": replay,
        "other_axon": lambda: unary(TamperingDendrite(validator), target=axon(command["stranger"])),
        "blacklisted": lambda: unary(TamperingDendrite(denied)),
        "unknown_synapse": lambda: unary(TamperingDendrite(validator), synapse=Nope()),
        "invalid_request": lambda: unary(TamperingDendrite(validator), synapse=request(messages=[])),
        "concurrent": concurrent,
    }
    try:
        return {name: await scenarios[name]() for name in command["names"]}
    finally:
        for dendrite in opened:
            await dendrite.aclose_session()


def main() -> None:
    command = json.loads(Path(sys.argv[1]).read_text())
    if command["op"] == "hashes":
        result: Any = _hashes(command)
    elif command["op"] == "scenarios":
        result = asyncio.run(_scenarios(command))
    else:
        raise SystemExit(f"unknown op {command['op']!r}")
    Path(sys.argv[2]).write_text(json.dumps(result))


if __name__ == "__main__":
    main()
