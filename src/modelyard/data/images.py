"""A folder of images per class (``root/<label>/*.png|jpg|…``) decoded to fixed (C, H, W) float arrays.

Images are decoded with Pillow, converted to grey (L) or RGB, resized (bilinear) to one
size — ``data.source.image_size`` or the first image's — and scaled to [0, 1]. Every file
that does not decode is collected: with ``bad_rows: fail`` the error names each one
after the whole folder was tried; with ``skip`` they are counted and listed in the report.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd

from modelyard.config.data import SourceConfig
from modelyard.core.errors import ConfigError, DataError
from modelyard.data.sources import Chunk, Source, SourceInfo

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
# Images decoded per chunk: a chunk holds them as float32 arrays, so keep it modest.
_IMAGES_PER_CHUNK = 512


class ImageFolderSource(Source):
    """``root/<label>/<file>``: the sub-folder names are the labels, files sorted for a stable order."""

    def __init__(self, root: Path, cfg: SourceConfig) -> None:
        super().__init__(SourceInfo(where=str(root), kind="images", label_hint="label", image_column="image",
                                    path_column="path"))
        if not root.is_dir():
            raise DataError("images source must be a folder with one sub-folder per class", where=str(root))
        self.root, self.cfg = root, cfg
        self.files: list[tuple[Path, str]] = []
        for folder in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
            for path in sorted(folder.iterdir()):
                if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
                    self.files.append((path, folder.name))
        if not self.files:
            raise DataError(f"no images ({', '.join(IMAGE_SUFFIXES)}) in class sub-folders", where=str(root))
        channels = 1 if cfg.image_mode == "L" else 3
        size = tuple(cfg.image_size) if cfg.image_size else None
        self.size: tuple[int, int] | None = (int(size[0]), int(size[1])) if size else None
        if self.size:
            self.info.image_shape = (channels, *self.size)
        self.channels = channels
        self.bad: list[tuple[str, str]] = []
        self.original_sizes: Counter[str] = Counter()

    def locate(self, row: int) -> str:
        """The image file of ``row``."""
        return str(self.files[row][0])

    def chunks(self) -> Iterator[Chunk]:
        """Decoded images, a few hundred at a time; undecodable files are collected, then reported."""
        try:
            from PIL import Image, UnidentifiedImageError
        except ImportError:  # pragma: no cover - pillow is in the data extra
            raise ConfigError("image folders need Pillow: pip install 'modelyard[data]'") from None

        images: list[np.ndarray] = []
        labels: list[str] = []
        paths: list[str] = []
        rows: list[int] = []
        for row, (path, label) in enumerate(self.files):
            try:
                with Image.open(path) as img:
                    img.load()
                    self.original_sizes[f"{img.width}x{img.height}"] += 1
                    converted = img.convert(self.cfg.image_mode)
                    if self.size is None:
                        self.size = (converted.height, converted.width)
                        self.info.image_shape = (self.channels, *self.size)
                    if (converted.height, converted.width) != self.size:
                        converted = converted.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
                    array = np.asarray(converted, dtype=np.float32) / 255.0
            except (UnidentifiedImageError, OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
                self.bad.append((str(path), f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"))
                continue
            # (H, W) or (H, W, C) -> (C, H, W), flattened into one float column.
            chw = array[None] if array.ndim == 2 else array.transpose(2, 0, 1)
            images.append(np.ascontiguousarray(chw).reshape(-1))
            labels.append(label)
            paths.append(str(path.relative_to(self.root)))
            rows.append(row)
            if len(images) >= _IMAGES_PER_CHUNK:
                yield _image_chunk(images, labels, paths, rows)
                images, labels, paths, rows = [], [], [], []
        if images:
            yield _image_chunk(images, labels, paths, rows)
        self.info.notes["image_sizes"] = dict(self.original_sizes.most_common(20))
        if self.bad:
            if self.cfg.bad_rows == "fail":
                named = "; ".join(f"{p} ({why})" for p, why in self.bad[:10])
                more = f" and {len(self.bad) - 10} more" if len(self.bad) > 10 else ""
                raise DataError(f"{len(self.bad)} image(s) do not decode: {named}{more}", where=str(self.root),
                                hint="remove them, or set data.source.bad_rows: skip")
            self.info.notes["skipped_bad_rows"] = len(self.bad)
            self.info.notes["bad_row_examples"] = [f"{p}: {why}" for p, why in self.bad[:5]]


def _image_chunk(images: list[np.ndarray], labels: list[str], paths: list[str], rows: list[int]) -> Chunk:
    frame = pd.DataFrame({"image": images, "label": labels, "path": paths})
    return Chunk(frame=frame, rows=np.asarray(rows, dtype=np.int64))
