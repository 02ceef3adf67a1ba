"""The plan's predictions against real runs: peak memory within ±20 %, step time within ±30 %.

For every example recipe (and a 17 M-parameter MLP, where weights, gradients and optimizer
state are a third of the process), the test plans (with the calibration), then trains at
least 12 steps (whole epochs) in a fresh ``yard train`` process with the plan's batch and
precision, and compares:

- predicted peak memory against the training process's peak RSS (``os.wait4``);
- predicted step time against the run's logged step times.

Both sides run under the same conditions: the recipe's precision, one thread per process
(``OMP_NUM_THREADS=1``), and step time measured as the median *CPU* time per step — the
calibration's ``process_time`` per step, and the run's logged step wall time × the monitor's
CPU share. Wall time on this shared machine swings by 10x with other people's load; CPU
time of a one-thread process does not. Slow: two fresh processes per recipe.

CPU time still moves with the neighbours' load (shared caches, frequency): on a loaded CI
machine one measurement came in at 1.42x. So a step-time ratio outside the band is measured
again, plan and run both, up to ``_ATTEMPTS`` times; the test fails only when every attempt
is outside. A model that is wrong is wrong every time; a noisy neighbour rarely is three
times in a row. Memory is asserted on every attempt (peak RSS does not depend on load).
"""

from __future__ import annotations

import math
import os
import statistics
import subprocess
import sys
from pathlib import Path

import pytest

from modelyard import data as data_stage
from modelyard.config.loader import load_recipe
from modelyard.core.refs import DatasetRef
from modelyard.data.artifact import open_dataset
from modelyard.plan import make_plan
from modelyard.store import open_store
from modelyard.store.context import stage_run

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
CASES = [*sorted((REPO / "recipes").glob("*.yaml")), Path(__file__).parent / "wide-mlp.yaml"]


def _cpu_per_step(run_id: str, batch_size: int) -> list[float]:
    """CPU seconds per step of each full-batch logged window: mean step wall time × the monitor's CPU share.

    The first two windows are left out: the first holds the warm-up step (and its FLOP count),
    the second the matmul benchmark the loop runs once for its MFU figure. So is every window
    that holds an epoch's partial last batch (fewer samples per step than ``batch_size``): its
    steps are shorter than the plan's, which is for full batches.
    """
    with open_store() as store:
        wall = store.runs.metric_series(run_id, "train/step_time_s")
        share = dict(store.runs.metric_series(run_id, "system/cpu_percent"))   # train/monitor.py
        rate = dict(store.runs.metric_series(run_id, "train/samples_per_s"))
    return [seconds * share[step] / 100 for step, seconds in wall[2:]
            if rate[step] * seconds > batch_size - 0.5]


# Ratios outside the band seen on loaded machines: quickstart 1.42 (CI); the next attempt came in within.
_ATTEMPTS = 3


def _measure(path: Path, ref: DatasetRef, recipe_overrides: list[str], tmp_path: Path,
             attempt: int) -> tuple[float, float]:
    """Plan, then train in a fresh process; the (memory, step-time) ratios measured / predicted."""
    recipe = load_recipe(path, recipe_overrides)
    with open_store() as store:
        plan = make_plan(recipe, open_dataset(store, ref), budget="16GB", steps=8,
                         keep_precision=True)
    assert plan.step_cpu_seconds is not None
    # Enough epochs for at least 12 steps: some 6 logged windows, 4 after the two left out.
    epochs = math.ceil(12 / plan.steps_per_epoch)
    args = [sys.executable, "-m", "modelyard.cli.__main__", "train", str(path), "--dataset", ref.id, *recipe_overrides,
            f"train.epochs={epochs}", f"train.batch_size={plan.batch_size}",
            f"train.grad_accumulation={plan.grad_accumulation}"]
    log = tmp_path / f"train-{attempt}.log"
    with log.open("w") as err:
        proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=err)
        _, status, usage = os.wait4(proc.pid, 0)
        proc.returncode = os.waitstatus_to_exitcode(status)
    assert proc.returncode == 0, log.read_text()
    peak_mb = usage.ru_maxrss / 1024                                           # Linux: KiB
    with open_store() as store:
        run_id = store.runs.list(kind="train")[0]["id"]
    steps = _cpu_per_step(run_id, plan.batch_size)
    assert len(steps) >= 2, f"{path.stem}: {len(steps)} full-batch windows to compare"
    memory_ratio = peak_mb / plan.memory_mb["total"]
    step_ratio = statistics.median(steps) / plan.step_cpu_seconds
    print(f"{path.stem} (attempt {attempt}): peak {peak_mb:.0f} MB / predicted {plan.memory_mb['total']:.0f} MB "
          f"= {memory_ratio:.3f}; step {statistics.median(steps) * 1000:.1f} ms CPU / predicted "
          f"{plan.step_cpu_seconds * 1000:.1f} ms = {step_ratio:.3f} "
          f"(wall: best {plan.step_seconds * 1000 if plan.step_seconds else 0:.1f} ms predicted)")
    return memory_ratio, step_ratio


@pytest.mark.parametrize("path", CASES, ids=[p.stem for p in CASES])
def test_plan_predicts_peak_memory_and_step_time(path: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    overrides = ["train.log_every_steps=2"]   # the loop's bookkeeping shared by 2 steps
    recipe = load_recipe(path, overrides)
    with open_store() as store:
        with stage_run(store, kind="data", name=recipe.name, config={}) as ctx:
            ref = data_stage.run(recipe, ctx=ctx)
    step_ratios = []
    for attempt in range(1, _ATTEMPTS + 1):
        memory_ratio, step_ratio = _measure(path, ref, overrides, tmp_path, attempt)
        assert 0.8 <= memory_ratio <= 1.2
        step_ratios.append(step_ratio)
        if 0.7 <= step_ratio <= 1.3:
            return
    pytest.fail(f"{path.stem}: step time / prediction outside [0.7, 1.3] in all {_ATTEMPTS} attempts: "
                + ", ".join(f"{r:.3f}" for r in step_ratios))
