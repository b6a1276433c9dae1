"""`batuta hf push` and conversion-on-pull against the hostile Hub (issue 13's acceptance: push and
convert, beside pull/plan/apply/status/cache in the other files).

* push: the hostile Hub answers the remote listing the push diffs against with traversal paths,
  absolute names, path-shaped shas and lying sizes; `--dry-run` plans against it and a real push
  (whose writes the hostile Hub refuses) ends in a documented code.  Nothing outside the
  workspace, the cache or the output is read into, written, linked or deleted, and the token the
  push holds never appears in output.
* convert: `hf pull --format gguf` makes batuta convert a hostile repo's safetensors — a lying
  header, a config that asks for 2**40 layers, a traversal in the index — ending in a documented
  code (15 conversion / 11 integrity) with nothing outside touched.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import pytest

from tests.hostile.conftest import World, batuta
from tests.hostile.hub import HostileHub

TOKEN = "hf_" + "Q" * 8 + "pushtokenpushtokenpush"  # shaped like a token, only for this test


def _model_folder(w: World) -> Path:
    folder = w.ws / "model"
    folder.mkdir()
    header = b'{"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}'
    header += b" " * (-len(header) % 8)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * 16)
    (folder / "config.json").write_text(json.dumps({"architectures": ["LlamaForCausalLM"], "model_type": "llama"}))
    return folder


HOSTILE_TREES: dict[str, list[Any]] = {
    "traversal path": [{"type": "file", "path": "../../outside/canary.txt", "size": 5, "oid": "a" * 40}],
    "absolute path": [{"type": "file", "path": "/etc/passwd", "size": 5, "oid": "a" * 40}],
    "path-shaped oid": [{"type": "file", "path": "config.json", "size": 5, "oid": "../../../outside/canary.txt"}],
    "lfs oid traversal": [
        {"type": "file", "path": "model.safetensors", "size": 80, "oid": "a" * 40,
         "lfs": {"oid": "../" * 6 + "outside/canary.txt", "size": 80}},
    ],
    "negative size": [{"type": "file", "path": "config.json", "size": -1, "oid": "a" * 40}],
    "not a list": {"files": "nope"},  # type: ignore[dict-item]
}


@pytest.mark.parametrize("case", sorted(HOSTILE_TREES))
def test_push_against_a_hostile_remote_listing_never_escapes(
    case: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HF_TOKEN", TOKEN)
    folder = _model_folder(world)
    hub.repo("org/pushed", {"README.md": b"# card\n"}, tree=HOSTILE_TREES[case])  # type: ignore[arg-type]
    world.before = world.outside_state()
    for argv in (["--dry-run"], []):
        code, out, err = batuta(capsys, "hf", "push", "model", str(folder), "--repo", "org/pushed", *argv)
        assert code != 0 or argv == ["--dry-run"], (case, out, err)
        assert TOKEN not in out + err
        world.assert_untouched()
    # the push really asked the hostile Hub (it is not refused before any request) ...
    assert any("/api/models/org/pushed" in path for _, path in hub.log), hub.log
    # ... and nothing the hostile Hub said was written into the pushed folder
    assert sorted(p.name for p in folder.iterdir()) == ["config.json", "model.safetensors"]


def _st(header: dict[str, Any], data: bytes) -> bytes:
    raw = json.dumps(header).encode()
    raw += b" " * (-len(raw) % 8)
    return struct.pack("<Q", len(raw)) + raw + data


_CONFIG = {"architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 8, "intermediate_size": 16,
           "num_attention_heads": 2, "num_key_value_heads": 2, "num_hidden_layers": 1, "vocab_size": 4,
           "rms_norm_eps": 1e-5, "max_position_embeddings": 16}

CONVERT_CASES: dict[str, dict[str, bytes]] = {
    "header lies about the data": {
        "config.json": json.dumps(_CONFIG).encode(),
        "model.safetensors": _st({"model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 8],
                                                                 "data_offsets": [0, 1 << 40]}}, b"\0" * 128),
    },
    "2**40 layers": {
        "config.json": json.dumps({**_CONFIG, "num_hidden_layers": 1 << 40}).encode(),
        "model.safetensors": _st({"model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 8],
                                                                 "data_offsets": [0, 128]}}, b"\0" * 128),
    },
    "index points outside": {
        "config.json": json.dumps(_CONFIG).encode(),
        "model.safetensors.index.json": json.dumps(
            {"weight_map": {"model.embed_tokens.weight": "../../../outside/canary.txt"}}).encode(),
        "model-00001-of-00001.safetensors": _st({"model.embed_tokens.weight": {"dtype": "F32", "shape": [4, 8],
                                                                                "data_offsets": [0, 128]}}, b"\0" * 128),
    },
}


@pytest.mark.parametrize("case", sorted(CONVERT_CASES))
def test_conversion_on_pull_of_a_hostile_repo_never_escapes(
    case: str, hub: HostileHub, world: World, capsys: pytest.CaptureFixture[str]
) -> None:
    hub.repo("org/conv", CONVERT_CASES[case])
    world.before = world.outside_state()
    code, _out, err = batuta(capsys, "hf", "pull", "model", "org/conv", "--format", "gguf", "--output", str(world.out))
    assert code in (11, 14, 15, 20), (case, code, err)
    assert any("/resolve/" in path for _, path in hub.log), hub.log  # it got as far as the files
    world.assert_untouched()
