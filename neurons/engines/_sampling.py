"""Token sampling and raw logprob/rank, shared by the HF engine's generate and score paths.

Conventions follow vLLM so both engines report the same quantities: the reported logprob is
``log_softmax`` of the *raw* logits (before temperature, top-k, top-p) and the rank is 1 + the
number of vocabulary entries with a strictly larger logit (the argmax has rank 1). Sampling:
``temperature == 0`` is greedy (first maximal index), ``top_k == 0`` and ``top_p == 1`` switch
the filters off, and top-p keeps the smallest set of most likely tokens whose mass reaches
``top_p``.
"""

from __future__ import annotations

import torch

__all__ = ["make_generator", "ranks_of", "sample_token"]


def make_generator(seed: int | None) -> torch.Generator:
    """A CPU generator seeded with ``seed``, or from OS entropy when ``seed`` is ``None``."""
    generator = torch.Generator(device="cpu")
    if seed is None:
        generator.seed()
    else:
        generator.manual_seed(seed)
    return generator


def ranks_of(logits: torch.Tensor, token_ids: torch.Tensor) -> torch.Tensor:
    """Rank of ``token_ids[i]`` within row ``logits[i]``: 1 + count of strictly larger logits."""
    chosen = logits.gather(-1, token_ids.unsqueeze(-1))
    return (logits > chosen).sum(dim=-1) + 1


def sample_token(
    logits: torch.Tensor, *, temperature: float, top_p: float, top_k: int, generator: torch.Generator
) -> int:
    """Draw the next token id from one row of fp32 logits (shape ``[vocab]``)."""
    if temperature == 0.0:
        return int(torch.argmax(logits))
    scores = logits / temperature
    if 0 < top_k < scores.shape[-1]:
        kth_largest = torch.topk(scores, top_k).values[-1]
        scores = scores.masked_fill(scores < kth_largest, float("-inf"))
    if top_p < 1.0:
        sorted_scores, order = torch.sort(scores, descending=True)
        probs = torch.softmax(sorted_scores, dim=-1)
        mass_before = torch.cumsum(probs, dim=-1) - probs
        drop = mass_before >= top_p
        drop[0] = False
        scores = scores.index_fill(0, order[drop], float("-inf"))
    probs = torch.softmax(scores, dim=-1)
    return int(torch.multinomial(probs, 1, generator=generator))
