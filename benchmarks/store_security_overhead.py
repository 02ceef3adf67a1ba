"""What the store's safety costs: audited registration, encryption at rest, API-key checks.

Each figure runs next to its baseline in the same process, alternating in rounds, and the
JSON line reports medians and ratios (a ratio holds when the machine's speed drifts):

- ``register``: ``store.models.register`` (version row + alias move + two hash-chained audit
  entries in one ``BEGIN IMMEDIATE`` transaction) against a bare insert of the same
  version row through the same engine — the price of the audit chain and the checks;
- ``publish``/``open``: publishing and then opening (verify all hashes) an artifact of
  ``--mib`` MiB of random bytes in an AES-256-GCM store against a plaintext store;
- ``verify_key``: ``store.keys.verify`` (argon2id, 19 MiB, t=2) per request — the serving
  path's per-request cost — against a sha256 of the token (what a store without a slow
  hash would pay).

    python benchmarks/store_security_overhead.py --small   # CI: a few rounds, 4 MiB
    python benchmarks/store_security_overhead.py           # 64 MiB artifacts, more rounds
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import insert

from modelyard.core.refs import ModelRef
from modelyard.store import crypto, open_store, tables


def _timed(work) -> float:  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    work()
    return time.perf_counter() - start


def _publish(store, payload: bytes):  # type: ignore[no-untyped-def]
    with store.artifacts.staging() as folder:
        (folder / "weights.dat").write_bytes(payload)
        return store.artifacts.publish(folder, kind="model")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--small", action="store_true", help="CI size: fewer rounds, 4 MiB artifacts")
    parser.add_argument("--mib", type=int, default=None, help="artifact size in MiB")
    args = parser.parse_args()
    rounds = 5 if args.small else 15
    registrations = 20 if args.small else 100
    mib = args.mib or (4 if args.small else 64)

    with tempfile.TemporaryDirectory(prefix="yard-bench-") as tmp:
        root = Path(tmp)
        key = os.urandom(32)
        os.environ[crypto.KEY_ENV] = base64.b64encode(key).decode()
        os.environ.setdefault("YARD_PLAINTEXT_DIR", str(root / "shm"))
        (root / "shm").mkdir(mode=0o700, exist_ok=True)
        crypto.enable(root / "enc", key)
        plain, enc = open_store(root / "plain"), open_store(root / "enc")
        try:
            artifact = _publish(plain, b"x")
            register_s, insert_s, publish_enc, publish_plain, open_enc, open_plain = [], [], [], [], [], []
            next_version = 1
            for r in range(rounds):
                # Registration with audit vs. a bare row insert (version numbers kept apart by name).
                register_s.append(_timed(lambda: [plain.models.register("audited", ModelRef(id=artifact.id))
                                                  for _ in range(registrations)]) / registrations)

                def bare() -> None:
                    nonlocal next_version
                    with plain.engine.begin() as conn:
                        conn.execute(insert(tables.models).prefix_with("OR IGNORE").values(
                            name="bare", description="", created_at="now"))
                    for _ in range(registrations):
                        with plain.engine.begin() as conn:
                            conn.execute(insert(tables.model_versions).values(
                                name="bare", version=next_version, artifact_id=artifact.id, description="",
                                metrics="{}", created_at="now"))
                        next_version += 1

                insert_s.append(_timed(bare) / registrations)
                payload = os.urandom(mib << 20)  # fresh content each round: no dedup shortcut
                for store, publish_s, open_s in ((enc, publish_enc, open_enc), (plain, publish_plain, open_plain)):
                    start = time.perf_counter()
                    ref = _publish(store, payload)
                    publish_s.append(time.perf_counter() - start)
                    start = time.perf_counter()
                    store.artifacts.path(ref)  # first open in this process: decrypt (if sealed) + verify
                    open_s.append(time.perf_counter() - start)
                if r == 0:
                    token, _info = plain.keys.create("predict")
            verify_s = [_timed(lambda: plain.keys.verify(token)) for _ in range(rounds * 2)]
            sha_s = [_timed(lambda: hashlib.sha256(token.encode()).hexdigest()) for _ in range(rounds * 2)]
            assert plain.audit.verify().ok
        finally:
            plain.close()
            enc.close()

    med = statistics.median
    figures = {
        "benchmark": "store_security_overhead", "rounds": rounds, "artifact_mib": mib,
        "register_ms": round(med(register_s) * 1e3, 3), "bare_insert_ms": round(med(insert_s) * 1e3, 3),
        "register_ratio": round(med(register_s) / med(insert_s), 2),
        "publish_encrypted_mib_s": round(mib / med(publish_enc), 1),
        "publish_plain_mib_s": round(mib / med(publish_plain), 1),
        "publish_ratio": round(med(publish_enc) / med(publish_plain), 2),
        "open_encrypted_mib_s": round(mib / med(open_enc), 1), "open_plain_mib_s": round(mib / med(open_plain), 1),
        "open_ratio": round(med(open_enc) / med(open_plain), 2),
        "verify_key_ms": round(med(verify_s) * 1e3, 2), "sha256_token_us": round(med(sha_s) * 1e6, 2),
        "cpu_count": os.cpu_count(), "load_avg_1m": round(os.getloadavg()[0], 2),
    }
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
