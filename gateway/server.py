"""Run a gateway app under uvicorn inside the caller's event loop, with graceful shutdown.

The miner's composition root owns the process (signals, other tasks), so uvicorn's own signal
handlers are off by default; ``stop()`` is the shutdown path: stop accepting, let in-flight
requests (streams included) finish for up to ``grace_s``, then cancel what is left.
:func:`run_serving` runs the process's main coroutine on uvloop when it is installed (it comes
with ``uvicorn[standard]``), the loop uvicorn itself would pick.
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import Coroutine, Generator
from pathlib import Path
from typing import Any, TypeVar

import uvicorn

from protocol.errors import AxongateError

__all__ = ["GatewayServer", "GatewayStartError", "run_serving"]

_T = TypeVar("_T")


def run_serving(main: Coroutine[Any, Any, _T]) -> _T:
    """``asyncio.run(main)`` on a uvloop event loop when uvloop is installed, else on asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(main)
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        return runner.run(main)


class GatewayStartError(AxongateError):
    """The gateway could not start (address in use, bad TLS files, app startup failed)."""


class _EmbeddedServer(uvicorn.Server):
    """uvicorn without process-wide signal handlers (the embedding process handles signals)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def _http_protocol() -> Any:
    """uvicorn's httptools protocol writing each response in one syscall, or uvicorn's choice without httptools."""
    try:
        from gateway.coalesce import HttpToolsProtocol
    except ImportError:  # httptools missing (it comes with uvicorn[standard]): uvicorn falls back to h11
        return "auto"
    return HttpToolsProtocol


class GatewayServer:
    """A uvicorn server for ``app`` on ``host:port`` (``port=0`` picks a free port, see :attr:`port`).

    ``keep_alive_s`` is how long an idle connection stays open. It must outlast the callers' own
    idle keep-alive (bittensor <= 10 dendrites, aiohttp: 15 s): a server that closes first races
    the caller reusing the connection, and the caller sees a spurious disconnect.
    Responses leave in one socket write each (``gateway.coalesce``) when httptools is installed.
    """

    def __init__(
        self,
        app: Any,
        host: str = "127.0.0.1",
        port: int = 0,
        *,
        grace_s: float = 30.0,
        tls_certfile: Path | None = None,
        tls_keyfile: Path | None = None,
        log_level: str = "warning",
        access_log: bool = False,
        keep_alive_s: float = 30.0,
    ) -> None:
        if (tls_certfile is None) != (tls_keyfile is None):
            raise ValueError("give both tls_certfile and tls_keyfile, or neither")
        self._host = host
        self._requested_port = port
        self._grace_s = grace_s
        self._config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            access_log=access_log,
            lifespan="on",
            timeout_graceful_shutdown=max(grace_s, 0.1),
            ssl_certfile=str(tls_certfile) if tls_certfile else None,
            ssl_keyfile=str(tls_keyfile) if tls_keyfile else None,
            server_header=False,
            proxy_headers=False,  # nothing here reads the client address: skip uvicorn's per-request rewrite
            http=_http_protocol(),
            timeout_keep_alive=keep_alive_s,
        )
        self._server: uvicorn.Server | None = None
        self._task: asyncio.Task[None] | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (the chosen one when constructed with ``port=0``); valid after ``start``."""
        if self._socket is None:
            raise RuntimeError("GatewayServer.port is known only after start()")
        return int(self._socket.getsockname()[1])

    async def start(self) -> None:
        """Bind and serve; returns once the server accepts connections. Raises :class:`GatewayStartError`."""
        if self._task is not None:
            raise RuntimeError("GatewayServer already started")
        family = socket.AF_INET6 if ":" in self._host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((self._host, self._requested_port))
            sock.setblocking(False)
        except OSError as exc:
            sock.close()
            raise GatewayStartError(f"cannot bind {self._host}:{self._requested_port}: {exc}") from None
        self._socket = sock
        self._server = _EmbeddedServer(self._config)
        self._task = asyncio.create_task(self._serve(sock), name="gateway-server")
        while not self._server.started:
            if self._task.done():
                error = self._task.exception() if not self._task.cancelled() else None
                raise GatewayStartError(f"gateway failed to start: {error!r}")
            await asyncio.sleep(0.01)

    async def _serve(self, sock: socket.socket) -> None:
        assert self._server is not None
        try:
            await self._server.serve(sockets=[sock])
        except SystemExit as exc:  # uvicorn exits on startup failure; keep it inside this task
            raise GatewayStartError(f"uvicorn stopped during startup (exit {exc.code})") from None

    async def stop(self) -> None:
        """Stop accepting, let in-flight requests finish for up to ``grace_s``, then cancel the rest."""
        if self._server is None or self._task is None:
            return
        self._server.should_exit = True
        try:
            await self._task
        finally:
            self._task = None
            if self._socket is not None:
                self._socket.close()

    async def __aenter__(self) -> GatewayServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()
