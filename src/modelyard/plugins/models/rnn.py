"""``lstm`` and ``gru``: recurrent sequence classifiers over token ids.

Embedding → (bi)directional multi-layer LSTM/GRU → pooling → dropout → linear head.
Pooling is ``mean`` over valid tokens or ``last``: the final hidden state of each
direction at the sequence's true end (for the backward direction that is position 0).

With an ``attention_mask`` the batch is packed (``pack_padded_sequence``), so the RNN
never reads padding: without packing, the backward direction of a right-padded row would
start its pass on pad tokens, and ``last`` would have to pick states out of padding.
Inputs must be right-padded (the tokenizers pad on the right).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from modelyard.plugins.models import register_model
from modelyard.plugins.models.init import InitScheme, init_weights
from modelyard.plugins.models.layers import Dropout, masked_mean

RNNPooling = Literal["mean", "last"]


class RecurrentClassifier(nn.Module):
    """A token-sequence classifier around ``nn.LSTM`` or ``nn.GRU``.

    ``forward(input_ids (B, T) long, attention_mask (B, T) 0/1 or None) -> (B, num_outputs)``.
    """

    def __init__(self, *, cell: Literal["lstm", "gru"], vocab_size: int, num_outputs: int, embed_dim: int,
                 hidden: int, layers: int, bidirectional: bool, dropout: float, pooling: RNNPooling) -> None:
        super().__init__()
        if pooling not in ("mean", "last"):
            raise ValueError(f"pooling must be 'mean' or 'last', not {pooling!r}")
        if layers < 1:
            raise ValueError(f"layers must be >= 1, got {layers}")
        self.pooling = pooling
        self.directions = 2 if bidirectional else 1
        self.embedding = nn.Embedding(vocab_size, embed_dim)
        rnn_class = nn.LSTM if cell == "lstm" else nn.GRU
        # nn.LSTM/GRU apply their dropout between stacked layers only (and warn when there is one layer).
        self.rnn = rnn_class(embed_dim, hidden, num_layers=layers, batch_first=True, bidirectional=bidirectional,
                             dropout=dropout if layers > 1 else 0.0)
        self.dropout = Dropout(dropout)
        self.head = nn.Linear(hidden * self.directions, num_outputs)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        batch, length = input_ids.shape
        x = self.dropout(self.embedding(input_ids))  # (B, T, E)
        keep = None if attention_mask is None else attention_mask.bool()  # (B, T)
        if keep is None:
            outputs, state = self.rnn(x)  # (B, T, D·H)
        else:
            # Lengths live on the CPU for packing; an empty row is given length 1 (its pad token)
            # so that packing accepts it; its pooled features come out as zeros / a pad-only state.
            lengths = keep.sum(dim=1).clamp(min=1).cpu()
            packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
            packed_out, state = self.rnn(packed)
            outputs, _ = pad_packed_sequence(packed_out, batch_first=True, total_length=length)  # (B, T, D·H)
        if self.pooling == "mean":
            pooled = masked_mean(outputs, keep)  # (B, D·H)
        else:
            hidden = state[0] if isinstance(state, tuple) else state  # LSTM returns (h_n, c_n); (L·D, B, H)
            # The last layer's final state of each direction, at each row's true end (packing saw to that).
            pooled = hidden[-self.directions:].transpose(0, 1).reshape(batch, -1)  # (B, D·H)
        return self.head(self.dropout(pooled))  # (B, num_outputs)


@register_model("lstm", modality="tokens")
def lstm(*, vocab_size: int, max_length: int, num_outputs: int, embed_dim: int = 128, hidden: int = 128,
         layers: int = 1, bidirectional: bool = False, dropout: float = 0.1, pooling: RNNPooling = "mean",
         init: InitScheme = "default") -> nn.Module:
    """An LSTM classifier over token ids.

    Args:
        vocab_size: token vocabulary size V.
        max_length: longest sequence (recorded for the spec; recurrence needs no position table).
        num_outputs: classes (or 1 for regression).
        embed_dim: token embedding width E.
        hidden: hidden size H of each direction.
        layers: stacked recurrent layers.
        bidirectional: also read each sequence right to left (doubles the pooled width).
        dropout: dropout on embeddings, between stacked layers and before the head.
        pooling: ``mean`` over valid tokens or ``last`` (final state of each direction).
        init: weight initialisation scheme (``default`` keeps PyTorch's).

    Returns:
        A module mapping ``(input_ids (B, T), attention_mask (B, T))`` to ``(B, num_outputs)``.
    """
    model = RecurrentClassifier(cell="lstm", vocab_size=vocab_size, num_outputs=num_outputs, embed_dim=embed_dim,
                                hidden=hidden, layers=layers, bidirectional=bidirectional, dropout=dropout,
                                pooling=pooling)
    return init_weights(model, init)


@register_model("gru", modality="tokens")
def gru(*, vocab_size: int, max_length: int, num_outputs: int, embed_dim: int = 128, hidden: int = 128,
        layers: int = 1, bidirectional: bool = False, dropout: float = 0.1, pooling: RNNPooling = "mean",
        init: InitScheme = "default") -> nn.Module:
    """A GRU classifier over token ids: arguments as :func:`lstm` (3 gates instead of 4: fewer parameters)."""
    model = RecurrentClassifier(cell="gru", vocab_size=vocab_size, num_outputs=num_outputs, embed_dim=embed_dim,
                                hidden=hidden, layers=layers, bidirectional=bidirectional, dropout=dropout,
                                pooling=pooling)
    return init_weights(model, init)


__all__ = ["RecurrentClassifier", "gru", "lstm"]
