"""add_bos / add_eos / add_sep as llama.cpp's converter derives them (issue 19, point 6): the
tokenizer.json post-processor wins over tokenizer_config.json when they disagree."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.convert import convert
from batuta_sync.convert.tokenizer import add_special_flags

BOS, EOS = {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"SpecialToken": {"id": "</s>", "type_id": 0}}
A, B = {"Sequence": {"id": "A", "type_id": 0}}, {"Sequence": {"id": "B", "type_id": 1}}
SEP = {"SpecialToken": {"id": "[SEP]", "type_id": 0}}
CFG = {"bos_token": "<s>", "eos_token": "</s>"}


def tmpl(single: list[Any], pair: list[Any] | None = None) -> dict[str, Any]:
    return {"post_processor": {"type": "TemplateProcessing", "single": single, "pair": pair or []}}


@pytest.mark.parametrize("tokenizer,cfg,want", [
    # the post-processor decides; tokenizer_config's contrary flags are ignored
    (tmpl([BOS, A]), {**CFG, "add_bos_token": False, "add_eos_token": True}, {"bos": True, "eos": True}),
    (tmpl([BOS, A, EOS]), {**CFG, "add_eos_token": False}, {"bos": True, "eos": True}),
    ({"post_processor": {"type": "ByteLevel"}}, {**CFG, "add_bos_token": True}, {"bos": False, "eos": False}),
    # Llama 3 style: a Sequence of ByteLevel and a template
    ({"post_processor": {"type": "Sequence", "processors": [{"type": "ByteLevel"}, tmpl([BOS, A])["post_processor"]]}},
     CFG, {"bos": True, "eos": False}),
    ({"post_processor": {"type": "RobertaProcessing"}}, {}, {"bos": True, "eos": True, "sep": True}),
    # a leading token that is neither BOS nor CLS (both configured) is not a BOS
    (tmpl([SEP, A]), {**CFG, "cls_token": "<cls>"}, {"bos": False}),
    # pair templates: A [SEP] B adds a separator; A </s> </s> B (two middle tokens) too
    (tmpl([A], [A, SEP, B]), {**CFG, "sep_token": "[SEP]"}, {"sep": True, "bos": None}),
    (tmpl([BOS, A], [BOS, A, EOS, EOS, B]), CFG, {"bos": True, "sep": True, "eos": None}),
    (tmpl([BOS, A], [BOS, A, B]), CFG, {"bos": True, "sep": None}),
    # no post-processor: tokenizer_config alone
    ({}, {**CFG, "add_bos_token": True, "add_eos_token": False, "add_sep_token": True},
     {"bos": True, "eos": False, "sep": True}),
    (None, {"add_bos_token": "yes"}, {}),  # non-boolean flags are ignored, as llama.cpp does
    ({"post_processor": "garbage"}, None, {}),
])
def test_flags(tokenizer: dict[str, Any] | None, cfg: dict[str, Any] | None, want: dict[str, bool]) -> None:
    flags = add_special_flags(tokenizer, cfg)
    for k, v in want.items():
        assert flags.get(k) == v, (k, flags)
    if not want:
        assert flags == {}


def test_written_into_the_gguf(models: dict[str, Path], tmp_path: Path) -> None:
    import gguf

    d = tmp_path / "m"
    shutil.copytree(models["gqa"], d)
    tok = json.loads((d / "tokenizer.json").read_text())
    tok["post_processor"] = tmpl([BOS, A], [BOS, A, BOS, B])["post_processor"]
    (d / "tokenizer.json").write_text(json.dumps(tok))
    cfg = json.loads((d / "tokenizer_config.json").read_text())
    (d / "tokenizer_config.json").write_text(json.dumps({**cfg, "add_bos_token": False, "add_eos_token": True}))
    out = convert(d, tmp_path / "m.gguf", to="gguf", quantization="F16").output
    f = gguf.GGUFReader(out).fields
    assert f["tokenizer.ggml.add_bos_token"].contents() is True  # the post-processor wins over add_bos_token
    assert f["tokenizer.ggml.add_eos_token"].contents() is True  # the template leaves EOS open: the config decides
    assert f["tokenizer.ggml.add_sep_token"].contents() is False  # A <s> B: <s> is no separator
