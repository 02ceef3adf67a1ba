"""`yard serve` as a subprocess: bad options exit 2 with one line; a real server with 2 workers serves and stops."""

from __future__ import annotations

import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from tests.serve.conftest import ServeModels

YARD = [sys.executable, "-m", "modelyard.cli.__main__"]
IRIS_ROW = {"instances": [[5.1, 3.5, 1.4, 0.2]]}


def _env(cli_env: dict[str, str], models: ServeModels) -> dict[str, str]:
    return {**cli_env, "YARD_HOME": str(models.root)}


def _yard(args: list[str], env: dict[str, str], cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*YARD, *args], capture_output=True, text=True, env=env, cwd=cwd, timeout=300)


@pytest.mark.parametrize(("args", "needles"), [
    (["tiny-iris@staging", "--canary", "tiny-iris@4"], ["--canary", "NAME@vN:PERCENT%"]),
    (["tiny-iris@staging", "--canary", "tiny-iris@v2:150%"], ["--canary", "between 0 and 100"]),
    (["tiny-iris@staging", "--no-auth", "--host", "0.0.0.0"], ["auth can be turned off only on a loopback host"]),
    (["tiny-iris@staging", "--set", "max_batch_size=0"], ["max_batch_size", "greater than or equal to 1"]),
    (["tiny-iris@staging", "--set", "no_such=1"], ["no_such"]),
    # --check builds the app (torch, FastAPI): seconds per case, so these run in CI's slow set.
    pytest.param(["no-such-model@prod", "--check"], ["no-such-model"], marks=pytest.mark.slow),
    pytest.param(["tiny-iris@staging", "tiny-iris@v2", "--check"], ["each model may be served once"],
                 marks=pytest.mark.slow),
])
def test_bad_serve_options_exit_2_with_one_line(serve_models: ServeModels, cli_env: dict[str, str], tmp_path: Path,
                                                args: list[str], needles: list[str]) -> None:
    result = _yard(["serve", *args], _env(cli_env, serve_models), tmp_path)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in result.stderr, result.stderr
    for needle in needles:
        assert needle in lines[0], lines[0]


@pytest.mark.slow
def test_check_loads_every_model_and_canary(serve_models: ServeModels, cli_env: dict[str, str],
                                            tmp_path: Path) -> None:
    result = _yard(["serve", "tiny-iris@staging", "tiny-digits", "--canary", "tiny-iris@v2:10%", "--check"],
                   _env(cli_env, serve_models), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "tiny-iris" in result.stdout and "v1, v2" in result.stdout and "torch-fp32" in result.stdout
    assert "tiny-digits" in result.stdout


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_workers_serve_share_metrics_and_stop_on_sigterm(serve_models: ServeModels, cli_env: dict[str, str],
                                                             tmp_path: Path) -> None:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    process = subprocess.Popen([*YARD, "serve", "tiny-iris@staging", "--no-auth", "--port", str(port),
                                "--workers", "2", "--set", "cache_max_bytes=0"],
                               env=_env(cli_env, serve_models), cwd=tmp_path, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, text=True)
    try:
        deadline = time.monotonic() + 120
        while True:
            assert process.poll() is None, process.stdout.read() if process.stdout else ""
            try:
                if httpx.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "yard serve did not become ready"
            time.sleep(0.2)
        # New connections spread over both workers; each answers, and /metrics adds both up.
        for _ in range(20):
            with httpx.Client(timeout=30) as client:
                response = client.post(f"{url}/v1/models/tiny-iris:predict", json=IRIS_ROW)
                assert response.status_code == 200, response.text
        deadline = time.monotonic() + 30
        while True:
            metrics = httpx.get(f"{url}/metrics", timeout=10).text
            # Both workers report the model as loaded (livemax keeps one series per process label-set).
            if 'yard_predictions_total{model="tiny-iris",outcome="ok",version="1"} 20.0' in metrics:
                break
            assert time.monotonic() < deadline, metrics[-2000:]
            time.sleep(0.2)
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
        assert process.returncode == 0, output
        assert "auth is OFF" in output
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
