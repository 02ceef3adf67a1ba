"""Registers a version and stops inside the registration transaction, to be SIGKILLed there.

    python killed_registration.py ROOT URL ARTIFACT_ID
Prints "inside" once the version row is written but not committed, then sleeps.
"""

from __future__ import annotations

import sys
import time

from modelyard.core.refs import ModelRef
from modelyard.store import open_store, registry

_move_alias = registry._move_alias


def _stall(*args: object, **kwargs: object) -> object:
    result = _move_alias(*args, **kwargs)  # type: ignore[arg-type]
    print("inside", flush=True)
    time.sleep(120)
    return result


def main() -> None:
    root, url, artifact = sys.argv[1:4]
    registry._move_alias = _stall  # type: ignore[assignment]
    with open_store(root, url=url) as store:
        store.models.register("victim", ModelRef(id=artifact), alias="production")


if __name__ == "__main__":
    main()
