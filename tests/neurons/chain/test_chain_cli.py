"""`axongate localnet ...` and `axongate wallet create` as a user runs them, plus wallet loading."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import bittensor as bt
import pytest

import neurons.chain as chain_package
from neurons import wallets
from neurons.chain.localnet import load_localnet_params
from neurons.cli import main
from neurons.settings import WalletConfig
from protocol.errors import ConfigError

REPO = Path(__file__).parents[3]


def run(*argv: str) -> int:
    """The ``axongate`` entry point, in process."""
    return main(list(argv))


def test_local_setup_from_scratch(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    home, wallet_path = tmp_path / "home", tmp_path / "wallets"
    config = REPO / "configs" / "localnet.toml"
    assert run("localnet", "init", "--home", str(home), "--config", str(config)) == 0
    assert (home / "localnet" / "chain.sqlite").is_file()
    for name in ("val", "miner"):
        assert run("wallet", "create", "--name", name, "--hotkey", "hk", "--path", str(wallet_path)) == 0
    out, err = capsys.readouterr()
    assert "WITHOUT a password" in err
    assert "mnemonic" not in out
    validator = bt.Wallet("val", "hk", path=str(wallet_path))
    assert validator.hotkey.ss58_address in out
    assert stat.S_IMODE((wallet_path / "val" / "coldkey").stat().st_mode) == 0o600

    common = ("--home", str(home), "--hotkey", "hk", "--wallet-path", str(wallet_path))
    assert run("localnet", "register", "--wallet", "val", "--stake", "500", "--validator", *common) == 0
    assert run("localnet", "register", "--wallet-name", "miner", *common) == 0
    assert "uid 1:" in capsys.readouterr().out

    assert run("localnet", "status", "--home", str(home)) == 0
    table = capsys.readouterr().out
    assert "subnet 1" in table and "no weights set yet" in table
    rows = [line.split() for line in table.splitlines() if line.strip()[:1].isdigit()]
    assert [(r[0], r[2], r[3]) for r in rows] == [("0", "500.000", "yes"), ("1", "0.000", "no")]

    assert run("localnet", "status", "--home", str(home), "--json") == 0
    status = json.loads(capsys.readouterr().out)
    assert status["weights_rate_limit"] == load_localnet_params(config).weights_rate_limit
    assert status["neurons"][0]["hotkey"] == validator.hotkey.ss58_address


def test_init_refuses_to_replace_a_chain(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("localnet", "init", "--path", str(tmp_path / "c.sqlite")) == 0
    assert run("localnet", "init", "--path", str(tmp_path / "c.sqlite")) == 2
    assert "already exists" in capsys.readouterr().err
    assert run("localnet", "init", "--path", str(tmp_path / "c.sqlite"), "--overwrite") == 0


def test_errors_name_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run("localnet", "status", "--home", str(tmp_path)) == 2
    assert "create it with `axongate localnet init`" in capsys.readouterr().err
    assert run("localnet", "status", "--network", "ws://127.0.0.1:1") == 2
    assert "cannot connect to ws://127.0.0.1:1" in capsys.readouterr().err
    assert run("localnet", "register", "--path", str(tmp_path / "none.sqlite"), "--wallet-path", str(tmp_path)) == 2
    assert f"hotkey file not found at {tmp_path / 'default' / 'hotkeys' / 'default'}" in capsys.readouterr().err


def test_bad_localnet_config_names_the_field(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "bad.toml"
    config.write_text("tempo = 0\nblock_time = 2\n")
    assert run("localnet", "init", "--path", str(tmp_path / "c.sqlite"), "--config", str(config)) == 2
    err = capsys.readouterr().err
    assert "tempo: Input should be greater than or equal to 1" in err and "block_time: Extra inputs" in err


def test_wallet_create_keeps_existing_keys(tmp_path: Path) -> None:
    first = wallets.create_wallet("w", "a", tmp_path)
    again = wallets.create_wallet("w", "a", tmp_path)
    second_hotkey = wallets.create_wallet("w", "b", tmp_path)
    assert again.hotkey.ss58_address == first.hotkey.ss58_address
    assert second_hotkey.coldkeypub.ss58_address == first.coldkeypub.ss58_address
    assert second_hotkey.hotkey.ss58_address != first.hotkey.ss58_address
    replaced = wallets.create_wallet("w", "a", tmp_path, overwrite=True)
    assert replaced.coldkeypub.ss58_address != first.coldkeypub.ss58_address


def test_load_wallet_names_the_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=str(tmp_path / "ghost" / "hotkeys" / "hk")):
        wallets.load_wallet(WalletConfig(name="ghost", hotkey="hk", path=tmp_path))
    created = wallets.create_wallet("real", "hk", tmp_path)
    loaded = wallets.load_wallet(WalletConfig(name="real", hotkey="hk", path=tmp_path))
    assert loaded.hotkey.ss58_address == created.hotkey.ss58_address


def test_password_variable_must_be_set(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    # Encrypting a coldkey costs seconds of key derivation, so only the refusal path runs here.
    assert run("wallet", "create", "--name", "enc", "--path", str(tmp_path), "--password-env", "UNSET_VAR") == 2
    assert "--password-env UNSET_VAR: the variable is unset or empty" in capsys.readouterr().err
    assert not (tmp_path / "enc").exists()


def test_public_surface_is_pinned() -> None:
    assert sorted(chain_package.__all__) == [
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
    for name in chain_package.__all__:
        assert getattr(chain_package, name) is not None
