"""Serving: dynamic batching vs none (``max_batch_size: 1``), then overload at 2x capacity.

The same model is served by `yard serve` in a child process (so the load generator does
not share its GIL), once with dynamic batching and once without; everything else (build,
model, one worker, its default thread count, queue) is the same. A minimal asyncio
HTTP/1.1 client runs closed-loop load at concurrency 1, 8, 32 and 64 and records
throughput, p50 and p99 latency. Goal (issue 9): >= 3x throughput at concurrency 32 with a
lower p99.

The model: digits + a ResNet-style CNN of widths 128/256/512 (one residual block per
stage), trained for one epoch here in a temporary store. It is chosen so that, as in real
CNN / transformer serving, a request's cost is the forward pass and that pass batches
well: about 7-8 ms for one image and about 1.2 ms per image in a batch of 32 on one core
(the wide late stages run on 2x2 and 1x1 maps, so one image barely uses the weights it
reads). The event loop's own cost is about 0.7 ms a request, so the two modes differ by
what batching saves, not by HTTP overhead. (With the earlier 64/128 CNN, 0.6 ms per image
alone, both modes were bound by the event loop and batching could not pay.)

Overload: open-loop arrivals at 2x the batched server's measured capacity against a
small queue (``max_queue: 64``, ``max_inflight: 128``): requests beyond the queue must be
refused fast (503 + Retry-After), the server's RSS must not grow with the backlog, and a
normal load right after must be served fully (recovery).

Prints one JSON line. Loopback only, bounded in requests and seconds.

    python benchmarks/serve.py            # full: a few minutes on 2 cores
    python benchmarks/serve.py --small    # < 2 minutes, CI
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import psutil

RECIPE = """\
version: 1
name: bench-serve
seed: 0
task: classification
data:
  source: {format: sklearn, name: digits}
  split: {valid: 0.15, test: 0.2}
model:
  name: cnn
  params: {channels: [128, 256, 512], dropout: 0.0}
train:
  epochs: 1
  batch_size: 64
explain: {enabled: false}
"""
PATH = "/v1/models/bench-serve:predict"


def train(home: Path) -> None:
    """Train and register ``bench-serve`` (alias ``production``) in the store at ``home``."""
    from modelyard.config.loader import parse_yaml, validate_recipe
    from modelyard.pipeline import run_recipe
    from modelyard.store import open_store

    recipe = validate_recipe(parse_yaml(RECIPE + "register: {alias: production}\n", source="<bench>"))
    with open_store(home) as store:
        run_recipe(recipe, store, report_dir=home / "reports")


def start_server(home: Path, settings: dict[str, Any]) -> tuple[subprocess.Popen[bytes], str]:
    """`yard serve` in a child process; returns it and its base URL once ready."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    args = [sys.executable, "-m", "modelyard.cli.__main__", "serve", "bench-serve@production", "--no-auth",
            "--port", str(port)]
    for key, value in settings.items():
        args += ["--set", f"{key}={value}"]
    env = {**os.environ, "YARD_HOME": str(home), "MPLBACKEND": "Agg"}
    process = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"yard serve exited with {process.returncode}")
        try:
            if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                return process, url
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    process.kill()
    raise RuntimeError("yard serve did not become ready")


def stop_server(process: subprocess.Popen[bytes]) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def bodies(count: int, seed: int) -> list[bytes]:
    """``count`` distinct single-image requests, as raw HTTP/1.1 bytes (random 8x8 images: no cache effects)."""
    rng = np.random.default_rng(seed)
    images = rng.uniform(0.0, 1.0, size=(count, 1, 8, 8)).round(3)
    out = []
    for image in images:
        body = json.dumps({"instances": [image.tolist()]}).encode()
        out.append(f"POST {PATH} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                   f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
    return out


class Connection:
    """One keep-alive HTTP/1.1 connection; a minimal client so the load generator costs little CPU.

    (httpx spends about as much CPU per request as the server does, which on 2 cores caps the
    load it can offer below the server's capacity.)
    """

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    @classmethod
    async def open(cls, url: str) -> Connection:
        host, port = url.removeprefix("http://").split(":")
        return cls(*await asyncio.open_connection(host, int(port)))

    async def send(self, request: bytes) -> int:
        """Send one request, read the whole response, return its status."""
        self.writer.write(request)
        await self.writer.drain()
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        await self.reader.readexactly(length)
        return status

    def close(self) -> None:
        self.writer.close()


async def closed_loop(url: str, requests: list[bytes], concurrency: int) -> dict[str, Any]:
    """``concurrency`` clients, each sending its next request as soon as its last one is answered."""
    latencies: list[float] = []
    statuses: dict[int, int] = {}
    next_index = 0

    async def worker() -> None:
        nonlocal next_index
        connection = await Connection.open(url)
        try:
            while next_index < len(requests):
                request = requests[next_index]
                next_index += 1
                started = time.perf_counter()
                status = await connection.send(request)
                latencies.append(time.perf_counter() - started)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            connection.close()

    started = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - started
    ms = np.array(latencies) * 1000
    return {"requests": len(requests), "rps": round(len(requests) / elapsed, 1),
            "p50_ms": round(float(np.percentile(ms, 50)), 2), "p99_ms": round(float(np.percentile(ms, 99)), 2),
            "statuses": statuses}


async def open_loop(url: str, requests: list[bytes], rate: float, process: psutil.Process) -> dict[str, Any]:
    """Send at ``rate`` requests/s whatever the answers (an idle connection, or a new one); record outcomes, RSS."""
    results: list[tuple[int, float]] = []
    rss: list[int] = []
    idle: list[Connection] = []
    opened: list[Connection] = []

    async def one(request: bytes) -> None:
        connection = idle.pop() if idle else None
        if connection is None:
            connection = await Connection.open(url)
            opened.append(connection)
        started = time.perf_counter()
        try:
            status = await connection.send(request)
            idle.append(connection)
        except (OSError, asyncio.IncompleteReadError, ValueError, IndexError):
            status = 0
        results.append((status, time.perf_counter() - started))

    tasks = []
    started = time.perf_counter()
    for i, request in enumerate(requests):
        delay = started + i / rate - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(request)))
        if i % 200 == 0:
            rss.append(process.memory_info().rss)
    offered_s = time.perf_counter() - started
    await asyncio.gather(*tasks)
    rss.append(process.memory_info().rss)
    for connection in opened:
        connection.close()
    ok = [t * 1000 for s, t in results if s == 200]
    rejected = [t * 1000 for s, t in results if s == 503]
    return {"target_rps": round(rate, 1), "offered_rps": round(len(requests) / offered_s, 1),
            "requests": len(requests), "connections": len(opened), "ok": len(ok), "rejected_503": len(rejected),
            "other": len(results) - len(ok) - len(rejected),
            "rejected_p50_ms": round(float(np.percentile(rejected, 50)), 2) if rejected else None,
            "rejected_p99_ms": round(float(np.percentile(rejected, 99)), 2) if rejected else None,
            "served_p50_ms": round(float(np.percentile(ok, 50)), 2) if ok else None,
            "served_p99_ms": round(float(np.percentile(ok, 99)), 2) if ok else None,
            "rss_mb_first": round(rss[0] / 2**20, 1), "rss_mb_max": round(max(rss) / 2**20, 1),
            "rss_mb_last": round(rss[-1] / 2**20, 1)}


def refusal_time_in_server(url: str) -> dict[str, Any]:
    """How long the server itself spent on the requests it refused before routing (the queue gate, the
    in-flight limit: route ``unmatched`` in its request-latency histogram), from reading them to answering.

    The client-side latency of a refusal adds the time the request waited for the event loop to read it.
    """
    text = httpx.get(f"{url}/metrics", timeout=10).text
    values: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("yard_http_request_duration_seconds") and 'route="unmatched"' in line:
            name, _, value = line.rpartition(" ")
            values[name] = float(value)
    count = values.get('yard_http_request_duration_seconds_count{route="unmatched"}', 0.0)
    if not count:
        return {"server_refusals": 0}
    within_1ms = values.get('yard_http_request_duration_seconds_bucket{le="0.001",route="unmatched"}', 0.0)
    total = values['yard_http_request_duration_seconds_sum{route="unmatched"}']
    return {"server_refusals": int(count), "server_refusal_mean_ms": round(total / count * 1000, 3),
            "server_refusals_within_1ms": round(within_1ms / count, 3)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", action="store_true", help="CI size: fewer requests per level")
    args = parser.parse_args()
    per_level = 300 if args.small else 2000
    levels = [1, 8, 32, 64]
    common = {"cache_max_bytes": 0, "rate_limit_per_s": 0, "reload_poll_s": 0, "max_queue": 1024}
    modes = {"batched": {**common, "max_batch_size": 32, "max_batch_latency_ms": 2},
             "unbatched": {**common, "max_batch_size": 1}}
    out: dict[str, Any] = {"benchmark": "serve", "small": args.small, "cpus": os.cpu_count(),
                           "load_avg_1m": round(os.getloadavg()[0], 2)}
    with tempfile.TemporaryDirectory(prefix="bench-serve-") as tmp:
        home = Path(tmp) / "store"
        train(home)
        for mode, settings in modes.items():
            process, url = start_server(home, settings)
            try:
                asyncio.run(closed_loop(url, bodies(64, seed=99), 8))            # warm-up
                out[mode] = {str(c): asyncio.run(closed_loop(url, bodies(per_level, seed=c), c)) for c in levels}
            finally:
                stop_server(process)
        out["ratio_rps_c32"] = round(out["batched"]["32"]["rps"] / out["unbatched"]["32"]["rps"], 2)
        out["ratio_p99_c32"] = round(out["batched"]["32"]["p99_ms"] / out["unbatched"]["32"]["p99_ms"], 2)
        out["goal_met"] = out["ratio_rps_c32"] >= 3.0 and out["ratio_p99_c32"] < 1.0

        # Overload: 2x the batched capacity against a queue of 64 inputs, then the same load as before.
        capacity = max(out["batched"][str(c)]["rps"] for c in levels)
        process, url = start_server(home, {**modes["batched"], "max_queue": 64, "max_inflight": 128})
        try:
            server = psutil.Process(process.pid)
            # Warm up first (full batches), so the RSS compared below is that of a server that has served.
            asyncio.run(closed_loop(url, bodies(128, seed=99), 32))
            seconds = 3 if args.small else 10
            count = int(2 * capacity * seconds)
            out["overload"] = asyncio.run(open_loop(url, bodies(count, seed=7), 2 * capacity, server))
            out["overload"].update(refusal_time_in_server(url))
            out["recovery"] = asyncio.run(closed_loop(url, bodies(per_level, seed=8), 32))
            out["recovery"]["rss_mb"] = round(server.memory_info().rss / 2**20, 1)
        finally:
            stop_server(process)
    out["medians_note"] = "one run per level; the machine is shared, compare ratios, not absolute numbers"
    print(json.dumps(out))


if __name__ == "__main__":
    main()
