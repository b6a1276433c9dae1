"""hf.yaml ``moved:`` through `batuta plan|apply|validate` against the local Hub (issue #20): a
renamed entry keeps its hf.lock entry, cache and outputs — the plan shows ``old → new``, apply
downloads nothing and rewrites only hf.lock's key; contradictions are errors with file:line."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.core.lockfile import RepoLock, read_lock
from tests._builders import run_cli as run

FILES = {"config.json": b'{"a": 1}', "notes.txt": b"hello " * 300}
HEAD = "# yaml-language-server: $schema=https://batuta-sync.dev/schemas/hf.schema.json\nversion: 1\n"
MOVE = "moved:\n  - from: models.old\n    to: models.new\n"


def _write(ws: Path, body: str) -> str:
    ws.mkdir(parents=True, exist_ok=True)
    (ws / "hf.yaml").write_text(HEAD + body)
    return str(ws / "hf.yaml")


@pytest.fixture
def applied(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> Path:
    """A workspace whose hf.lock has models.old, pulled into the cache and ./out."""
    hub_env.store.commit("org/a", FILES)
    ws = tmp_path / "ws"
    f = _write(ws, "models:\n  old:\n    repo: org/a\n    output: ./out\n")
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.old"}
    return ws


def test_rename_with_a_moved_block_keeps_lock_cache_and_outputs(
    applied: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    ws = applied
    before = {p.name: os.lstat(p) for p in (ws / "out").iterdir()}
    old_entry = read_lock(ws / "hf.lock").get("models.old")  # type: ignore[union-attr]
    f = _write(ws, "models:\n  new:\n    repo: org/a\n    output: ./out\n" + MOVE)
    code, out, err = run(capsys, "validate", "-f", f)
    assert code == 0, err
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2, err
    assert "models.old → models.new" in out and "(moved)" in out and "1 moved" in out
    actions = out.split("Plan:")[0]
    assert "delete" not in actions and "pull" not in actions and "0 to delete" in out
    hub_env.log.clear()
    code, out, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    assert hub_env.log.count(path_contains="/resolve/") == 0  # no file downloaded
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.new"}
    new_entry = lock.get("models.new")
    assert isinstance(new_entry, RepoLock) and isinstance(old_entry, RepoLock)
    assert (new_entry.commit, new_entry.files, new_entry.tree) == (old_entry.commit, old_entry.files, old_entry.tree)
    text = (ws / "hf.lock").read_text()
    assert '"models.new"' in text and '"models.old"' not in text
    # the outputs are the same links (not re-materialized), and still read the cached bytes
    after = {p.name: os.lstat(p) for p in (ws / "out").iterdir()}
    assert {k: (v.st_ino, v.st_mtime_ns) for k, v in after.items()} == {k: (v.st_ino, v.st_mtime_ns) for k, v in before.items()}
    assert (ws / "out" / "notes.txt").read_bytes() == FILES["notes.txt"]
    # the move is a no-op from now on (keep the block for other checkouts)
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and out.startswith("No changes."), out + err
    # the real huggingface_hub client still reads the cache offline
    from huggingface_hub import hf_hub_download

    got = hf_hub_download("org/a", "config.json", revision=new_entry.commit, local_files_only=True,
                          cache_dir=os.environ["HF_HUB_CACHE"])
    assert Path(got).read_bytes() == FILES["config.json"]


def test_without_the_moved_block_the_rename_deletes_the_old_entry(
    applied: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """What ``moved:`` prevents: the old address is planned away (its outputs deleted)."""
    f = _write(applied, "models:\n  new:\n    repo: org/a\n    output: ./out2\n")
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2, err
    assert "models.old" in out and "removed from manifest" in out and "→" not in out.split("Plan:")[0]


def test_locked_apply_of_a_pending_move(applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    f = _write(applied, "models:\n  new:\n    repo: org/a\n    output: ./out\n" + MOVE)
    code, out, err = run(capsys, "plan", "-f", f, "--locked", "--detailed-exitcode")
    assert code == 2 and "models.old → models.new" in out, err


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        # `from` that hf.lock does not have (a typo): found at plan time, still with its line
        ("models:\n  new:\n    repo: org/a\nmoved:\n  - from: models.olb\n    to: models.new\n", 7, "hf.lock does not have"),
        # `to` not declared
        ("models:\n  old:\n    repo: org/a\nmoved:\n  - from: models.gone\n    to: models.new\n", 8, "not declared in this manifest"),
        # `from` still declared
        ("models:\n  old:\n    repo: org/a\n  new:\n    repo: org/a\nmoved:\n  - from: models.old\n    to: models.new\n", 9,
         "still declared"),
        # duplicate
        ("models:\n  new:\n    repo: org/a\n  other:\n    repo: org/a\nmoved:\n  - {from: models.old, to: models.new}\n"
         "  - {from: models.old, to: models.other}\n", 9, "moved more than once"),
        # cyclic
        ("models:\n  new:\n    repo: org/a\n  other:\n    repo: org/a\nmoved:\n  - {from: models.x, to: models.new}\n"
         "  - {from: models.new, to: models.x}\n", 9, "chained or cyclic"),
    ],
)
def test_bad_moves_exit_3_with_file_and_line(
    applied: Path, capsys: pytest.CaptureFixture[str], body: str, line: int, message: str
) -> None:
    f = _write(applied, body)
    code, out, err = run(capsys, "plan", "-f", f)
    assert code == 3, out + err
    assert f"hf.yaml:{line}:" in err and message in err, err
    assert "Traceback" not in err
    lock = read_lock(applied / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.old"}  # nothing changed


def test_both_addresses_in_hf_lock_is_an_error(tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]) -> None:
    hub_env.store.commit("org/a", FILES)
    ws = tmp_path / "ws"
    f = _write(ws, "models:\n  old:\n    repo: org/a\n  new:\n    repo: org/a\n")
    assert run(capsys, "apply", "-f", f, "--auto-approve")[0] == 0
    f = _write(ws, "models:\n  new:\n    repo: org/a\n" + MOVE)
    code, _out, err = run(capsys, "plan", "-f", f)
    assert code == 3 and "hf.yaml:7:" in err and "already has both" in err, err


def test_renaming_a_model_and_its_conversion_converts_nothing_again(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """The conversion's default output (.batuta/outputs/conversions/<name>) is renamed by apply,
    the GGUF file kept (same inode); the conversion reading the renamed model is not re-run."""
    from batuta_sync.core.lockfile import ConversionLock
    from batuta_sync.tinymodel import write_tiny_llama

    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    ws = tmp_path / "ws"
    f = _write(ws, "models:\n  old:\n    repo: org/tiny\nconversions:\n  q4:\n    from: models.old\n    to: gguf\n")
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    (gguf,) = (ws / ".batuta/outputs/conversions/q4").glob("*.gguf")
    ino = gguf.stat().st_ino
    f = _write(
        ws,
        "models:\n  new:\n    repo: org/tiny\nconversions:\n  quant:\n    from: models.new\n    to: gguf\n"
        "moved:\n  - {from: models.old, to: models.new}\n  - {from: conversions.q4, to: conversions.quant}\n",
    )
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 2, err
    assert "models.old → models.new" in out and "conversions.q4 → conversions.quant" in out
    assert "convert" not in out.split("Plan:")[0] and "2 moved" in out
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    moved = ws / ".batuta/outputs/conversions/quant" / gguf.name
    assert moved.stat().st_ino == ino and not (ws / ".batuta/outputs/conversions/q4").exists()
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.new", "conversions.quant"}
    conv = lock.get("conversions.quant")
    assert isinstance(conv, ConversionLock) and conv.source == "models.new"
    assert conv.output == ".batuta/outputs/conversions/quant"
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and out.startswith("No changes."), out + err


def test_batuta_lock_applies_a_pending_move(applied: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`batuta lock` (resolve into hf.lock without downloading) takes the move too: one key, the new."""
    f = _write(applied, "models:\n  new:\n    repo: org/a\n    output: ./out\n" + MOVE)
    code, out, err = run(capsys, "lock", "-f", f)
    assert code == 0, err
    assert "models.old: moved to models.new" in out + err
    lock = read_lock(applied / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.new"}
    code, out, err = run(capsys, "plan", "-f", f, "--detailed-exitcode")
    assert code == 0 and out.startswith("No changes."), out + err


def test_renamed_conversion_with_new_params_reconverts_after_its_renamed_input_is_relocked(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    """Rename the model (cache only, no output) and the conversion, and change the quantization:
    the conversion must wait for the model's moved relock (it reads the model from hf.lock), and the
    outputs the old conversion wrote in its old directory are removed (only those)."""
    from batuta_sync.core.lockfile import ConversionLock
    from batuta_sync.tinymodel import write_tiny_llama

    src = write_tiny_llama(tmp_path / "seed")
    hub_env.store.commit("org/tiny", {p.name: p for p in src.iterdir() if p.is_file()})
    ws = tmp_path / "ws"
    f = _write(ws, "models:\n  old:\n    repo: org/tiny\nconversions:\n  q4:\n    from: models.old\n    to: gguf\n")
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve")
    assert code == 0, err
    old_dir = ws / ".batuta/outputs/conversions/q4"
    assert list(old_dir.glob("*.gguf"))
    f = _write(
        ws,
        "models:\n  new:\n    repo: org/tiny\nconversions:\n  q8:\n    from: models.new\n    to: gguf\n    quantization: Q8_0\n"
        "moved:\n  - {from: models.old, to: models.new}\n  - {from: conversions.q4, to: conversions.q8}\n",
    )
    code, out, err = run(capsys, "plan", "-f", f, "--json")
    assert code == 0, err
    import json

    actions = {a["address"]: a for a in json.loads(out)["actions"]}
    assert actions["conversions.q8"]["kind"] == "convert" and actions["conversions.q8"]["params"]["moved_from"] == "conversions.q4"
    assert actions["models.new"]["reason"] == "moved"
    assert "relock:models.new" in actions["conversions.q8"]["deps"]
    code, _, err = run(capsys, "apply", "-f", f, "--auto-approve", "--jobs", "1")
    assert code == 0, err
    lock = read_lock(ws / "hf.lock")
    assert lock is not None and set(lock.entries) == {"models.new", "conversions.q8"}
    conv = lock.get("conversions.q8")
    assert isinstance(conv, ConversionLock) and conv.source == "models.new" and dict(conv.params)["quantization"] == "Q8_0"
    assert list((ws / ".batuta/outputs/conversions/q8").glob("*Q8_0*.gguf"))
    assert not list(old_dir.glob("*.gguf"))  # what the old conversion wrote is gone
