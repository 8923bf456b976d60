"""The public protocol surface is deliberate: ``__all__`` is pinned and every name resolves."""

from __future__ import annotations

import importlib

import pytest

EXPECTED = {
    "protocol": {
        "AuthErrorCode", "AuthFailure", "AxongateError", "BtAuth", "CapabilitiesRequest", "CapabilitiesResponse",
        "CapabilitiesResult", "ChatMessage", "ConfigError", "ErrorBody", "FinishReason", "InferenceChunk",
        "InferenceRequest", "InferenceResponse", "MinerClient", "MinerTarget", "QueryError", "QueryErrorCode",
        "QueryResult", "ServerTimings", "SynapseName", "Usage",
    },
    "protocol.client": {
        "DEFAULT_MAX_RESPONSE_BYTES", "NDJSON_MEDIA_TYPE", "CapabilitiesResult", "MinerClient", "MinerTarget",
        "QueryError", "QueryErrorCode", "QueryResult",
    },
    "protocol.auth.btauth": {
        "BTAUTH_HEADERS", "SCHEME", "BtAuth", "BtAuthSender", "has_btauth_headers", "verify_btauth_signature",
    },
}  # fmt: skip


@pytest.mark.parametrize("module_name", sorted(EXPECTED))
def test_all_is_pinned_and_resolves(module_name: str) -> None:
    module = importlib.import_module(module_name)
    assert set(module.__all__) == EXPECTED[module_name]
    for name in module.__all__:
        assert getattr(module, name) is not None


def test_protocol_auth_exports_btauth_and_the_shared_errors() -> None:
    import protocol.auth

    assert {"AuthErrorCode", "AuthFailure", "BtAuth", "verify_btauth_signature"} <= set(protocol.auth.__all__)
    for name in protocol.auth.__all__:
        assert getattr(protocol.auth, name) is not None
