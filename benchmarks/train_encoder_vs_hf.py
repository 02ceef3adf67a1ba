"""Training-step speed: our ``transformer-encoder`` vs Hugging Face ``BertModel``, side by side.

Both models get the same size (hidden 256, 4 layers, 4 heads, intermediate 1024, seq 128,
batch 32, the same vocabulary), the same dropout (0.1 on embeddings / residual branches,
0.0 on attention probabilities: with attention dropout the CPU SDPA kernel falls back to
its slow math path, for both models alike), a linear classification head, fp32, and
``torch.set_num_threads(2)``. HF BERT runs with ``attn_implementation="sdpa"`` and its
pooler (``BertForSequenceClassification``'s head: pooler + linear).

We time forward + cross-entropy + backward (gradients zeroed with ``set_to_none``), the
two models interleaved step by step so that a noisy neighbour slows both alike, and report
median step times, their ratio (``hf / ours``: > 1 means ours is faster) and each model's
MFU against a measured fp32 matmul peak (1024² GEMM, best of 20, measured before and after),
and against ``linear_gemm_gflops``, the rate of the model's own Linear GEMM shapes timed
alone (the ceiling for this model size on this machine; see :func:`linear_gemm_gflops`).

FLOPs per step = 6 · N · tokens + 12 · L · T · C · tokens, where N counts the parameters
that take part in matrix multiplies (embedding tables are lookups and are left out) and the
second term is attention's QKᵀ and AV (forward 4·T·C per token per layer, ×3 with backward).

    python benchmarks/train_encoder_vs_hf.py           # full: ~2 minutes on 2 cores
    python benchmarks/train_encoder_vs_hf.py --small   # CI: < 60 s
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from collections.abc import Callable
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import torch
from torch import nn


def best_mm_seconds(m: int, k: int, n: int, *, repeats: int, warmup: int = 1) -> float:
    """Best wall time of one fp32 ``(m, k) @ (k, n)`` over ``repeats`` calls, after ``warmup`` calls."""
    a, b = torch.randn(m, k), torch.randn(k, n)
    for _ in range(warmup):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return best


def matmul_peak_gflops(size: int = 1024, repeats: int = 20) -> float:
    """Best fp32 GEMM rate (GFLOP/s) of ``size``×``size`` matrices: the MFU denominator."""
    return 2 * size**3 / best_mm_seconds(size, size, size, repeats=repeats, warmup=3) / 1e9


def linear_gemm_gflops(tokens: int, hidden: int, ff: int, repeats: int = 5) -> float:
    """The rate (GFLOP/s) of the encoder's own Linear GEMMs, forward and backward, timed alone.

    Per block: QKV (C -> 3C), output projection (C -> C), FFN up (C -> F) and down (F -> C) on
    ``tokens`` rows; each forward ``(M, K) @ (K, N)`` has two backward GEMMs, ``(M, N) @ (N, K)``
    (input gradient) and ``(K, M) @ (M, N)`` (weight gradient). Best of ``repeats`` per shape,
    FLOP-weighted. This is the ceiling a step made only of these matmuls could reach on this
    machine: the 1024² peak is higher because square GEMMs with a long inner dimension run
    closer to the hardware's limit than (4096 × 256) @ (256 × 768).
    """
    shapes = []
    for k, n in ((hidden, 3 * hidden), (hidden, hidden), (hidden, ff), (ff, hidden)):
        shapes += [(tokens, k, n), (tokens, n, k), (k, tokens, n)]
    seconds = flops = 0.0
    for m, k, n in shapes:
        seconds += best_mm_seconds(m, k, n, repeats=repeats)
        flops += 2 * m * k * n
    return flops / seconds / 1e9


def build_ours(vocab: int, seq: int, hidden: int, layers: int, heads: int, ff: int, classes: int) -> nn.Module:
    from modelyard.plugins import MODELS, load_builtins

    load_builtins()
    return MODELS.get("transformer-encoder")(vocab_size=vocab, max_length=seq, num_outputs=classes, d_model=hidden,
                                             layers=layers, heads=heads, d_ff=ff, dropout=0.1,
                                             attention_dropout=0.0, pooling="cls")


class HFBert(nn.Module):
    """``BertModel`` (sdpa) + dropout + linear head on the pooled CLS output, as BertForSequenceClassification."""

    def __init__(self, vocab: int, seq: int, hidden: int, layers: int, heads: int, ff: int, classes: int) -> None:
        super().__init__()
        from transformers import BertConfig, BertModel

        config = BertConfig(vocab_size=vocab, hidden_size=hidden, num_hidden_layers=layers, num_attention_heads=heads,
                            intermediate_size=ff, max_position_embeddings=seq, hidden_dropout_prob=0.1,
                            attention_probs_dropout_prob=0.0, attn_implementation="sdpa")
        self.bert = BertModel(config)
        assert self.bert.config._attn_implementation == "sdpa", self.bert.config._attn_implementation
        self.dropout = nn.Dropout(0.1)
        self.head = nn.Linear(hidden, classes)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None) -> torch.Tensor:
        pooled = self.bert(input_ids=input_ids, attention_mask=attention_mask).pooler_output  # (B, C)
        return self.head(self.dropout(pooled))


def matmul_params(model: nn.Module) -> int:
    """Parameters of every Linear layer (weights and biases): the ones in 6·N·tokens."""
    return sum(p.numel() for m in model.modules() if isinstance(m, nn.Linear) for p in m.parameters(recurse=False))


def step_fn(model: nn.Module, ids: torch.Tensor, mask: torch.Tensor, labels: torch.Tensor) -> Callable[[], None]:
    def step() -> None:
        model.zero_grad(set_to_none=True)
        loss = nn.functional.cross_entropy(model(ids, attention_mask=mask), labels)
        loss.backward()

    return step


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="fewer steps for CI (< 60 s)")
    parser.add_argument("--steps", type=int, default=None, help="timed steps per model")
    parser.add_argument("--vocab", type=int, default=8192)
    parser.add_argument("--padding", type=float, default=0.25,
                        help="share of each sequence's tail that is padding (0 = no mask path)")
    args = parser.parse_args()
    torch.set_num_threads(2)
    torch.manual_seed(0)
    batch, seq, hidden, layers, heads, ff, classes = 32, 128, 256, 4, 4, 1024, 4
    steps = args.steps or (6 if args.small else 30)
    warmup = 2 if args.small else 5

    ids = torch.randint(5, args.vocab, (batch, seq))
    mask = torch.ones(batch, seq, dtype=torch.long)
    # Varying lengths, between (1 - padding)·T and T, so the padding-mask path is what is timed.
    lengths = torch.linspace(seq * (1 - args.padding), seq, batch).long().clamp(1, seq)
    mask[torch.arange(seq)[None, :] >= lengths[:, None]] = 0
    ids = ids * mask
    labels = torch.randint(0, classes, (batch,))

    load_at_start = os.getloadavg()[0]
    peak_before = matmul_peak_gflops()
    models = {"ours": build_ours(args.vocab, seq, hidden, layers, heads, ff, classes),
              "hf_bert": HFBert(args.vocab, seq, hidden, layers, heads, ff, classes)}
    steps_of = {name: step_fn(m.train(), ids, mask, labels) for name, m in models.items()}
    for _ in range(warmup):
        for step in steps_of.values():
            step()
    times: dict[str, list[float]] = {name: [] for name in models}
    order = list(steps_of)
    for _ in range(steps):
        for name in order:  # interleaved: drift hits both alike
            start = time.perf_counter()
            steps_of[name]()
            times[name].append(time.perf_counter() - start)
        order.reverse()  # ABBA: neither model always runs right after the other

    # The machine's capability: the better of two measurements (a busy neighbour lowers one of them).
    peak = max(peak_before, matmul_peak_gflops())
    linear_ceiling = linear_gemm_gflops(batch * seq, hidden, ff)
    tokens = batch * seq
    result: dict[str, Any] = {"benchmark": "train_encoder_vs_hf", "small": args.small, "batch": batch, "seq": seq,
                              "hidden": hidden, "layers": layers, "heads": heads, "intermediate": ff,
                              "vocab": args.vocab, "padding": args.padding, "dtype": "fp32",
                              "threads": torch.get_num_threads(), "steps": steps,
                              "matmul_peak_gflops": round(peak, 1),
                              "linear_gemm_gflops": round(linear_ceiling, 1),
                              # Other processes on the machine slow both models; a load well above
                              # the thread count means the absolute figures are not trustworthy.
                              "load_avg_1m_at_start": round(load_at_start, 2)}
    for name, model in models.items():
        median = statistics.median(times[name])
        flops = 6 * matmul_params(model) * tokens + 12 * layers * seq * hidden * tokens
        result[f"{name}_params"] = sum(p.numel() for p in model.parameters())
        result[f"{name}_step_ms"] = round(median * 1e3, 2)
        result[f"{name}_gflops"] = round(flops / median / 1e9, 1)
        result[f"{name}_mfu"] = round(flops / median / 1e9 / peak, 3)
        # Against what this model's own matmul shapes reach alone: the share of the step that
        # is not GEMM-bound work (attention, norms, GELU, dropout, the optimizer, the framework).
        result[f"{name}_of_linear_ceiling"] = round(flops / median / 1e9 / linear_ceiling, 3)
    result["speedup_vs_hf"] = round(result["hf_bert_step_ms"] / result["ours_step_ms"], 3)
    result["targets"] = {"speedup_vs_hf": ">= 1.05", "ours_mfu": ">= 0.78"}
    print(json.dumps(result))


if __name__ == "__main__":
    main()
