"""A tiny random Llama for fast, deterministic tests and smoke runs.

The model is useless as a language model (its output is gibberish and may be invalid UTF-8) but
it exercises exactly the code paths of a real one: a byte-level BPE tokenizer with ChatML
specials, a chat template, a KV cache, EOS handling. It builds in well under a second and the
written files are byte-identical across runs (fixed seed, no timestamps), so its weights digest
is stable.
"""

from __future__ import annotations

import json
from pathlib import Path

from neurons.models._fsutil import publish_dir, staging_dir
from protocol.files import exclusive_lock

__all__ = ["TINY_CONTEXT_LENGTH", "TINY_MARKER", "build_tiny_model"]

TINY_CONTEXT_LENGTH = 1024
"""Context length of the tiny model; small so context-limit tests stay cheap."""
TINY_MARKER = ".axongate-tiny.json"
"""Written last: a folder without it is an interrupted build."""

_SPECIALS = ("<|endoftext|>", "<|im_start|>", "<|im_end|>")
_CHATML_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
_TRAINING_TEXT = (
    "The capital of France is Paris. The quick brown fox jumps over the lazy dog.",
    "A miner serves a model; a validator checks its answers by teacher forcing.",
    "Tokens, logprobs and ranks travel together so that every answer can be verified.",
    "Bittensor subnets reward honest and fast inference.",
)


def build_tiny_model(path: Path) -> Path:
    """Write the tiny model (weights, tokenizer, chat template) to ``path`` and return it.

    Idempotent: a folder that already carries the completion marker is returned untouched. The
    build goes to a sibling staging folder that is renamed into place under a file lock, so an
    interrupted build never leaves a folder that looks complete and parallel builds do not clash.
    """
    path = Path(path).expanduser()
    if (path / TINY_MARKER).is_file():
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    with exclusive_lock(path.parent / f".{path.name}.lock"):
        if (path / TINY_MARKER).is_file():
            return path
        with staging_dir(path) as staging:
            _write_tiny_model(staging)
            (staging / TINY_MARKER).write_text(json.dumps({"kind": "tiny-llama", "version": 1}) + "\n")
            publish_dir(staging, path)
    return path


def _write_tiny_model(folder: Path) -> None:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE())
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=384,
        special_tokens=list(_SPECIALS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    bpe.train_from_iterator(_TRAINING_TEXT, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe,
        eos_token="<|im_end|>",
        pad_token="<|im_end|>",
        bos_token=None,
        unk_token=None,
        model_max_length=TINY_CONTEXT_LENGTH,
        clean_up_tokenization_spaces=False,
    )
    tokenizer.chat_template = _CHATML_TEMPLATE
    eos_id = tokenizer.convert_tokens_to_ids("<|im_end|>")

    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=64,
        max_position_embeddings=TINY_CONTEXT_LENGTH,
        bos_token_id=None,
        eos_token_id=eos_id,
        pad_token_id=eos_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    with torch.no_grad():
        # Spread the output layer so sampled text varies and ranks beyond 1 occur in tests.
        model.lm_head.weight.mul_(25.0)
    model.generation_config.eos_token_id = eos_id
    model.generation_config.pad_token_id = eos_id
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)
    finally:
        if bars:
            hf_logging.enable_progress_bar()
