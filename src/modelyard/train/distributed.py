"""Data-parallel training across processes: ``torch.distributed``, launched by torchrun.

``yard train RECIPE --nproc N`` prepares the data in the CLI process, opens the train run,
writes a job file (the validated recipe, the dataset id, the run id) and starts
``python -m torch.distributed.run … -m modelyard.train.distributed JOB``. Every worker runs
the ordinary stage (:func:`modelyard.train.run`) with these differences, all made here and
called from a few marked places in the stage and the loop:

- the process group: gloo on CPU, NCCL on CUDA (:func:`setup`), one CUDA device per local rank;
- the model is wrapped in DistributedDataParallel (:func:`wrap_model`), or sharded with FSDP
  when ``train.parallel: fsdp`` (``train/fsdp.py``); on CUDA, batch norm
  becomes SyncBatchNorm (gloo has no SyncBatchNorm, so on CPU each rank normalises with the
  statistics of its own share of the batch, as plain DDP does);
- the sampler: every rank draws the same seeded permutation and takes the strided share
  ``idx[rank::world]`` of each *global* batch (:func:`shard_batch`) — the same indices
  ``torch.utils.data.DistributedSampler`` gives, so the union of the ranks' batches is exactly
  the single-process batch;
- each rank divides its summed loss by the global batch's count over the world size
  (:func:`global_count`), so DDP's gradient average equals the gradient of the global batch's
  mean loss even when the last batch does not split evenly;
- the step's loss is averaged across ranks (:func:`mean_across_ranks`) before the NaN guard
  and logging, so every rank takes the same decisions;
- only rank 0 writes to the store and publishes the model (:func:`is_main`); a failing rank
  writes its error into the job folder, torchrun stops the others, and the launcher marks the
  run failed with that message. The model artifact is published atomically at the end, so a
  dead rank leaves nothing half-written.

With one process none of this is active: every helper is the identity.
"""

from __future__ import annotations

import json
import logging
import os
import resource
import socket
import subprocess
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import torch
from torch import nn

from modelyard.config.recipe import Recipe
from modelyard.core.errors import ConfigError, TrainingError, YardError
from modelyard.core.refs import DatasetRef, ModelRef
from modelyard.store.context import MetricLogger, RunContext
from modelyard.train import fsdp
from modelyard.train.checkpoint import weights_copy

log = logging.getLogger("modelyard.train")
JOB_FILE = "job.json"
RESULT_FILE = "result.json"


@dataclass(frozen=True)
class World:
    """Where this process sits: global rank, number of processes, rank on this node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0: the only process that writes to the store."""
        return self.rank == 0


def world() -> World:
    """The current process group's view, or a world of one when none is initialised."""
    if not (torch.distributed.is_available() and torch.distributed.is_initialized()):
        return World()
    return World(rank=torch.distributed.get_rank(), size=torch.distributed.get_world_size(),
                 local_rank=int(os.environ.get("LOCAL_RANK", "0")))


def is_main() -> bool:
    """True outside distributed training and on rank 0."""
    return world().is_main


# --- inside a worker -------------------------------------------------------------------------


def setup(device: str, *, timeout_s: float = 300.0) -> None:
    """Join the process group torchrun described in the environment (no-op without ``WORLD_SIZE``).

    Args:
        device: the recipe's ``train.device`` (auto, cpu, cuda): NCCL when it resolves to CUDA, else gloo.
        timeout_s: how long a collective may wait for a peer before failing (a hung or dead rank).
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1 or torch.distributed.is_initialized():
        return
    threads = int(os.environ.get("OMP_NUM_THREADS", "0"))
    if threads > 0:
        torch.set_num_threads(threads)
    cuda = device == "cuda" or (device == "auto" and torch.cuda.is_available())
    if cuda:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
    torch.distributed.init_process_group("nccl" if cuda else "gloo", timeout=timedelta(seconds=timeout_s))


def teardown() -> None:
    """Leave the process group (safe to call when none exists)."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


def wrap_model(model: nn.Module, device: torch.device, parallel: str = "ddp") -> tuple[nn.Module, nn.Module]:
    """(the module to save, the module to train): DDP around it, or FSDP shards, in a world of several processes.

    The optimizer is built on the first one's parameters: the DDP wrapper shares them. On
    CUDA, batch norm layers become SyncBatchNorm first (so statistics cover the global batch);
    the state dict keys stay those of BatchNorm. ``parallel="fsdp"`` shards the module in
    place (``train/fsdp.py``): both entries are then the same, sharded module, and the
    optimizer must be built after this call.
    """
    if world().size <= 1:
        return model, model
    if device.type == "cuda":
        model = nn.SyncBatchNorm.convert_sync_batchnorm(model)
    if parallel == "fsdp":
        sharded = fsdp.shard(model)
        return sharded, sharded
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        return model, nn.parallel.DistributedDataParallel(model, device_ids=[index])
    return model, nn.parallel.DistributedDataParallel(model)


def unwrap(model: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (or ``model`` itself)."""
    return model.module if isinstance(model, nn.parallel.DistributedDataParallel) else model


def model_state(model: nn.Module) -> dict[str, torch.Tensor]:
    """A CPU copy of the weights: the full state on rank 0 and ``{}`` elsewhere under FSDP (a collective)."""
    if fsdp.is_sharded(model):
        return fsdp.full_model_state(model)
    return weights_copy(model)


def load_model_state(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Put back what :func:`model_state` gave (under FSDP rank 0 broadcasts it: a collective)."""
    if fsdp.is_sharded(model):
        fsdp.load_full_model_state(model, state, from_rank0=True)
    else:
        model.load_state_dict(state)


def gathered_state(model: nn.Module, optimizer: torch.optim.Optimizer
                   ) -> tuple[dict[str, torch.Tensor] | None, dict[str, Any] | None]:
    """Full model and optimizer states for a checkpoint of a sharded model (None, None otherwise).

    Under FSDP every rank must call it (the states are gathered onto rank 0).
    """
    if not fsdp.is_sharded(model):
        return None, None
    return fsdp.full_model_state(model), fsdp.full_optimizer_state(model, optimizer)


def check_batches(rows: int, batch_size: int) -> None:
    """Every global batch must give each rank at least one row (the last one too).

    Raises:
        ConfigError: naming ``train.batch_size`` and what would work.
    """
    size = world().size
    if size <= 1:
        return
    if batch_size < size:
        raise ConfigError(f"train.batch_size {batch_size} is smaller than the {size} processes",
                          where="train.batch_size", hint=f"use a global batch of at least {size}")
    tail = rows % batch_size
    if 0 < tail < size:
        raise ConfigError(f"the last batch has {tail} rows ({rows} rows, batch {batch_size}), fewer than the "
                          f"{size} processes", where="train.batch_size",
                          hint="pick a batch size whose remainder is 0 or at least the number of processes")


def shard_batch(indices: torch.Tensor) -> torch.Tensor:
    """This rank's share of one global batch: the strided slice ``indices[rank::world]``."""
    w = world()
    return indices if w.size <= 1 else indices[w.rank::w.size]


def global_count(local_count: float) -> float:
    """The loss denominator of one rank: the global batch's count divided by the world size.

    The loop divides each rank's *summed* loss by this, so after DDP averages the gradients
    over ranks the result is the gradient of the global batch's mean loss — exactly, even when
    the last batch (or a token count) does not split evenly.
    """
    size = world().size
    if size <= 1:
        return local_count
    total = torch.tensor([float(local_count)], dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return float(total) / size


def mean_across_ranks(value: float) -> float:
    """The mean of ``value`` over ranks (the identity in a world of one)."""
    size = world().size
    if size <= 1:
        return value
    total = torch.tensor([float(value)], dtype=torch.float64)
    torch.distributed.all_reduce(total)
    return float(total) / size


def broadcast(value: Any) -> Any:
    """Rank 0's ``value`` on every rank (a JSON-able object; identity in a world of one)."""
    if world().size <= 1:
        return value
    box = [value]
    torch.distributed.broadcast_object_list(box, src=0)
    return box[0]


# --- the launcher (CLI process) ---------------------------------------------------------------


@dataclass(frozen=True)
class LaunchOptions:
    """How torchrun should start the workers."""

    nproc: int = 1
    nnodes: int = 1
    rdzv_endpoint: str | None = None
    rdzv_timeout_s: float = 60.0
    threads_per_process: int | None = None

    def checked(self) -> LaunchOptions:
        """Validate the options; warn and cap threads when processes outnumber cores.

        Raises:
            ConfigError: ``--nproc``/``--nnodes`` below 1, or several nodes without an endpoint.
        """
        if self.nproc < 1:
            raise ConfigError(f"--nproc must be at least 1 (got {self.nproc})", where="--nproc")
        if self.nnodes < 1:
            raise ConfigError(f"--nnodes must be at least 1 (got {self.nnodes})", where="--nnodes")
        if self.nnodes > 1 and not self.rdzv_endpoint:
            raise ConfigError("--nnodes > 1 needs --rdzv-endpoint HOST:PORT (the rendezvous on one of the nodes)",
                              where="--rdzv-endpoint")
        if self.rdzv_endpoint:
            parse_endpoint(self.rdzv_endpoint)
        cores = os.cpu_count() or 1
        threads = self.threads_per_process or max(1, cores // self.nproc)
        if self.nproc > cores:
            log.warning("--nproc %d is more than the %d cores of this machine: each process gets 1 thread and "
                        "they share cores (expect it to be slower than --nproc %d)", self.nproc, cores, cores)
            threads = 1
        return LaunchOptions(self.nproc, self.nnodes, self.rdzv_endpoint, self.rdzv_timeout_s, threads)


def parse_endpoint(endpoint: str) -> tuple[str, int]:
    """``HOST:PORT`` → (host, port).

    Raises:
        ConfigError: not HOST:PORT with a port in 1..65535.
    """
    host, sep, port = endpoint.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"--rdzv-endpoint must be HOST:PORT (got {endpoint!r})", where="--rdzv-endpoint")
    return host.strip("[]"), int(port)


def _is_local(host: str) -> bool:
    if host in {"localhost", "127.0.0.1", "::1", socket.gethostname(), socket.getfqdn()}:
        return True
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(host, None)}
        local = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None)}
    except OSError:
        return False
    return bool(addresses & (local | {"127.0.0.1", "::1"}))


def probe_endpoint(endpoint: str, timeout_s: float) -> None:
    """Wait until the rendezvous endpoint accepts TCP connections (a node that hosts it skips this).

    Raises:
        TrainingError: unreachable within ``timeout_s``, naming the endpoint and the last error.
    """
    host, port = parse_endpoint(endpoint)
    if _is_local(host):
        return  # this node's torchrun starts the rendezvous store itself
    deadline = time.monotonic() + timeout_s
    last: OSError | None = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=min(5.0, max(timeout_s, 0.1))):
                return
        except OSError as exc:
            last = exc
            time.sleep(min(1.0, max(deadline - time.monotonic(), 0.0)))
    raise TrainingError(f"rendezvous endpoint {endpoint} is unreachable after {timeout_s:g} s ({last})",
                        where="--rdzv-endpoint",
                        hint="start the node that hosts the endpoint first, check the host/port and the firewall, "
                             "or raise --rdzv-timeout")


def torchrun_command(job_dir: Path, options: LaunchOptions) -> list[str]:
    """The ``python -m torch.distributed.run`` command line for ``options``."""
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc-per-node={options.nproc}", "--max-restarts=0"]
    if options.nnodes == 1 and not options.rdzv_endpoint:
        cmd.append("--standalone")
    else:
        cmd += [f"--nnodes={options.nnodes}", "--rdzv-backend=c10d", f"--rdzv-endpoint={options.rdzv_endpoint}",
                f"--rdzv-id=modelyard-{job_dir.name}", f"--rdzv-conf=join_timeout={int(options.rdzv_timeout_s)}"]
    return [*cmd, "-m", "modelyard.train.distributed", str(job_dir / JOB_FILE)]


def launch(recipe_dict: dict[str, Any], dataset_id: str, *, run_id: str, job_dir: Path,
           options: LaunchOptions, resume: str | None = None, log: Path | None = None) -> dict[str, Any]:
    """Run the train stage under torchrun and wait for it.

    Args:
        recipe_dict: the validated recipe as a dict (``recipe_to_dict``), re-validated by each worker.
        dataset_id: the prepared dataset's artifact id.
        run_id: the train run rank 0 writes to (opened and closed by the caller).
        job_dir: an empty folder for the job file, the workers' error files and the result.
        options: processes, nodes, rendezvous (checked here).
        resume: a train run id (or ``last``) whose newest checkpoint every rank continues from.
        log: where the workers' stdout/stderr go (default ``job_dir/workers.log``).

    Returns:
        ``result.json`` written by local rank 0: ``{"model": id, "main_run": id, "world_size": n}``
        plus ``compute`` summed over this node's workers (CPU hours, the largest peak RSS).
        ``model`` is None on nodes whose run is not the main one (rank 0 lives elsewhere).

    Raises:
        TrainingError: a worker failed (its own message, with the rank) or the rendezvous timed out.
    """
    options = options.checked()
    if options.rdzv_endpoint and options.nnodes > 1:
        probe_endpoint(options.rdzv_endpoint, options.rdzv_timeout_s)
    job_dir.mkdir(parents=True, exist_ok=True)
    job = {"recipe": recipe_dict, "dataset": dataset_id, "run_id": run_id, "resume": resume}
    (job_dir / JOB_FILE).write_text(json.dumps(job), encoding="utf-8")
    env = {**os.environ, "OMP_NUM_THREADS": str(options.threads_per_process), "PYTHONUNBUFFERED": "1"}
    log = log or job_dir / "workers.log"
    with log.open("wb") as out:
        code = subprocess.run(torchrun_command(job_dir, options), env=env, stdout=out, stderr=subprocess.STDOUT,
                              check=False).returncode
    result = job_dir / RESULT_FILE
    if code != 0 or not result.exists() or any(job_dir.glob("error-rank*.json")):
        raise job_failure(job_dir, code, log, options)
    outcome = json.loads(result.read_text("utf-8"))
    usage = [json.loads(p.read_text("utf-8")) for p in sorted(job_dir.glob("usage-rank*.json"))]
    outcome["compute"] = {"cpu_hours": round(sum(u["cpu_seconds"] for u in usage) / 3600, 6),
                          "peak_memory_mb": max((u["peak_rss_mb"] for u in usage), default=None),
                          "processes": len(usage), "world_size": outcome.get("world_size"),
                          "measured": "CPU time summed over this node's workers; the largest worker peak RSS"}
    return outcome


def run_distributed(recipe: Recipe, data: DatasetRef, *, ctx: RunContext, options: LaunchOptions,
                    resume: str | None = None) -> ModelRef:
    """The train stage under torchrun, for the run ``ctx`` (opened and closed by the caller).

    Records the workers' compute (CPU hours over all local ranks, the largest peak RSS) in the
    run summary, where the model card reads it.

    Raises:
        ConfigError: bad launch options.
        TrainingError: a worker failed, died, or the rendezvous timed out; nothing was published.
    """
    from modelyard.config.loader import recipe_to_dict

    job_dir = ctx.work_dir / f"torchrun-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    ctx.progress.start(f"train · torchrun {options.nnodes}x{options.nproc}", None)
    try:
        result = launch(recipe_to_dict(recipe), data.id, run_id=ctx.run_id, job_dir=job_dir, options=options,
                        resume=resume)
    finally:
        ctx.progress.stop()
    summary = dict(ctx.store.runs.get(ctx.run_id).get("summary") or {})
    summary["compute"] = {**(summary.get("compute") or {}), **result["compute"]}
    if result["main_run"] != ctx.run_id:
        summary["main_run"] = result["main_run"]   # rank 0 ran on another node and wrote there
    ctx.store.runs.set_summary(ctx.run_id, summary)
    return ModelRef(id=result["model"])


# --- the worker (one per rank) -----------------------------------------------------------------


def worker_main(job_path: Path) -> int:
    """Entry point of one rank: join the group, run the train stage, report errors to the launcher."""
    from modelyard.store import open_store

    job = json.loads(job_path.read_text("utf-8"))
    recipe = Recipe.model_validate(job["recipe"])
    rank = int(os.environ.get("RANK", "0"))
    try:
        setup(recipe.train.device)
        from modelyard import train as train_stage

        with open_store() as store:
            logger = MetricLogger(store, job["run_id"]) if rank == 0 else _NoMetrics(store, job["run_id"])
            ctx = RunContext(store=store, run_id=job["run_id"], metrics=logger, seed=recipe.seed)
            model = train_stage.run(recipe, DatasetRef(id=job["dataset"]), ctx=ctx, resume=job.get("resume"))
            main_run = broadcast(job["run_id"])
        usage = resource.getrusage(resource.RUSAGE_SELF)
        (job_path.parent / f"usage-rank{rank}.json").write_text(json.dumps(
            {"cpu_seconds": usage.ru_utime + usage.ru_stime, "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}),
            encoding="utf-8")
        if int(os.environ.get("LOCAL_RANK", "0")) == 0:
            result = {"model": model.id or None, "main_run": main_run, "world_size": world().size}
            (job_path.parent / RESULT_FILE).write_text(json.dumps(result), encoding="utf-8")
    except YardError as exc:
        _write_error(job_path.parent, rank, exc.message, exc.where, exc.hint)
        return 1
    except Exception as exc:  # surfaced to the launcher with its type; torchrun stops the other ranks
        _write_error(job_path.parent, rank, f"{type(exc).__name__}: {exc}", None, None)
        raise
    finally:
        teardown()
    return 0


# How a rank's collective fails when a peer has gone (killed, out of memory): gloo and NCCL words.
_PEER_LOST = ("Read error", "Connection closed by peer", "Connection reset by peer", "Broken pipe",
              "Socket Timeout", "NCCL communicator was aborted")


def job_failure(job_dir: Path, code: int, log: Path, options: LaunchOptions) -> TrainingError:
    """The error of a torchrun job that failed: a rank's own error, a rendezvous timeout, or a dead worker.

    A rank whose collective broke because a peer died (gloo's "Read error", NCCL's abort) is not
    the cause: when every error file says only that, the job is reported as a worker that died,
    whichever rank noticed first.
    """
    errors = [json.loads(p.read_text("utf-8")) for p in sorted(job_dir.glob("error-rank*.json"))]
    own = [e for e in errors if not any(word in e["message"] for word in _PEER_LOST)]
    if own:
        first = own[0]
        return TrainingError(f"rank {first['rank']} failed: {first['message']}", where=first.get("where"),
                             hint=first.get("hint") or f"nothing was published; worker output: {log}")
    tail = log.read_text("utf-8", errors="replace").strip().splitlines()[-12:] if log.exists() else []
    text = "\n".join(tail)
    if "RendezvousTimeoutError" in text or ("rendezvous" in text.lower() and "timeout" in text.lower()):
        return TrainingError(f"the rendezvous at {options.rdzv_endpoint} timed out after "
                             f"{options.rdzv_timeout_s:g} s waiting for {options.nnodes} node(s)",
                             where="--rdzv-endpoint", hint=f"start every node; worker output: {log}")
    noticed = "".join(f"\nrank {e['rank']} lost its peer: {e['message'].splitlines()[0][-200:]}" for e in errors)
    return TrainingError(f"distributed training stopped (exit code {code}): a worker died before finishing",
                         hint=f"nothing was published; worker output: {log}{noticed}\n{text}")


def _write_error(job_dir: Path, rank: int, message: str, where: str | None, hint: str | None) -> None:
    path = job_dir / f"error-rank{rank}.json"
    path.write_text(json.dumps({"rank": rank, "message": message, "where": where, "hint": hint}), encoding="utf-8")


class _NoMetrics(MetricLogger):
    """The metric logger of ranks other than 0: same interface, writes nothing."""

    def log(self, step: int, values: Mapping[str, float]) -> None:
        """Drop the values (rank 0 logs the reduced ones)."""

    def flush(self) -> None:
        """Nothing to write."""


__all__ = [
    "LaunchOptions",
    "World",
    "broadcast",
    "check_batches",
    "global_count",
    "is_main",
    "job_failure",
    "launch",
    "mean_across_ranks",
    "parse_endpoint",
    "probe_endpoint",
    "run_distributed",
    "setup",
    "shard_batch",
    "teardown",
    "torchrun_command",
    "unwrap",
    "worker_main",
    "world",
    "wrap_model",
]


if __name__ == "__main__":
    sys.exit(worker_main(Path(sys.argv[1])))
