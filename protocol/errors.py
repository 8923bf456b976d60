"""The root of axongate's exception hierarchy.

Foreign errors (bittensor, httpx, torch, vLLM) are translated once, in the adapter that calls
them, into subclasses of :class:`AxongateError`, so callers catch one hierarchy.
"""

from __future__ import annotations

from pydantic import ValidationError

__all__ = ["AxongateError", "ConfigError", "describe_validation_error"]


class AxongateError(Exception):
    """Base class of every error axongate raises on purpose."""


class ConfigError(AxongateError):
    """Invalid or inconsistent configuration; the message names the offending setting."""


def describe_validation_error(exc: ValidationError, *, limit: int | None = None, root: str = "<root>") -> str:
    """``"field.path: message; ..."`` for the first ``limit`` problems (all when None), then
    ``" (and N more)"`` for the rest; ``root`` names a problem with the whole object.

    Never echoes the offending input, so secrets in a bad value stay out of messages and logs.
    """
    errors = exc.errors(include_url=False, include_input=False)
    shown = errors if limit is None else errors[:limit]
    text = "; ".join(f"{'.'.join(str(part) for part in e['loc']) or root}: {e['msg']}" for e in shown)
    if len(errors) > len(shown):
        text += f" (and {len(errors) - len(shown)} more)"
    return text
