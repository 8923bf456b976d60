"""Fuzzing fixtures: the gateway in-process, and the tally written for ``scripts/bench/fuzz.py``.

``AXONGATE_FUZZ_REPORT`` names a JSON file that receives the tally (cases and status codes per
test) at the end of the session.
"""

from __future__ import annotations

import asyncio
import json
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fuzzkit import btauth_headers, build_app, report
from starlette.testclient import TestClient

from gateway import GatewayServer


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    target = os.environ.get("AXONGATE_FUZZ_REPORT")
    if target:
        Path(target).write_text(json.dumps(report(), indent=1))


@pytest.fixture(scope="module")
def fuzz_app(kit: Any, validator_keypair: Any, miner_keypair: Any) -> Iterator[tuple[TestClient, Any, Any]]:
    """(client, app, service): the gateway in-process; unhandled server errors raise in the test."""
    app, fake = build_app(kit, validator_keypair.ss58_address, miner_keypair)
    with TestClient(app, raise_server_exceptions=True) as client:
        yield client, app, fake


@pytest.fixture(scope="module")
def live_stream_gateway(kit: Any, validator_keypair: Any, miner_keypair: Any) -> Iterator[tuple[Any, ...]]:
    """(port, request_bytes(), app, service): a real uvicorn gateway streaming 30 slow chunks.

    It runs on its own event loop in a thread, so synchronous hypothesis tests can drive raw
    sockets against it; ``request_bytes()`` is a freshly signed streaming request.
    """
    app, fake = build_app(kit, validator_keypair.ss58_address, miner_keypair, chunks=kit.make_chunks(30), delay_s=0.002)
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="fuzz-gateway", daemon=True)
    thread.start()
    server = GatewayServer(app, "127.0.0.1", 0, grace_s=1.0)
    asyncio.run_coroutine_threadsafe(server.start(), loop).result(timeout=30)
    body = kit.prompt(stream=True).model_dump_json().encode()

    def request_bytes() -> bytes:
        headers = btauth_headers(validator_keypair, body, receiver_ss58=miner_keypair.ss58_address, path="/Inference")
        lines = [
            "POST /Inference HTTP/1.1", "Host: 127.0.0.1", f"Content-Length: {len(body)}", "Connection: close",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]  # fmt: skip
        return ("\r\n".join(lines) + "\r\n\r\n").encode() + body

    try:
        yield server.port, request_bytes, app, fake
    finally:
        asyncio.run_coroutine_threadsafe(server.stop(), loop).result(timeout=30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(timeout=10)
        loop.close()
