"""Against a real uvicorn on 127.0.0.1: tritonclient, overload, timeouts, disconnects, graceful shutdown.

The model's forward pass is gated (it blocks on an event the test releases), so queues
fill and requests wait in a controlled way without any sleep deciding the outcome.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import numpy as np
import pytest
from sklearn.datasets import load_iris

from modelyard.runtime import probabilities
from modelyard.serve.batching import DynamicBatcher
from tests.serve.conftest import ADMIN, PREDICT, LiveServer, ServeModels, bearer, expected_outputs, make_app

IRIS = load_iris().data[[0, 50, 100]].astype(np.float32)   # one flower of each class
AUTH = bearer(PREDICT)
# Long enough that a blocked test fails instead of hanging, short enough that a broken gate shows quickly.
WAIT_S = 20.0


class Gate:
    """Wraps a batcher's forward pass so it blocks until :meth:`open` (and counts the batches that ran)."""

    def __init__(self, batcher: DynamicBatcher) -> None:
        self.inner: Callable[[Any], np.ndarray] = batcher.run_batch
        self.released = threading.Event()
        self.entered = threading.Event()
        self.ran: list[int] = []
        batcher.run_batch = self

    def __call__(self, batch: Any) -> np.ndarray:
        self.entered.set()
        assert self.released.wait(WAIT_S), "the test never opened the gate"
        self.ran.append(len(batch))
        return self.inner(batch)

    def open(self) -> None:
        self.released.set()


def wait_until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting until {what}"
        time.sleep(0.01)


def _start(models: ServeModels, **overrides: Any) -> tuple[LiveServer, DynamicBatcher]:
    server = LiveServer(make_app(models, ["tiny-iris@staging"], cache_max_bytes=0, **overrides)).start()
    return server, server.app.state.serve.hub.get("tiny-iris").primary.batcher


@pytest.fixture
def started() -> Iterator[list[LiveServer]]:
    servers: list[LiveServer] = []
    yield servers
    for server in servers:
        server.stop()


def _predict(url: str, rows: np.ndarray, timeout: float = WAIT_S) -> httpx.Response:
    return httpx.post(f"{url}/v1/models/tiny-iris:predict", json={"instances": rows.tolist()}, headers=AUTH,
                      timeout=timeout)


def test_tritonclient_works_unchanged_json_and_binary(live_server: LiveServer, serve_models: ServeModels) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=f"127.0.0.1:{live_server.port}")
    try:
        # A fresh dict per call: tritonclient writes Inference-Header-Content-Length into the one it is given.
        assert client.is_server_live(headers=bearer(PREDICT)) and client.is_server_ready(headers=bearer(PREDICT))
        assert client.is_model_ready("tiny-iris", headers=bearer(PREDICT))
        meta = client.get_model_metadata("tiny-iris", headers=bearer(PREDICT))
        assert meta["inputs"] == [{"name": "input", "datatype": "FP32", "shape": [-1, 4]}]
        expected = expected_outputs(serve_models, serve_models.iris_v1, IRIS)
        for binary in (False, True):
            tensor = triton.InferInput("input", list(IRIS.shape), "FP32")
            tensor.set_data_from_numpy(IRIS, binary_data=binary)
            outputs = [triton.InferRequestedOutput(name, binary_data=binary) for name in ("logits", "label")]
            result = client.infer("tiny-iris", [tensor], outputs=outputs, headers=bearer(PREDICT))
            np.testing.assert_allclose(result.as_numpy("logits"), expected, rtol=1e-5, atol=1e-6)
            assert [v.decode() if isinstance(v, bytes) else v for v in result.as_numpy("label")] == \
                ["setosa", "versicolor", "virginica"]
        # A protocol error reaches the client as its own exception with our message.
        wrong = triton.InferInput("input", [1, 3], "FP32")
        wrong.set_data_from_numpy(IRIS[:1, :3], binary_data=False)
        with pytest.raises(triton.InferenceServerException, match="shape"):
            client.infer("tiny-iris", [wrong], headers=bearer(PREDICT))
        with pytest.raises(triton.InferenceServerException, match="invalid"):
            client.get_model_metadata("tiny-iris", headers=bearer("not-a-key"))
    finally:
        client.close()


def test_live_predict_matches_the_runtime_and_metrics_count_it(live_server: LiveServer,
                                                               serve_models: ServeModels) -> None:
    response = _predict(live_server.url, IRIS)
    assert response.status_code == 200, response.text
    labels = ("setosa", "versicolor", "virginica")
    got = np.array([[p["probabilities"][k] for k in labels] for p in response.json()["predictions"]])
    np.testing.assert_allclose(got, probabilities(expected_outputs(serve_models, serve_models.iris_v1, IRIS)),
                               rtol=1e-5, atol=1e-7)
    text = httpx.get(f"{live_server.url}/metrics", headers=bearer(ADMIN)).text
    assert 'yard_predictions_total{model="tiny-iris",outcome="ok",version="1"} 3.0' in text


def test_a_full_queue_answers_503_with_retry_after_at_once_and_recovers(serve_models: ServeModels,
                                                                        started: list[LiveServer]) -> None:
    server, batcher = _start(serve_models, max_batch_size=1, max_queue=2, retry_after_s=3)
    started.append(server)
    gate = Gate(batcher)
    with ThreadPoolExecutor(3) as pool:
        running = pool.submit(_predict, server.url, IRIS[:1])          # taken by the (blocked) model
        wait_until(gate.entered.is_set, "the first batch runs")
        queued = [pool.submit(_predict, server.url, IRIS[i:i + 1]) for i in (1, 2)]
        wait_until(lambda: batcher.depth == 2, "two inputs wait in the queue")
        refused = _predict(server.url, IRIS[:1])                       # answered while the model is still blocked
        assert not gate.released.is_set()
        assert refused.status_code == 503 and refused.headers["retry-after"] == "3"
        assert refused.json()["error"]["code"] == "queue_full"
        gate.open()
        assert [f.result().status_code for f in (running, *queued)] == [200, 200, 200]
    assert _predict(server.url, IRIS).status_code == 200                 # recovered
    assert gate.ran == [1, 1, 1, 3]
    text = httpx.get(f"{server.url}/metrics", headers=bearer(ADMIN)).text
    assert 'yard_queue_rejected_total{model="tiny-iris",version="1"} 1.0' in text


def test_a_request_timeout_fails_that_request_not_the_worker(serve_models: ServeModels,
                                                             started: list[LiveServer]) -> None:
    server, batcher = _start(serve_models, request_timeout_s=0.3)
    started.append(server)
    gate = Gate(batcher)
    timed_out = _predict(server.url, IRIS)
    assert timed_out.status_code == 504 and timed_out.json()["error"]["code"] == "timeout"
    gate.open()
    assert _predict(server.url, IRIS).status_code == 200
    assert batcher.stats.batches == 2          # the timed-out batch finished in the background, then the next


def test_a_client_that_disconnects_has_its_work_dropped(serve_models: ServeModels,
                                                        started: list[LiveServer]) -> None:
    server, batcher = _start(serve_models, max_batch_size=1)
    started.append(server)
    gate = Gate(batcher)
    with ThreadPoolExecutor(1) as pool:
        running = pool.submit(_predict, server.url, IRIS[:1])
        wait_until(gate.entered.is_set, "the first batch runs")
        body = b'{"instances": [[5.1, 3.5, 1.4, 0.2]]}'
        head = (f"POST /v1/models/tiny-iris:predict HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                f"Authorization: Bearer {PREDICT}\r\nContent-Type: application/json\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode()
        with socket.create_connection(("127.0.0.1", server.port)) as raw:
            raw.sendall(head + body)
            wait_until(lambda: batcher.depth == 1, "the request is queued")
        # The socket is closed: the server notices and frees the queued work while the model is still busy.
        wait_until(lambda: batcher.stats.dropped == 1 and batcher.depth == 0, "the queued job is dropped")
        gate.open()
        assert running.result().status_code == 200
    wait_until(lambda: batcher.depth == 0, "the queue is empty")
    assert gate.ran == [1] and batcher.stats.dropped == 1
    text = httpx.get(f"{server.url}/metrics", headers=bearer(ADMIN)).text
    assert 'yard_predictions_total{model="tiny-iris",outcome="disconnected",version="1"} 1.0' in text


def test_graceful_shutdown_finishes_queued_requests(serve_models: ServeModels) -> None:
    server, batcher = _start(serve_models, max_batch_size=2)
    gate = Gate(batcher)
    with ThreadPoolExecutor(4) as pool:
        in_flight = [pool.submit(_predict, server.url, IRIS[:1])]
        wait_until(gate.entered.is_set, "the first batch runs")
        in_flight += [pool.submit(_predict, server.url, IRIS[i:i + 1]) for i in (1, 2)]
        wait_until(lambda: batcher.depth == 2, "two inputs wait in the queue")
        stopping = pool.submit(server.stop)                             # SIGTERM's path: should_exit
        wait_until(lambda: server.server.should_exit, "the server is told to stop")
        time.sleep(0.2)
        assert not stopping.done()                                      # it waits for the requests in flight
        gate.open()
        assert [f.result().status_code for f in in_flight] == [200, 200, 200]
        stopping.result(timeout=WAIT_S)
    assert gate.ran == [1, 2] and not server.thread.is_alive()
    assert batcher._task is None                                        # the batcher was drained and stopped
    with pytest.raises(httpx.ConnectError):
        _predict(server.url, IRIS, timeout=2)


def test_requests_beyond_max_inflight_are_refused_before_parsing(serve_models: ServeModels,
                                                                 started: list[LiveServer]) -> None:
    server, batcher = _start(serve_models, max_batch_size=1, max_inflight=2, retry_after_s=2)
    started.append(server)
    gate = Gate(batcher)
    with ThreadPoolExecutor(2) as pool:
        running = pool.submit(_predict, server.url, IRIS[:1])
        wait_until(gate.entered.is_set, "the first batch runs")
        queued = pool.submit(_predict, server.url, IRIS[1:2])
        wait_until(lambda: batcher.depth == 1, "the second request is queued")
        refused = httpx.post(f"{server.url}/v2/models/tiny-iris/infer", content=b"not even json", headers=AUTH)
        assert refused.status_code == 503 and refused.headers["retry-after"] == "2"
        assert refused.json()["code"] == "overloaded"                 # the /v2 error form
        assert httpx.get(f"{server.url}/v2/health/ready").status_code == 200   # probes still answered
        gate.open()
        assert (running.result().status_code, queued.result().status_code) == (200, 200)
    assert _predict(server.url, IRIS).status_code == 200
