"""axongate's wire protocol: schemas, signing schemes and the miner client. Imports nothing of ours."""

from protocol.auth import AuthErrorCode, AuthFailure, BtAuth
from protocol.client import (
    CapabilitiesResult,
    MinerClient,
    MinerTarget,
    QueryError,
    QueryErrorCode,
    QueryResult,
)
from protocol.errors import AxongateError, ConfigError
from protocol.synapses import (
    CapabilitiesRequest,
    CapabilitiesResponse,
    ChatMessage,
    ErrorBody,
    FinishReason,
    InferenceChunk,
    InferenceRequest,
    InferenceResponse,
    ServerTimings,
    SynapseName,
    Usage,
)

__all__ = [
    "AuthErrorCode",
    "AuthFailure",
    "AxongateError",
    "BtAuth",
    "CapabilitiesRequest",
    "CapabilitiesResponse",
    "CapabilitiesResult",
    "ChatMessage",
    "ConfigError",
    "ErrorBody",
    "FinishReason",
    "InferenceChunk",
    "InferenceRequest",
    "InferenceResponse",
    "MinerClient",
    "MinerTarget",
    "QueryError",
    "QueryErrorCode",
    "QueryResult",
    "ServerTimings",
    "SynapseName",
    "Usage",
]
