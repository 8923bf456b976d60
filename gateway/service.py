"""The seam between the gateway and whatever generates: the :class:`InferenceService` protocol.

The gateway owns this protocol; the miner adapts its engine to it. A service reports a request it
cannot serve by raising a :class:`ServiceError` subclass, which the gateway maps to an HTTP status
(before the stream starts) or to a final error line (after). Any other exception is a bug: the
gateway answers 500 without details and keeps serving.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol

from protocol.errors import AxongateError
from protocol.synapses import CapabilitiesResponse, InferenceChunk, InferenceRequest

__all__ = ["BadRequest", "InferenceService", "Overloaded", "ServiceError", "Unavailable"]


class ServiceError(AxongateError):
    """A request the service refuses; ``status`` and ``code`` become the HTTP answer.

    The message is sent to the caller as ``detail``, so it must name the problem without leaking
    internals.
    """

    status: int = 500
    code: str = "service_error"

    def __init__(self, message: str, *, retry_after_s: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retry_after_s = retry_after_s


class BadRequest(ServiceError):
    """The request is valid on the wire but this service cannot serve it (e.g. prompt too long)."""

    status = 400
    code = "bad_request"


class Overloaded(ServiceError):
    """Temporarily full; the caller may retry after ``retry_after_s``."""

    status = 503
    code = "overloaded"


class Unavailable(ServiceError):
    """Not serving (starting, stopping, or the engine died)."""

    status = 503
    code = "unavailable"


class InferenceService(Protocol):
    """What the gateway serves.

    ``infer`` returns an async iterator of chunks, one per engine step; the last chunk carries
    ``finish_reason`` and ``usage``. The gateway closes the iterator (``aclose``) when the caller
    disconnects or the deadline passes, so an implementation must free its engine slot on
    ``GeneratorExit``/``CancelledError``.
    """

    async def capabilities(self) -> CapabilitiesResponse: ...

    def infer(self, request: InferenceRequest) -> AsyncIterator[InferenceChunk]: ...
