"""The response cache (LRU by bytes, keyed by version + input) and the per-key token buckets."""

from __future__ import annotations

import numpy as np

from modelyard.serve.cache import ResponseCache, input_key
from modelyard.serve.ratelimit import RateLimiter

ROW = np.zeros(25, dtype=np.float32)  # 100 bytes + 200 bookkeeping = 300 bytes per entry


def test_keys_depend_on_model_version_and_decoded_value_only() -> None:
    a = np.array([1.0, 2.0], dtype=np.float32)
    assert input_key("v1", a) == input_key("v1", np.array([1, 2], dtype=np.float32))
    assert input_key("v1", a) != input_key("v2", a)
    assert input_key("v1", a) != input_key("v1", a.reshape(2, 1))  # same bytes, other shape
    assert input_key("v1", "text") != input_key("v1", np.frombuffer(b"text", dtype=np.uint8))


def test_lru_eviction_keeps_the_byte_bound_and_counts_hits() -> None:
    cache = ResponseCache(max_bytes=900)  # room for 3 entries of 300 bytes
    for key in "abc":
        cache.put(key, ROW)
    assert cache.get("a") is not None      # a is now the most recently used
    cache.put("d", ROW)                    # evicts b, the least recently used
    assert cache.get("b") is None
    assert [k for k in "acd" if cache.get(k) is not None] == ["a", "c", "d"]
    assert cache.bytes == 900 and len(cache) == 3
    assert (cache.hits, cache.misses) == (4, 1)
    assert cache.hit_rate() == 0.8


def test_cached_rows_are_read_only_copies_and_zero_bytes_turns_the_cache_off() -> None:
    cache = ResponseCache(max_bytes=10_000)
    row = np.ones(3, dtype=np.float32)
    cache.put("k", row)
    row[0] = 7                              # the caller's array changing does not change the cache
    cached = cache.get("k")
    assert cached is not None and cached.tolist() == [1, 1, 1] and not cached.flags.writeable
    off = ResponseCache(max_bytes=0)
    off.put("k", row)
    assert off.get("k") is None and not off.enabled and off.misses == 0


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_token_bucket_allows_the_burst_then_the_rate() -> None:
    clock = Clock()
    limiter = RateLimiter(rate_per_s=2.0, burst=3, clock=clock)
    assert [limiter.acquire("k") for _ in range(3)] == [None, None, None]
    wait = limiter.acquire("k")
    assert wait is not None and abs(wait - 0.5) < 1e-9   # one token refills in 1 / 2 per second
    assert limiter.acquire("other") is None              # buckets are per key
    clock.now += 0.5
    assert limiter.acquire("k") is None
    assert limiter.acquire("k") is not None
    clock.now += 100                                     # refills up to the burst, not beyond
    assert [limiter.acquire("k") is None for _ in range(4)] == [True, True, True, False]


def test_rate_zero_turns_the_limiter_off() -> None:
    limiter = RateLimiter(rate_per_s=0.0, burst=1)
    assert all(limiter.acquire("k") is None for _ in range(100))
