"""``axongate demo``: a whole subnet on this machine, on the CPU, with no network.

It initialises an embedded local chain, creates wallets, and starts one validator and three
miners as separate processes: an honest miner, a slower honest miner, and a cheater that serves
a different model (a perturbed copy of the real one, same tokenizer) while claiming the real
one. It runs until the validator has set weights the requested number of times and an epoch has
turned them into incentive, prints a final table, stops every process it started and exits 0
(1 if the outcome is not the expected one: honest miner first, cheater with no weight).
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["add_commands", "run_demo"]

MINER_NAMES = {"honest": "honest miner", "slow": "slow honest miner", "cheater": "cheater (other model)"}


def add_commands(subparsers: Any) -> None:
    parser = subparsers.add_parser("demo", help="Run a local subnet: chain, validator and three miners on the CPU.")
    parser.add_argument("--home", type=Path, help="data directory with prepared models (default $AXONGATE_HOME)")
    parser.add_argument("--workdir", type=Path, help="where this run's chain, wallets and logs go (<home>/demo)")
    parser.add_argument("--model", default="smollm2", help="model every honest neuron serves (default smollm2)")
    parser.add_argument("--weight-sets", type=int, default=2, help="stop after this many weight sets (default 2)")
    parser.add_argument("--slow-tokens-per-s", type=float, default=2.0, help="speed cap of the slow miner")
    parser.add_argument("--max-new-tokens", type=int, default=24, help="largest completion a challenge asks for")
    parser.add_argument("--timeout-s", type=float, default=1500.0, help="give up after this long (default 1500)")
    parser.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from neurons.settings import default_home

    home = (args.home or default_home()).expanduser()
    return asyncio.run(
        run_demo(
            home=home,
            workdir=(args.workdir or home / "demo").expanduser(),
            model=args.model,
            weight_sets=args.weight_sets,
            slow_tokens_per_s=args.slow_tokens_per_s,
            max_new_tokens=args.max_new_tokens,
            timeout_s=args.timeout_s,
        )
    )


async def run_demo(
    *,
    home: Path,
    workdir: Path,
    model: str,
    weight_sets: int,
    slow_tokens_per_s: float,
    max_new_tokens: int,
    timeout_s: float,
) -> int:
    """Run the demo; returns the exit code."""
    from neurons.adversaries import build_impostor_model
    from neurons.chain import open_chain
    from neurons.localsubnet import LocalSubnet, MinerSpec, SubnetSpec
    from neurons.models import resolve_model

    started = time.monotonic()
    say = _Printer(started)
    await asyncio.to_thread(_fresh_folder, workdir)
    say(f"preparing models under {home / 'models'}")
    honest_model = await asyncio.to_thread(resolve_model, model, home)
    impostor = await asyncio.to_thread(build_impostor_model, honest_model, workdir / "impostor-model")
    spec = SubnetSpec(
        home=home,
        workdir=workdir,
        validator_model=str(honest_model),
        miners=(
            MinerSpec("honest", str(honest_model)),
            MinerSpec("slow", str(honest_model), throttle_tokens_per_s=slow_tokens_per_s),
            MinerSpec("cheater", str(impostor)),
        ),
        max_new_tokens=max_new_tokens,
        query_timeout_s=max(60.0, 3.0 * max_new_tokens / slow_tokens_per_s),
    )
    with LocalSubnet(spec) as subnet:
        subnet.setup()
        say(f"local chain {subnet.chain_path} (block time {spec.block_time_s:.0f}s, tempo {spec.tempo})")
        for name, uid in subnet.uids.items():
            say(f"  uid {uid}: {MINER_NAMES.get(name, name)}")
        subnet.start()
        say(f"started 1 validator and {len(spec.miners)} miners; logs in {subnet.logs}")
        report = await subnet.wait_for_weight_sets(
            weight_sets, timeout_s=timeout_s, on_progress=lambda r: say.progress(r, weight_sets, subnet.uids)
        )
        say(f"validator set weights {report['weight_sets']} times; waiting one epoch for incentive")
        async with await open_chain(subnet.chain_config(), home) as chain:
            metagraph = await _after_next_epoch(chain, spec.tempo, spec.block_time_s, subnet)
            on_chain = (await chain.weights()).get(subnet.uids["validator"], {})
        report = subnet.report() or report
        codes = subnet.stop()
    say(f"stopped every process (exit codes: {', '.join(f'{k} {v}' for k, v in codes.items())})")
    print(_table(subnet.uids, report, on_chain, metagraph))
    if report.get("wandb_run_dir"):
        print(f"\nwandb run (offline unless WANDB_API_KEY is set): {report['wandb_run_dir']}")
        print(f"upload it later with: wandb sync {report['wandb_run_dir']}")
    return _verdict(subnet.uids, on_chain)


async def _after_next_epoch(chain: Any, tempo: int, block_time_s: float, subnet: Any) -> Any:
    """The metagraph once an epoch has run after the last weight set (bounded wait)."""
    first = await chain.block()
    while await chain.block() < first + tempo + 1:
        subnet.check_alive()
        await asyncio.sleep(block_time_s)
    return await chain.metagraph()


def _table(uids: dict[str, int], report: dict[str, Any], weights: dict[int, float], metagraph: Any) -> str:
    neurons = {n.uid: n for n in metagraph.neurons}
    header = (
        f"{'uid':>3}  {'miner':<24}{'verified':>9}{'TTFT s':>8}{'tok/s':>7}{'score':>7}{'weight':>8}{'incentive':>10}"
    )
    lines = ["", header, "-" * len(header)]
    for name, uid in uids.items():
        if name == "validator":
            continue
        row = report.get("uids", {}).get(str(uid), {})
        lines.append(
            f"{uid:>3}  {MINER_NAMES.get(name, name):<24}{_fmt(row.get('verified_pct'), '.0f', '%'):>9}"
            f"{_fmt(row.get('ttft_s'), '.2f'):>8}{_fmt(row.get('tokens_per_s'), '.1f'):>7}"
            f"{_fmt(row.get('score'), '.3f'):>7}{weights.get(uid, 0.0):>8.3f}"
            f"{(neurons[uid].incentive if uid in neurons else 0.0):>10.3f}"
        )
    return "\n".join(lines)


def _fresh_folder(path: Path) -> None:
    if path.exists():
        shutil.rmtree(path)
    path.mkdir(parents=True)


def _fmt(value: float | None, spec: str, suffix: str = "") -> str:
    return "-" if value is None else f"{value:{spec}}{suffix}"


def _verdict(uids: dict[str, int], weights: dict[int, float]) -> int:
    honest, slow, cheater = (weights.get(uids[n], 0.0) for n in ("honest", "slow", "cheater"))
    if honest > slow > cheater == 0.0:
        print("\nas expected: the honest miner earns the most, the slow one less, the cheater nothing")
        return 0
    if cheater == 0.0 and honest > 0.0 and honest >= slow:
        print("\nthe cheater earns nothing; honest and slow miners tied on speed this run")
        return 0
    print(f"\nunexpected outcome: weights honest={honest:.3f} slow={slow:.3f} cheater={cheater:.3f}", file=sys.stderr)
    return 1


class _Printer:
    """Timestamped progress lines; a status line at most every few seconds."""

    def __init__(self, started: float) -> None:
        self._started = started
        self._last_status = ""
        self._last_time = 0.0

    def __call__(self, message: str) -> None:
        print(f"[{time.monotonic() - self._started:6.0f}s] {message}", flush=True)

    def progress(self, report: dict[str, Any], target: int, uids: dict[str, int]) -> None:
        if not report:
            status = "waiting for the validator's first step (models loading)"
        else:
            rows = report.get("uids", {})
            parts = [
                f"{name} {rows[str(uid)]['verified']}/{rows[str(uid)]['queries']} verified"
                for name, uid in uids.items()
                if str(uid) in rows
            ]
            status = (
                f"block {report.get('block')} | step {report.get('step')} | weights set "
                f"{report.get('weight_sets', 0)}/{target} | " + ", ".join(parts)
            )
        now = time.monotonic()
        if status != self._last_status or now - self._last_time > 30:
            self(status)
            self._last_status, self._last_time = status, now
