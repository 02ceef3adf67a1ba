"""core: hashing, atomic writes, manifests, the plugin registry, safe names."""

from __future__ import annotations

import os
import pickle
from pathlib import Path

import pytest

from modelyard.core import (
    ArtifactError,
    ConfigError,
    PluginError,
    Registry,
    atomic_write_bytes,
    build_manifest,
    check_name,
    sha256_bytes,
    tree_digest,
    verify_tree,
)
from modelyard.core.manifest import MANIFEST_NAME, looks_like_pickle


def test_sha256_known_value() -> None:
    # RFC 6234 test vector for "abc".
    assert sha256_bytes(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_tree_digest_ignores_order_but_not_content() -> None:
    a = tree_digest({"x": "1", "y": "2"})
    assert a == tree_digest({"y": "2", "x": "1"})
    assert a != tree_digest({"x": "1", "y": "3"})
    assert a != tree_digest({"x": "1", "z": "2"})


def test_atomic_write_leaves_no_temp_files_and_replaces(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "f.bin"
    atomic_write_bytes(target, b"one")
    atomic_write_bytes(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in target.parent.iterdir()] == ["f.bin"]


def test_atomic_write_failure_keeps_old_content(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "f.txt"
    atomic_write_bytes(target, b"old")

    def boom(*_a: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", boom)
    with pytest.raises(OSError):
        atomic_write_bytes(target, b"new")
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.txt"]


def _artifact(tmp_path: Path) -> Path:
    root = tmp_path / "art"
    (root / "sub").mkdir(parents=True)
    (root / "a.json").write_text('{"a": 1}')
    (root / "sub" / "b.txt").write_text("hello")
    manifest = build_manifest(root, kind="report")
    (root / MANIFEST_NAME).write_text(manifest.to_json())
    return root


def test_manifest_verifies_and_names_the_tampered_file(tmp_path: Path) -> None:
    root = _artifact(tmp_path)
    manifest = verify_tree(root)
    assert set(manifest.files) == {"a.json", "sub/b.txt"}
    assert manifest.files["sub/b.txt"]["size"] == 5
    (root / "sub" / "b.txt").write_text("hellO")
    with pytest.raises(ArtifactError, match=r"sub/b.txt.*sha256 mismatch"):
        verify_tree(root)


def test_manifest_refuses_extra_missing_and_wrong_id(tmp_path: Path) -> None:
    root = _artifact(tmp_path)
    digest = verify_tree(root).digest
    with pytest.raises(ArtifactError, match="does not match its id"):
        verify_tree(root, expected_id="0" * 64)
    (root / "extra.txt").write_text("x")
    with pytest.raises(ArtifactError, match="not listed"):
        verify_tree(root, expected_id=digest)
    (root / "extra.txt").unlink()
    (root / "a.json").unlink()
    with pytest.raises(ArtifactError, match="missing"):
        verify_tree(root)


def test_manifest_refuses_pickle_suffixes_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "p"
    root.mkdir()
    (root / "model.pt").write_bytes(pickle.dumps({"w": 1}))
    with pytest.raises(ArtifactError, match="pickle"):
        build_manifest(root, kind="model")
    (root / "model.pt").unlink()
    (root / "link").symlink_to("/etc/passwd")
    with pytest.raises(ArtifactError, match="symlink"):
        build_manifest(root, kind="model")


def test_looks_like_pickle(tmp_path: Path) -> None:
    pkl = tmp_path / "x.safetensors"
    pkl.write_bytes(pickle.dumps([1, 2]))
    assert looks_like_pickle(pkl)
    ok = tmp_path / "y.safetensors"
    ok.write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{}")
    assert not looks_like_pickle(ok)


@pytest.mark.parametrize("header_len", [640, 896, 1152, 1408])
def test_safetensors_whose_length_prefix_looks_like_a_pickle_is_not_refused(tmp_path: Path,
                                                                             header_len: int) -> None:
    # 640 = 0x0280: the file starts with b"\x80\x02", pickle protocol 2's magic.
    import numpy as np
    from safetensors.numpy import load_file, save_file

    path = tmp_path / "w.safetensors"
    for width in range(1, 1500):
        save_file({"w": np.zeros(1, np.float32), "pad": np.zeros(1, np.float32)}, str(path),
                  metadata={"p": "x" * width})
        if int.from_bytes(path.read_bytes()[:8], "little") == header_len:
            break
    else:
        pytest.skip(f"could not build a safetensors header of {header_len} bytes")
    assert path.read_bytes()[:2] in {b"\x80\x02", b"\x80\x03", b"\x80\x04", b"\x80\x05"}
    assert not looks_like_pickle(path)
    assert load_file(str(path))["w"].shape == (1,)
    # A real pickle is still refused whatever its size.
    (tmp_path / "p.safetensors").write_bytes(pickle.dumps(list(range(2000)), protocol=2))
    assert looks_like_pickle(tmp_path / "p.safetensors")


def test_registry_did_you_mean_and_duplicates() -> None:
    reg: Registry = Registry("widget")

    @reg.register("transformer-encoder")
    def _a() -> int:
        return 1

    assert reg.get("transformer-encoder")() == 1
    with pytest.raises(PluginError, match=r"unknown widget 'transformer-encodr' \(did you mean 'transformer-encoder'"):
        reg.get("transformer-encodr")
    with pytest.raises(PluginError, match=r"known: transformer-encoder"):
        reg.get("zzz")
    with pytest.raises(PluginError, match="already registered"):
        reg.register("transformer-encoder")(lambda: 2)


@pytest.mark.parametrize("bad", ["", "..", "../x", "a/b", "a\\b", "/abs", "a\x00b", "%2e%2e%2f", "a b", ".hidden",
                                 "-flag", "x" * 200, "a..b"])
def test_check_name_refuses_path_tricks(bad: str) -> None:
    with pytest.raises(ConfigError):
        check_name(bad)


@pytest.mark.parametrize("good", ["digits-cnn", "model_2", "v1.2", "A"])
def test_check_name_accepts_plain_names(good: str) -> None:
    assert check_name(good) == good
