"""Token pieces, the token embedding lookup, and token IG completeness on a toy model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from modelyard.explain import token_pieces
from modelyard.explain.gradients import token_embedding, token_integrated_gradients
from modelyard.plugins.tokenizers.char import CharTokenizer
from modelyard.report.explanation import highlighted_tokens


class Bag(nn.Module):
    """Mean-pooled embeddings → linear head: small, but nonlinear enough through the mask."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.pos = nn.Embedding(8, 4)
        self.emb = nn.Embedding(12, 4)
        self.head = nn.Linear(4, 3)

    def forward(self, ids: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        x = torch.tanh(self.emb(ids))
        keep = torch.ones_like(ids) if mask is None else mask
        return self.head((x * keep[..., None]).sum(1) / keep.sum(1, keepdim=True))


class Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.other = nn.Embedding(5, 2)
        self.words = nn.Embedding(30, 2)

    def get_input_embeddings(self) -> nn.Module:
        return self.words


def test_token_embedding_prefers_the_documented_accessor_then_the_vocab_table() -> None:
    wrapper = nn.Sequential(Backbone())
    assert token_embedding(wrapper) is wrapper[0].words
    bag = Bag()
    assert token_embedding(bag, vocab_size=12) is bag.emb and token_embedding(bag) is bag.pos


def test_token_ig_is_complete_and_padding_gets_nothing() -> None:
    bag = Bag().eval()
    ids = np.array([[3, 5, 7, 0], [2, 9, 0, 0]])
    mask = (ids != 0).astype(np.int64)
    target = np.array([0, 2])
    attributions, delta = token_integrated_gradients(bag, ids, mask, target, pad_id=0, steps=64,
                                                     embedding=bag.emb, internal_batch_size=16)
    with torch.no_grad():
        x = bag(torch.as_tensor(ids), torch.as_tensor(mask)).numpy()
        b = bag(torch.zeros_like(torch.as_tensor(ids)), torch.as_tensor(mask)).numpy()
    gap = x[[0, 1], target] - b[[0, 1], target]
    np.testing.assert_allclose(attributions.sum(axis=1), gap, atol=1e-3)
    assert np.all(delta < 1e-3) and np.all(attributions[mask == 0] == 0)


def test_token_pieces_keep_the_texts_spacing() -> None:
    tok = CharTokenizer().fit(["ab c"])
    ids, mask = tok.encode_batch(["ab c"], 8)
    pieces = token_pieces(tok, ids[0][mask[0] == 1])
    assert "".join(pieces).replace("[CLS]", "").replace("[SEP]", "").strip() == "ab c"
    assert token_pieces(tok, [tok.encode_batch([" "], 3)[0][0][1]], bare=True) == ["␣"]


def test_highlighted_text_is_escaped_and_joined_as_asked() -> None:
    page = highlighted_tokens(["<i>", " ok"], [0.2, -0.1], sep="", title="row 1 <x>")
    assert "&lt;i&gt;" in page and "row 1 &lt;x&gt;" in page and "</span><span" in page
    assert "<i>" not in page
