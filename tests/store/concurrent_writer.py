"""One of the processes of the concurrency test: runs + metric batches + registrations into one store.

    python concurrent_writer.py ROOT URL WORKER VERSIONS BATCHES START_FILE
Prints one JSON line: {"versions": [...], "errors": [...]}.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from modelyard.core.errors import YardError
from modelyard.core.refs import ModelRef
from modelyard.store import open_store

POINTS_PER_BATCH = 50


def main() -> None:
    root, url, worker, versions, batches, start = sys.argv[1:7]
    deadline = time.time() + 60
    while not Path(start).exists() and time.time() < deadline:
        time.sleep(0.01)  # all workers start writing at the same moment
    done: list[int] = []
    errors: list[str] = []
    with open_store(root, url=url) as store:
        for i in range(int(versions)):
            try:
                run_id = store.runs.create(kind="train", name=f"w{worker}", config={"worker": worker, "i": i})
                for batch in range(int(batches)):
                    store.runs.log_metrics(run_id, [("loss", batch * POINTS_PER_BATCH + step, 1.0 / (step + 1))
                                                    for step in range(POINTS_PER_BATCH)])
                with store.artifacts.staging() as folder:
                    (folder / "weights.bin.txt").write_text(f"worker {worker} version {i}")
                    ref = store.artifacts.publish(folder, kind="model", run_id=run_id)
                version = store.models.register("shared", ModelRef(id=ref.id), run_id=run_id,
                                                alias=f"w{worker}")
                store.runs.finish(run_id, status="finished")
                done.append(version.version)
            except (YardError, OSError) as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    print(json.dumps({"versions": done, "errors": errors}))


if __name__ == "__main__":
    main()
