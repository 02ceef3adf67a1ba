"""Export / import a model version as one file: a gzip tar with a manifest of hashes and an optional signature.

Layout (members in this order)::

    bundle.json                      format, model name/version/metrics/tags, the card,
                                     and the sha256 + size of every other member
    bundle.sig                       optional: Ed25519 signature of sha256(bundle.json)
    card.md                          the model card, for people
    artifacts/<id>/manifest.json     the model artifact, file by file
    artifacts/<id>/…

Import reads the tar as a stream and never calls ``extract``: each member's name is
checked (``store/paths.py``: no ``..``, absolute paths, backslashes, encodings, NUL),
only regular files are accepted (no symlinks, hard links, devices), each file is
hashed while it is copied to a private scratch folder and compared with
``bundle.json``, the signature is checked, and the artifact's content digest must equal
its id. Only then is anything published into the store and registered.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import os
import shutil
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from modelyard.core.errors import ArtifactError, ConfigError
from modelyard.core.hashing import sha256_file, tree_digest
from modelyard.core.manifest import MANIFEST_NAME, Manifest
from modelyard.core.names import check_name
from modelyard.core.refs import ModelRef
from modelyard.store.audit import AuditSigner, public_fingerprint
from modelyard.store.cards import build_card, render_markdown
from modelyard.store.paths import check_relpath, ensure_inside
from modelyard.store.registry import ModelVersion

if TYPE_CHECKING:
    from modelyard.store.project import Store

FORMAT = "modelyard-bundle"
FORMAT_VERSION = 1
BUNDLE_JSON = "bundle.json"
BUNDLE_SIG = "bundle.sig"
CARD_MD = "card.md"
MAX_MEMBERS = 10_000
MAX_BUNDLE_JSON = 16 << 20
_COPY_CHUNK = 1 << 20


@dataclass
class BundleContents:
    """A verified bundle, unpacked in a scratch folder."""

    info: dict[str, Any]
    sha256: str
    signer: str | None
    scratch: Path
    artifact_dir: Path
    files: dict[str, dict[str, Any]] = field(default_factory=dict)


def export_bundle(store: Store, version: ModelVersion, out: Path, *, signer: AuditSigner | None = None,
                  overwrite: bool = False, actor: str | None = None) -> Path:
    """Write ``version`` (artifact, metadata, card) to ``out``; atomic, audited.

    Raises:
        ConfigError: ``out`` exists and ``overwrite`` is not set.
    """
    if out.exists() and not overwrite:
        raise ConfigError("output file exists", where=str(out), hint="choose another path or pass --force")
    folder = store.artifacts.path(version.ref)  # verified (and decrypted in an encrypted store)
    manifest = store.artifacts.manifest(version.ref)
    card = build_card(store, version)
    members: list[tuple[str, Path | bytes]] = [(CARD_MD, render_markdown(card).encode())]
    for rel in [*sorted(manifest.files), MANIFEST_NAME]:
        members.append((f"artifacts/{version.ref.id}/{rel}", folder / rel))
    files = {}
    for name, source in members:
        if isinstance(source, bytes):
            files[name] = {"sha256": hashlib.sha256(source).hexdigest(), "size": len(source)}
        else:
            files[name] = {"sha256": sha256_file(source), "size": source.stat().st_size}
    info = {"format": FORMAT, "format_version": FORMAT_VERSION, "created_at": datetime.now(UTC).isoformat(),
            "model": {"name": version.name, "version": version.version, "description": version.description,
                      "metrics": version.metrics, "tags": version.tags, "created_at": version.created_at},
            "artifact": {"id": version.ref.id, "kind": manifest.kind}, "files": files, "card": card}
    info_bytes = (json.dumps(info, indent=2, sort_keys=True, default=str) + "\n").encode()
    out.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=out.parent, prefix=f".{out.name}.", suffix=".tmp")
    os.close(fd)
    try:
        with tarfile.open(tmp, "w:gz") as tar:
            _add_bytes(tar, BUNDLE_JSON, info_bytes)
            if signer is not None:
                signature = {"signer": signer.fingerprint,
                             "signature": signer.sign(hashlib.sha256(info_bytes).hexdigest())}
                _add_bytes(tar, BUNDLE_SIG, json.dumps(signature).encode())
            for name, source in members:
                if isinstance(source, bytes):
                    _add_bytes(tar, name, source)
                else:
                    with open(source, "rb") as handle:
                        tar.addfile(_regular(name, source.stat().st_size), handle)
        os.replace(tmp, out)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    store.audit.append(actor=actor, action="model.export", target=version.uri,
                       details={"file": str(out), "sha256": sha256_file(out), "signed": signer is not None})
    return out


def _regular(name: str, size: int) -> tarfile.TarInfo:
    member = tarfile.TarInfo(name)
    member.size = size
    member.mode = 0o644
    member.mtime = 0  # reproducible bundles: the same version exports to the same bytes but for created_at
    return member


def _add_bytes(tar: tarfile.TarFile, name: str, data: bytes) -> None:
    tar.addfile(_regular(name, len(data)), io.BytesIO(data))


def _check_member_name(name: str) -> str:
    if name.endswith("/"):
        name = name[:-1]
    return check_relpath(name, where=f"bundle member {name!r}")


def read_bundle(path: Path, scratch_parent: Path, *, public_key: Any = None,
                require_signature: bool = False) -> BundleContents:
    """Stream-read and verify a bundle into a scratch folder under ``scratch_parent``.

    The caller removes ``contents.scratch`` when done.

    Raises:
        ArtifactError: any unsafe member, hash mismatch, missing or extra member,
            bad or missing (required) signature, or a digest that is not the artifact id.
    """
    scratch = Path(tempfile.mkdtemp(prefix="bundle-", dir=scratch_parent))
    try:
        return _read_into(path, scratch, public_key=public_key, require_signature=require_signature)
    except BaseException:
        shutil.rmtree(scratch, ignore_errors=True)
        raise


def _read_into(path: Path, scratch: Path, *, public_key: Any, require_signature: bool) -> BundleContents:
    where = str(path)
    info: dict[str, Any] | None = None
    info_sha = ""
    signature: dict[str, Any] | None = None
    seen: dict[str, dict[str, Any]] = {}
    names: set[str] = set()
    try:
        tar = tarfile.open(path, "r|gz")
    except (OSError, tarfile.TarError) as exc:
        raise ArtifactError(f"not a readable bundle: {exc}", where=where) from None
    with tar:
        try:
            for count, member in enumerate(tar):
                if count >= MAX_MEMBERS:
                    raise ArtifactError(f"bundle has more than {MAX_MEMBERS} members", where=where)
                name = _check_member_name(member.name)
                if member.isdir():
                    continue
                if not member.isreg():
                    raise ArtifactError(f"bundle member {name!r} is not a regular file (link or device): refused",
                                        where=where)
                if name in names:
                    raise ArtifactError(f"bundle member {name!r} appears twice", where=where)
                names.add(name)
                handle = tar.extractfile(member)
                assert handle is not None
                if name in (BUNDLE_JSON, BUNDLE_SIG):
                    if name == BUNDLE_JSON and seen:
                        raise ArtifactError("bundle.json must be the first member", where=where)
                    data = handle.read(MAX_BUNDLE_JSON + 1)
                    if len(data) > MAX_BUNDLE_JSON:
                        raise ArtifactError(f"{name} is too large", where=where)
                    try:
                        parsed = json.loads(data)
                    except json.JSONDecodeError as exc:
                        raise ArtifactError(f"{name} is not valid JSON: {exc}", where=where) from None
                    if name == BUNDLE_JSON:
                        info, info_sha = _check_info(parsed, where), hashlib.sha256(data).hexdigest()
                    else:
                        signature = parsed
                    continue
                if info is None:
                    raise ArtifactError("bundle.json must be the first member", where=where)
                listed = info["files"].get(name)
                if listed is None:
                    raise ArtifactError(f"bundle member {name!r} is not listed in bundle.json", where=where)
                if member.size != listed["size"]:
                    raise ArtifactError(f"bundle member {name!r} has {member.size} bytes, bundle.json says "
                                        f"{listed['size']}", where=where)
                target = ensure_inside(scratch, scratch / name, where=f"bundle member {name!r}")
                target.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with open(target, "xb") as out:
                    while chunk := handle.read(_COPY_CHUNK):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != listed["sha256"]:
                    raise ArtifactError(f"bundle member {name!r}: sha256 mismatch with bundle.json", where=where)
                seen[name] = listed
        except (tarfile.TarError, EOFError, OSError) as exc:
            raise ArtifactError(f"corrupt bundle: {exc}", where=where) from None
    if info is None:
        raise ArtifactError("bundle has no bundle.json", where=where)
    missing = sorted(set(info["files"]) - set(seen))
    if missing:
        raise ArtifactError(f"bundle member {missing[0]!r} is listed in bundle.json but missing", where=where)
    signer = _check_signature(signature, info_sha, public_key=public_key, required=require_signature, where=where)
    artifact_id = info["artifact"]["id"]
    artifact_dir = scratch / "artifacts" / artifact_id
    prefix = f"artifacts/{artifact_id}/"
    payload = {n[len(prefix):]: v["sha256"] for n, v in seen.items()
               if n.startswith(prefix) and n != prefix + MANIFEST_NAME}
    others = [n for n in seen if not n.startswith(prefix) and n != CARD_MD]
    if others:
        raise ArtifactError(f"bundle member {others[0]!r} is outside the model artifact", where=where)
    if tree_digest(payload) != artifact_id:
        raise ArtifactError("the artifact's files do not hash to its id (tampered bundle)", where=where)
    manifest_path = artifact_dir / MANIFEST_NAME
    if not manifest_path.is_file():
        raise ArtifactError("bundle lacks the artifact's manifest.json", where=where)
    manifest = Manifest.from_json(manifest_path.read_text("utf-8"), where=f"{where}:{prefix}{MANIFEST_NAME}")
    if {k: v["sha256"] for k, v in manifest.files.items()} != payload:
        raise ArtifactError("the artifact's manifest.json disagrees with its files", where=where)
    return BundleContents(info=info, sha256=info_sha, signer=signer, scratch=scratch, artifact_dir=artifact_dir,
                          files=seen)


def _check_info(raw: Any, where: str) -> dict[str, Any]:
    if not isinstance(raw, dict) or raw.get("format") != FORMAT:
        raise ArtifactError("not a modelyard bundle (bundle.json has no format marker)", where=where)
    if raw.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(f"bundle format version {raw.get('format_version')!r} is not supported "
                            f"(this modelyard reads {FORMAT_VERSION})", where=where)
    try:
        artifact_id = str(raw["artifact"]["id"])
        files = raw["files"]
        model = raw["model"]
        check_name(str(model["name"]), what="model name in bundle")
    except (KeyError, TypeError) as exc:
        raise ArtifactError(f"bundle.json lacks {exc}", where=where) from None
    except ConfigError as exc:
        raise ArtifactError(str(exc), where=where) from None
    if len(artifact_id) != 64 or any(c not in "0123456789abcdef" for c in artifact_id):
        raise ArtifactError(f"bundle names an invalid artifact id {artifact_id!r}", where=where)
    if raw["artifact"].get("kind") != "model":
        raise ArtifactError("bundle does not hold a model artifact", where=where)
    if not isinstance(files, dict) or len(files) > MAX_MEMBERS:
        raise ArtifactError("bundle.json 'files' must be a mapping of member names", where=where)
    for name, entry in files.items():
        _check_member_name(name)
        if not isinstance(entry, dict) or not isinstance(entry.get("sha256"), str) or not isinstance(
                entry.get("size"), int):
            raise ArtifactError(f"bundle.json entry for {name!r} needs sha256 and size", where=where)
    return raw


def _check_signature(signature: dict[str, Any] | None, info_sha: str, *, public_key: Any, required: bool,
                     where: str) -> str | None:
    from cryptography.exceptions import InvalidSignature

    if signature is None:
        if required:
            raise ArtifactError("bundle is not signed and a signature is required", where=where)
        return None
    signer = str(signature.get("signer", ""))
    if public_key is None:
        if required:
            raise ArtifactError("a signature is required but no public key was given", where=where)
        return signer  # signed, not checked: the caller reports that
    if signer != public_fingerprint(public_key):
        raise ArtifactError(f"bundle is signed by key {signer}, not by the given key", where=where)
    try:
        public_key.verify(base64.b64decode(str(signature.get("signature", ""))), info_sha.encode())
    except (InvalidSignature, ValueError):
        raise ArtifactError("bundle signature is invalid (tampered bundle.json)", where=where) from None
    return signer


def import_bundle(store: Store, path: Path, *, name: str | None = None, public_key: Any = None,
                  require_signature: bool = False, actor: str | None = None) -> ModelVersion:
    """Verify a bundle completely, then publish its artifact and register it as a new version.

    Args:
        name: register under this model name (default: the name in the bundle).

    Raises:
        ArtifactError: the bundle fails any check (nothing is written then).
    """
    contents = read_bundle(path, store.artifacts.tmp, public_key=public_key, require_signature=require_signature)
    try:
        model = contents.info["model"]
        target_name = check_name(name or str(model["name"]), what="model name")
        manifest = Manifest.from_json((contents.artifact_dir / MANIFEST_NAME).read_text("utf-8"), where=str(path))
        (contents.artifact_dir / MANIFEST_NAME).unlink()
        ref = store.artifacts.publish(contents.artifact_dir, kind="model", parents=list(manifest.parents),
                                      meta={**manifest.meta, "imported_from": str(model.get("name"))
                                            + f"@v{model.get('version')}"}, relation="imported_from")
        if ref.id != contents.info["artifact"]["id"]:  # pragma: no cover - digest checked above
            raise ArtifactError("published artifact id differs from the bundle's", where=str(path))
        tags = {str(k): str(v) for k, v in (model.get("tags") or {}).items()}
        version = store.models.register(target_name, ModelRef(id=ref.id), description=str(model.get(
            "description") or ""), metrics=model.get("metrics") or {}, tags=tags, actor=actor)
    finally:
        shutil.rmtree(contents.scratch, ignore_errors=True)
    store.audit.append(actor=actor, action="model.import", target=version.uri,
                       details={"file": str(path), "bundle_sha256": contents.sha256, "signer": contents.signer,
                                "signature_checked": public_key is not None and contents.signer is not None,
                                "source": f"{model.get('name')}@v{model.get('version')}"})
    return version


__all__ = ["BundleContents", "export_bundle", "import_bundle", "read_bundle"]
