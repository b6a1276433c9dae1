"""Pushing against our local Hub server: first push, differential re-push, no-op, moved branch,
blocking secrets/validation before any write, byte-identical downloads, CLI."""

from __future__ import annotations

import io
import json
import pickle
import random
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.cli import main
from batuta_sync.errors import (
    ConflictError,
    SecretsFoundError,
    StalePlanError,
    UnsafeFileError,
    ValidationError,
)
from batuta_sync.publish import PushRequest, local_manifest, prepare_push, push
from batuta_sync.settings import Settings, resolve_settings
from batuta_sync.types import HfAssetType
from tests.publish.fixtures import make_clean_model, safetensors_bytes, tiny_model_tensors
from tests.publish.secret_corpus import hf_token

REPO = "org/tiny"


def _settings(srv: Any) -> Settings:
    return resolve_settings(flags={"endpoint": srv.url})


def _writes(srv: Any, since: int = 0) -> list[Any]:
    return [e for e in srv.log.entries[since:] if e.method in ("POST", "PUT", "DELETE")]


def _sharded_model(root: Path, *, seed: int = 0) -> Path:
    """A model with two LFS shards (~260 kB each) and an index."""
    make_clean_model(root, vocab_size=500, hidden=64)
    (root / "model.safetensors").unlink()
    t = tiny_model_tensors(500, 64)
    names = list(t)
    s1 = {n: t[n] for n in names[:2]}
    s2 = {n: t[n] for n in names[2:]}
    s2["lm_head.weight"] = ("F32", [1000, 64])
    (root / "model-00001-of-00002.safetensors").write_bytes(safetensors_bytes(s1, {"format": "pt"}, seed=seed))
    (root / "model-00002-of-00002.safetensors").write_bytes(safetensors_bytes(s2, {"format": "pt"}, seed=seed + 1))
    wm = {n: "model-00001-of-00002.safetensors" for n in s1} | {n: "model-00002-of-00002.safetensors" for n in s2}
    (root / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": wm}))
    return root


def test_first_push_downloads_byte_identical(hub_server: Any, tmp_path: Path) -> None:
    from huggingface_hub import ModelCard, snapshot_download

    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    req = PushRequest(root, REPO, format="safetensors")
    plan = prepare_push(s, req)
    assert not plan.repo_exists and plan.remote_commit is None and plan.findings == ()
    assert _writes(hub_server) == []  # planning wrote nothing
    assert "README.md" in plan.adds and "model.safetensors" in plan.adds and plan.card_diff
    res = push(s, req, plan=plan)
    assert not res.noop and res.commit == hub_server.store.resolve(REPO, "main")
    assert res.bytes_sent == plan.upload_bytes
    local = snapshot_download(REPO, endpoint=hub_server.url, cache_dir=str(tmp_path / "dl"))
    for rel in plan.adds:
        got = (Path(local) / rel).read_bytes()
        want = plan.generated[rel] if rel in plan.generated else (root / rel).read_bytes()
        assert got == want, rel
    card = ModelCard.load(Path(local) / "README.md")
    assert card.data.library_name == "transformers" and card.data.pipeline_tag == "text-generation"
    assert {r.metric_type for r in card.data.eval_results} == {"eval_loss", "eval_accuracy"}
    assert not (root / "README.md").exists()  # the local folder is never modified


def test_second_push_sends_only_the_changed_file(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = _sharded_model(tmp_path / "m")
    req = PushRequest(root, REPO)
    push(s, req)
    assert hub_server.log.count("PUT", "/lfs-upload/") == 2
    shard = root / "model-00002-of-00002.safetensors"
    data = bytearray(shard.read_bytes())
    data[-1] ^= 0xFF  # one byte of tensor data
    shard.write_bytes(bytes(data))
    mark = len(hub_server.log.entries)
    res = push(s, req)
    assert res.uploaded == ("model-00002-of-00002.safetensors",)
    puts = [e for e in hub_server.log.entries[mark:] if e.method == "PUT"]
    assert len(puts) == 1 and puts[0].bytes_in == len(data)
    sent = sum(e.bytes_in for e in hub_server.log.entries[mark:])
    assert len(data) <= sent < len(data) + 8_000  # the file plus small JSON requests, nothing else


def test_unchanged_push_makes_no_commit_and_hashes_nothing(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = _sharded_model(tmp_path / "m")
    req = PushRequest(root, REPO)
    first = push(s, req)
    mark = len(hub_server.log.entries)
    res = push(s, req)
    assert res.noop and res.commit == first.commit and res.uploaded == ()
    assert _writes(hub_server, mark) == []
    assert hub_server.store.resolve(REPO, "main") == first.commit
    m = local_manifest(root, s)  # everything comes from the hash cache
    assert set(m.files) >= {"config.json", "model-00001-of-00002.safetensors"}


def test_moved_branch_fails_cleanly(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    req = PushRequest(root, REPO)
    push(s, req)
    (root / "config.json").write_text((root / "config.json").read_text().replace('"num_hidden_layers": 1', '"num_hidden_layers": 2'))
    plan = prepare_push(s, req)
    assert plan.changes == ("config.json",)
    moved = hub_server.store.commit(REPO, {"notes.txt": b"someone else\n"}, message="concurrent")
    with pytest.raises(ConflictError) as exc:
        push(s, req, plan=plan)
    assert exc.value.exit_code == 19 and "moved" in exc.value.message
    assert hub_server.store.resolve(REPO, "main") == moved  # nothing committed on top
    # re-planning picks up the new head; --delete removes the foreign file in the same commit
    res = push(s, PushRequest(root, REPO, delete=True))
    assert res.uploaded == ("config.json",) and res.deleted == ("notes.txt",)


def test_explicit_parent_commit(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    push(s, PushRequest(root, REPO))
    (root / "extra.txt").write_text("x\n")
    with pytest.raises(ConflictError):
        push(s, PushRequest(root, REPO, parent_commit="0" * 40))


def test_secrets_block_before_any_network_write(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    tok = hf_token()
    (root / ".env").write_text(f"HF_TOKEN={tok}\n")
    (root / "train.py").write_text(f"# training\nlogin('{tok}')\n")
    with pytest.raises(SecretsFoundError) as exc:
        push(s, PushRequest(root, REPO))
    text = exc.value.render()
    assert exc.value.exit_code == 13 and tok not in text
    assert "train.py:2" in text and ".env" in text and "dotenv-file" in text
    assert _writes(hub_server) == []
    # suppressing by fingerprint only: both must be listed before the push goes through
    plan = prepare_push(s, PushRequest(root, REPO))
    fps = [f.fingerprint for f in plan.findings]
    (root / ".batuta-secrets-allow").write_text(fps[0] + "\n")
    assert len(prepare_push(s, PushRequest(root, REPO)).findings) == len(fps) - 1
    res = push(s, PushRequest(root, REPO, allow_secrets=tuple(fps[1:])))
    assert not res.noop and ".batuta-secrets-allow" not in res.uploaded


def test_malformed_safetensors_refused_without_requests(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    data = bytearray((root / "model.safetensors").read_bytes())
    (root / "model.safetensors").write_bytes(bytes(data) + b"trailing")
    with pytest.raises(ValidationError) as exc:
        push(s, PushRequest(root, REPO))
    assert "metadata-incomplete-buffer" in exc.value.message
    assert hub_server.log.entries == []


def test_pickle_refused_unless_allowed(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    (root / "training_args.bin").write_bytes(pickle.dumps({"lr": 0.1}, protocol=4))
    with pytest.raises(UnsafeFileError):
        push(s, PushRequest(root, REPO))
    res = push(s, PushRequest(root, REPO, allow_unsafe=True))
    assert "training_args.bin" in res.uploaded


def test_changed_after_plan_is_stale(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    req = PushRequest(root, REPO)
    plan = prepare_push(s, req)
    (root / "config.json").write_text('{"tampered": 1}')
    with pytest.raises(StalePlanError):
        push(s, req, plan=plan)
    assert _writes(hub_server) == []


def test_new_branch_dataset_and_space(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    push(s, PushRequest(root, REPO))
    (root / "extra.txt").write_text("dev only\n")
    res = push(s, PushRequest(root, REPO, revision="dev"))
    assert res.uploaded == ("extra.txt",)
    assert hub_server.store.resolve(REPO, "dev") == res.commit != hub_server.store.resolve(REPO, "main")

    data = tmp_path / "d"
    data.mkdir()
    rng = random.Random(1)
    (data / "train.jsonl").write_text("".join(json.dumps({"q": rng.random()}) + "\n" for _ in range(50)))
    dres = push(s, PushRequest(data, "org/data", repo_type=HfAssetType.DATASET))
    assert set(dres.uploaded) == {"README.md", "train.jsonl"}

    space = tmp_path / "s"
    space.mkdir()
    (space / "app.py").write_text("import gradio as gr\n")
    (space / "README.md").write_text("# Demo\n")
    sres = push(s, PushRequest(space, "org/demo", repo_type=HfAssetType.SPACE, sdk="gradio"))
    assert "README.md" in sres.uploaded
    from huggingface_hub import hf_hub_download

    readme = Path(hf_hub_download("org/demo", "README.md", repo_type="space", endpoint=hub_server.url,
                                  cache_dir=str(tmp_path / "dl"))).read_text()
    assert readme.startswith("---\n") and "sdk: gradio" in readme and "app_file: app.py" in readme
    assert readme.endswith("# Demo\n")


# ------------------------------------------------------------------------------------------------ CLI


def _run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_push_json_and_noop(hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_clean_model(tmp_path / "m")
    code, out, _ = _run(["hf", "push", "model", str(root), "--repo", REPO, "--format", "safetensors", "--json"], capsys)
    assert code == 0
    doc = json.loads(out)
    assert doc["result"]["commit"] == hub_env.store.resolve(REPO, "main")
    code, out, _ = _run(["hf", "push", "model", str(root), "--repo", REPO], capsys)
    assert code == 0 and "Nothing to push" in out


def test_cli_dry_run_sends_nothing(hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_clean_model(tmp_path / "m", readme="---\nlicense: mit\n---\n# mine\n")
    code, out, _ = _run(["hf", "push", "model", str(root), "--repo", REPO, "--dry-run", "--private"], capsys)
    assert code == 0
    assert "repo will be created (private)" in out and "+ model.safetensors" in out
    assert "+library_name: transformers" in out and "Secret scan: clean" in out
    assert _writes(hub_env) == []
    code, out, _ = _run(["hf", "push", "model", str(root), "--repo", REPO, "--dry-run", "--json"], capsys)
    assert code == 0 and json.loads(out)["plan"]["repo_exists"] is False


def test_cli_secrets_exit_13_never_prints_secret(hub_env: Any, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    root = make_clean_model(tmp_path / "m")
    tok = "ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3gH5"
    (root / "notes.md").write_text(f"my token: {tok}\n")
    for extra in ([], ["--dry-run"], ["--json"]):
        code, out, err = _run(["hf", "push", "model", str(root), "--repo", REPO, *extra], capsys)
        assert code == 13 and tok not in out + err and "notes.md:1" in out + err
    assert _writes(hub_env) == []
    fp = prepare_push(resolve_settings(), PushRequest(root, REPO)).findings[0].fingerprint
    code, _, _ = _run(["hf", "push", "model", str(root), "--repo", REPO, "--allow-secret", fp[:16], "-q"], capsys)
    assert code == 0


def test_cli_exit_codes(hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    root = make_clean_model(tmp_path / "m")
    (root / "model.safetensors").write_bytes(b"\x08" + b"\x00" * 7 + b" {}     ")
    code, _, err = _run(["hf", "push", "model", str(root), "--repo", REPO], capsys)
    assert code == 14 and "invalid-header-start" in err
    root2 = make_clean_model(tmp_path / "m2")
    (root2 / "optimizer.pt").write_bytes(pickle.dumps([1, 2], protocol=2))
    assert _run(["hf", "push", "model", str(root2), "--repo", REPO], capsys)[0] == 12
    code, out, _ = _run(["hf", "push", "model", str(root2), "--repo", REPO, "--allow-unsafe", "--dry-run"], capsys)
    assert code == 0 and "allowed by --allow-unsafe" in out and "optimizer.pt" in out
    assert _run(["hf", "push", "model", str(root2), "--repo", REPO, "--allow-unsafe", "-q"], capsys)[0] == 0
    assert _run(["hf", "push", "space", str(root2), "--repo", "org/s"], capsys)[0] == 64  # --sdk required
    assert _run(["hf", "push", "model", str(tmp_path / "nope"), "--repo", REPO], capsys)[0] == 64
    assert _run(["hf", "push", "model", str(root2), "--repo", "bad//id"], capsys)[0] == 64
    assert _run(["hf", "push", "model", str(root2), "--repo", REPO, "--interactive"], capsys)[0] == 64
    assert _run(["hf", "push", "model", str(root2), "--repo", REPO, "-i", "--dry-run"], capsys)[0] == 64


class _TtyInput(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("answer", ["n", "y"])
def test_cli_interactive(answer: str, hub_env: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str],
                         monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.cli import _common

    monkeypatch.setattr(_common, "is_tty", lambda stream=None: True)
    monkeypatch.setattr("sys.stdin", _TtyInput(answer + "\n"))
    root = make_clean_model(tmp_path / "m")
    code, out, err = _run(["hf", "push", "model", str(root), "--repo", REPO, "--interactive"], capsys)
    assert code == 0 and "+ config.json" in out and "[y/N]" in err
    if answer == "n":
        assert "Aborted" in err and _writes(hub_env) == []
    else:
        assert "Pushed" in out and hub_env.store.resolve(REPO, "main")


# ------------------------------------------------------------------------------------------------ upload layer


def test_upload_protocol_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.errors import UsageError
    from batuta_sync.hub.upload import Transfer, _xet_mode, upload_protocol

    local = resolve_settings(flags={"endpoint": "http://127.0.0.1:9"})
    hub = resolve_settings(flags={"endpoint": "https://huggingface.co"})
    assert upload_protocol(local, {}) == "lfs"
    assert upload_protocol(hub, {}) in ("xet", "lfs")  # xet when hf_xet is installed
    assert upload_protocol(hub, {"BATUTA_UPLOAD_PROTOCOL": "lfs"}) == "lfs"
    assert upload_protocol(local, {"BATUTA_UPLOAD_PROTOCOL": "XET"}) == "xet"
    with pytest.raises(UsageError):
        upload_protocol(local, {"BATUTA_UPLOAD_PROTOCOL": "ftp"})
    from huggingface_hub import constants
    from huggingface_hub.utils import _xet_progress_reporting as reporting
    from huggingface_hub.utils import are_progress_bars_disabled

    before = constants.HF_HUB_DISABLE_XET
    bars_before, reporter_before = are_progress_bars_disabled(), reporting.XetUploadProgressReporter
    with _xet_mode("xet", Transfer()):
        assert constants.HF_HUB_DISABLE_XET is False
        assert are_progress_bars_disabled()  # huggingface_hub's own bars never draw
    import importlib

    hf_tqdm = importlib.import_module("huggingface_hub.utils.tqdm")

    with _xet_mode("xet", Transfer(sink=object())):  # HF_HUB_DISABLE_PROGRESS_BARS=1 (tests): no bar, no warning
        assert are_progress_bars_disabled()
    monkeypatch.setattr(hf_tqdm, "HF_HUB_DISABLE_PROGRESS_BARS", None)
    with _xet_mode("xet", Transfer(sink=object())):
        assert not are_progress_bars_disabled()  # ... except Xet's reporter, replaced by ours
        assert reporting.XetUploadProgressReporter is not reporter_before
    with _xet_mode("lfs", Transfer(sink=object())):
        assert constants.HF_HUB_DISABLE_XET is True
        assert are_progress_bars_disabled()
    assert before == constants.HF_HUB_DISABLE_XET
    assert (are_progress_bars_disabled(), reporting.XetUploadProgressReporter) == (bars_before, reporter_before)


def test_read_only_token_maps_to_auth_error(tmp_path: Path) -> None:
    from batuta_sync.errors import AuthError
    from batuta_sync.server import HubServer, UserSpec

    srv = HubServer(root=tmp_path / "hub", users=[UserSpec("alice", "tok-alice-read", "read")])
    srv.start()
    try:
        s = resolve_settings(flags={"endpoint": srv.url, "token": "tok-alice-read"})
        root = make_clean_model(tmp_path / "m")
        with pytest.raises(AuthError) as exc:
            push(s, PushRequest(root, "alice/tiny"))
        assert exc.value.exit_code == 7 and "tok-alice-read" not in exc.value.render()
    finally:
        srv.stop()


def test_gguf_only_model_push(hub_server: Any, tmp_path: Path) -> None:
    import gguf
    import numpy as np

    root = tmp_path / "g"
    root.mkdir()
    w = gguf.GGUFWriter(str(root / "tiny.Q8_0.gguf"), "llama")
    w.add_name("tiny")
    w.add_file_type(15)
    w.add_string("general.source.huggingface.repository", "https://huggingface.co/org/tiny")
    w.add_tensor("token_embd.weight", np.zeros((4, 32), np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    s = _settings(hub_server)
    plan = prepare_push(s, PushRequest(root, "org/tiny-gguf", format="gguf"))
    assert plan.format == "gguf" and set(plan.adds) == {"README.md", "tiny.Q8_0.gguf"}
    card = plan.generated["README.md"].decode()
    assert "library_name: gguf" in card and "base_model: org/tiny" in card and "Q4_K_M" in card
    with pytest.raises(ValidationError, match="--format safetensors"):
        prepare_push(s, PushRequest(root, "org/tiny-gguf", format="safetensors"))


def test_card_edited_on_the_hub_is_kept(hub_server: Any, tmp_path: Path) -> None:
    s = _settings(hub_server)
    root = make_clean_model(tmp_path / "m")
    push(s, PushRequest(root, REPO))
    hub_server.store.commit(REPO, {"README.md": b"# Edited on the Hub\n"}, message="web edit")
    (root / "extra.txt").write_text("x\n")
    plan = prepare_push(s, PushRequest(root, REPO, delete=True))
    assert plan.adds == ("extra.txt",) and plan.deletes == () and plan.card_diff == ""
    push(s, PushRequest(root, REPO, delete=True), plan=plan)
    from huggingface_hub import hf_hub_download

    readme = hf_hub_download(REPO, "README.md", endpoint=hub_server.url, cache_dir=str(tmp_path / "dl"))
    assert Path(readme).read_text() == "# Edited on the Hub\n"
