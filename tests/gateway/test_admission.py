"""Admission under load: stake-ordered waiting for in-flight slots, bounded, refusals with Retry-After."""

from __future__ import annotations

import asyncio
from typing import Any

import bittensor as bt
import httpx
import pytest

from gateway import GatewayConfig, PeerInfo, StaticMetagraphView
from gateway._errors import GatewayError
from gateway.admission import AdmissionQueue
from protocol.synapses import ChatMessage, InferenceRequest

STAKES = {"low": 1.0, "mid": 50.0, "high": 1000.0}


def _queue(max_waiting: int = 8, max_wait_s: float = 10.0) -> AdmissionQueue:
    return AdmissionQueue(
        max_in_flight=1,
        max_waiting=max_waiting,
        max_wait_s=max_wait_s,
        retry_after_s=3,
        priority=STAKES.__getitem__,
    )


async def _settle() -> None:
    for _ in range(5):
        await asyncio.sleep(0)


async def test_slots_go_to_the_highest_stake_then_the_earliest() -> None:
    queue = _queue()
    release = await queue.acquire("low")  # takes the only slot
    order: list[str] = []

    async def request(name: str, hotkey: str) -> None:
        done = await queue.acquire(hotkey)
        order.append(name)
        done()

    tasks = []
    for name, hotkey in [("low-1", "low"), ("mid", "mid"), ("low-2", "low"), ("high", "high")]:
        tasks.append(asyncio.create_task(request(name, hotkey)))
        await _settle()
    assert queue.waiting == 4 and queue.in_flight == 1
    release()
    await asyncio.gather(*tasks)
    assert order == ["high", "mid", "low-1", "low-2"]
    assert queue.in_flight == 0 and queue.waiting == 0


async def test_full_room_refuses_or_displaces_by_stake() -> None:
    queue = _queue(max_waiting=1)
    release = await queue.acquire("low")  # takes the only slot
    waiting_low = asyncio.create_task(queue.acquire("low"))
    await _settle()
    with pytest.raises(GatewayError) as refused:
        await queue.acquire("low")  # equal stake: the newcomer is refused
    assert refused.value.status == 503 and refused.value.headers == {"Retry-After": "3"}
    waiting_high = asyncio.create_task(queue.acquire("high"))
    await _settle()
    with pytest.raises(GatewayError, match="displaced"):
        await waiting_low
    assert queue.waiting == 1
    release()
    (await waiting_high)()
    assert queue.in_flight == 0


async def test_wait_is_bounded_and_cancelled_waiters_leave() -> None:
    queue = _queue(max_wait_s=0.05)
    release = await queue.acquire("low")  # takes the only slot
    with pytest.raises(GatewayError, match="no slot freed"):
        await queue.acquire("high")
    queue = _queue(max_wait_s=10)
    release = await queue.acquire("low")  # takes the only slot
    waiter = asyncio.create_task(queue.acquire("mid"))
    await _settle()
    waiter.cancel()
    with pytest.raises(asyncio.CancelledError):
        await waiter
    assert queue.waiting == 0
    release()
    assert queue.in_flight == 0


async def test_slot_granted_to_a_cancelled_waiter_is_passed_on() -> None:
    queue = _queue()
    release = await queue.acquire("low")  # takes the only slot
    first = asyncio.create_task(queue.acquire("high"))
    second = asyncio.create_task(queue.acquire("low"))
    await _settle()
    release()  # hands the slot to "high" ...
    first.cancel()  # ... which is cancelled before it runs again
    with pytest.raises(asyncio.CancelledError):
        await first
    (await second)()
    assert queue.in_flight == 0 and queue.waiting == 0


# --- through a live gateway -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def callers() -> dict[str, Any]:
    return {name: bt.sp_core.Keypair.create_from_uri(f"//{uri}") for name, uri in
            [("low", "Charlie"), ("high", "Dave"), ("first", "Ferdie")]}  # fmt: skip


def _peers(callers: dict[str, Any]) -> StaticMetagraphView:
    stakes = {"low": 1.0, "high": 1000.0, "first": 10.0}
    return StaticMetagraphView(
        {kp.ss58_address: PeerInfo(uid=i, stake=stakes[name], validator_permit=True)
         for i, (name, kp) in enumerate(callers.items())}
    )  # fmt: skip


async def _waiting(queue: AdmissionQueue, count: int) -> None:
    """Return once ``count`` requests wait in the gateway's queue (fails after 10 s)."""
    for _ in range(1000):
        if queue.waiting >= count:
            return
        await asyncio.sleep(0.01)
    raise AssertionError(f"{queue.waiting} requests waiting, expected {count}")


async def _post(http: httpx.AsyncClient, live: Any, kit: Any, keypair: Any, content: str) -> httpx.Response:
    raw = InferenceRequest(messages=[ChatMessage(role="user", content=content)]).model_dump_json().encode()
    headers = kit.signed_headers(keypair, raw, receiver_ss58=live.target.hotkey_ss58)
    return await http.post(f"{live.base_url}/Inference", content=raw, headers=headers)


async def test_gateway_admits_the_high_stake_caller_before_an_earlier_low_one(
    start_gateway: Any, raw_http: httpx.AsyncClient, kit: Any, callers: dict[str, Any]
) -> None:
    gate = asyncio.Event()
    config = GatewayConfig(port=0, max_in_flight=1, admission_queue_size=4, admission_max_wait_s=20)
    live = await start_gateway(kit.FakeService(chunks=kit.make_chunks(2), gate=gate), config=config,
                               peers=_peers(callers))  # fmt: skip
    queue = live.app.state.admission
    first = asyncio.create_task(_post(raw_http, live, kit, callers["first"], "first"))
    await asyncio.wait_for(live.service.first_yielded.wait(), 5)
    low = asyncio.create_task(_post(raw_http, live, kit, callers["low"], "low"))
    await _waiting(queue, 1)
    high = asyncio.create_task(_post(raw_http, live, kit, callers["high"], "high"))
    await _waiting(queue, 2)
    gate.set()
    responses = await asyncio.gather(first, low, high)
    assert [r.status_code for r in responses] == [200, 200, 200]
    served = [request.messages[0].content for request in live.service.requests]
    assert served == ["first", "high", "low"]


async def test_gateway_overflow_answers_503_with_retry_after(
    start_gateway: Any, raw_http: httpx.AsyncClient, kit: Any, callers: dict[str, Any]
) -> None:
    gate = asyncio.Event()
    config = GatewayConfig(port=0, max_in_flight=1, admission_queue_size=1, admission_max_wait_s=20, retry_after_s=2)
    live = await start_gateway(kit.FakeService(chunks=kit.make_chunks(2), gate=gate), config=config,
                               peers=_peers(callers))  # fmt: skip
    queue = live.app.state.admission
    first = asyncio.create_task(_post(raw_http, live, kit, callers["first"], "first"))
    await asyncio.wait_for(live.service.first_yielded.wait(), 5)
    high = asyncio.create_task(_post(raw_http, live, kit, callers["high"], "high"))
    await _waiting(queue, 1)
    refused = await _post(raw_http, live, kit, callers["low"], "low")
    assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
    assert refused.json()["error"] == "overloaded"
    gate.set()
    assert [r.status_code for r in await asyncio.gather(first, high)] == [200, 200]
    assert queue.in_flight == 0 and queue.waiting == 0
