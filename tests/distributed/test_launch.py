"""Launch options and bad input of distributed training (fast: no worker is started)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from modelyard.core.errors import ConfigError, TrainingError
from modelyard.train import distributed
from modelyard.train.distributed import LaunchOptions, parse_endpoint, probe_endpoint, torchrun_command

HERE = Path(__file__).parent
YARD = [sys.executable, "-m", "modelyard.cli.__main__"]
UNREACHABLE = "192.0.2.1:29400"   # RFC 5737 TEST-NET-1: never routed


def _bad(result: subprocess.CompletedProcess[str], *needles: str) -> None:
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert "Traceback" not in result.stderr
    for needle in needles:
        assert needle in lines[-1], lines[-1]


@pytest.mark.parametrize("field, kwargs", [("--nproc", {"nproc": 0}), ("--nproc", {"nproc": -3}),
                                            ("--nnodes", {"nnodes": 0})])
def test_counts_below_one_are_refused(field: str, kwargs: dict[str, int]) -> None:
    with pytest.raises(ConfigError, match="must be at least 1") as err:
        LaunchOptions(**kwargs).checked()
    assert err.value.where == field


def test_several_nodes_need_an_endpoint() -> None:
    with pytest.raises(ConfigError, match="--rdzv-endpoint HOST:PORT"):
        LaunchOptions(nproc=1, nnodes=2).checked()


@pytest.mark.parametrize("text", ["nohost", "host:", ":29400", "host:0", "host:70000", "host:port"])
def test_bad_endpoints(text: str) -> None:
    with pytest.raises(ConfigError, match="HOST:PORT"):
        parse_endpoint(text)


def test_endpoint_parsing() -> None:
    assert parse_endpoint("node0.lan:29400") == ("node0.lan", 29400)
    assert parse_endpoint("[::1]:1234") == ("::1", 1234)


def test_threads_are_split_over_processes_and_capped(caplog: pytest.LogCaptureFixture) -> None:
    cores = os.cpu_count() or 1
    assert LaunchOptions(nproc=1).checked().threads_per_process == cores
    with caplog.at_level(logging.WARNING, logger="modelyard.train"):
        over = LaunchOptions(nproc=cores + 2).checked()
    assert over.threads_per_process == 1
    assert f"more than the {cores} cores" in caplog.text


def test_torchrun_command_single_and_multi_node(tmp_path: Path) -> None:
    single = torchrun_command(tmp_path, LaunchOptions(nproc=2).checked())
    assert single[1:4] == ["-m", "torch.distributed.run", "--nproc-per-node=2"]
    assert "--standalone" in single and single[-2:] == ["modelyard.train.distributed", str(tmp_path / "job.json")]
    multi = torchrun_command(tmp_path, LaunchOptions(nproc=2, nnodes=3, rdzv_endpoint="n0:29400",
                                                     rdzv_timeout_s=30).checked())
    assert "--standalone" not in multi
    for arg in ("--nnodes=3", "--rdzv-backend=c10d", "--rdzv-endpoint=n0:29400", "--rdzv-conf=join_timeout=30",
                "--max-restarts=0"):
        assert arg in multi


def test_unreachable_endpoint_times_out_clearly() -> None:
    with pytest.raises(TrainingError, match=r"192\.0\.2\.1:29400 is unreachable after 0\.5 s") as err:
        probe_endpoint(UNREACHABLE, 0.5)
    assert err.value.where == "--rdzv-endpoint"


def test_a_local_endpoint_is_not_probed() -> None:
    probe_endpoint("127.0.0.1:1", 0.1)  # this node hosts the rendezvous: nothing to wait for


def test_one_process_helpers_are_the_identity() -> None:
    index = torch.arange(10)
    assert distributed.world() == distributed.World(rank=0, size=1, local_rank=0)
    assert distributed.shard_batch(index) is index
    assert distributed.global_count(7.0) == 7.0
    assert distributed.mean_across_ranks(0.25) == 0.25
    assert distributed.broadcast("x") == "x"
    distributed.check_batches(5, 64)  # a world of one has no per-rank constraint


def test_yard_train_rejects_nproc_zero(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([*YARD, "train", str(HERE / "tiny.yaml"), "--nproc", "0"], capture_output=True,
                            text=True, env=cli_env, cwd=tmp_path, timeout=120)
    _bad(result, "--nproc must be at least 1 (got 0)")


@pytest.mark.slow  # a subprocess importing torch: ~10 s on a loaded machine; probe_endpoint is tested above
def test_yard_train_unreachable_rendezvous(cli_env: dict[str, str], tmp_path: Path) -> None:
    result = subprocess.run([*YARD, "train", str(HERE / "tiny.yaml"), "--nnodes", "2", "--rdzv-endpoint",
                             UNREACHABLE, "--rdzv-timeout", "1"], capture_output=True, text=True, env=cli_env,
                            cwd=tmp_path, timeout=120)
    _bad(result, "--rdzv-endpoint", "unreachable after 1 s", "start the node that hosts the endpoint first")
    assert not (tmp_path / "yard-home" / "store.db").exists()  # refused before any run was opened


_GLOO_LOST = ("RuntimeError: [/__w/pytorch/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:537] Read error "
              "[127.0.0.1]:29500: Connection reset by peer")


def _error_file(job_dir: Path, rank: int, message: str) -> None:
    distributed._write_error(job_dir, rank, message, None, None)


def test_a_killed_worker_is_named_whichever_rank_notices(tmp_path: Path) -> None:
    # Rank 1 was SIGKILLed (no error file); rank 0's all-reduce broke and it wrote what it saw.
    log = tmp_path / "workers.log"
    log.write_text("torch.distributed.elastic...: failed (exitcode: -9)\n")
    _error_file(tmp_path, 0, _GLOO_LOST)
    error = distributed.job_failure(tmp_path, 1, log, LaunchOptions(nproc=2))
    assert "a worker died before finishing" in error.message
    assert "nothing was published" in (error.hint or "") and "rank 0 lost its peer" in (error.hint or "")


def test_a_rank_s_own_error_wins_over_its_peers_lost_connections(tmp_path: Path) -> None:
    log = tmp_path / "workers.log"
    log.write_text("")
    _error_file(tmp_path, 0, _GLOO_LOST)
    _error_file(tmp_path, 1, "DataError: shard 1 is empty")
    error = distributed.job_failure(tmp_path, 1, log, LaunchOptions(nproc=2))
    assert error.message == "rank 1 failed: DataError: shard 1 is empty"
    assert "nothing was published" in (error.hint or "")
