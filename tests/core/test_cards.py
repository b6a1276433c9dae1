"""Model cards (issue 14): a re-conversion's card names the new source commit (the card batuta
generated is regenerated, one edited on the Hub is kept), links point to the configured endpoint,
and the tool's own tags are opt-in."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from batuta_sync.tinymodel import write_tiny_llama
from tests._builders import run_cli as run


def _card(hub: Any) -> str:
    commit = hub.store.commit_of("me/tiny-gguf")
    entry = commit.files["README.md"]
    return hub.store.blob_path(entry.sha256).read_text(encoding="utf-8")


def test_reconverting_regenerates_batutas_card_but_keeps_one_edited_on_the_hub(
    tmp_path: Path, hub_env: Any, capsys: pytest.CaptureFixture[str]
) -> None:
    src = write_tiny_llama(tmp_path / "seed")
    files = {p.relative_to(src).as_posix(): p for p in src.rglob("*") if p.is_file()}
    first = hub_env.store.commit("org/tiny", files)
    ws = tmp_path / "ws"
    ws.mkdir()
    f = ws / "hf.yaml"
    f.write_text(
        "version: 1\nmodels:\n  tiny: {repo: org/tiny}\n"
        "conversions:\n  q8: {from: models.tiny, to: gguf, quantization: Q8_0, output: ./gguf}\n"
        "publish:\n  gguf: {from: conversions.q8, repo: me/tiny-gguf, card: {license: mit}}\n"
    )
    assert run(capsys, "apply", "-f", str(f), "--auto-approve")[0] == 0
    card = _card(hub_env)
    assert f"at commit `{first}`" in card and f"]({hub_env.url}/org/tiny)" in card
    assert "huggingface.co/org/tiny" not in card and "paiml" not in card.split("---")[1]

    # Upstream moves; taking it re-converts, and the published card names the new commit.
    second = hub_env.store.commit("org/tiny", {"generation_config.json": b'{"temperature": 0.5}'})
    assert run(capsys, "lock", "-f", str(f), "--update", "models.tiny")[0] == 0
    code, _, err = run(capsys, "apply", "-f", str(f), "--auto-approve")
    assert code == 0, err
    card = _card(hub_env)
    assert f"at commit `{second}`" in card and first not in card

    # Someone edits the card on the Hub: the next re-conversion keeps their card.
    edited = card.replace("# tiny-gguf", "# tiny-gguf (curated by hand)")
    hub_env.store.commit("me/tiny-gguf", {"README.md": edited.encode()})
    assert run(capsys, "lock", "-f", str(f))[0] == 0
    third = hub_env.store.commit("org/tiny", {"generation_config.json": b'{"temperature": 0.7}'})
    assert run(capsys, "lock", "-f", str(f), "--update", "models.tiny")[0] == 0
    code, _, err = run(capsys, "apply", "-f", str(f), "--auto-approve")
    assert code == 0, err
    assert _card(hub_env) == edited and third not in _card(hub_env)


def test_stamp_detects_edits() -> None:
    from batuta_sync.publish.card import is_untouched_stamp, stamp

    card = stamp("---\nlicense: mit\n---\n# x\n")
    assert is_untouched_stamp(card)
    assert not is_untouched_stamp(card.replace("# x", "# y"))
    assert not is_untouched_stamp("# no stamp\n")
