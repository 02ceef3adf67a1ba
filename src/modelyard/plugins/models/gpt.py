"""``gpt``: a decoder-only (GPT-2-style) language model, and :func:`generate` to sample from it.

Unlike the other model plugins, ``gpt`` predicts a token at every position: its output is
logits ``(B, T, vocab_size)``, so its ``num_outputs`` *is* the vocabulary size (leave it
out, or pass ``num_outputs == vocab_size``; anything else is an error). The input and
output embeddings are tied (one ``(V, C)`` matrix), which saves ``V·C`` parameters and
is why saving needs ``safetensors.torch.save_model`` rather than ``save_file``.

Padding: sequences are right-padded, and causal attention never lets a real token look at
a later (padding) position, so ``attention_mask`` is accepted for the common interface but
not needed; the logits at padding positions are simply ignored by the loss.
"""

from __future__ import annotations

import torch
from torch import nn

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights
from modelyard.plugins.models.layers import Dropout
from modelyard.plugins.models.transformer import TransformerBlock, feed_forward_width


class GPT(nn.Module):
    """Token + position embeddings → causal pre-LN blocks → final LN → tied output projection.

    ``forward(input_ids (B, T) long, attention_mask=None) -> logits (B, T, V)``.
    """

    def __init__(self, *, vocab_size: int, max_length: int, d_model: int, layers: int, heads: int, d_ff: int,
                 dropout: float, attention_dropout: float) -> None:
        super().__init__()
        self.max_length = max_length
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_length, d_model)
        self.emb_dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, heads, d_ff, dropout=dropout, attention_dropout=attention_dropout, causal=True)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.lm_head = nn.Linear(d_model, vocab_size, bias=False)
        # Weight tying (Press & Wolf 2017): one (V, C) matrix embeds and un-embeds tokens.
        self.lm_head.weight = self.tok_emb.weight

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        """Next-token logits for every position; ``attention_mask`` is unused (see the module docstring)."""
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds the model's max_length {self.max_length}")
        x = self.emb_dropout(self.tok_emb(input_ids) + self.pos_emb.weight[:length])  # (B, T, C)
        for block in self.blocks:
            x = block(x)
        return self.lm_head(self.ln_f(x))  # (B, T, V)


@register_model("gpt", modality="tokens")
def gpt(*, vocab_size: int, max_length: int, num_outputs: int | None = None, d_model: int = 256, layers: int = 4,
        heads: int = 4, ff_mult: float = 4.0, d_ff: int | None = None, dropout: float = 0.1,
        attention_dropout: float = 0.0, init: InitScheme = "normal") -> nn.Module:
    """A decoder-only causal language model with tied input/output embeddings.

    Args:
        vocab_size: token vocabulary size V.
        max_length: context length (size of the learned position table).
        num_outputs: must equal ``vocab_size`` (the model predicts a token); ``None`` means that.
        d_model: model width C.
        layers: number of transformer blocks.
        heads: attention heads (must divide ``d_model``).
        ff_mult: MLP width as a multiple of ``d_model`` (ignored when ``d_ff`` is set).
        d_ff: MLP hidden width.
        dropout: dropout on embeddings and residual branches.
        attention_dropout: dropout on attention probabilities.
        init: weight initialisation scheme (``normal`` = N(0, 0.02), as GPT-2).

    Returns:
        A module mapping ``input_ids (B, T)`` to logits ``(B, T, V)``.

    Raises:
        ValueError: ``num_outputs`` differs from ``vocab_size``.
    """
    if num_outputs is not None and num_outputs != vocab_size:
        raise ValueError(f"gpt predicts tokens: num_outputs ({num_outputs}) must equal vocab_size ({vocab_size})")
    model = GPT(vocab_size=vocab_size, max_length=max_length, d_model=d_model, layers=layers, heads=heads,
                d_ff=feed_forward_width(d_model, ff_mult, d_ff), dropout=dropout,
                attention_dropout=attention_dropout)
    return init_weights(model, init)


# Tells generic code (``modelyard.testing``, the trainer) that outputs are (B, T, num_outputs), not (B, num_outputs).
gpt.output_layout = "per_token"  # type: ignore[attr-defined]


@torch.no_grad()
def generate(model: nn.Module, input_ids: torch.Tensor, max_new_tokens: int, temperature: float = 1.0,
             top_k: int | None = None, *, generator: torch.Generator | None = None) -> torch.Tensor:
    """Append ``max_new_tokens`` sampled tokens to ``input_ids`` (B, T) and return (B, T + new).

    No KV cache: each step re-runs the (cropped) context, which is fine for the small
    models this is meant for. Put the model in eval mode first (dropout stays as it is).

    Args:
        model: a ``gpt`` model (any module mapping (B, T) ids to (B, T, V) logits).
        input_ids: prompt token ids (B, T), at least one token per row.
        max_new_tokens: how many tokens to append.
        temperature: softmax temperature; ``0`` picks the most likely token (greedy).
        top_k: sample only among the ``top_k`` most likely tokens.
        generator: random generator, for reproducible samples.

    Returns:
        The prompt followed by the generated tokens, (B, T + max_new_tokens) long.
    """
    if input_ids.ndim != 2 or input_ids.shape[1] == 0:
        raise ValueError("input_ids must be (B, T) with T >= 1")
    if temperature < 0:
        raise ValueError(f"temperature must be >= 0, got {temperature}")
    context_size = getattr(model, "max_length", None)
    ids = input_ids
    for _ in range(max_new_tokens):
        context = ids if context_size is None else ids[:, -context_size:]  # crop to the position table
        logits = model(context)[:, -1, :]  # (B, V): only the last position predicts the next token
        if temperature == 0:
            next_id = logits.argmax(dim=-1, keepdim=True)  # (B, 1)
        else:
            logits = logits / temperature
            if top_k is not None:
                kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[:, -1:]  # (B, 1)
                logits = logits.masked_fill(logits < kth, float("-inf"))
            probs = torch.softmax(logits, dim=-1)
            next_id = torch.multinomial(probs, num_samples=1, generator=generator)  # (B, 1)
        ids = torch.cat([ids, next_id], dim=1)
    return ids


__all__ = ["GPT", "generate", "gpt"]
