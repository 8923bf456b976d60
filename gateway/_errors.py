"""Every rejection the gateway sends: an exception carrying the status, and its JSON response."""

from __future__ import annotations

from collections.abc import Mapping

from starlette.responses import JSONResponse

from protocol.synapses import ErrorBody

__all__ = ["GatewayError", "error_response"]


class GatewayError(Exception):
    """Abort the request with ``status`` and ``{"error": code, "detail": detail}``."""

    def __init__(self, status: int, code: str, detail: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(f"{status} {code}: {detail}")
        self.status = status
        self.code = code
        self.detail = detail
        self.headers = dict(headers or {})


def error_response(status: int, code: str, detail: str, headers: Mapping[str, str] | None = None) -> JSONResponse:
    """The JSON body every 4xx/5xx carries (``protocol.synapses.ErrorBody``)."""
    body = ErrorBody(error=code, detail=detail).model_dump()
    return JSONResponse(body, status_code=status, headers=dict(headers or {}))
