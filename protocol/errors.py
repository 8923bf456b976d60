"""The root of axongate's exception hierarchy.

Foreign errors (bittensor, httpx, torch, vLLM) are translated once, in the adapter that calls
them, into subclasses of :class:`AxongateError`, so callers catch one hierarchy.
"""

from __future__ import annotations

__all__ = ["AxongateError", "ConfigError"]


class AxongateError(Exception):
    """Base class of every error axongate raises on purpose."""


class ConfigError(AxongateError):
    """Invalid or inconsistent configuration; the message names the offending setting."""
