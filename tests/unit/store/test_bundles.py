"""Export/import bundles: round trip, signatures, and tampering caught before anything is written."""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import save

from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.refs import ModelRef
from modelyard.store.audit import AuditSigner, generate_signing_key, load_public_key
from modelyard.store.bundles import BUNDLE_JSON, export_bundle, import_bundle, read_bundle


def _model(store, seed: int = 0):  # type: ignore[no-untyped-def]
    weights = save({"w": np.random.default_rng(seed).normal(size=(4, 3)).astype(np.float32)})
    with store.artifacts.staging() as folder:
        (folder / "weights.safetensors").write_bytes(weights)
        (folder / "spec.json").write_text(json.dumps({"plugin": "mlp", "task": "classification"}))
        ref = store.artifacts.publish(folder, kind="model")
    return store.models.register("digits", ModelRef(id=ref.id), metrics={"test/accuracy": 0.93},
                                 tags={"team": "vision"}, description="first")


@pytest.fixture
def keypair(tmp_path: Path) -> tuple[Path, Path]:
    private, public = tmp_path / "sign.key", tmp_path / "sign.key.pub"
    generate_signing_key(private, public)
    return private, public


def _rewrite(source: Path, target: Path, change) -> Path:  # type: ignore[no-untyped-def]
    """Copy a bundle member by member, letting ``change(name, data)`` return new bytes (or None to drop)."""
    with tarfile.open(source, "r:gz") as src, tarfile.open(target, "w:gz") as dst:
        for member in src.getmembers():
            data = src.extractfile(member).read()  # type: ignore[union-attr]
            new = change(member.name, data)
            if new is None:
                continue
            info = tarfile.TarInfo(member.name)
            info.size = len(new)
            dst.addfile(info, io.BytesIO(new))
    return target


def test_round_trip_into_another_store(store, tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    from modelyard.store import open_store

    version = _model(store)
    bundle = export_bundle(store, version, tmp_path / "digits.tar.gz", signer=AuditSigner.from_file(keypair[0]))
    with pytest.raises(ConfigError, match="output file exists"):
        export_bundle(store, version, bundle)
    with open_store(tmp_path / "other") as other:
        imported = import_bundle(other, bundle, public_key=load_public_key(keypair[1]), require_signature=True)
        assert imported.uri == "digits@v1" and imported.ref == version.ref  # same content, same id
        assert imported.metrics == {"test/accuracy": 0.93} and imported.tags == {"team": "vision"}
        assert (other.artifacts.path(imported.ref) / "weights.safetensors").read_bytes() == (
            store.artifacts.path(version.ref) / "weights.safetensors").read_bytes()
        entry = other.audit.entries(action="model.import")[0]
        assert entry.details["signature_checked"] is True and entry.details["source"] == "digits@v1"
        assert other.audit.verify().ok
    assert store.audit.entries(action="model.export")[0].target == "digits@v1"


def _assert_nothing_written(store) -> None:  # type: ignore[no-untyped-def]
    assert store.models.list_models() == [] and store.artifacts.ids() == []
    assert list(store.artifacts.tmp.iterdir()) == []


def test_tampered_members_are_refused_before_anything_is_written(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from modelyard.store import open_store

    with open_store(tmp_path / "source") as source:
        bundle = export_bundle(source, _model(source), tmp_path / "b.tar.gz")

    def flip_weights(name: str, data: bytes) -> bytes:
        return data[:-1] + bytes([data[-1] ^ 1]) if name.endswith("weights.safetensors") else data

    def drop_spec(name: str, data: bytes) -> bytes | None:
        return None if name.endswith("spec.json") else data

    def relist(name: str, data: bytes) -> bytes:
        # A consistent forgery: the weights changed AND bundle.json updated to match — the
        # artifact no longer hashes to its id.
        if name == BUNDLE_JSON:
            info = json.loads(data)
            for member, entry in info["files"].items():
                if member.endswith("weights.safetensors"):
                    entry["sha256"] = forged_sha
            return json.dumps(info).encode()
        return flip_weights(name, data)

    import hashlib

    with tarfile.open(bundle, "r:gz") as tar:
        weights = next(m for m in tar.getmembers() if m.name.endswith("weights.safetensors"))
        original = tar.extractfile(weights).read()  # type: ignore[union-attr]
    forged_sha = hashlib.sha256(original[:-1] + bytes([original[-1] ^ 1])).hexdigest()

    cases = {"flip": (flip_weights, "sha256 mismatch"), "drop": (drop_spec, "missing"),
             "relist": (relist, "do not hash to its id")}
    for name, (change, needle) in cases.items():
        bad = _rewrite(bundle, tmp_path / f"{name}.tar.gz", change)
        with pytest.raises(ArtifactError, match=needle):
            import_bundle(store, bad)
        _assert_nothing_written(store)


def test_signatures(store, tmp_path: Path, keypair) -> None:  # type: ignore[no-untyped-def]
    from modelyard.store import open_store

    other_private, other_public = tmp_path / "other.key", tmp_path / "other.key.pub"
    generate_signing_key(other_private, other_public)
    with open_store(tmp_path / "source") as source:
        version = _model(source)
        signed = export_bundle(source, version, tmp_path / "signed.tar.gz", signer=AuditSigner.from_file(keypair[0]))
        unsigned = export_bundle(source, version, tmp_path / "unsigned.tar.gz")
    public = load_public_key(keypair[1])
    with pytest.raises(ArtifactError, match="not signed and a signature is required"):
        import_bundle(store, unsigned, public_key=public, require_signature=True)
    with pytest.raises(ArtifactError, match="signed by key .*, not by the given key"):
        import_bundle(store, signed, public_key=load_public_key(other_public))

    def retitle(name: str, data: bytes) -> bytes:
        if name == BUNDLE_JSON:
            info = json.loads(data)
            info["model"]["description"] = "trust me"
            return json.dumps(info).encode()
        return data

    with pytest.raises(ArtifactError, match="signature is invalid"):
        import_bundle(store, _rewrite(signed, tmp_path / "retitled.tar.gz", retitle), public_key=public)
    _assert_nothing_written(store)
    contents = read_bundle(signed, tmp_path, public_key=public)
    assert contents.signer is not None and contents.info["model"]["name"] == "digits"


def test_not_a_bundle(store, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"\x1f\x8b not really gzip")
    with pytest.raises(ArtifactError, match="bundle"):
        import_bundle(store, junk)
    _assert_nothing_written(store)
