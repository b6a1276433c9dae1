"""llama.cpp's pre-tokenizer id of a BPE ``tokenizer.json``, looked up by the hash of its token ids.

llama.cpp's converter tokenizes one fixed check text with the model's Hugging Face tokenizer and looks
the SHA-256 of ``str(token_ids)`` up in a table of known tokenizers (``get_vocab_base_pre``); the name
it finds becomes ``tokenizer.ggml.pre``, which selects the pre-tokenizer llama.cpp runs.  The check
text and that table are data here (``pre_hashes.json``); the tokenizer is run by the ``tokenizers``
library when it is installed.  Without it, or for a tokenizer the table does not know, the caller
falls back to the regex rule of ``tokenizer.detect_pre``.
"""

from __future__ import annotations

import hashlib
import json
from functools import lru_cache
from pathlib import Path

_DATA = Path(__file__).with_name("pre_hashes.json")


@lru_cache(maxsize=1)
def _data() -> tuple[str, dict[str, str]]:
    doc = json.loads(_DATA.read_text(encoding="utf-8"))
    table: dict[str, str] = {}
    for digest, name, _ref in doc["hashes"]:  # in the script's order: a later entry for a hash wins
        table[str(digest)] = str(name)
    return str(doc["check_text"]), table


def check_text() -> str:
    """The text llama.cpp's converter tokenizes to identify a pre-tokenizer."""
    return _data()[0]


def table() -> dict[str, str]:
    """SHA-256 of the check text's token ids -> llama.cpp's ``tokenizer.ggml.pre`` id (one shared dict)."""
    return _data()[1]


def token_hash(tokenizer_json: str) -> str | None:
    """The check text's hash for this tokenizer.json text; None without ``tokenizers`` or when it cannot load it."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        return None
    try:
        ids = Tokenizer.from_str(tokenizer_json).encode(check_text()).ids
    except Exception:  # tokenizers raises plain Exception for files it cannot parse; our own reader reports them
        return None
    return hashlib.sha256(str(list(ids)).encode()).hexdigest()


def pre_from_hash(tokenizer_json: str) -> str | None:
    """llama.cpp's pre-tokenizer id for this tokenizer.json, or None when unknown (or not computable here)."""
    digest = token_hash(tokenizer_json)
    return None if digest is None else table().get(digest)
