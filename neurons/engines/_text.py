"""Chat templating and detokenisation shared by the engines, on the model folder's HF tokenizer.

Both engines tokenise and detokenise the same way (so a validator on one engine and a miner on
the other agree on text): ``encode_chat`` applies the folder's chat template with a generation
prompt, and ``decode`` is the raw ``tokenizers`` decode that keeps special tokens.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from protocol.errors import ConfigError
from protocol.synapses import ChatMessage

__all__ = ["TextCodec", "eos_token_ids"]

_UNSET_MAX_LENGTH = 10**9
"""transformers reports ``model_max_length`` ~1e30 when a tokenizer does not know its limit."""


class TextCodec:
    """Tokenizer front end of an engine; every method is thread-safe."""

    def __init__(self, tokenizer: Any) -> None:
        if not hasattr(tokenizer, "backend_tokenizer"):
            raise ConfigError("the engines need a fast (tokenizers-backed) tokenizer")
        self.tokenizer = tokenizer
        self._template_lock = threading.Lock()
        self._serialized = tokenizer.backend_tokenizer.to_str()
        self._decode_lock = threading.Lock()
        self._decode = self.new_decoder()

    @classmethod
    def load(cls, model_dir: Path) -> TextCodec:
        """Load the tokenizer of ``model_dir``; raises ``ConfigError`` if it cannot be loaded."""
        from transformers import AutoTokenizer

        try:
            return cls(AutoTokenizer.from_pretrained(model_dir))
        except (OSError, ValueError, KeyError) as exc:
            raise ConfigError(f"cannot load the tokenizer of {model_dir}: {exc}") from exc

    @property
    def model_max_length(self) -> int | None:
        """The tokenizer's own context limit, when it declares a real one."""
        value = self.tokenizer.model_max_length
        return int(value) if value and value < _UNSET_MAX_LENGTH else None

    def encode_chat(self, messages: Sequence[ChatMessage]) -> list[int]:
        """Token ids of ``messages`` under the chat template, ending with the assistant prompt."""
        conversation = [{"role": m.role, "content": m.content} for m in messages]
        with self._template_lock:
            encoded = self.tokenizer.apply_chat_template(
                conversation, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        return [int(i) for i in encoded["input_ids"]]

    def decode(self, token_ids: Sequence[int]) -> str:
        """Text of ``token_ids``, special tokens included."""
        with self._decode_lock:
            return self._decode(token_ids)

    def new_decoder(self) -> Callable[[Sequence[int]], str]:
        """An independent decode function for one thread (the Rust tokenizer is not shareable across threads)."""
        from tokenizers import Tokenizer

        raw = Tokenizer.from_str(self._serialized)
        return lambda ids: raw.decode(list(ids), skip_special_tokens=False)


def eos_token_ids(generation_eos: int | Sequence[int] | None, tokenizer_eos: int | None) -> frozenset[int]:
    """Union of the generation config's and the tokenizer's EOS ids."""
    ids: set[int] = set()
    for value in (generation_eos, tokenizer_eos):
        if isinstance(value, int):
            ids.add(value)
        elif value is not None:
            ids.update(int(v) for v in value)
    return frozenset(ids)
