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

__all__ = ["GatewayMetrics", "MetricsMiddleware", "StatusRecorder", "label_caller"]

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
        # Children by label values, so a request costs two dict lookups instead of two ``labels()``
        # calls (lock, validation). Bounded like the label sets themselves; series are never removed.
        self._counted: dict[tuple[str, int, str], Any] = {}
        self._timed: dict[str, Any] = {}
        self._tokens_by_caller: dict[str, Any] = {}

    def count_tokens(self, caller: str, tokens: int) -> None:
        """Add ``tokens`` completion tokens served to ``caller`` (a hotkey the policy accepted)."""
        counter = self._tokens_by_caller.get(caller)
        if counter is None:
            counter = self._tokens_by_caller[caller] = self.tokens.labels(caller)
        counter.inc(tokens)

    def observe_request(self, route: str, status: int, caller: str, elapsed_s: float) -> None:
        """Count one answered request and its duration (``route`` and ``caller`` from bounded sets)."""
        key = (route, status, caller)
        counter = self._counted.get(key)
        if counter is None:
            counter = self._counted[key] = self.requests.labels(route, str(status), caller)
        counter.inc()
        latency = self._timed.get(route)
        if latency is None:
            latency = self._timed[route] = self.latency_s.labels(route)
        latency.observe(elapsed_s)


class StatusRecorder:
    """An ASGI ``send`` that remembers the status of the response it started (500 until then)."""

    __slots__ = ("_send", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
        await self._send(message)


class MetricsMiddleware:
    """Count and time every HTTP request once its response is complete."""

    def __init__(self, app: ASGIApp, *, metrics: GatewayMetrics, routes: Collection[str]) -> None:
        self._app = app
        self._metrics = metrics
        self._routes = frozenset(routes)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        start_s = time.perf_counter()
        recorder = StatusRecorder(send)
        try:
            await self._app(scope, receive, recorder)
        finally:
            path = scope["path"]
            route = path if path in self._routes else "other"
            hotkey = scope.get("state", {}).get(_CALLER_LABEL_KEY, "-")
            self._metrics.observe_request(route, recorder.status, hotkey, time.perf_counter() - start_s)
