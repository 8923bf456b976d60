"""Prometheus metrics of one gateway app, registered on the registry it is given.

A pure ASGI middleware counts every request by route, status and caller hotkey once the response
has finished (streams included). Label sets stay bounded whatever callers send: routes are the
known ones or ``other``, and a caller is labelled by hotkey only once the policy has accepted its
identity (see :func:`label_caller`); everyone else is ``-``.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections.abc import Collection, Iterator

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.core import CounterMetricFamily, HistogramMetricFamily, Metric
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["GatewayMetrics", "MetricsMiddleware", "StatusRecorder", "label_caller"]

_CALLER_LABEL_KEY = "metrics_caller"


def label_caller(request: Request, hotkey_ss58: str) -> None:
    """Label this request's metrics with ``hotkey_ss58``; call only for identities the policy accepts."""
    request.state.metrics_caller = hotkey_ss58


_LATENCY_BUCKETS_S = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120)


class _Histogram:
    """Bucket counts and sum of one series (Prometheus ``le`` buckets: a value counts where value <= bound)."""

    __slots__ = ("counts", "total")

    def __init__(self) -> None:
        self.counts = [0] * (len(_LATENCY_BUCKETS_S) + 1)  # the last one is +Inf
        self.total = 0.0

    def observe(self, value: float) -> None:
        self.counts[bisect.bisect_left(_LATENCY_BUCKETS_S, value)] += 1
        self.total += value

    def buckets(self) -> list[tuple[str, float]]:
        bounds = [*(str(float(b)) for b in _LATENCY_BUCKETS_S), "+Inf"]
        return list(zip(bounds, itertools.accumulate(self.counts), strict=True))


class GatewayMetrics:
    """The gateway's series; ``namespace`` prefixes every name.

    Per-request series are plain numbers updated on the event loop's thread (no lock, no label
    lookup) and turned into Prometheus families when the registry is collected; their label
    sets stay bounded (see the module docstring).
    """

    def __init__(self, registry: CollectorRegistry, *, namespace: str = "axongate_gateway") -> None:
        self.registry = registry
        self._namespace = namespace
        self._requests: dict[tuple[str, int, str], int] = {}
        self._latency: dict[str, _Histogram] = {}
        self._ttft = _Histogram()
        self._tokens: dict[str, int] = {}
        self.in_flight = Gauge(
            "in_flight", "Inference requests being served (streams until their last byte).",
            namespace=namespace, registry=registry,
        )  # fmt: skip
        registry.register(self)

    def count_tokens(self, caller: str, tokens: int) -> None:
        """Add ``tokens`` completion tokens served to ``caller`` (a hotkey the policy accepted)."""
        self._tokens[caller] = self._tokens.get(caller, 0) + tokens

    def observe_ttft(self, ttft_s: float) -> None:
        """Record the time from accepting an Inference request to its first token."""
        self._ttft.observe(ttft_s)

    def observe_request(self, route: str, status: int, caller: str, elapsed_s: float) -> None:
        """Count one answered request and its duration (``route`` and ``caller`` from bounded sets)."""
        key = (route, status, caller)
        self._requests[key] = self._requests.get(key, 0) + 1
        latency = self._latency.get(route)
        if latency is None:
            latency = self._latency[route] = _Histogram()
        latency.observe(elapsed_s)

    def collect(self) -> Iterator[Metric]:
        """The per-request families, for the registry (``prometheus_client``'s custom-collector protocol)."""
        ns = self._namespace
        requests = CounterMetricFamily(
            f"{ns}_requests",
            "Requests answered, by route, status and caller hotkey.",
            labels=["route", "status", "caller"],
        )
        for (route, status, caller), count in list(self._requests.items()):
            requests.add_metric([route, str(status), caller], count)
        latency = HistogramMetricFamily(
            f"{ns}_request_seconds", "Time from request start to the end of the response.", labels=["route"]
        )
        for route, histogram in list(self._latency.items()):
            latency.add_metric([route], histogram.buckets(), histogram.total)
        ttft = HistogramMetricFamily(
            f"{ns}_ttft_seconds", "Time from accepting an Inference request to its first token."
        )
        ttft.add_metric([], self._ttft.buckets(), self._ttft.total)
        tokens = CounterMetricFamily(
            f"{ns}_completion_tokens", "Completion tokens served, by caller hotkey.", labels=["caller"]
        )
        for caller, count in list(self._tokens.items()):
            tokens.add_metric([caller], count)
        yield from (requests, latency, ttft, tokens)


class StatusRecorder:
    """An ASGI ``send`` that remembers the status of the response it started (500 until then)."""

    __slots__ = ("_send", "started", "status")

    def __init__(self, send: Send) -> None:
        self._send = send
        self.status = 500
        self.started = False

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status, self.started = message["status"], True
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
