"""Fixtures for whole-subnet tests: real miner and validator processes on the embedded local chain."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from neurons.adversaries import build_impostor_model
from neurons.localsubnet import LocalSubnet, MinerSpec, SubnetSpec
from neurons.models import resolve_model


@pytest.fixture(params=["http", "tls"])
def tiny_subnet(request: pytest.FixtureRequest, tmp_path: Path, model_home: Path) -> Iterator[LocalSubnet]:
    """An honest, a throttled honest and an impostor miner plus one validator, all on the tiny model.

    With ``tls`` the miners serve HTTPS and publish their keys with ServeAxonTls; the validator
    pins each miner's connection to the key on chain.
    """
    tiny = resolve_model("tiny", model_home, progress=False)
    impostor = build_impostor_model(tiny, tmp_path / "impostor")
    spec = SubnetSpec(
        home=model_home,
        workdir=tmp_path / "subnet",
        validator_model=str(tiny),
        miners=(
            MinerSpec("honest", str(tiny)),
            MinerSpec("slow", str(tiny), throttle_tokens_per_s=15.0),
            MinerSpec("cheater", str(impostor)),
        ),
        max_new_tokens=16,
        query_timeout_s=20.0,
        step_interval_s=0.5,
        weights_interval_blocks=3,
        weights_rate_limit=3,
        extra_validator={"scoring": {"ema_alpha": 0.3}, "loop": {"challenge_seed": 7}},
        extra_miner={"gateway": {"tls_enabled": request.param == "tls"}},
    )
    subnet = LocalSubnet(spec)
    subnet.setup()
    try:
        yield subnet
    finally:
        subnet.stop()
