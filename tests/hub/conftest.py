"""Fixtures for the Hub client tests: local Hub servers seeded with tiny real repos."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.server import HubServer, UserSpec
from tests._builders import hub_on_env

ALICE = "hf_aliceAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA1"
BOB = "hf_bobBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB2"


def write_tiny_gguf(path: Path) -> Path:
    """A small but real GGUF (llama arch, context 256, chat template, bos/eos tokens)."""
    import numpy as np
    from gguf import GGUFWriter

    w = GGUFWriter(str(path), "llama")
    w.add_context_length(256)
    w.add_chat_template("{{ messages }}")
    w.add_tokenizer_model("gpt2")
    w.add_token_list(["<unk>", "<s>", "</s>", "a"])
    w.add_bos_token_id(1)
    w.add_eos_token_id(2)
    w.add_tensor("token_embd.weight", np.zeros((4, 8), dtype=np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _files(d: Path) -> dict[str, Path]:
    return {str(p.relative_to(d)): p for p in sorted(d.rglob("*")) if p.is_file()}


_SOURCES: dict[str, Path] = {}


def _sources() -> dict[str, Path]:
    """The seed repos' files, generated once per test session (read-only afterwards)."""
    if not _SOURCES:
        import atexit
        import shutil
        import tempfile

        from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama, write_tiny_space

        root = Path(tempfile.mkdtemp(prefix="batuta-hub-seed-"))
        atexit.register(shutil.rmtree, root, True)
        model_dir = write_tiny_llama(root / "m")
        write_tiny_gguf(model_dir / "tiny-q8.gguf")
        _SOURCES.update(
            model=model_dir,
            gguf=write_tiny_gguf(root / "x.gguf"),
            dataset=write_tiny_dataset(root / "d"),
            space=write_tiny_space(root / "s"),
        )
    return _SOURCES


def seed(srv: HubServer) -> dict[str, Any]:
    """Seed a model (safetensors + gguf), a second model, a dataset, two spaces; return facts."""
    src = _sources()
    model_dir = src["model"]
    files: dict[str, Any] = _files(model_dir)
    files["README.md"] = (
        (model_dir / "README.md")
        .read_text()
        .replace("---\n\n#", "model-index:\n- name: tiny-llama\n  results: []\n---\n\n#")
        .encode()
    )
    sha = srv.store.commit("acme/tiny-llama", files, author="alice")
    srv.store.set_downloads("acme/tiny-llama", 500)
    srv.store.set_likes("acme/tiny-llama", 7)
    srv.store.create_tag("acme/tiny-llama", "v1.0", rev=sha)
    srv.store.commit(
        "acme/llama-gguf",
        {
            "README.md": b"---\nlibrary_name: gguf\npipeline_tag: text-generation\n---\n",
            "m.gguf": src["gguf"],
        },
    )
    srv.store.set_downloads("acme/llama-gguf", 900)
    srv.store.commit(
        "zed/classifier",
        {"README.md": b"---\nlibrary_name: transformers\npipeline_tag: text-classification\n---\n"},
    )
    srv.store.commit("acme/tiny-ds", _files(src["dataset"]), repo_type="dataset")
    srv.store.commit(
        "acme/big-ds",
        {
            "README.md": b"---\nlanguage:\n- fr\nsize_categories:\n- 1M<n<10M\ndataset_info:\n  download_size: 3000000000\n"
            b"  dataset_size: 5000000000\n---\n"
        },
        repo_type="dataset",
    )
    srv.store.commit(
        "acme/mid-ds",
        {"README.md": b"---\nlanguage:\n- en\nsize_categories:\n- 10K<n<100K\n---\n"},
        repo_type="dataset",
    )
    srv.store.commit("acme/demo", _files(src["space"]), repo_type="space")
    srv.store.commit(
        "acme/st-app",
        {"README.md": b"---\nsdk: streamlit\n---\n", "app.py": b"print(1)\n"},
        repo_type="space",
    )
    srv.log.clear()
    return {"model_sha": sha}


def start_seeded_hub(root: Path) -> HubServer:
    """A started open Hub (not fsync-durable: tests only) with the seed repos."""
    srv = HubServer(root, durable=False)
    seed(srv)
    srv.start()
    return srv


@pytest.fixture
def seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """The open local Hub (HF_ENDPOINT set) with the seed repos."""
    srv = start_seeded_hub(tmp_path / "hub-root")
    with hub_on_env(srv, monkeypatch):
        yield srv


def start_auth_hub(root: Path) -> HubServer:
    """A started Hub with users alice (write, org acme) and bob (read); acme/secret is private."""
    srv = HubServer(
        root,
        durable=False,
        users=[UserSpec("alice", ALICE, "write"), UserSpec("bob", BOB, "read")],
        orgs={"acme": ["alice"]},
    )
    srv.start()
    srv.store.create_repo("acme/secret", private=True)
    srv.store.commit("acme/secret", {"config.json": b"{}"})
    srv.store.commit("acme/public", {"config.json": b"{}"})
    srv.log.clear()
    return srv


@pytest.fixture
def auth_hub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[HubServer]:
    """``start_auth_hub`` with HF_ENDPOINT pointing at it."""
    srv = start_auth_hub(tmp_path / "auth-root")
    with hub_on_env(srv, monkeypatch):
        yield srv


def settled(srv: HubServer) -> int:
    """The request-log count once it stops moving (the server logs just after responding)."""
    import time

    prev = -1
    deadline = time.monotonic() + 3
    while time.monotonic() < deadline:
        count = srv.log.count()
        if count == prev:
            return count
        prev = count
        time.sleep(0.03)
    return srv.log.count()
