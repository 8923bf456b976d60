"""The miner's FastAPI gateway: axon-compatible routes around an inference service.

Build the app with :func:`create_app` and run it with :class:`GatewayServer`.
"""

from gateway.app import create_app
from gateway.auth import Authenticator, AuthScheme, BtAuthScheme, Caller
from gateway.config import GatewayConfig, PolicyConfig
from gateway.metrics import GatewayMetrics
from gateway.policy import Lease, MetagraphView, PeerInfo, Policy, StaticMetagraphView
from gateway.server import GatewayServer, GatewayStartError
from gateway.service import BadRequest, InferenceService, Overloaded, ServiceError, Unavailable
from gateway.stores import InMemoryNonceStore, InMemoryRateLimitStore, NonceStore, RateLimitStore

__all__ = [
    "AuthScheme",
    "Authenticator",
    "BadRequest",
    "BtAuthScheme",
    "Caller",
    "GatewayConfig",
    "GatewayMetrics",
    "GatewayServer",
    "GatewayStartError",
    "InMemoryNonceStore",
    "InMemoryRateLimitStore",
    "InferenceService",
    "Lease",
    "MetagraphView",
    "NonceStore",
    "Overloaded",
    "PeerInfo",
    "Policy",
    "PolicyConfig",
    "RateLimitStore",
    "ServiceError",
    "StaticMetagraphView",
    "Unavailable",
    "create_app",
]
