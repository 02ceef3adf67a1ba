"""``transformer-encoder``: a BERT-like encoder for token sequences, and the blocks ``gpt`` reuses.

Token + learned position embeddings, pre-LN blocks (LayerNorm before attention and MLP, as
in GPT-2; it trains without warm-up tricks that post-LN BERT needs), a final LayerNorm,
pooling over valid tokens (mean) or the first token (CLS), and a linear head.

Efficiency notes (the model is benchmarked against HF ``BertModel`` in
``benchmarks/train_encoder_vs_hf.py``):

- q, k and v come from one fused ``Linear(C, 3C)``: one GEMM instead of three, and the
  per-head tensors are strided views of its output (no copies, forward or backward).
- attention is ``torch.nn.functional.scaled_dot_product_attention``, which picks the
  fused (flash / memory-efficient) kernel for the device; the padding mask is a
  broadcast ``(B, 1, 1, T)`` boolean, never materialised as ``(B, H, T, T)``.
- an all-valid batch drops the mask entirely, so the kernel's mask-free path is used.
- dropout uses :class:`~modelyard.plugins.models.layers.Dropout`, ~2x faster than
  ``nn.Dropout`` on CPU.
- attention-probability dropout defaults to 0: with ``dropout_p > 0`` the CPU kernel
  falls back to the slow math path, and modern encoders train well without it.
"""

from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights
from modelyard.plugins.models.layers import Dropout, masked_mean

Pooling = Literal["mean", "cls"]


class SelfAttention(nn.Module):
    """Multi-head self-attention with a fused QKV projection and SDPA.

    Args:
        d_model: model width C.
        heads: number of heads H.
        head_dim: width Dh of one head; None = ``C // H`` (then ``C % H == 0``). The
            attention width ``A = H * Dh`` may differ from C: structured pruning removes
            whole heads and keeps Dh (``compress/prune.py``).
        dropout: dropout on the output projection (residual branch).
        attention_dropout: dropout on the attention probabilities (training only).
        causal: mask future positions (decoder); then no padding mask is taken.
    """

    def __init__(self, d_model: int, heads: int, *, head_dim: int | None = None, dropout: float,
                 attention_dropout: float, causal: bool) -> None:
        super().__init__()
        if heads < 1:
            raise ValueError(f"heads must be at least 1, got {heads}")
        if head_dim is None:
            if d_model % heads:
                raise ValueError(f"d_model ({d_model}) must be divisible by heads ({heads})")
            head_dim = d_model // heads
        elif head_dim < 1:
            raise ValueError(f"head_dim must be at least 1, got {head_dim}")
        self.heads = heads
        self.head_dim = head_dim
        self.causal = causal
        self.attention_dropout = attention_dropout
        inner = heads * head_dim
        self.qkv = nn.Linear(d_model, 3 * inner)
        self.proj = nn.Linear(inner, d_model)
        self.dropout = Dropout(dropout)

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        """``x`` (B, T, C); ``attn_mask`` (B, 1, 1, T) bool, True = may be attended to."""
        batch, length, _ = x.shape
        inner = self.heads * self.head_dim
        # (B, T, 3A) -> three (B, T, A) slices -> (B, H, T, Dh) strided views: no copies. Splitting
        # the last dim (rather than viewing (B, T, 3, H, Dh) and unbinding) makes the backward a
        # single ``cat`` into the (B, T, 3A) gradient, not a stack followed by a contiguous copy.
        q, k, v = (part.view(batch, length, self.heads, self.head_dim).transpose(1, 2)
                   for part in self.qkv(x).split(inner, dim=-1))
        y = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask, is_causal=self.causal,
                                           dropout_p=self.attention_dropout if self.training else 0.0)  # (B, H, T, Dh)
        # The fused kernels return (B, H, T, Dh) as a transposed view of a (B, T, H, Dh) buffer,
        # so transposing back is contiguous and the reshape to (B, T, A) copies nothing.
        y = y.transpose(1, 2).reshape(batch, length, inner)
        return self.dropout(self.proj(y))


class TransformerBlock(nn.Module):
    """Pre-LN block: ``x + attn(ln(x))`` then ``x + mlp(ln(x))`` with a GELU MLP.

    Args:
        d_model: model width C.
        heads: attention heads.
        d_ff: hidden width of the MLP.
        head_dim: width of one head (None: ``d_model // heads``).
        dropout: dropout on both residual branches.
        attention_dropout: dropout on attention probabilities.
        causal: decoder-style causal attention.
    """

    def __init__(self, d_model: int, heads: int, d_ff: int, *, dropout: float, attention_dropout: float,
                 causal: bool, head_dim: int | None = None) -> None:
        super().__init__()
        self.ln1 = nn.LayerNorm(d_model)
        self.attn = SelfAttention(d_model, heads, head_dim=head_dim, dropout=dropout,
                                  attention_dropout=attention_dropout, causal=causal)
        self.ln2 = nn.LayerNorm(d_model)
        self.mlp = nn.Sequential(nn.Linear(d_model, d_ff), nn.GELU(), nn.Linear(d_ff, d_model), Dropout(dropout))

    def forward(self, x: torch.Tensor, attn_mask: torch.Tensor | None = None) -> torch.Tensor:
        x = x + self.attn(self.ln1(x), attn_mask)  # (B, T, C)
        return x + self.mlp(self.ln2(x))           # (B, T, C)


class TransformerEncoder(nn.Module):
    """Embeddings → pre-LN blocks → final LN → pooled (mean / CLS) → linear head.

    ``forward(input_ids (B, T) long, attention_mask (B, T) 0/1 or None) -> (B, num_outputs)``.
    Inputs are expected right-padded (the tokenizers do); ``T`` may be shorter than
    ``max_length`` but not longer.
    """

    def __init__(self, *, vocab_size: int, max_length: int, num_outputs: int, d_model: int, layers: int,
                 heads: int, d_ff: int, dropout: float, attention_dropout: float, pooling: Pooling,
                 head_dim: int | None = None) -> None:
        super().__init__()
        if pooling not in ("mean", "cls"):
            raise ValueError(f"pooling must be 'mean' or 'cls', not {pooling!r}")
        self.max_length = max_length
        self.pooling = pooling
        self.tok_emb = nn.Embedding(vocab_size, d_model)
        self.pos_emb = nn.Embedding(max_length, d_model)
        self.emb_dropout = Dropout(dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(d_model, heads, d_ff, dropout=dropout, attention_dropout=attention_dropout, causal=False,
                             head_dim=head_dim)
            for _ in range(layers))
        self.ln_f = nn.LayerNorm(d_model)
        self.head_dropout = Dropout(dropout)
        self.head = nn.Linear(d_model, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        length = input_ids.shape[1]
        if length > self.max_length:
            raise ValueError(f"sequence length {length} exceeds the model's max_length {self.max_length}")
        x = self.emb_dropout(self.tok_emb(input_ids) + self.pos_emb.weight[:length])  # (B, T, C)
        keep = attn_mask = None
        if attention_mask is not None:
            keep = attention_mask.bool()  # (B, T)
            # One host sync buys the mask-free kernel for the common all-valid batch (HF does the same).
            if not bool(keep.all()):
                # A row with no valid token (empty text, no CLS) would softmax over nothing -> NaN;
                # letting every query see position 0 keeps it finite, and pooling ignores it anyway.
                visible = keep.clone()
                visible[:, 0] = True
                attn_mask = visible[:, None, None, :]  # (B, 1, 1, T), broadcast over heads and queries
        for block in self.blocks:
            x = block(x, attn_mask)
        x = self.ln_f(x)  # (B, T, C)
        pooled = masked_mean(x, keep) if self.pooling == "mean" else x[:, 0]  # (B, C)
        return self.head(self.head_dropout(pooled))  # (B, num_outputs)


def feed_forward_width(d_model: int, ff_mult: float, d_ff: int | None) -> int:
    """``d_ff`` when given, else ``ff_mult * d_model``."""
    width = int(d_ff) if d_ff is not None else round(ff_mult * d_model)
    if width <= 0:
        raise ValueError(f"feed-forward width must be positive, got {width}")
    return width


@register_model("transformer-encoder", modality="tokens")
def transformer_encoder(*, vocab_size: int, max_length: int, num_outputs: int, d_model: int = 256,
                        layers: int = 4, heads: int = 4, ff_mult: float = 4.0, d_ff: int | None = None,
                        head_dim: int | None = None, dropout: float = 0.1, attention_dropout: float = 0.0,
                        pooling: Pooling = "mean",
                        init: InitScheme = "normal") -> nn.Module:
    """A BERT-like pre-LN transformer encoder with a pooled classification/regression head.

    Args:
        vocab_size: token vocabulary size V (ids are ``0 .. V-1``).
        max_length: longest sequence; size of the learned position table.
        num_outputs: classes (or 1 for regression).
        d_model: model width C.
        layers: number of transformer blocks.
        heads: attention heads (must divide ``d_model`` unless ``head_dim`` is given).
        ff_mult: MLP width as a multiple of ``d_model`` (ignored when ``d_ff`` is set).
        d_ff: MLP hidden width.
        head_dim: width of one head; None = ``d_model // heads``. Set by structured pruning of
            heads (fewer heads of the same width), rarely by hand.
        dropout: dropout on embeddings, residual branches and before the head.
        attention_dropout: dropout on attention probabilities (0 keeps the fused kernel).
        pooling: ``mean`` over valid tokens, or ``cls`` (the first token; pair it with a
            ``bert``-style tokenizer, which puts ``[CLS]`` there).
        init: weight initialisation scheme (``normal`` = N(0, 0.02), as BERT).

    Returns:
        A module mapping ``(input_ids (B, T), attention_mask (B, T))`` to ``(B, num_outputs)``.
    """
    model = TransformerEncoder(vocab_size=vocab_size, max_length=max_length, num_outputs=num_outputs,
                               d_model=d_model, layers=layers, heads=heads,
                               d_ff=feed_forward_width(d_model, ff_mult, d_ff), dropout=dropout,
                               attention_dropout=attention_dropout, pooling=pooling, head_dim=head_dim)
    return init_weights(model, init)


__all__ = ["SelfAttention", "TransformerBlock", "TransformerEncoder", "feed_forward_width", "transformer_encoder"]
