"""Small generated repos for the pull tests (no real weights)."""

from __future__ import annotations

import io
import pickle
import struct
import zipfile

import numpy as np
from safetensors.numpy import save


def safetensors_bytes(n: int = 256, seed: int = 0) -> bytes:
    rng = np.random.default_rng(seed)
    return save({"w": rng.standard_normal(n).astype(np.float32), "b": np.arange(8, dtype=np.int64)})


def gguf_bytes(tag: str = "x", size: int = 2048) -> bytes:
    body = b"GGUF" + struct.pack("<I", 3) + tag.encode()
    return body + b"\0" * (size - len(body))


def pickle_bytes(protocol: int = 4) -> bytes:
    return pickle.dumps({"weights": [1.0, 2.0, 3.0]}, protocol=protocol)


def torch_zip_bytes() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle_bytes(2))
        zf.writestr("archive/data/0", b"\0" * 64)
        zf.writestr("archive/version", b"3\n")
    return buf.getvalue()


def big_bytes(n: int, seed: int = 1) -> bytes:
    return np.random.default_rng(seed).integers(0, 256, n, dtype=np.uint8).tobytes()


CONFIG = b'{"architectures": ["LlamaForCausalLM"], "hidden_size": 8}'
TOKENIZER = b'{"version": "1.0", "model": {"type": "BPE"}}'
