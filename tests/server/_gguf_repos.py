"""GGUF repos for the runtime-endpoint tests (Ollama registry, llama.cpp ``-hf``)."""

from __future__ import annotations

import hashlib
import os
import struct

from batuta_sync.server import Store

CHATML = "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"


def gguf_file(*, arch: str = "qwen2", chat_template: str | None = CHATML, payload: int = 50_000) -> bytes:
    """A small valid GGUF v3 file (metadata only, no tensors) followed by ``payload`` random bytes."""

    def s(text: str) -> bytes:
        b = text.encode()
        return struct.pack("<Q", len(b)) + b

    kvs = [("general.architecture", s(arch)), ("qwen2.context_length", None)]
    body = b""
    n = 0
    for key, value in kvs:
        if value is None:
            body += s(key) + struct.pack("<I", 4) + struct.pack("<I", 4096)
        else:
            body += s(key) + struct.pack("<I", 8) + value
        n += 1
    if chat_template is not None:
        body += s("tokenizer.chat_template") + struct.pack("<I", 8) + s(chat_template)
        n += 1
    return b"GGUF" + struct.pack("<IQQ", 3, 0, n) + body + os.urandom(payload)


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def seed(store: Store) -> dict[str, bytes]:
    """``alice/tiny-gguf`` (quants, an mmproj), ``alice/custom-gguf`` (template/params/system files),
    ``alice/sharded-gguf`` (a model in two shards); returns {repo/path: bytes}."""
    files = {
        "alice/tiny-gguf": {
            "README.md": b"---\nlicense: mit\n---\n# tiny\n",
            "tiny-F16.gguf": gguf_file(),
            "tiny-Q4_K_M.gguf": gguf_file(),
            "tiny-Q8_0.gguf": gguf_file(),
            "tiny-mmproj-F16.gguf": gguf_file(arch="clip", chat_template=None),
        },
        "alice/custom-gguf": {
            "model-Q4_0.gguf": gguf_file(chat_template=None),
            "template": b"{{ .Prompt }}",
            "params": b'{"temperature": 0.2, "stop": ["</s>"]}',
            "system": b"You are terse.",
        },
        "alice/sharded-gguf": {
            "big-Q4_K_M-00001-of-00002.gguf": gguf_file(),
            "big-Q4_K_M-00002-of-00002.gguf": os.urandom(30_000),
            "big-Q8_0.gguf": gguf_file(),
        },
    }
    out: dict[str, bytes] = {}
    for repo, content in files.items():
        store.commit(repo, dict(content))
        out.update({f"{repo}/{p}": b for p, b in content.items()})
    return out
