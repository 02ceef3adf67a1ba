"""Text encoding of data files: byte-order marks, strict UTF-8, then a detector; clear errors otherwise.

A file is decoded with one codec for its whole length. Undecodable bytes are never
replaced silently: the error names the file, the line and the byte offset.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from modelyard.core.errors import DataError

_SNIFF_BYTES = 1 << 20
# The detector only chooses among common encodings of tabular exports: on short samples an
# unrestricted guess lands on exotic code pages (cp1006 for a French "é").
_CANDIDATES = ("cp1252", "latin_1", "iso8859_15", "cp1251", "koi8_r", "shift_jis", "euc_jp", "gb18030",
               "big5", "euc_kr", "utf_16", "cp437")
_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"), (codecs.BOM_UTF32_BE, "utf-32"),  # before UTF-16: they share a prefix
    (codecs.BOM_UTF8, "utf-8-sig"), (codecs.BOM_UTF16_LE, "utf-16"), (codecs.BOM_UTF16_BE, "utf-16"),
)


def detect_encoding(path: Path, declared: str = "auto") -> tuple[str, str]:
    """The codec to read ``path`` with, and how it was chosen (``declared``, ``bom``, ``utf-8``, ``detected``).

    Raises:
        DataError: an unknown codec name, or (``auto``) bytes that are neither UTF-8 nor
            recognised by the detector, naming line and byte offset.
    """
    if declared != "auto":
        try:
            codecs.lookup(declared)
        except LookupError:
            raise DataError(f"unknown text encoding {declared!r}", where="data.source.encoding") from None
        return declared, "declared"
    with open(path, "rb") as handle:
        head = handle.read(_SNIFF_BYTES)
    for bom, codec in _BOMS:
        if head.startswith(bom):
            return codec, "bom"
    decoder = codecs.getincrementaldecoder("utf-8")()
    try:
        # final=False: a multi-byte character cut by the sniff window is not an error.
        decoder.decode(head, final=len(head) < _SNIFF_BYTES)
        return "utf-8", "utf-8"
    except UnicodeDecodeError:
        pass
    guess = _detector_guess(head)
    if guess is None:
        raise decode_error(path, "utf-8", hint="set data.source.encoding (e.g. cp1252, latin-1, utf-16)")
    return guess, "detected"


def _detector_guess(sample: bytes) -> str | None:
    """charset-normalizer's best guess, when it is installed and confident."""
    try:
        from charset_normalizer import from_bytes
    except ImportError:  # optional: without it, non-UTF-8 files need an explicit encoding
        return None
    matches = list(from_bytes(sample, cp_isolation=list(_CANDIDATES)))
    if not matches:
        return None
    # Ties in "chaos" are common on short samples; break them by how common the code page is.
    least = min(match.chaos for match in matches)
    tied = [match.encoding for match in matches if match.chaos <= least + 1e-9]
    return min(tied, key=lambda name: _CANDIDATES.index(name) if name in _CANDIDATES else len(_CANDIDATES))


def decode_error(path: Path, codec: str, *, hint: str | None = None) -> DataError:
    """A :class:`DataError` naming the line and byte offset of the first byte ``codec`` cannot decode."""
    carry, offset, line = b"", 0, 1
    with open(path, "rb") as handle:
        while True:
            chunk = handle.read(_SNIFF_BYTES)
            data = carry + chunk
            try:
                data.decode(codec)
            except UnicodeDecodeError as exc:
                if chunk and exc.end == len(data) and "end of data" in exc.reason:
                    # A character cut by the read window: decode it with the next chunk.
                    carry = data[exc.start:]
                    line += data[:exc.start].count(b"\n")
                    offset += exc.start
                    continue
                line += data[:exc.start].count(b"\n")
                byte = data[exc.start:exc.start + 1].hex()
                return DataError(f"undecodable byte 0x{byte} at byte {offset + exc.start} as {codec} ({exc.reason})",
                                 where=f"{path}:{line}", hint=hint or "set data.source.encoding")
            if not chunk:
                break
            carry = b""
            line += data.count(b"\n")
            offset += len(data)
    return DataError(f"cannot decode as {codec}", where=str(path), hint=hint)
