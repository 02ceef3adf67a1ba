"""int8 torch models: the two quantization transforms and a pickle-free file format.

A quantized module's ``state_dict`` holds quantized tensors (int8 values + per-channel
scales), packed-parameter tuples and dtypes, none of which safetensors stores directly.
:func:`save_quantized` flattens them into plain tensors (``key#int``, ``key#scale``,
``key#zero_point``) plus a JSON *layout* in the safetensors metadata; :func:`load_quantized`
rebuilds the fp32 module from the spec, re-applies the same deterministic transform
(recorded in ``spec["quantization"]``) to get the quantized *structure*, and loads the
decoded state strictly. Nothing is unpickled, and the file holds int8 weights, so it is
about 4x smaller than the fp32 one.

Dynamic int8 LSTM/GRU layers keep their weights inside TorchScript ``CellParamsBase``
objects that only pickle can serialise. For those layers the file holds what the objects
are made of instead — each ``weight_{ih,hh}_l{k}[_reverse]`` as an int8 tensor with its
scale and zero point, and each bias in fp32 (``get_weight()`` / ``get_bias()``) — under a
separate ``rnn`` entry of the layout; loading packs them again with ``set_weight_bias``, the
same call torch's own ``from_float`` path ends in.

torch 2.13 marks ``torch.ao.quantization`` deprecated in favour of torchao; it still
works and is what runs int8 kernels on CPU here, so its deprecation warning is silenced
at the two call sites (see ``docs/compression.md``).
"""

from __future__ import annotations

import json
import warnings
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from torch import nn

from modelyard.core.atomic import atomic_write_json
from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.manifest import looks_like_pickle

WEIGHTS = "weights.safetensors"
SPEC = "spec.json"
# One metadata entry, JSON {"layout": …, "versions": …}: safetensors writes several metadata
# entries in hash-map order, which would make identical content hash differently. "versions"
# are the per-module state versions (``state_dict()._metadata``): quantized modules read their
# serialisation version from them and assume a legacy layout when they are absent.
LAYOUT_KEY = "modelyard.quantized"
INT8_DYNAMIC = "torch-int8-dynamic"
INT8_STATIC = "torch-int8-static"

# Layer kinds dynamic quantization handles (weights int8, activations quantized on the fly).
# ``embedding``: weight-only int8 lookup tables (one float scale and offset per row); this is
# where most of a small transformer's bytes are (MiniLM: 12 M of 23 M parameters).
DYNAMIC_LAYERS: dict[str, type[nn.Module]] = {"linear": nn.Linear, "lstm": nn.LSTM, "gru": nn.GRU,
                                              "embedding": nn.Embedding}


@contextmanager
def _quiet_ao() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"torch\.ao\.quantization is deprecated", category=DeprecationWarning)
        warnings.filterwarnings("ignore", message=r".*quantized tensor creation functions.*", category=UserWarning)
        # FX observers warn about reduce_range on every x86 model; it is the right setting without VNNI.
        warnings.filterwarnings("ignore", message=r".*reduce_range.*", category=UserWarning)
        yield


def _skip_spec(module: nn.Module, skip: Sequence[str]) -> None:
    names = {name for name, _ in module.named_modules()}
    for name in skip:
        if name not in names:
            raise ConfigError(f"no layer named {name!r} to keep in fp32", where="compress.variants[].skip",
                              hint=f"layers: {', '.join(sorted(n for n in names if n)[:12])}")


def quantize_dynamic_module(module: nn.Module, *, layers: Sequence[str] = ("linear", "lstm", "gru"),
                            per_channel: bool = True, skip: Sequence[str] = ()) -> nn.Module:
    """Dynamic int8: weights of the chosen layer kinds become int8, activations are quantized per batch.

    Args:
        module: an fp32 module in eval mode (not modified: a quantized copy is returned).
        layers: layer kinds to quantize (``linear``, ``lstm``, ``gru``).
        per_channel: one scale per output channel (much better accuracy than one per tensor).
        skip: qualified module names kept in fp32 (e.g. the classification head).
    """
    from torch.ao.quantization import (
        default_dynamic_qconfig,
        float_qparams_weight_only_qconfig,
        per_channel_dynamic_qconfig,
        quantize_dynamic,
    )

    module = merged_adapters(module)  # skip names the merged layout (backbone.encoder..., no peft prefixes)
    _skip_spec(module, skip)
    qconfig = per_channel_dynamic_qconfig if per_channel else default_dynamic_qconfig
    kinds = tuple(DYNAMIC_LAYERS[name] for name in layers)
    # Name-keyed spec: every layer of a chosen kind, minus the skipped ones (a None qconfig keeps fp32).
    spec: dict[str, Any] = {}
    for name, child in module.named_modules():
        if not name or not isinstance(child, kinds):
            continue
        if any(name == s or name.startswith(s + ".") for s in skip):
            continue
        if isinstance(child, nn.Embedding):
            spec[name] = float_qparams_weight_only_qconfig
        else:  # LSTM/GRU have no per-channel dynamic kernel: they take the per-tensor qconfig.
            spec[name] = qconfig if isinstance(child, nn.Linear) else default_dynamic_qconfig
    with _quiet_ao():
        quantized: nn.Module = quantize_dynamic(module.eval(), spec, dtype=torch.qint8)
    for child in quantized.modules():
        if isinstance(child, torch.ao.nn.quantized.Embedding):
            child.register_forward_pre_hook(_contiguous_indices)
    return quantized


def _contiguous_indices(module: nn.Module, args: tuple[Any, ...]) -> tuple[Any, ...]:
    """The int8 embedding kernel needs contiguous indices; a float table takes any view (e.g. ids with
    their padding columns sliced off, or BERT's expanded token types), so callers pass them freely."""
    return tuple(a.contiguous() if isinstance(a, torch.Tensor) else a for a in args)


def merged_adapters(module: nn.Module) -> nn.Module:
    """``module`` with every peft adapter model (LoRA) merged into its base weights, as a copy.

    int8 kernels replace plain ``nn.Linear`` layers; a LoRA layer reads its base layer's float
    ``weight``, which a quantized Linear no longer has. Merged, the adapters cost nothing at
    inference and the backbone is an ordinary model. Without adapters ``module`` is returned as is.
    """
    if not any(callable(getattr(sub, "merge_and_unload", None)) for sub in module.modules()):
        return module
    import copy

    module = copy.deepcopy(module)

    def merge_below(parent: nn.Module) -> None:
        for name, child in list(parent.named_children()):
            merge = getattr(child, "merge_and_unload", None)
            if callable(merge):
                setattr(parent, name, merge())
            else:
                merge_below(child)

    merge = getattr(module, "merge_and_unload", None)
    if callable(merge):
        return merge()  # type: ignore[no-any-return]
    merge_below(module)
    return module


def quantize_static_module(module: nn.Module, *, example: tuple[torch.Tensor, ...],
                           calibration: Iterable[tuple[torch.Tensor, ...]], per_channel: bool = True,
                           skip: Sequence[str] = ()) -> nn.Module:
    """Static post-training int8 (FX graph mode): conv/bn/relu fused, activations calibrated.

    Args:
        module: an fp32 module in eval mode (deep-copied, not modified).
        example: one example input tuple (traces the graph).
        calibration: batches run through the observed model to fix activation ranges.
        per_channel: per-channel weight scales (x86 default) or one per tensor.
        skip: qualified module names kept in fp32.
    """
    import copy

    from torch.ao.quantization import QConfigMapping, default_qconfig, get_default_qconfig_mapping
    from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx

    _skip_spec(module, skip)
    with _quiet_ao():
        mapping = get_default_qconfig_mapping("x86") if per_channel else QConfigMapping().set_global(default_qconfig)
        for name in skip:
            mapping.set_module_name(name, None)
        prepared = prepare_fx(copy.deepcopy(module).eval(), mapping, example_inputs=example)
        with torch.inference_mode():
            for batch in calibration:
                prepared(*batch)
        return convert_fx(prepared)  # type: ignore[no-any-return]


def rebuild_structure(fp32: nn.Module, quantization: Mapping[str, Any]) -> nn.Module:
    """The quantized module *structure* recorded in a spec, with placeholder values to be overwritten."""
    kind = quantization.get("format")
    if kind == INT8_DYNAMIC:
        return quantize_dynamic_module(fp32, layers=quantization["layers"], per_channel=quantization["per_channel"],
                                       skip=quantization["skip"])
    if kind == INT8_STATIC:
        example = _example_from(quantization["example"])
        return quantize_static_module(fp32, example=example, calibration=[example],
                                      per_channel=quantization["per_channel"], skip=quantization["skip"])
    raise ArtifactError(f"unknown quantization format {kind!r} in spec.json")


def _example_from(description: Sequence[Mapping[str, Any]]) -> tuple[torch.Tensor, ...]:
    return tuple(torch.zeros(*item["shape"], dtype=getattr(torch, item["dtype"])) for item in description)


def describe_example(example: tuple[torch.Tensor, ...]) -> list[dict[str, Any]]:
    """Shapes and dtypes of an example input (recorded so loading can trace the same graph)."""
    return [{"shape": list(t.shape), "dtype": str(t.dtype).removeprefix("torch.")} for t in example]


# ---- the file format --------------------------------------------------------------------------

def encode_state(state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split a (quantized) state dict into plain tensors and a JSON layout describing how to rebuild it.

    Raises:
        ArtifactError: an entry that cannot be stored without pickle (e.g. an LSTM's packed cell).
    """
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {}

    def put(key: str, value: Any) -> dict[str, Any]:
        if value is None:
            return {"kind": "none"}
        if isinstance(value, torch.dtype):
            return {"kind": "dtype", "value": str(value).removeprefix("torch.")}
        if isinstance(value, torch.Tensor) and value.is_quantized:
            tensors[f"{key}#int"] = value.int_repr().contiguous()
            if value.qscheme() in (torch.per_channel_affine, torch.per_channel_symmetric,
                                   torch.per_channel_affine_float_qparams):
                scales, zero_points = value.q_per_channel_scales(), value.q_per_channel_zero_points()
                # Observers compute scales in fp32, so fp32 storage is exact (checked); zero points fit int16.
                narrow = scales.float()
                tensors[f"{key}#scale"] = (narrow if torch.equal(narrow.double(), scales) else scales).contiguous()
                # Embedding tables have float zero points (per_channel_affine_float_qparams).
                tensors[f"{key}#zero_point"] = (zero_points if zero_points.is_floating_point()
                                                else zero_points.to(torch.int16)).contiguous()
                return {"kind": "qchannel", "axis": int(value.q_per_channel_axis()),
                        "dtype": str(value.dtype).removeprefix("torch.")}
            return {"kind": "qtensor", "scale": float(value.q_scale()), "zero_point": int(value.q_zero_point()),
                    "dtype": str(value.dtype).removeprefix("torch.")}
        if isinstance(value, torch.Tensor):
            # clone: safetensors refuses tensors that share storage (views of one buffer).
            tensors[key] = value.detach().clone().contiguous()
            return {"kind": "tensor"}
        if isinstance(value, tuple | list):
            return {"kind": "tuple", "items": [put(f"{key}#{i}", item) for i, item in enumerate(value)]}
        raise ArtifactError(f"state entry {key!r} ({type(value).__name__}) cannot be saved without pickle",
                            hint="this layer type has no pickle-free int8 format yet; keep it in fp32 (skip)")

    for key, value in state.items():
        layout[key] = put(key, value)
    return tensors, layout


def decode_state(tensors: Mapping[str, torch.Tensor], layout: Mapping[str, Any]) -> dict[str, Any]:
    """Inverse of :func:`encode_state`."""

    def get(key: str, entry: Mapping[str, Any]) -> Any:
        kind = entry["kind"]
        if kind == "none":
            return None
        if kind == "dtype":
            return getattr(torch, entry["value"])
        if kind == "tensor":
            return tensors[key]
        if kind == "qchannel":
            return torch._make_per_channel_quantized_tensor(tensors[f"{key}#int"], tensors[f"{key}#scale"].double(),
                                                            _zero_points(tensors[f"{key}#zero_point"]),
                                                            entry["axis"])
        if kind == "qtensor":
            return torch._make_per_tensor_quantized_tensor(tensors[f"{key}#int"], entry["scale"], entry["zero_point"])
        if kind == "tuple":
            return tuple(get(f"{key}#{i}", item) for i, item in enumerate(entry["items"]))
        raise ArtifactError(f"unknown entry kind {kind!r} for {key!r} in the quantized weights' layout")

    return {key: get(key, entry) for key, entry in layout.items()}


def _zero_points(stored: torch.Tensor) -> torch.Tensor:
    return stored if stored.is_floating_point() else stored.long()


def _quantized_rnns(module: nn.Module) -> dict[str, nn.Module]:
    """The dynamic int8 LSTM/GRU submodules of ``module`` by qualified name."""
    from torch.ao.nn.quantized.dynamic import GRU as QGRU
    from torch.ao.nn.quantized.dynamic import LSTM as QLSTM

    return {name: child for name, child in module.named_modules() if isinstance(child, QLSTM | QGRU)}


def encode_rnns(module: nn.Module, state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Take the packed LSTM/GRU cells out of ``state`` (in place) and encode their int8 weights and biases.

    Returns:
        (tensors, layout ``{module name: {parameter name: entry}}``).
    """
    tensors: dict[str, torch.Tensor] = {}
    layout: dict[str, Any] = {}
    for name, rnn in _quantized_rnns(module).items():
        packed = f"{name}._all_weight_values."
        for key in [k for k in state if k.startswith(packed)]:
            del state[key]
        params = {**rnn.get_weight(), **rnn.get_bias()}  # type: ignore[operator]
        part_tensors, part_layout = encode_state({f"{name}.{k}": v for k, v in params.items()})
        tensors.update(part_tensors)
        layout[name] = {key.removeprefix(f"{name}."): entry for key, entry in part_layout.items()}
    return tensors, layout


def decode_rnns(module: nn.Module, tensors: Mapping[str, torch.Tensor], layout: Mapping[str, Any],
                state: dict[str, Any]) -> None:
    """Pack the stored LSTM/GRU weights into ``module``'s rebuilt int8 cells and add those cells to ``state``.

    Raises:
        ArtifactError: a recorded layer that the rebuilt model does not have, or missing parameters.
    """
    rnns = _quantized_rnns(module)
    for name, entries in layout.items():
        if name not in rnns:
            raise ArtifactError(f"the quantized weights hold an int8 recurrent layer {name!r} the rebuilt model lacks")
        params = decode_state(tensors, {f"{name}.{k}": entry for k, entry in entries.items()})
        try:
            rnns[name].set_weight_bias({k.removeprefix(f"{name}."): v for k, v in params.items()})  # type: ignore[operator]
        except KeyError as exc:
            raise ArtifactError(f"int8 recurrent layer {name!r} lacks {exc} in the quantized weights") from None
        state.update({k: v for k, v in rnns[name].state_dict(prefix=f"{name}.").items() if "_all_weight_values." in k})


def save_quantized(folder: Path, module: nn.Module, spec: Mapping[str, Any]) -> None:
    """Write a quantized module (int8 safetensors + layout) and its spec into a staging folder."""
    for key in ("plugin", "kwargs", "task", "quantization"):
        if key not in spec:
            raise ArtifactError(f"quantized model spec lacks {key!r}")
    state = module.state_dict()
    versions = {prefix: dict(meta) for prefix, meta in getattr(state, "_metadata", {}).items()}
    rnn_tensors, rnn_layout = encode_rnns(module, state)
    tensors, layout = encode_state(state)
    tensors.update(rnn_tensors)
    record: dict[str, Any] = {"layout": layout, "versions": versions}
    if rnn_layout:
        record["rnn"] = rnn_layout
    save_file(tensors, str(folder / WEIGHTS), metadata={LAYOUT_KEY: json.dumps(record, sort_keys=True)})
    atomic_write_json(folder / SPEC, dict(spec))


def load_quantized(path: Path, spec: dict[str, Any], build_fp32: Callable[[dict[str, Any]], nn.Module]
                   ) -> nn.Module:
    """Rebuild the quantized module of the artifact at ``path`` (no pickle).

    Raises:
        ArtifactError: missing, pickled or inconsistent weights.
    """
    weights = path / WEIGHTS
    if not weights.is_file():
        raise ArtifactError("quantized model artifact has no weights.safetensors", where=str(path))
    if looks_like_pickle(weights):
        raise ArtifactError("weights file is a pickle, not safetensors: refused", where=str(weights))
    try:
        with safe_open(str(weights), framework="pt") as handle:
            metadata = handle.metadata() or {}
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}
    except (SafetensorError, OSError) as exc:
        raise ArtifactError(f"cannot read quantized weights: {exc}", where=str(weights)) from exc
    if LAYOUT_KEY not in metadata:
        raise ArtifactError("quantized weights lack their layout metadata", where=str(weights))
    record = json.loads(metadata[LAYOUT_KEY])
    with _quiet_ao():
        state = OrderedDict(decode_state(tensors, record["layout"]))
    state._metadata = OrderedDict(record["versions"])  # type: ignore[attr-defined]
    module = rebuild_structure(build_fp32(spec).eval(), spec["quantization"])
    with _quiet_ao():
        decode_rnns(module, tensors, record.get("rnn", {}), state)
    try:
        module.load_state_dict(state, strict=True)
    except (RuntimeError, KeyError) as exc:
        raise ArtifactError(f"quantized weights do not fit the rebuilt model: {exc}", where=str(weights)) from exc
    return module.eval()


__all__ = ["DYNAMIC_LAYERS", "INT8_DYNAMIC", "INT8_STATIC", "decode_rnns", "decode_state", "describe_example",
           "encode_rnns", "encode_state",
           "load_quantized", "quantize_dynamic_module", "quantize_static_module", "rebuild_structure",
           "save_quantized"]
