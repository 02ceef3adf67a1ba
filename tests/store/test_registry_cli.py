"""`yard models|keys|audit|store` on real models: the gate, rollback, cards, bundles, gc, backup, keys, audit."""

from __future__ import annotations

import json
import shutil
import sqlite3
from pathlib import Path

import pytest

from modelyard.cli import main
from modelyard.config import load_recipe
from modelyard.pipeline import run_recipe
from modelyard.store import open_store
from tests.conftest import TINY_RECIPE


def yard(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    """Run `yard ARGS` in this process; returns (exit code, stdout, stderr)."""
    capsys.readouterr()
    try:
        main(list(args))
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def fails(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code, _out, err = yard(capsys, *args)
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) <= 2, err
    return err


@pytest.fixture(scope="module")
def trained_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tiny-iris@v1 (10 epochs, good) and @v2 (1 epoch at a tiny learning rate, much worse), same dataset.

    Trained once per module; each test gets its own copy of the store.
    """
    folder = tmp_path_factory.mktemp("trained")
    good, bad = folder / "good.yaml", folder / "bad.yaml"
    recipe = TINY_RECIPE + "explain: {enabled: false}\n"  # explanations are not what these tests are about
    good.write_text(recipe.replace("epochs: 30", "epochs: 10"))
    bad.write_text(recipe.replace("epochs: 30", "epochs: 1").replace("lr: 0.02", "lr: 0.0001"))
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # a 32-unit MLP: threads only add contention on a shared machine
    try:
        with open_store(folder / "store") as store:
            first = run_recipe(load_recipe(good), store, report_dir=folder / "reports")
            second = run_recipe(load_recipe(bad), store, report_dir=folder / "reports")
            assert first.dataset == second.dataset  # same data, same content hash: the gate pairs rows
    finally:
        torch.set_num_threads(threads)
    return folder / "store"


@pytest.fixture
def two_versions(trained_store: Path, tmp_path: Path) -> Path:
    """A private copy of the trained store as this test's $YARD_HOME (set by tests/conftest.py)."""
    shutil.copytree(trained_store, tmp_path / "yard-home")
    return tmp_path


def test_promotion_gate_force_and_rollback(capsys: pytest.CaptureFixture[str], two_versions: Path) -> None:
    code, out, _ = yard(capsys, "models", "promote", "tiny-iris@v1")
    assert code == 0 and "tiny-iris@production → v1" in out  # the first production version has no baseline
    err = fails(capsys, "models", "promote", "tiny-iris@v2")
    assert "promotion of tiny-iris@v2 refused: candidate is worse" in err and "--force" in err
    code, out, _ = yard(capsys, "models", "promote", "tiny-iris@v2", "--force", "--json")
    assert code == 0 and json.loads(out)["previous"] == 1
    code, out, _ = yard(capsys, "models", "rollback", "tiny-iris")
    assert code == 0 and "v2 → v1" in out
    err = fails(capsys, "models", "rollback", "tiny-iris")
    assert "no earlier version" in err
    code, out, _ = yard(capsys, "audit", "show", "--action", "model.", "--json")
    entries = json.loads(out)
    promotions = [(e["outcome"], e["details"]["to"]) for e in entries if e["action"] == "model.promote"]
    assert promotions == [("forced", 2), ("refused", 2), ("ok", 1)]  # newest first
    refused = next(e for e in entries if e["outcome"] == "refused")["details"]["gate"]
    assert refused["checked"] and refused["n"] == 30 and refused["delta"] < 0  # 30 test rows, paired
    code, out, _ = yard(capsys, "models", "history", "tiny-iris", "--json")
    assert [e["event"] for e in json.loads(out)].count("alias rollback") == 1
    code, out, _ = yard(capsys, "audit", "verify")
    assert code == 0 and "audit chain ok" in out


def test_show_lineage_card_tag_and_verify(capsys: pytest.CaptureFixture[str], two_versions: Path) -> None:
    code, out, _ = yard(capsys, "models", "show", "tiny-iris@staging", "--lineage")
    assert code == 0 and "tiny-iris@v2" in out and "all hashes verified" in out
    for needle in ("dataset ", "data run ", "training run ", "tiny-iris@v2 (model", "evaluated_from"):
        assert needle in out, needle
    code, out, _ = yard(capsys, "models", "tag", "tiny-iris@v1", "team=vision", "--description", "baseline")
    assert code == 0 and "team=vision" in out
    code, out, _ = yard(capsys, "models", "card", "tiny-iris@v1", "--notes", "Only for iris flowers.")
    assert code == 0 and "# Model card: tiny-iris@v1" in out and "Only for iris flowers." in out
    assert "Split sizes: test 30" in out and "## Compute" in out
    card_dir = two_versions / "card"
    code, _, _ = yard(capsys, "models", "card", "tiny-iris@v1", "--out", str(card_dir))
    card = json.loads((card_dir / "card.json").read_text())
    assert card["tags"] == {"team": "vision"} and card["data"]["split_sizes"]["test"] == 30
    assert (card_dir / "card.md").read_text().startswith("# Model card: tiny-iris@v1")
    code, out, _ = yard(capsys, "models", "show", "tiny-iris@v1", "--json")
    artifact = json.loads(out)["artifact"]
    code, out, _ = yard(capsys, "models", "register", "iris-prod", artifact[:10], "--alias", "candidate",
                        "--tag", "source=cli", "--json")
    assert code == 0 and json.loads(out) == {"model": "iris-prod@v1", "artifact": artifact, "aliases": ["candidate"]}
    code, out, _ = yard(capsys, "models", "verify", "--all")
    assert code == 0 and out.count("ok tiny-iris@") == 2 and "ok iris-prod@v1" in out
    with open_store() as store:
        folder = store.artifacts.path(store.models.resolve("tiny-iris@v1").ref)
    (folder / "spec.json").write_text("{}")
    err = fails(capsys, "models", "verify", "tiny-iris@v1")
    assert "spec.json: sha256 mismatch" in err


def test_export_import_delete_gc_backup(capsys: pytest.CaptureFixture[str], two_versions: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    tmp = two_versions
    assert yard(capsys, "audit", "keygen", "--out", str(tmp / "sign.key"))[0] == 0
    bundle = tmp / "iris.tar.gz"
    assert yard(capsys, "models", "export", "tiny-iris@v1", str(bundle), "--sign-key", str(tmp / "sign.key"))[0] == 0
    code, out, _ = yard(capsys, "models", "verify", "--bundle", str(bundle), "--public-key", str(tmp / "sign.key.pub"))
    assert code == 0 and "bundle ok: tiny-iris@v1" in out and "signed by" in out
    monkeypatch.setenv("YARD_HOME", str(tmp / "second-store"))
    code, out, _ = yard(capsys, "models", "import", str(bundle), "--public-key", str(tmp / "sign.key.pub"),
                        "--require-signature")
    assert code == 0 and "as tiny-iris@v1" in out
    monkeypatch.setenv("YARD_HOME", str(tmp / "yard-home"))

    err = fails(capsys, "models", "delete", "tiny-iris@v2")
    assert "still staging" in err
    assert yard(capsys, "models", "delete", "tiny-iris@v2", "--force")[0] == 0
    fails(capsys, "models", "show", "tiny-iris@v2")
    code, out, _ = yard(capsys, "store", "gc", "--json")
    freed = json.loads(out)
    assert len(freed["artifacts"]) == 1 and freed["bytes_freed"] > 0

    code, out, _ = yard(capsys, "store", "backup", str(tmp / "bk"))
    assert code == 0 and "verified" in out
    assert yard(capsys, "store", "verify-backup", str(tmp / "bk"))[0] == 0
    code, out, _ = yard(capsys, "store", "restore", str(tmp / "bk"), "--to", str(tmp / "restored"))
    assert code == 0
    monkeypatch.setenv("YARD_HOME", str(tmp / "restored"))
    code, out, _ = yard(capsys, "models", "list", "--json")
    assert json.loads(out) == [{"name": "tiny-iris", "versions": 1, "latest": 1, "aliases": {}}]
    code, out, _ = yard(capsys, "audit", "show", "--limit", "1", "--json")
    assert json.loads(out)[0]["action"] == "store.restore"


def test_keys_and_audit_tampering(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = yard(capsys, "keys", "create", "--scopes", "predict,read", "--expires", "30d", "--name", "web")
    token = out.strip()
    assert code == 0 and token.startswith("yard_") and "not shown again" in err
    key_id = token.split("_")[1]
    with open_store() as store:
        assert store.keys.verify(token).scopes == ("predict", "read")
    code, out, _ = yard(capsys, "keys", "list", "--json")
    listed = json.loads(out)
    assert listed[0]["id"] == key_id and listed[0]["status"] == "active" and token not in out
    assert "secret" not in out and "$argon2" not in out
    fails(capsys, "keys", "create", "--scopes", "root")
    fails(capsys, "keys", "create", "--scopes", "read", "--expires", "forever")
    assert yard(capsys, "keys", "revoke", key_id)[0] == 0
    code, out, _ = yard(capsys, "keys", "list", "--json")
    assert json.loads(out)[0]["status"] == "revoked"
    code, out, _ = yard(capsys, "audit", "verify", "--json")
    assert json.loads(out)["ok"] and json.loads(out)["entries"] == 2
    with sqlite3.connect(tmp_path / "yard-home" / "store.db") as conn:
        conn.execute("DROP TRIGGER audit_log_no_update")  # the append-only guard, as an attacker would
        conn.execute("UPDATE audit_log SET actor = 'someone-else' WHERE seq = 1")
    err = fails(capsys, "audit", "verify")
    assert "audit chain broken: entry 1: content does not match its hash" in err


def test_bad_inputs_are_one_line_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert "invalid model name" in fails(capsys, "models", "show", "../etc@v1")
    assert "not found" in fails(capsys, "models", "show", "nothere@production")
    assert "looks like a version" in fails(capsys, "models", "promote", "x@v1", "--to", "v2")
    assert "not an artifact id" in fails(capsys, "models", "register", "m", "zz")
    assert "KEY=VALUE" in fails(capsys, "models", "tag", "x@v1", "novalue")


def test_store_keygen_init_encrypted_and_info(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    from modelyard.store.migrations import LATEST

    monkeypatch.setenv("YARD_PLAINTEXT_DIR", str(tmp_path))
    key_file = tmp_path / "store.key"
    assert yard(capsys, "store", "keygen", "--out", str(key_file))[0] == 0
    assert key_file.stat().st_mode & 0o777 == 0o600
    assert "refusing to overwrite" in fails(capsys, "store", "keygen", "--out", str(key_file))
    assert "needs a key" in fails(capsys, "store", "init", "--encrypt")
    monkeypatch.setenv("YARD_ENCRYPTION_KEY_FILE", str(key_file))
    code, out, _ = yard(capsys, "store", "init", "--encrypt")
    assert code == 0 and "encrypted (key id" in out
    code, out, _ = yard(capsys, "store", "info", "--json")
    info = json.loads(out)
    assert info["encrypted"] is True and info["schema_version"] == LATEST and info["audit_log"] == 1
    monkeypatch.delenv("YARD_ENCRYPTION_KEY_FILE")
    assert "this store is encrypted and no key is set" in fails(capsys, "models", "list")
