"""A response cache: LRU, bounded by bytes, keyed by model version + input hash.

One entry is the output row of one input (not a whole request), so a request that
repeats some inputs of an earlier one is answered partly from the cache. The key holds
the model artifact's id and runtime, so a hot reload never serves the old version's
answers, and the hash of the *decoded* input, so ``[1, 2]`` and ``[1.0, 2.0]`` share an entry.
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict

import numpy as np

# Bookkeeping per entry beyond the output bytes (key string, tuple, array header), for the byte bound.
_ENTRY_OVERHEAD = 200


def input_key(model_key: str, item: np.ndarray | str) -> str:
    """The cache key of one decoded input for the model version named by ``model_key``."""
    digest = hashlib.blake2b(model_key.encode(), digest_size=20)
    if isinstance(item, str):
        digest.update(b"s")
        digest.update(item.encode("utf-8", "surrogatepass"))
    else:
        array = np.ascontiguousarray(item)
        digest.update(f"{array.dtype.str}{array.shape}".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


class ResponseCache:
    """Least-recently-used output rows, at most ``max_bytes`` of them (0 turns the cache off).

    Thread-safe: the event loop reads and writes it, tests poke it from other threads.
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.bytes = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[str, tuple[np.ndarray, int]] = OrderedDict()
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        """False when ``max_bytes`` is 0."""
        return self.max_bytes > 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: str) -> np.ndarray | None:
        """The cached row for ``key`` (marked most recently used), or None."""
        if not self.enabled:
            return None
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return entry[0]

    def put(self, key: str, row: np.ndarray) -> None:
        """Store ``row`` (copied, read-only), evicting the least recently used rows beyond the bound."""
        if not self.enabled:
            return
        value = np.array(row, copy=True)
        value.setflags(write=False)
        size = value.nbytes + _ENTRY_OVERHEAD
        if size > self.max_bytes:
            return
        with self._lock:
            old = self._entries.pop(key, None)
            if old is not None:
                self.bytes -= old[1]
            self._entries[key] = (value, size)
            self.bytes += size
            while self.bytes > self.max_bytes:
                _key, (_value, evicted) = self._entries.popitem(last=False)
                self.bytes -= evicted

    def hit_rate(self) -> float:
        """Hits / lookups so far (0 before any lookup)."""
        lookups = self.hits + self.misses
        return self.hits / lookups if lookups else 0.0


__all__ = ["ResponseCache", "input_key"]
