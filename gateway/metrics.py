"""Prometheus metrics of one gateway app, registered on the registry it is given.

A pure ASGI middleware counts every request by route, status and caller hotkey once the response
has finished (streams included). Label sets stay bounded whatever callers send: routes are the
known ones or ``other``, and a caller is labelled by hotkey only once the policy has accepted its
identity (see :func:`label_caller`); everyone else is ``-``.
"""

from __future__ import annotations

import time
from collections.abc import Collection
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayMetrics", "MetricsMiddleware", "label_caller"]

_CALLER_LABEL_KEY = "metrics_caller"


def label_caller(request: Request, hotkey_ss58: str) -> None:
    """Label this request's metrics with ``hotkey_ss58``; call only for identities the policy accepts."""
    request.state.metrics_caller = hotkey_ss58


_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class GatewayMetrics:
    """The gateway's series; ``namespace`` prefixes every name."""

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "axongate_gateway") -> None:
        self.registry = registry
        self.requests = Counter(
            "requests", "Requests answered, by route, status and caller hotkey.", ["route", "status", "caller"],
            namespace=namespace, registry=registry,
        )  # fmt: skip
        self.latency_s = Histogram(
            "request_seconds", "Time from request start to the end of the response.", ["route"],
            namespace=namespace, registry=registry, buckets=_LATENCY_BUCKETS_S,
        )  # fmt: skip
        self.ttft_s = Histogram(
            "ttft_seconds", "Time from accepting an Inference request to its first token.",
            namespace=namespace, registry=registry, buckets=_LATENCY_BUCKETS_S,
        )  # fmt: skip
        self.tokens = Counter(
            "completion_tokens", "Completion tokens served, by caller hotkey.", ["caller"],
            namespace=namespace, registry=registry,
        )  # fmt: skip
        self.in_flight = Gauge(
            "in_flight", "Inference requests being served (streams until their last byte).",
            namespace=namespace, registry=registry,
        )  # fmt: skip


class MetricsMiddleware:
    """Count and time every HTTP request once its response is complete."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, routes: Collection[str]) -> None:
        self._app = app
        self._metrics = metrics
        self._routes = frozenset(routes)
        # Children by label values, so a request costs two dict lookups instead of two ``labels()``
        # calls (lock, validation). Bounded like the label sets themselves; series are never removed.
        self._counted: dict[tuple[str, str, str], Any] = {}
        self._timed: dict[str, Any] = {}

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start_s = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self._app(scope, receive, send_with_status)
        finally:
            path = scope["path"]
            route = path if path in self._routes else "other"
            hotkey = scope.get("state", {}).get(_CALLER_LABEL_KEY, "-")
            key = (route, str(status), hotkey)
            counter = self._counted.get(key)
            if counter is None:
                counter = self._counted[key] = self._metrics.requests.labels(*key)
            counter.inc()
            latency = self._timed.get(route)
            if latency is None:
                latency = self._timed[route] = self._metrics.latency_s.labels(route)
            latency.observe(time.perf_counter() - start_s)
