"""Gateways sharing Redis: a replay to a sibling is rejected, limits are shared, Redis down fails closed."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from gateway import GatewayConfig, Policy, PolicyConfig, StaticMetagraphView, create_app
from gateway.state import build_stores

pytestmark = pytest.mark.redis


@pytest.mark.parametrize("scheme", ["btauth", "epistula", "legacy"])
async def test_request_replayed_to_a_sibling_gateway_is_rejected(
    scheme: str,
    redis_server: Any,
    start_shared_gateway: Any,
    redis_kit: Any,
    validator_keypair: Any,
    miner_keypair: Any,
    raw_http: httpx.AsyncClient,
) -> None:
    first_url, first_service = await start_shared_gateway(redis_server.url)
    second_url, second_service = await start_shared_gateway(redis_server.url)
    request = redis_kit.sign(scheme, validator_keypair, miner_keypair.ss58_address)
    served = await request.send(raw_http, first_url)
    replayed = await request.send(raw_http, second_url)
    assert served.status_code == 200, served.text
    assert replayed.status_code == 401, replayed.text
    expected = "nonce is not newer" if scheme == "legacy" else "auth_replayed"
    assert expected in redis_kit.error_of(replayed)
    assert (len(first_service.requests), len(second_service.requests)) == (1, 0)


async def test_rate_limit_is_shared_between_gateways(
    redis_server: Any,
    start_shared_gateway: Any,
    redis_kit: Any,
    validator_keypair: Any,
    miner_keypair: Any,
    raw_http: httpx.AsyncClient,
) -> None:
    policy = PolicyConfig(rate_per_s=0.01, burst=2)
    urls = [(await start_shared_gateway(redis_server.url, policy_config=policy))[0] for _ in range(2)]
    statuses = []
    for i in range(3):
        request = redis_kit.sign("btauth", validator_keypair, miner_keypair.ss58_address)
        statuses.append((await request.send(raw_http, urls[i % 2])).status_code)
    assert statuses == [200, 200, 429]


@pytest.mark.parametrize("scheme", ["btauth", "epistula", "legacy"])
async def test_redis_down_fails_closed_and_recovers(
    scheme: str,
    own_redis_server: Any,
    start_shared_gateway: Any,
    redis_kit: Any,
    validator_keypair: Any,
    miner_keypair: Any,
    raw_http: httpx.AsyncClient,
) -> None:
    url, service = await start_shared_gateway(own_redis_server.url)

    def fresh() -> Any:
        return redis_kit.sign(scheme, validator_keypair, miner_keypair.ss58_address)

    assert (await fresh().send(raw_http, url)).status_code == 200
    own_redis_server.stop()
    refused = await fresh().send(raw_http, url)
    assert refused.status_code == 503, refused.text
    assert refused.headers["retry-after"] == "1"
    if scheme == "legacy":
        assert refused.headers["bt_header_axon_status_code"] == "503"
        assert "Redis" in refused.json()["message"]
    else:
        assert refused.json()["error"] == "state_store_unavailable"
        assert "Redis" in refused.json()["detail"]
    assert len(service.requests) == 1
    own_redis_server.start()
    recovered = await fresh().send(raw_http, url)
    assert recovered.status_code == 200, recovered.text
    assert len(service.requests) == 2


def test_redis_config_without_shared_stores_is_refused(kit: Any, miner_keypair: Any) -> None:
    """Per-process replay caches behind a Redis-configured gateway would be a silent hole."""
    config = GatewayConfig(redis_url="redis://127.0.0.1:6379/0")
    policy = Policy(PolicyConfig(), StaticMetagraphView({}))
    with pytest.raises(ValueError, match="redis_url"):
        create_app(kit.FakeService(), hotkey_ss58=miner_keypair.ss58_address, config=config, policy=policy)


def test_redis_url_must_name_a_redis_scheme() -> None:
    with pytest.raises(ValueError, match="redis_url"):
        GatewayConfig(redis_url="http://127.0.0.1:6379")


async def test_without_redis_url_stores_are_per_process(miner_keypair: Any) -> None:
    stores = build_stores(GatewayConfig(), hotkey_ss58=miner_keypair.ss58_address)
    assert not stores.shared
    assert await stores.nonce_store.check_and_store("hk", 1)
    assert not await stores.nonce_store.check_and_store("hk", 1)
    assert await stores.epistula_store.check_and_store("hk", "u")
    assert not await stores.epistula_store.check_and_store("hk", "u")
    await stores.aclose()
