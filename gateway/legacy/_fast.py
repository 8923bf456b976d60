"""Dispatch legacy-signed requests to their handler before FastAPI's routing (the hot path).

:class:`LegacyFastPath` is pure ASGI and sits innermost among the app's middleware, so the
metrics and response-signing middleware still wrap every answer it sends. It claims exactly
the requests the legacy route would match and serves them with the same handler, skipping the
router scan and the exception-handling wrappers the handler does not need (it answers every
error itself). Everything else, including ``HEAD`` and other methods on legacy paths and
requests under a ``root_path``, goes on to FastAPI unchanged, where the legacy route still
matches them.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

__all__ = ["LegacyFastPath"]

_CLAIMED_METHODS = frozenset({"GET", "POST"})


class LegacyFastPath:
    """Serve ``GET|POST /{synapse_name}`` carrying ``bt_header_dendrite_*`` headers with ``handler``.

    ``handler(request, synapse_name)`` is the legacy route's handler: it never raises for a
    request's content and returns the full response.
    """

    def __init__(
        self, app: ASGIApp, *, handler: Callable[[Request, str], Awaitable[Response]], header_prefix: bytes
    ) -> None:
        self._app = app
        self._handler = handler
        self._prefix = header_prefix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        name = self._claim(scope)
        if name is None:
            await self._app(scope, receive, send)
            return
        request = Request(scope, receive, send)
        response = await self._handler(request, name)
        await response(scope, receive, send)

    def _claim(self, scope: Scope) -> str | None:
        """The synapse name when the legacy route would match ``scope`` for GET/POST, else None."""
        if scope["type"] != "http" or scope["method"] not in _CLAIMED_METHODS or scope.get("root_path"):
            return None
        path: str = scope["path"]
        if len(path) < 2 or path[0] != "/" or "/" in path[1:]:
            return None
        prefix = self._prefix
        if not any(key.startswith(prefix) for key, _ in scope["headers"]):
            return None
        return path[1:]
