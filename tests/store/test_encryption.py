"""Encryption at rest: AES-256-GCM artifacts, transparent to stages, clear errors for missing or wrong keys."""

from __future__ import annotations

import base64
import os
from pathlib import Path

import pytest

from modelyard.core.errors import ArtifactError, ConfigError, StoreError
from modelyard.store import crypto, open_store
from modelyard.store.crypto import MAGIC
from tests.conftest import TINY_RECIPE

MARKER = b"ZEBRA-7731-plaintext-canary"


@pytest.fixture
def key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> bytes:
    """A fresh key in $YARD_ENCRYPTION_KEY; plaintext scratch in a folder of the test (stands in for /dev/shm)."""
    raw = os.urandom(32)
    monkeypatch.setenv(crypto.KEY_ENV, base64.b64encode(raw).decode())
    monkeypatch.setenv("YARD_PLAINTEXT_DIR", str(tmp_path / "shm"))
    (tmp_path / "shm").mkdir(mode=0o700)
    return raw


def _encrypted_root(tmp_path: Path, key: bytes) -> Path:
    root = tmp_path / "enc"
    crypto.enable(root, key)
    return root


def _files_containing(folder: Path, needle: bytes) -> list[Path]:
    return [p for p in folder.rglob("*") if p.is_file() and not p.is_symlink() and needle in p.read_bytes()]


def _publish(store, files: dict[str, bytes], kind: str = "dataset"):  # type: ignore[no-untyped-def]
    with store.artifacts.staging() as folder:
        for name, data in files.items():
            (folder / name).write_bytes(data)
        return store.artifacts.publish(folder, kind=kind)


def test_no_plaintext_reaches_the_store_folder(tmp_path: Path, key: bytes) -> None:
    payload = {"train.csv": b"id,text\n1," + MARKER + b"\n" * 3, "big.dat": MARKER + os.urandom(3 << 20) + MARKER}
    root = _encrypted_root(tmp_path, key)
    with open_store(root) as store:
        assert store.encrypted
        ref = _publish(store, payload)
        opened = store.artifacts.path(ref)  # transparent: stages get plain files
        assert (opened / "train.csv").read_bytes() == payload["train.csv"]
        assert (opened / "big.dat").read_bytes() == payload["big.dat"]  # 3 MiB: several 1 MiB chunks
        assert not opened.is_relative_to(root)
        with (ref_dir := store.artifacts.stored_dir(ref.id)).joinpath("train.csv").open("rb") as handle:
            assert handle.read(len(MAGIC)) == MAGIC
        assert _files_containing(root, MARKER) == []
        assert all(p.read_bytes().startswith(MAGIC) for p in ref_dir.rglob("*") if p.is_file())
    # Closing the store removes this process's decrypted copies.
    assert _files_containing(tmp_path / "shm", MARKER) == []
    # The control: the same content in a plaintext store is found on disk, so the search above can fail.
    with open_store(tmp_path / "plain") as plain:
        _publish(plain, payload)
    assert _files_containing(tmp_path / "plain", MARKER)


def test_missing_or_wrong_key_is_a_clear_error(tmp_path: Path, key: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    root = _encrypted_root(tmp_path, key)
    with open_store(root) as store:
        ref = _publish(store, {"a.txt": MARKER})
    monkeypatch.delenv(crypto.KEY_ENV)
    with pytest.raises(StoreError, match="encrypted and no key is set"):
        open_store(root)
    monkeypatch.setenv(crypto.KEY_ENV, base64.b64encode(os.urandom(32)).decode())
    with pytest.raises(StoreError, match="wrong encryption key"):
        open_store(root)
    monkeypatch.setenv(crypto.KEY_ENV, "not a key")
    with pytest.raises(ConfigError, match="32 bytes"):
        open_store(root)
    # A key file must be private (0600).
    monkeypatch.delenv(crypto.KEY_ENV)
    key_file = tmp_path / "store.key"
    key_file.write_text(key.hex() + "\n")
    key_file.chmod(0o644)
    monkeypatch.setenv(crypto.KEY_FILE_ENV, str(key_file))
    with pytest.raises(ConfigError, match="permissions 0644"):
        open_store(root)
    key_file.chmod(0o600)
    with open_store(root) as store:
        assert (store.artifacts.path(ref) / "a.txt").read_bytes() == MARKER


def test_tampered_or_swapped_sealed_files_are_refused(tmp_path: Path, key: bytes) -> None:
    root = _encrypted_root(tmp_path, key)
    with open_store(root) as store:
        one = _publish(store, {"a.txt": b"first"})
        two = _publish(store, {"a.txt": b"second"})
    sealed_one = root / "artifacts" / one.id[:2] / one.id / "a.txt"
    sealed_two = root / "artifacts" / two.id[:2] / two.id / "a.txt"
    original = sealed_one.read_bytes()
    # A file moved from another artifact: bound to its name by the associated data.
    sealed_one.write_bytes(sealed_two.read_bytes())
    with open_store(root) as store, pytest.raises(ArtifactError, match="cannot decrypt"):
        store.artifacts.path(one)
    # One flipped bit in the ciphertext.
    flipped = bytearray(original)
    flipped[-1] ^= 1
    sealed_one.write_bytes(bytes(flipped))
    with open_store(root) as store, pytest.raises(ArtifactError, match="cannot decrypt"):
        store.artifacts.path(one)
    # Truncated to the header.
    sealed_one.write_bytes(original[:15])
    with open_store(root) as store, pytest.raises(ArtifactError, match="cannot decrypt|not an encrypted"):
        store.artifacts.path(one)


def test_only_an_empty_store_can_be_encrypted(tmp_path: Path, key: bytes) -> None:
    with open_store(tmp_path / "s") as store:
        _publish(store, {"a.txt": b"x"})
    with pytest.raises(StoreError, match="already holds plaintext artifacts"):
        crypto.enable(tmp_path / "s", key)


@pytest.mark.slow
def test_pipeline_runs_unchanged_on_an_encrypted_store(tmp_path: Path, key: bytes) -> None:
    from modelyard.config import load_recipe
    from modelyard.pipeline import run_recipe
    from modelyard.runtime import load_model

    recipe_path = tmp_path / "r.yaml"
    recipe_path.write_text(TINY_RECIPE + "explain: {enabled: false}\n")
    root = _encrypted_root(tmp_path, key)
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-unit MLP: threads only add contention on a shared machine
    try:
        with open_store(root) as store:
            result = run_recipe(load_recipe(recipe_path), store, report_dir=tmp_path / "reports")
            assert result.version is not None and result.version.uri == "tiny-iris@v1"
            loaded = load_model(store, result.model)
            assert loaded.spec["label_names"] == ["setosa", "versicolor", "virginica"]
    finally:
        torch.set_num_threads(threads)
    sealed = [p for p in (root / "artifacts").rglob("*") if p.is_file()]
    assert len(sealed) >= 6  # dataset (3 splits, schema, stats, manifest…), model, report
    assert all(p.read_bytes().startswith(MAGIC) for p in sealed)
    # Parquet files, weights and label names never appear in the clear under the store folder
    # (the database keeps run metadata, which is not encrypted: see docs/security.md).
    for needle in (b"PAR1", b"versicolor", b"__metadata__"):
        assert [p for p in _files_containing(root, needle) if p.name not in ("store.db", "store.db-wal")] == []


def test_no_plaintext_report_is_written_inside_an_encrypted_store(tmp_path: Path, key: bytes) -> None:
    from modelyard.report import render_run_report

    with open_store(_encrypted_root(tmp_path, key)) as store:
        run_id = store.runs.create(kind="pipeline", name="x", config={})
        with pytest.raises(StoreError, match="encrypted at rest") as caught:
            render_run_report(store, run_id)
        assert "--out" in (caught.value.hint or "")
        assert not (store.root / "reports").exists()
        written = render_run_report(store, run_id, out_dir=tmp_path / "outside")
        assert written.parent == tmp_path / "outside" and written.is_file()
