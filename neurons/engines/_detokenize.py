"""Incremental detokenisation that never emits half a character.

Byte-level tokenizers split multi-byte UTF-8 characters across tokens, so decoding one token at
a time would emit U+FFFD replacement characters in the middle of a stream. This decoder keeps a
short window of recent tokens, emits only text that decodes cleanly (does not end in U+FFFD)
and holds the rest back until more tokens arrive or ``flush()`` is called at the end. The
concatenation of everything it returns equals ``decode(all token ids)``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

__all__ = ["IncrementalDetokenizer"]

_REPLACEMENT = "\ufffd"


class IncrementalDetokenizer:
    """Turns a stream of token ids into text deltas; one instance per request."""

    def __init__(self, decode: Callable[[Sequence[int]], str]) -> None:
        self._decode = decode
        self._ids: list[int] = []
        self._prefix_offset = 0
        """Start of the decode window: a few tokens of context for tokenizers whose pieces depend on neighbours."""
        self._read_offset = 0
        """Tokens before this index have been emitted as text."""

    def push(self, token_id: int) -> str:
        """Add one token; return the text that is now final (possibly empty)."""
        self._ids.append(token_id)
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        if len(new_text) > len(prefix_text) and not new_text.endswith(_REPLACEMENT):
            self._prefix_offset = self._read_offset
            self._read_offset = len(self._ids)
            return new_text[len(prefix_text) :]
        return ""

    def flush(self) -> str:
        """Return whatever is still held back (the stream has ended)."""
        prefix_text = self._decode(self._ids[self._prefix_offset : self._read_offset])
        new_text = self._decode(self._ids[self._prefix_offset :])
        self._prefix_offset = self._read_offset = len(self._ids)
        return new_text[len(prefix_text) :]
