"""The miner's FastAPI gateway: axon-compatible routes around an inference service.

Build the app with :func:`create_app` and run it with :class:`GatewayServer`.
"""

from gateway.admission import AdmissionQueue
from gateway.app import create_app
from gateway.auth import Authenticator, AuthScheme, BtAuthScheme, Caller
from gateway.config import GatewayConfig, PolicyConfig
from gateway.epistula import EpistulaScheme
from gateway.metrics import GatewayMetrics
from gateway.policy import Lease, MetagraphView, PeerInfo, Policy, StaticMetagraphView
from gateway.server import GatewayServer, GatewayStartError
from gateway.service import BadRequest, InferenceService, Overloaded, ServiceError, Unavailable
from gateway.state import GatewayStores, build_stores
from gateway.stores import InMemoryNonceStore, InMemoryRateLimitStore, NonceStore, RateLimitStore

__all__ = [
    "AdmissionQueue",
    "AuthScheme",
    "Authenticator",
    "BadRequest",
    "BtAuthScheme",
    "Caller",
    "EpistulaScheme",
    "GatewayConfig",
    "GatewayMetrics",
    "GatewayServer",
    "GatewayStartError",
    "GatewayStores",
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
    "build_stores",
    "create_app",
]
