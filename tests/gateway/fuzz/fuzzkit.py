"""Fuzzing helpers shared by the fuzz tests and their conftest: budgets, tally, app, signing.

``AXONGATE_FUZZ_EXAMPLES`` sets the examples per fuzz test (default: a bounded in-suite run).
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import Counter, defaultdict
from typing import Any

from bittensor import http_auth
from hypothesis import HealthCheck, settings
from prometheus_client import CollectorRegistry

from gateway import GatewayConfig, Policy, PolicyConfig, StaticMetagraphView, create_app
from protocol.response_signing import (
    RequestBinding,
    StreamChain,
    parse_stream_signature,
    request_nonce,
    verify_stream,
    verify_unary,
)

FULL_RUN = "AXONGATE_FUZZ_EXAMPLES" in os.environ
EXAMPLES = int(os.environ.get("AXONGATE_FUZZ_EXAMPLES", "60"))
FUZZ_SETTINGS = settings(
    max_examples=EXAMPLES,
    deadline=None,
    database=None,
    derandomize=not FULL_RUN,  # the suite replays the same cases; full runs explore new ones
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much],
)

_TALLY: defaultdict[str, Counter[int]] = defaultdict(Counter)


def record(test: str, status: int) -> None:
    """Count one request of ``test`` answered with ``status``."""
    _TALLY[test][status] += 1


def report() -> dict[str, Any]:
    """Cases sent and status codes seen, per test."""
    tally = {test: {str(status): n for status, n in sorted(counts.items())} for test, counts in _TALLY.items()}
    return {"examples_per_test": EXAMPLES, "cases": sum(sum(c.values()) for c in _TALLY.values()), "tests": tally}


def permissive_policy(validator_ss58: str) -> Policy:
    """Registered validator only, but no rate limit: fuzzing sends thousands of requests."""
    config = PolicyConfig(rate_per_s=1e9, burst=10**9, max_concurrent_per_hotkey=10**6)
    return Policy(config, StaticMetagraphView.of_validators([validator_ss58]))


def build_app(kit: Any, validator_ss58: str, miner_keypair: Any, **service: Any) -> tuple[Any, Any]:
    fake = kit.FakeService(**service)
    app = create_app(
        fake,
        hotkey_ss58=miner_keypair.ss58_address,
        config=GatewayConfig(port=0),
        policy=permissive_policy(validator_ss58),
        registry=CollectorRegistry(),
        signer=miner_keypair,
    )
    return app, fake


def btauth_headers(keypair: Any, body: bytes, *, receiver_ss58: str, path: str) -> dict[str, str]:
    headers = http_auth.sign(keypair, method="POST", path=path, body=body, receiver_ss58=receiver_ss58)
    return {**headers, "content-type": "application/json"}


def check_signed_answer(response: Any, *, body: bytes, miner_ss58: str, caller_ss58: str) -> None:
    """Assert the gateway's answer to a correctly signed request carries a valid axongate-response/1 signature.

    The one exception is 413: the body is read under its size cap before it can be verified, so
    no caller is known yet and the answer cannot be bound to one.
    """
    if response.status_code == 413:
        return
    binding = RequestBinding.of(
        miner_ss58=miner_ss58,
        caller_ss58=caller_ss58,
        request_nonce=request_nonce(response.request.headers) or "",
        request_body=body,
    )
    media = response.headers.get("content-type", "").split(";")[0]
    if response.status_code == 200 and media == "application/x-ndjson":
        lines = [line for line in response.content.split(b"\n") if line.strip()]
        signature = parse_stream_signature(lines[-1])
        assert signature is not None, "stream without a signature line"
        chain = StreamChain(binding)
        for line in lines[:-1]:
            chain.feed(line)
        assert verify_stream(chain, signature).ok
        return
    check = verify_unary(response.headers, binding, status=response.status_code, body=response.content)
    assert check.ok, check.message


def error_shape_ok(response: Any) -> bool:
    """A 4xx answer carries a JSON object naming the problem (gateway ``ErrorBody`` or legacy shape)."""
    try:
        payload = json.loads(response.content)
    except ValueError:
        return False
    return isinstance(payload, dict) and bool(payload)


def body_digest(body: bytes) -> str:
    return hashlib.sha256(body).hexdigest()
