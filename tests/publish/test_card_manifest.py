"""Model/dataset/space cards and the UploadManifest / hash cache (pure parts)."""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path

import pytest

from batuta_sync._fmt import git_blob_sha1
from batuta_sync.errors import ValidationError
from batuta_sync.publish.card import (
    card_for_push,
    generate_dataset_card,
    generate_model_card,
    generate_space_readme,
    merge_card,
    read_metrics,
    split_front_matter,
)
from batuta_sync.publish.manifest import (
    LFS_THRESHOLD,
    FileHash,
    HashCache,
    RemoteFile,
    RemoteManifest,
    UploadManifest,
    build_manifest,
    hash_file,
    iter_files,
    same_content,
)
from batuta_sync.publish.secrets import scan_text
from batuta_sync.types import HfAssetType, RepoFile, RepoRef, RepoSnapshot
from tests.publish.fixtures import make_clean_model

META = {
    "model_name": "tiny-llama",
    "license": "apache-2.0",
    "format": "gguf",
    "pipeline_tag": "text-generation",
    "datasets": ["wikitext"],
    "metrics": {"eval_loss": 2.5, "perplexity": 12.2},
    "provenance": {
        "source_repo": "org/tiny-llama",
        "source_commit": "a" * 40,
        "converter": "batuta convert",
        "converter_version": "0.1.0",
        "quantization": "Q4_K_M",
        "source_format": "safetensors",
    },
    "files": ["tiny-llama.Q4_K_M.gguf"],
}


def test_model_card_parses_with_huggingface_hub() -> None:
    from huggingface_hub import ModelCard

    text = generate_model_card(META)
    card = ModelCard(text)
    data = card.data
    assert data.license == "apache-2.0"
    assert data.library_name == "gguf"
    assert data.base_model == "org/tiny-llama"
    assert data.pipeline_tag == "text-generation"
    assert data.datasets == ["wikitext"]
    assert {"gguf", "quantized"} <= set(data.tags) and not {"batuta", "paiml"} & set(data.tags)  # branding is opt-in
    assert {"batuta", "paiml"} <= set(ModelCard(generate_model_card({**META, "branding": True})).data.tags)
    results = {r.metric_type: r.metric_value for r in data.eval_results}
    assert results == {"eval_loss": 2.5, "perplexity": 12.2}
    assert data.eval_results[0].dataset_name == "wikitext"
    for needle in ("## Provenance", "org/tiny-llama", "a" * 40, "Q4_K_M", "0.1.0", "PAIML", "safetensors → gguf"):
        assert needle in text


def test_model_card_is_deterministic_and_private(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HOME", "/home/secret-user-xyz")
    a = generate_model_card(META)
    b = generate_model_card(dict(META))
    assert a == b
    root = make_clean_model(tmp_path / "m")
    plan = card_for_push(root, sorted(p.name for p in root.iterdir()), repo_type="model", repo_id="org/tiny",
                         fmt="safetensors", config=json.loads((root / "config.json").read_text()))
    for leak in ("secret-user-xyz", str(tmp_path), socket.gethostname(), os.environ.get("USER", "\0")):
        assert leak not in plan.text
    assert scan_text(plan.text, "README.md") == []


def test_minimal_card() -> None:
    from huggingface_hub import ModelCard

    text = generate_model_card({})
    assert ModelCard(text).data.license == "other"
    assert "model-index" not in text


def test_merge_keeps_existing_and_fills_missing() -> None:
    existing = "---\nlicense: mit\ntags:\n- mine\n---\n# My model\n\nHand-written text.\n"
    merged = merge_card(existing, generate_model_card(META))
    front, body = split_front_matter(merged)
    assert front is not None
    assert front["license"] == "mit" and front["tags"] == ["mine"]  # kept
    assert front["base_model"] == "org/tiny-llama" and "model-index" in front  # filled
    assert body == "# My model\n\nHand-written text.\n"
    assert merge_card(merged, generate_model_card(META)) == merged  # idempotent
    no_front = "# Just text\n"
    merged2 = merge_card(no_front, generate_model_card(META))
    assert merged2.endswith("# Just text\n") and merged2.startswith("---\n")
    broken = "---\n: [unclosed\n---\nbody\n"
    assert merge_card(broken, generate_model_card(META)) == broken
    assert merge_card(None, "x") == "x"


def test_card_for_push_diff_and_metrics(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m", readme="---\nlicense: mit\n---\n# Mine\n")
    files = sorted(p.name for p in root.iterdir())
    assert read_metrics(root, files) == ({"eval_accuracy": 0.61, "eval_loss": 2.3456}, "wikitext")
    plan = card_for_push(root, files, repo_type="model", repo_id="org/tiny", fmt="safetensors",
                         config=json.loads((root / "config.json").read_text()), overrides={"language": ["en"]})
    assert plan.content is not None
    assert "+pipeline_tag: text-generation" in plan.diff and "+language:" in plan.diff
    assert "-license" not in plan.diff
    front, _ = split_front_matter(plan.text)
    assert front is not None and front["license"] == "mit"
    # a card that already has everything is uploaded as is
    (root / "README.md").write_text(plan.text)
    again = card_for_push(root, files, repo_type="model", repo_id="org/tiny", fmt="safetensors",
                          config=json.loads((root / "config.json").read_text()), overrides={"language": ["en"]})
    assert again.content is None and again.diff == ""


def test_dataset_and_space_cards(tmp_path: Path) -> None:
    from huggingface_hub import DatasetCard

    d = generate_dataset_card({"pretty_name": "squad-mini", "license": "cc-by-4.0", "files": ["train.jsonl"]})
    assert DatasetCard(d).data.pretty_name == "squad-mini"
    s = generate_space_readme({"title": "demo", "sdk": "streamlit", "app_file": "streamlit_app.py"})
    front, _ = split_front_matter(s)
    assert front is not None and front["sdk"] == "streamlit" and front["app_file"] == "streamlit_app.py"
    docker, _ = split_front_matter(generate_space_readme({"sdk": "docker"}))
    assert docker is not None and docker["app_port"] == 7860 and "app_file" not in docker
    (tmp_path / "app.py").write_text("import gradio\n")
    plan = card_for_push(tmp_path, ["app.py"], repo_type="space", repo_id="org/demo", sdk="gradio")
    front, _ = split_front_matter(plan.text)
    assert front is not None and (front["sdk"], front["app_file"]) == ("gradio", "app.py")
    ds = card_for_push(tmp_path, ["app.py"], repo_type="dataset", repo_id="org/data")
    assert "pretty_name: data" in ds.text


# ------------------------------------------------------------------------------------------------ manifest


def test_git_blob_sha1_matches_git() -> None:
    assert git_blob_sha1(b"") == "e69de29bb2d1d6434b8b29ae775ad8c2e48c5391"
    assert git_blob_sha1(b"hello\n") == "ce013625030ba8dba906f756967f9e9ca394464a"


def test_hash_file_and_lfs_threshold(tmp_path: Path) -> None:
    (tmp_path / "a").write_bytes(b"hello\n")
    h = hash_file(tmp_path / "a")
    assert h.git_sha1 == "ce013625030ba8dba906f756967f9e9ca394464a"
    assert h.sha256 == "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03"
    with open(tmp_path / "big", "wb") as f:
        f.truncate(LFS_THRESHOLD + 1)
    assert hash_file(tmp_path / "big").git_sha1 is None


def test_diff_rules() -> None:
    local = UploadManifest({
        "same-lfs": FileHash(5, "s1", None),
        "same-reg": FileHash(3, "x", "g1"),
        "changed": FileHash(3, "s2", "g2"),
        "new": FileHash(1, "s3", "g3"),
        "size-diff": FileHash(4, "s4", "g4"),
    })
    remote = RemoteManifest("c" * 40, {
        "same-lfs": RemoteFile(5, "pointer", "s1"),
        "same-reg": RemoteFile(3, "g1", None),
        "changed": RemoteFile(3, "gX", None),
        "size-diff": RemoteFile(5, "g4", None),
        "gone": RemoteFile(1, "g9", None),
        ".gitattributes": RemoteFile(1, "ga", None),
    })
    d = local.diff(remote)
    assert d.adds == ("new",) and set(d.changes) == {"changed", "size-diff"} and d.deletes == ()
    assert set(d.unchanged) == {"same-lfs", "same-reg"} and not d.is_empty
    assert local.diff(remote, delete=True).deletes == ("gone",)
    assert local.changed_paths(remote) == ["changed", "new", "size-diff"]
    assert not same_content(FileHash(3, "x", None), RemoteFile(3, "g", None))
    assert UploadManifest({"a": FileHash(2, "s", "g")}).total_size == 2
    snap = RepoSnapshot(RepoRef("o/r", HfAssetType.MODEL), "d" * 40, (RepoFile("a", 1, "b" * 40, "5" * 64),))
    rm = RemoteManifest.from_snapshot(snap)
    assert rm.commit == "d" * 40 and rm.files["a"].sha256 == "5" * 64
    assert RemoteManifest.from_snapshot(None).files == {}


def test_hash_cache_reuses_and_reverifies(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m")
    files = list(iter_files(root))
    cache_file = tmp_path / "state" / "hash-cache.json"
    c1 = HashCache(cache_file)
    m1 = build_manifest(root, files, c1)
    c1.save()
    assert c1.hashed == len(files)
    c2 = HashCache(cache_file)
    m2 = build_manifest(root, files, c2)
    assert c2.hashed == 0 and m1 == m2  # UP-2: second plan hashes nothing
    (root / "config.json").write_text('{"changed": true}')
    c3 = HashCache(cache_file)
    m3 = build_manifest(root, files, c3)
    assert c3.hashed == 1 and m3.files["config.json"] != m1.files["config.json"]
    c4 = HashCache(cache_file)
    build_manifest(root, files, c4, verify=True)
    assert c4.hashed == len(files)
    cache_file.write_text("not json")
    assert HashCache(cache_file).get(root / "config.json").size > 0


def test_iter_files_exclusions_and_symlinks(tmp_path: Path) -> None:
    root = tmp_path / "r"
    (root / ".git").mkdir(parents=True)
    (root / ".git" / "config").write_text("x")
    (root / "sub").mkdir()
    (root / "sub" / "a.txt").write_text("a")
    (root / ".batuta-secrets-allow").write_text("")
    (root / "link.txt").symlink_to(root / "sub" / "a.txt")
    assert list(iter_files(root)) == ["link.txt", "sub/a.txt"]
    outside = tmp_path / "outside.txt"
    outside.write_text("secret")
    (root / "evil.txt").symlink_to(outside)
    with pytest.raises(ValidationError, match="outside"):
        list(iter_files(root))
    (root / "evil.txt").unlink()
    (root / "dirlink").symlink_to(root / "sub", target_is_directory=True)
    with pytest.raises(ValidationError, match="symlinked directory"):
        list(iter_files(root))


def test_provenance_from_gguf_metadata(tmp_path: Path) -> None:
    from batuta_sync.publish.card import provenance_from_gguf

    prov = provenance_from_gguf({"general.source.huggingface.repository": "https://huggingface.co/org/base",
                                 "general.file_type": 15})
    assert prov == {"source_repo": "org/base", "quantization": "Q4_K_M", "source_format": "safetensors"}
    assert provenance_from_gguf({"general.file_type": 9999}) == {}
    (tmp_path / "m.gguf").write_bytes(b"")
    plan = card_for_push(tmp_path, ["m.gguf"], repo_type="model", repo_id="org/m-gguf", fmt="gguf",
                         gguf_metadata={"general.base_model.0.repo_url": "https://huggingface.co/org/base",
                                        "general.file_type": 15})
    front, body = split_front_matter(plan.text)
    assert front is not None and front["base_model"] == "org/base" and front["library_name"] == "gguf"
    assert "Quantization: Q4_K_M" in body and "quantized" in front["tags"]
