"""The bittensor 10.5.0 side of ``scripts/bench/axon.py``; runs in ``.venv-legacy`` only.

``serve PORT``: the stock ``bt.Axon`` serving ``Inference`` (``protocol/legacy.py``) with a forward
that fills the same trivial completion as the axongate bench service; bound to 127.0.0.1 (the
stock Axon binds 0.0.0.0 unless its uvicorn config is changed before start).

``client PORT MINER_SS58 COUNT ROUNDS``: the stock ``bt.Dendrite`` sends COUNT concurrent
``Inference`` requests per round; prints JSON with the client's CPU seconds per round.
"""

import asyncio
import importlib.util
import json
import signal
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
VALIDATOR_URI = "//Alice"
MINER_URI = "//Bob"


def _synapses():
    spec = importlib.util.spec_from_file_location("axongate_legacy", ROOT / "protocol" / "legacy.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def _offline() -> None:
    import bittensor.utils.networking as networking

    networking.get_external_ip = lambda: "127.0.0.2"


def serve(port: int) -> None:
    import bittensor as bt
    from bittensor_wallet import Keypair, Wallet

    _offline()
    legacy = _synapses()
    keypair = Keypair.create_from_uri(MINER_URI)
    wallet = Wallet(name="bench", hotkey="miner", path=tempfile.mkdtemp(prefix="axon-bench-"))
    wallet.set_hotkey(keypair, encrypt=False, overwrite=True)
    wallet.set_coldkeypub(keypair, overwrite=True)

    def forward(synapse: legacy.Inference) -> legacy.Inference:
        synapse.text = synapse.messages[-1].content[:16]
        synapse.token_ids = [7]
        synapse.logprobs = [0.0]
        synapse.ranks = [1]
        synapse.finish_reason = "length"
        synapse.usage = legacy.Usage(prompt_tokens=1, completion_tokens=1)
        synapse.model = "echo"
        return synapse

    axon = bt.Axon(wallet=wallet, port=port, ip="127.0.0.1", external_ip="127.0.0.1")
    axon.fast_config.host = "127.0.0.1"
    axon.attach(forward_fn=forward)
    axon.start()
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    print("ready", flush=True)
    stop.wait()
    axon.stop()


async def _client(port: int, miner_ss58: str, count: int, rounds: int) -> dict:
    import bittensor as bt
    from bittensor_wallet import Keypair

    _offline()
    legacy = _synapses()
    dendrite = bt.Dendrite(wallet=Keypair.create_from_uri(VALIDATOR_URI))
    target = bt.AxonInfo(version=1, ip="127.0.0.1", port=port, ip_type=4, hotkey=miner_ss58, coldkey=miner_ss58)

    def request():
        return legacy.Inference(messages=[legacy.ChatMessage(role="user", content="ping")], max_tokens=1)

    await dendrite.forward([target] * 16, request(), timeout=60, deserialize=False)  # warm-up
    cpu_s, wall_s, failures, reasons = [], [], 0, {}
    for _ in range(rounds):
        cpu0, wall0 = time.process_time(), time.perf_counter()
        results = await dendrite.forward([target] * count, request(), timeout=60, deserialize=False)
        cpu_s.append(time.process_time() - cpu0)
        wall_s.append(time.perf_counter() - wall0)
        for r in results:
            if not r.is_success:
                failures += 1
                reason = f"{r.dendrite.status_code} {r.dendrite.status_message}"[:120]
                reasons[reason] = reasons.get(reason, 0) + 1
    await dendrite.aclose_session()
    return {"cpu_s": cpu_s, "wall_s": wall_s, "failures": failures, "failure_reasons": reasons}


def main() -> None:
    mode = sys.argv[1]
    if mode == "serve":
        serve(int(sys.argv[2]))
    elif mode == "client":
        port, miner, count, rounds = int(sys.argv[2]), sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
        print(json.dumps(asyncio.run(_client(port, miner, count, rounds))))
    else:
        raise SystemExit(f"unknown mode {mode!r}")


if __name__ == "__main__":
    main()
