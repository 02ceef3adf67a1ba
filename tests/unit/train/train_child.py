"""A training process for the resume tests.

    python -m tests.unit.train.train_child RECIPE DATASET KILL_AT RESUME OUT

Trains RECIPE on the prepared DATASET in the store of ``$YARD_HOME``. With KILL_AT > 0 the
process SIGKILLs itself right after optimizer step KILL_AT (through the run context's
progress sink, which the loop calls after every step: no hook in the training code). With
RESUME (a train run id, ``-`` for none) it continues that run. On success the model id is
written to OUT.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any

import torch


class KillAtStep:
    """A progress sink that kills its own process with SIGKILL after ``step`` steps."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.done = 0

    def start(self, description: str, total: int | None) -> None:
        pass

    def advance(self, n: int = 1, **fields: Any) -> None:
        self.done += n
        if self.step and self.done >= self.step:
            os.kill(os.getpid(), signal.SIGKILL)

    def stop(self) -> None:
        pass


def main(recipe_path: str, dataset_id: str, kill_at: str, resume: str, out: str) -> None:
    torch.set_num_threads(1)  # the same kernels in every process
    from modelyard import train as train_stage
    from modelyard.config import load_recipe
    from modelyard.config.loader import recipe_to_dict
    from modelyard.core.refs import DatasetRef
    from modelyard.store import open_store
    from modelyard.store.context import stage_run

    recipe = load_recipe(Path(recipe_path))
    with open_store() as store, stage_run(store, kind="train", name=recipe.name, config=recipe_to_dict(recipe),
                                          progress=KillAtStep(int(kill_at))) as ctx:
        print(ctx.run_id, flush=True)
        model = train_stage.run(recipe, DatasetRef(id=dataset_id), ctx=ctx, resume=None if resume == "-" else resume)
    Path(out).write_text(model.id)


if __name__ == "__main__":
    main(*sys.argv[1:])
