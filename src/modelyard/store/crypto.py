"""Encryption at rest: AES-256-GCM, file by file, for every artifact (datasets, models, reports).

A store is encrypted when ``<store>/encryption.json`` exists (``yard store init --encrypt``).
The key never touches the store: it comes from ``$YARD_ENCRYPTION_KEY`` (base64 or hex of
32 bytes) or from the file named by ``$YARD_ENCRYPTION_KEY_FILE``, which must be mode 0600.
``encryption.json`` keeps only a key id (a one-way fingerprint), so a wrong key is named as
wrong before anything is decrypted.

File format (one encrypted file per artifact file, same relative name)::

    b"YARDENC1" | nonce prefix (7 bytes) | chunk 0 | chunk 1 | … | last chunk

Each chunk is at most 1 MiB of plaintext sealed with AES-GCM (16-byte tag) under the nonce
``prefix ‖ counter (4 bytes) ‖ last-flag (1 byte)`` and the associated data
``<artifact id>/<relative path>``: chunks cannot be reordered, dropped or truncated (the
last chunk says it is last), and a file cannot be moved to another name or artifact.
Memory stays bounded by one chunk whatever the file size.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import os
import secrets
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from modelyard.core.atomic import atomic_write_text
from modelyard.core.errors import ArtifactError, ConfigError, StoreError

MAGIC = b"YARDENC1"
ENCRYPTION_FILE = "encryption.json"
KEY_ENV = "YARD_ENCRYPTION_KEY"
KEY_FILE_ENV = "YARD_ENCRYPTION_KEY_FILE"
ALGORITHM = "AES-256-GCM-STREAM-1MiB"
_CHUNK = 1 << 20
_TAG = 16
_PREFIX = 7


def parse_key(text: str, *, where: str) -> bytes:
    """Decode a 32-byte key written as base64 (44 characters) or hex (64 characters).

    Raises:
        ConfigError: the text is not a 256-bit key.
    """
    text = text.strip()
    raw: bytes | None = None
    if len(text) == 64:
        try:
            raw = bytes.fromhex(text)
        except ValueError:
            raw = None
    if raw is None:
        try:
            raw = base64.b64decode(text, altchars=b"-_" if ("-" in text or "_" in text) else None, validate=True)
        except (binascii.Error, ValueError):
            raw = None
    if raw is None or len(raw) != 32:
        raise ConfigError("encryption key must be 32 bytes written as base64 (44 chars) or hex (64 chars)",
                          where=where, hint="make one with `yard store keygen --out FILE`")
    return raw


def generate_key() -> str:
    """A fresh random 256-bit key, base64."""
    return base64.b64encode(secrets.token_bytes(32)).decode()


def write_key_file(path: Path) -> str:
    """Create ``path`` (mode 0600, must not exist) holding a new key; returns the key id.

    Raises:
        ConfigError: the file exists already.
    """
    key = generate_key()
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise ConfigError("key file exists already; refusing to overwrite a key", where=str(path)) from None
    with os.fdopen(fd, "w") as handle:
        handle.write(key + "\n")
    return key_id(base64.b64decode(key))


def read_key_file(path: Path) -> bytes:
    """Read a key file, refusing one that others can read or write.

    Raises:
        ConfigError: missing file, loose permissions, or not a key.
    """
    try:
        info = path.stat()
    except OSError as exc:
        raise ConfigError(f"cannot read encryption key file: {exc.strerror}", where=str(path)) from None
    mode = stat.S_IMODE(info.st_mode)
    if mode & 0o077:
        raise ConfigError(f"encryption key file has permissions {mode:04o}; others must not read it",
                          where=str(path), hint=f"chmod 600 {path}")
    return parse_key(path.read_text("utf-8"), where=str(path))


def load_key(environ: dict[str, str] | None = None) -> bytes | None:
    """The key from ``$YARD_ENCRYPTION_KEY`` or ``$YARD_ENCRYPTION_KEY_FILE`` (None when neither is set)."""
    env = os.environ if environ is None else environ
    if env.get(KEY_ENV):
        return parse_key(env[KEY_ENV], where=f"${KEY_ENV}")
    if env.get(KEY_FILE_ENV):
        return read_key_file(Path(env[KEY_FILE_ENV]))
    return None


def key_id(key: bytes) -> str:
    """A one-way fingerprint of a key (safe to store and print)."""
    return hashlib.sha256(b"modelyard-key-id\0" + key).hexdigest()[:16]


@dataclass(frozen=True)
class EncryptionSettings:
    """What ``encryption.json`` records: the algorithm and the id of the key in use."""

    algorithm: str
    key_id: str


def read_settings(root: Path) -> EncryptionSettings | None:
    """The store's encryption settings, or None for a plaintext store."""
    path = root / ENCRYPTION_FILE
    if not path.is_file():
        return None
    try:
        raw = json.loads(path.read_text("utf-8"))
        return EncryptionSettings(algorithm=str(raw["algorithm"]), key_id=str(raw["key_id"]))
    except (json.JSONDecodeError, KeyError, TypeError) as exc:
        raise StoreError(f"unreadable encryption settings: {exc}", where=str(path)) from None


def enable(root: Path, key: bytes) -> EncryptionSettings:
    """Mark the store at ``root`` encrypted with ``key`` (only while it holds no artifact).

    Raises:
        StoreError: the store holds artifacts already, or is encrypted with another key.
    """
    current = read_settings(root)
    if current is not None:
        if current.key_id != key_id(key):
            raise StoreError("store is already encrypted with another key", where=str(root / ENCRYPTION_FILE))
        return current
    artifacts = root / "artifacts"
    if artifacts.is_dir() and any(artifacts.iterdir()):
        raise StoreError("store already holds plaintext artifacts; encryption must be chosen when it is empty",
                         where=str(root), hint="make a new store and `yard models export`/`import` into it")
    settings = EncryptionSettings(algorithm=ALGORITHM, key_id=key_id(key))
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_text(root / ENCRYPTION_FILE, json.dumps(settings.__dict__, indent=2) + "\n")
    return settings


def is_encrypted_file(path: Path) -> bool:
    """True if ``path`` starts with the encrypted-file header."""
    with open(path, "rb") as handle:
        return handle.read(len(MAGIC)) == MAGIC


class StoreCipher:
    """Seals and opens artifact files with one AES-256 key."""

    def __init__(self, key: bytes) -> None:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        if len(key) != 32:
            raise ConfigError("encryption key must be 32 bytes")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)

    def encrypt_file(self, source: Path, target: Path, *, associated: str) -> None:
        """Write ``source`` encrypted to ``target`` (bound to the name ``associated``)."""
        prefix = secrets.token_bytes(_PREFIX)
        aad = associated.encode()
        with open(source, "rb") as src, open(target, "wb") as dst:
            dst.write(MAGIC + prefix)
            counter = 0
            chunk = src.read(_CHUNK)
            while True:
                following = src.read(_CHUNK)
                last = not following
                dst.write(self._aead.encrypt(_nonce(prefix, counter, last), chunk, aad))
                if last:
                    break
                chunk, counter = following, counter + 1
            dst.flush()
            os.fsync(dst.fileno())

    def decrypt_file(self, source: Path, target: Path, *, associated: str) -> None:
        """Write the plaintext of ``source`` to ``target``.

        Raises:
            ArtifactError: wrong key, a tampered or truncated file, or a file moved from elsewhere.
        """
        from cryptography.exceptions import InvalidTag

        aad = associated.encode()
        with open(source, "rb") as src, open(target, "wb") as dst:
            prefix = _read_header(src, source)
            counter = 0
            block = src.read(_CHUNK + _TAG)
            while True:
                following = src.read(_CHUNK + _TAG)
                last = not following
                try:
                    dst.write(self._aead.decrypt(_nonce(prefix, counter, last), block, aad))
                except InvalidTag:
                    raise ArtifactError("cannot decrypt: wrong key, or the file was tampered with, truncated "
                                        "or moved", where=str(source)) from None
                if last:
                    return
                block, counter = following, counter + 1

    def encrypt_bytes(self, data: bytes, *, associated: str) -> bytes:
        """Seal a small blob in the same format (one chunk)."""
        if len(data) > _CHUNK:
            raise ValueError("encrypt_bytes is for blobs up to 1 MiB; use encrypt_file")
        prefix = secrets.token_bytes(_PREFIX)
        return MAGIC + prefix + self._aead.encrypt(_nonce(prefix, 0, True), data, associated.encode())

    def decrypt_bytes(self, blob: bytes, *, associated: str, where: str) -> bytes:
        """Open a blob sealed by :meth:`encrypt_bytes`."""
        from cryptography.exceptions import InvalidTag

        if not blob.startswith(MAGIC) or len(blob) < len(MAGIC) + _PREFIX + _TAG:
            raise ArtifactError("not an encrypted modelyard file", where=where)
        prefix = blob[len(MAGIC):len(MAGIC) + _PREFIX]
        try:
            return self._aead.decrypt(_nonce(prefix, 0, True), blob[len(MAGIC) + _PREFIX:], associated.encode())
        except InvalidTag:
            raise ArtifactError("cannot decrypt: wrong key or tampered file", where=where) from None


def _nonce(prefix: bytes, counter: int, last: bool) -> bytes:
    # 7 + 4 + 1 = 12 bytes, the GCM nonce size; a fresh random prefix per file keeps nonces unique.
    return prefix + counter.to_bytes(4, "big") + (b"\x01" if last else b"\x00")


def _read_header(handle: BinaryIO, path: Path) -> bytes:
    head = handle.read(len(MAGIC) + _PREFIX)
    if len(head) != len(MAGIC) + _PREFIX or not head.startswith(MAGIC):
        raise ArtifactError("not an encrypted modelyard file (an encrypted store holds a plaintext file)",
                            where=str(path))
    return head[len(MAGIC):]


def open_cipher(root: Path, environ: dict[str, str] | None = None) -> StoreCipher | None:
    """The cipher of the store at ``root`` (None for a plaintext store).

    Raises:
        StoreError: the store is encrypted and no key is set, or the key is not the store's.
    """
    settings = read_settings(root)
    if settings is None:
        return None
    if settings.algorithm != ALGORITHM:
        raise StoreError(f"unknown encryption algorithm {settings.algorithm!r}", where=str(root / ENCRYPTION_FILE))
    key = load_key(environ)
    if key is None:
        raise StoreError("this store is encrypted and no key is set", where=str(root),
                         hint=f"set ${KEY_ENV} or ${KEY_FILE_ENV} (a 0600 file)")
    if key_id(key) != settings.key_id:
        raise StoreError(f"wrong encryption key for this store (key id {key_id(key)}, store expects "
                         f"{settings.key_id})", where=str(root))
    return StoreCipher(key)


__all__ = ["ENCRYPTION_FILE", "KEY_ENV", "KEY_FILE_ENV", "EncryptionSettings", "StoreCipher", "enable",
           "generate_key", "is_encrypted_file", "key_id", "load_key", "open_cipher", "parse_key", "read_key_file",
           "read_settings", "write_key_file"]
