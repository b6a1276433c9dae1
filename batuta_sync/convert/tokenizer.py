"""Tokenizers between Hugging Face files and GGUF metadata.

HF -> GGUF: a BPE ``tokenizer.json`` (byte-level, GPT-2 / Llama-3 / Qwen2 style) becomes
``tokenizer.ggml.model = "gpt2"`` with tokens, token types and merges; a SentencePiece
``tokenizer.model`` becomes ``"llama"`` with tokens, scores and types (the protobuf is parsed
here, no sentencepiece needed).  Special ids, add_bos/eos and the chat template come from
gguf-py's ``SpecialVocab`` (tokenizer_config.json, config.json, chat_template.jinja).

GGUF -> HF: the reverse, so transformers' ``PreTrainedTokenizerFast`` can load the result.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batuta_sync.errors import ConversionError

if TYPE_CHECKING:
    from batuta_sync.convert.gguf_meta import Meta

NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6
# tokenizer.ggml.<key>_token_id (gguf-py's spelling, "seperator" included) -> tokenizer_config's <name>_token
SPECIAL_ID_KEYS = {"bos": "bos", "eos": "eos", "unknown": "unk", "seperator": "sep", "padding": "pad", "cls": "cls",
                   "mask": "mask", "eot": "eot", "eom": "eom"}

LLAMA3_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)
QWEN2_REGEX = (
    r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"
)

# tokenizer.ggml.pre ids llama.cpp (src/llama-vocab.cpp) runs with Llama 3's / Qwen2's regex; the first
# group also ignores merges for words already in the vocabulary (as Llama 3's tokenizer.json says)
LLAMA3_PRE_IGNORE_MERGES = frozenset({"llama3", "llama-v3", "llama-bpe", "falcon3", "falcon-h1", "pixtral",
                                      "midm-2.0", "lfm2", "jina-v5-nano"})
LLAMA3_PRE = LLAMA3_PRE_IGNORE_MERGES | {"dbrx", "smaug-bpe"}
QWEN2_PRE = frozenset({"qwen2", "deepseek-r1-qwen", "kormo", "f2llmv2", "stablelm2"})


@dataclass(frozen=True)
class Vocab:
    model: str  # "gpt2" | "llama"
    pre: str
    tokens: tuple[str, ...]
    types: tuple[int, ...]
    scores: tuple[float, ...] | None  # SPM only


def _regexes(pre: Any) -> list[str]:
    out: list[str] = []
    if not isinstance(pre, dict):
        return out
    if pre.get("type") == "Split":
        pat = pre.get("pattern") or {}
        if isinstance(pat, dict) and "Regex" in pat:
            out.append(str(pat["Regex"]))
    for sub in pre.get("pretokenizers") or []:
        out.extend(_regexes(sub))
    return out


def detect_pre(tok: dict[str, Any], arch: str) -> str:
    """The fallback ``tokenizer.ggml.pre`` id of a byte-level BPE tokenizer.json, from its pre-tokenizer regex.

    Used when ``pre_hash.pre_from_hash`` (llama.cpp's own table) has no answer.
    """
    regexes = _regexes(tok.get("pre_tokenizer"))
    if LLAMA3_REGEX in regexes:
        return "llama-bpe"
    if QWEN2_REGEX in regexes:
        return "qwen2"
    pre = tok.get("pre_tokenizer") or {}
    if isinstance(pre, dict) and pre.get("type") == "ByteLevel" and pre.get("use_regex", True):
        return "gpt-2"
    return "qwen2" if arch == "qwen2" else "default"


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ValueError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, Any]]:
    """Decode one protobuf message level: (field number, wire type, value)."""
    out: list[tuple[int, int, Any]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wt = key >> 3, key & 7
        val: Any
        if wt == 0:
            val, pos = _varint(buf, pos)
        elif wt == 1:
            val, pos = buf[pos : pos + 8], pos + 8
        elif wt == 2:
            n, pos = _varint(buf, pos)
            val, pos = buf[pos : pos + n], pos + n
        elif wt == 5:
            val, pos = buf[pos : pos + 4], pos + 4
        else:
            raise ValueError(f"unsupported wire type {wt}")
        if pos > len(buf):
            raise ValueError("truncated message")
        out.append((field, wt, val))
    return out


def read_sentencepiece(path: Path) -> list[tuple[str, float, int]]:
    """(piece, score, type) for every piece of a SentencePiece ``tokenizer.model``."""
    try:
        pieces = []
        for field, wt, val in _fields(Path(path).read_bytes()):
            if field != 1 or wt != 2:
                continue
            piece, score, typ = "", 0.0, NORMAL
            for f2, w2, v2 in _fields(val):
                if f2 == 1 and w2 == 2:
                    piece = v2.decode("utf-8")
                elif f2 == 2 and w2 == 5:
                    (score,) = struct.unpack("<f", v2)
                elif f2 == 3 and w2 == 0:
                    typ = int(v2)
            pieces.append((piece, score, typ))
    except (ValueError, UnicodeDecodeError) as e:
        raise ConversionError(f"{path} is not a valid SentencePiece model: {e}.", hint="Re-download tokenizer.model.") from None
    if not pieces:
        raise ConversionError(f"{path} contains no SentencePiece pieces.", hint="Re-download tokenizer.model.")
    return pieces


def _enc_varint(n: int) -> bytes:
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def _enc_field(field: int, wt: int, payload: bytes | int) -> bytes:
    key = _enc_varint(field << 3 | wt)
    if wt == 0:
        assert isinstance(payload, int)
        return key + _enc_varint(payload)
    assert isinstance(payload, bytes)
    if wt == 2:
        return key + _enc_varint(len(payload)) + payload
    return key + payload


def write_sentencepiece(path: Path, tokens: list[str], scores: list[float], types: list[int], special: dict[str, int],
                        add_space_prefix: bool = True) -> None:
    """A SentencePiece ``tokenizer.model`` (BPE model type) holding exactly these pieces."""
    buf = bytearray()
    for tok, score, typ in zip(tokens, scores, types, strict=True):
        piece = _enc_field(1, 2, tok.encode("utf-8")) + _enc_field(2, 5, struct.pack("<f", score))
        if typ != NORMAL:
            piece += _enc_field(3, 0, typ)
        buf += _enc_field(1, 2, piece)
    trainer = _enc_field(3, 0, 2)  # model_type = BPE
    if BYTE in types:
        trainer += _enc_field(35, 0, 1)  # byte_fallback
    for field, key in ((40, "unk"), (41, "bos"), (42, "eos"), (43, "pad")):
        if key in special:
            trainer += _enc_field(field, 0, special[key] & 0xFFFFFFFFFFFFFFFF)
    buf += _enc_field(2, 2, trainer)
    buf += _enc_field(3, 2, _enc_field(1, 2, b"identity") + _enc_field(3, 0, int(add_space_prefix)))
    Path(path).write_bytes(bytes(buf))


def load_vocab(model_dir: Path, vocab_size: int, arch: str) -> Vocab:
    """The GGUF vocabulary of a HF model directory (SentencePiece preferred when present)."""
    spm = model_dir / "tokenizer.model"
    tj = model_dir / "tokenizer.json"
    if spm.is_file() and not _is_tiktoken(spm):
        pieces = read_sentencepiece(spm)
        tokens = [p for p, _, _ in pieces]
        scores = [s for _, s, _ in pieces]
        types = [t for _, _, t in pieces]
        for tok_id, content, special in _added_tokens(model_dir):
            if tok_id < len(tokens):
                tokens[tok_id], scores[tok_id] = content, -1000.0
                types[tok_id] = CONTROL if special else USER_DEFINED
            elif tok_id < vocab_size:
                while len(tokens) < tok_id:
                    tokens.append(f"[PAD{len(tokens)}]")
                    scores.append(-1000.0)
                    types.append(UNUSED)
                tokens.append(content)
                scores.append(-1000.0)
                types.append(CONTROL if special else USER_DEFINED)
        _pad(tokens, types, vocab_size, scores)
        return Vocab("llama", "default", tuple(tokens), tuple(types), tuple(scores))
    if not tj.is_file():
        raise ConversionError(
            f"{model_dir} has no tokenizer (neither tokenizer.json nor tokenizer.model).",
            hint="GGUF files embed the tokenizer; add the model's tokenizer files to the directory.",
        )
    try:
        text = tj.read_text(encoding="utf-8")
        tok = json.loads(text)
        model = tok["model"]
        mtype = model.get("type", "BPE")
        vocab: dict[str, int] = model["vocab"]
    except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
        raise ConversionError(f"{tj} is not a readable tokenizer.json ({e}).", hint="Re-download tokenizer.json.") from None
    if mtype != "BPE" or not isinstance(vocab, dict):
        raise ConversionError(
            f"{tj} uses a {mtype} model; only BPE tokenizer.json (or a SentencePiece tokenizer.model) converts to GGUF.",
            hint="Supported tokenizers: byte-level BPE tokenizer.json, SentencePiece tokenizer.model.",
        )
    added = _added_from_json(tok, tj)
    if not all(isinstance(t, str) and isinstance(i, int) and not isinstance(i, bool) and i >= 0 for t, i in vocab.items()):
        raise ConversionError(f"{tj}: model.vocab must map token strings to non-negative integer ids.",
                              hint="Re-download tokenizer.json.")
    size = max([vocab_size, *(i + 1 for i in vocab.values()), *(i + 1 for i in added)])
    if size > vocab_size:
        raise ConversionError(
            f"The tokenizer has {size} tokens but config.json says vocab_size = {vocab_size}.",
            hint="The tokenizer does not belong to these weights; check tokenizer.json and config.json.",
        )
    rev = {i: t for t, i in vocab.items()}
    tokens, types = [], []
    for i in range(vocab_size):
        if i in added:
            content, is_special = added[i]
            special = is_special or (content.startswith("<|") and content.endswith("|>"))
            tokens.append(content if special else content.replace("▁", " "))
            types.append(CONTROL if special else USER_DEFINED)
        elif i in rev:
            tokens.append(rev[i])
            types.append(NORMAL)
        else:
            tokens.append(f"[PAD{i}]")
            types.append(UNUSED)
    from batuta_sync.convert.pre_hash import pre_from_hash

    return Vocab("gpt2", pre_from_hash(text) or detect_pre(tok, arch), tuple(tokens), tuple(types), None)


def _added_from_json(tok: dict[str, Any], tj: Path) -> dict[int, tuple[str, bool]]:
    """tokenizer.json's ``added_tokens``: id -> (content, special), every entry checked."""
    entries = tok.get("added_tokens") or []
    out: dict[int, tuple[str, bool]] = {}
    if not isinstance(entries, list):
        raise ConversionError(f"{tj}: added_tokens must be a list.", hint="Re-download tokenizer.json.")
    for a in entries:
        tid = a.get("id") if isinstance(a, dict) else None
        content = a.get("content") if isinstance(a, dict) else None
        if not isinstance(tid, int) or isinstance(tid, bool) or tid < 0 or not isinstance(content, str):
            raise ConversionError(f"{tj}: an added_tokens entry lacks an integer id or a string content: {str(a)[:80]}.",
                                  hint="Re-download tokenizer.json.")
        out[tid] = (content, a.get("special") is True)
    return out


def _json_or_none(path: Path) -> dict[str, Any] | None:
    if not path.is_file():
        return None
    from batuta_sync.convert.formats import read_json

    return read_json(path, "Tokenizer file")


def _is_tiktoken(path: Path) -> bool:
    try:
        with open(path, "rb") as f:
            head = f.read(64)
    except OSError:
        return False
    return b" " in head.split(b"\n", 1)[0] and head[:1].isalnum()


def _added_tokens(model_dir: Path) -> list[tuple[int, str, bool]]:
    out: list[tuple[int, str, bool]] = []
    cfg = model_dir / "tokenizer_config.json"
    if cfg.is_file():
        try:
            dec = json.loads(cfg.read_text(encoding="utf-8")).get("added_tokens_decoder") or {}
            for k, v in dec.items():
                out.append((int(k), str(v["content"]), bool(v.get("special"))))
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            pass
    return out


def _pad(tokens: list[str], types: list[int], vocab_size: int, scores: list[float] | None = None) -> None:
    if len(tokens) > vocab_size:
        raise ConversionError(
            f"The tokenizer has {len(tokens)} tokens but config.json says vocab_size = {vocab_size}.",
            hint="The tokenizer does not belong to these weights.",
        )
    while len(tokens) < vocab_size:
        tokens.append(f"[PAD{len(tokens)}]")
        types.append(UNUSED)
        if scores is not None:
            scores.append(-1000.0)


def _special_id(proc_item: Any) -> str | None:
    """The token of a TemplateProcessing item ``{"SpecialToken": {"id": TOKEN}}`` (None for a sequence)."""
    tok = proc_item.get("SpecialToken", {}).get("id") if isinstance(proc_item, dict) else None
    return tok if isinstance(tok, str) and tok else None


def _content(v: Any) -> str | None:
    v = v.get("content") if isinstance(v, dict) else v
    return v if isinstance(v, str) and v else None


def add_special_flags(tokenizer: dict[str, Any] | None, tok_cfg: dict[str, Any] | None) -> dict[str, bool]:
    """``add_bos`` / ``add_eos`` / ``add_sep`` as llama.cpp's converter derives them.

    The tokenizer.json post-processor decides first -- ByteLevel adds nothing, RobertaProcessing adds
    all three, a TemplateProcessing adds BOS when its single template starts with the BOS (or CLS)
    token, EOS when it ends with a special token, and SEP when its pair template puts a SEP/EOS token
    between A and B -- and tokenizer_config.json's ``add_*_token`` only fills in what the
    post-processor left open (they are ignored when they disagree, as llama.cpp does).
    """
    flags: dict[str, bool] = {}
    cfg = tok_cfg or {}
    bos, cls = _content(cfg.get("bos_token")) or _content(cfg.get("cls_token")), _content(cfg.get("cls_token"))
    eos = _content(cfg.get("eos_token")) or _content(cfg.get("sep_token"))
    sep = _content(cfg.get("sep_token"))
    post = (tokenizer or {}).get("post_processor")
    procs = post.get("processors", [post]) if isinstance(post, dict) else []
    for proc in procs if isinstance(procs, list) else []:
        kind = proc.get("type") if isinstance(proc, dict) else None
        if kind == "ByteLevel":
            flags.setdefault("bos", False)
            flags.setdefault("eos", False)
        elif kind == "RobertaProcessing":
            flags.update(bos=True, eos=True, sep=True)
        elif kind == "TemplateProcessing":
            single = proc.get("single") if isinstance(proc.get("single"), list) else []
            pair = proc.get("pair") if isinstance(proc.get("pair"), list) else []
            first = _special_id(single[0]) if len(single) > 1 else None
            last = _special_id(single[-1]) if len(single) > 1 else None
            if first:
                if not tok_cfg:
                    bos = first
                flags["bos"] = first in (bos, cls) or (bool(tok_cfg) and (not bos or not cls))
            if last:
                flags["eos"] = True  # llama.cpp makes the trailing token the EOS when they differ
                eos = last
            inner = pair[1 if first and pair and _special_id(pair[0]) == first else 0:]
            inner = inner[:-1] if last and inner and _special_id(inner[-1]) == last else inner
            a = inner[0].get("Sequence", {}).get("id") if inner and isinstance(inner[0], dict) else None
            b = inner[-1].get("Sequence", {}).get("id") if inner and isinstance(inner[-1], dict) else None
            middle = inner[1:-1]
            if a == "A" and b == "B" and middle:
                add_sep = _special_id(middle[0]) in (sep, eos) and not last
                if len(middle) == 2 and _special_id(middle[1]) in (sep, eos):
                    add_sep = True
                flags["sep"] = bool(add_sep)
    for typ in ("bos", "eos", "sep"):
        value = cfg.get(f"add_{typ}_token")
        if isinstance(value, bool):
            flags.setdefault(typ, value)
    return flags


def add_vocab(writer: Any, model_dir: Path, vocab: Vocab) -> None:
    """Write the vocabulary and the special-token metadata into a gguf.GGUFWriter."""
    import logging

    import gguf

    writer.add_tokenizer_model(vocab.model)
    writer.add_tokenizer_pre(vocab.pre)
    writer.add_token_list(list(vocab.tokens))
    if vocab.scores is not None:
        writer.add_token_scores(list(vocab.scores))
    writer.add_token_types(list(vocab.types))
    level = logging.getLogger("gguf").level
    logging.getLogger("gguf").setLevel(logging.ERROR)
    try:
        special = gguf.SpecialVocab(model_dir, load_merges=vocab.model == "gpt2", n_vocab=len(vocab.tokens))
        special.add_special_token = add_special_flags(_json_or_none(model_dir / "tokenizer.json"),
                                                      _json_or_none(model_dir / "tokenizer_config.json"))
        special.add_to_gguf(writer, quiet=True)
    except (AttributeError, TypeError, ValueError, KeyError, IndexError, UnicodeDecodeError) as e:
        # gguf-py's reader of tokenizer.json / tokenizer_config.json trusts their shapes
        raise ConversionError(f"The tokenizer files in {model_dir} are malformed ({type(e).__name__}: {str(e)[:120]}).",
                              hint="Re-download tokenizer.json and tokenizer_config.json.") from None
    finally:
        logging.getLogger("gguf").setLevel(level)
    if vocab.model == "gpt2" and not special.merges:
        raise ConversionError(
            f"{model_dir / 'tokenizer.json'} has no BPE merges; llama.cpp cannot load a gpt2 tokenizer without them.",
            hint="Use the model's original tokenizer.json (or add merges.txt).",
        )


# ----------------------------------------------------------------------------- GGUF -> HF


def write_hf_tokenizer(meta: Meta, out_dir: Path, context_length: int | None) -> list[Path]:
    """Write tokenizer files for the GGUF's vocabulary into ``out_dir``; returns the files written."""
    model = meta.get_str("tokenizer.ggml.model", None)
    tokens = meta.get_array("tokenizer.ggml.tokens", "str", None)
    if not model or not tokens:
        return []
    types = meta.get_array("tokenizer.ggml.token_type", "int", None) or [NORMAL] * len(tokens)
    if len(types) != len(tokens) or any(not NORMAL <= t <= BYTE for t in types):
        raise ConversionError(f"{meta.src}: tokenizer.ggml.token_type has {len(types)} entries for {len(tokens)} tokens "
                              f"or a token type outside {NORMAL}..{BYTE}.",
                              hint="The file is corrupt; re-create it.")
    special = {}
    for key, name in SPECIAL_ID_KEYS.items():
        v = meta.token_id(f"tokenizer.ggml.{key}_token_id", len(tokens))
        if v is not None:
            special[name] = v
    add_bos = meta.get_bool("tokenizer.ggml.add_bos_token", None)
    add_eos = meta.get_bool("tokenizer.ggml.add_eos_token", None)
    add_sep = meta.get_bool("tokenizer.ggml.add_sep_token", None)
    chat = meta.get_str("tokenizer.chat_template", None)
    files: list[Path] = []
    cfg: dict[str, Any] = {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    for k, i in special.items():
        cfg[f"{k}_token"] = tokens[i]
    if add_bos is not None:
        cfg["add_bos_token"] = bool(add_bos)
    if add_eos is not None:
        cfg["add_eos_token"] = bool(add_eos)
    if add_sep is not None:
        cfg["add_sep_token"] = bool(add_sep)
    if chat:
        cfg["chat_template"] = chat
    if context_length:
        cfg["model_max_length"] = int(context_length)
    if model == "gpt2":
        merges = meta.get_array("tokenizer.ggml.merges", "str", [])
        if any(" " not in m for m in merges):
            raise ConversionError(f"{meta.src}: tokenizer.ggml.merges holds an entry without a space (not a BPE merge).",
                                  hint="The file is corrupt; re-create it.")
        pre = meta.get_str("tokenizer.ggml.pre", "default")
        added = [
            {"id": i, "content": t, "single_word": False, "lstrip": False, "rstrip": False, "normalized": False,
             "special": types[i] == CONTROL}
            for i, t in enumerate(tokens)
            if types[i] in (CONTROL, USER_DEFINED)
        ]
        if pre in LLAMA3_PRE or pre in QWEN2_PRE:
            pre_tok: dict[str, Any] = {
                "type": "Sequence",
                "pretokenizers": [
                    {"type": "Split", "pattern": {"Regex": QWEN2_REGEX if pre in QWEN2_PRE else LLAMA3_REGEX},
                     "behavior": "Isolated", "invert": False},
                    {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
                ],
            }
        else:
            pre_tok = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True}
        post: dict[str, Any] = {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": False, "use_regex": True}
        if add_bos and "bos" in special:
            bos = tokens[special["bos"]]
            post = {
                "type": "TemplateProcessing",
                "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
                "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                         {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
                "special_tokens": {bos: {"id": bos, "ids": [special["bos"]], "tokens": [bos]}},
            }
        tj = {
            "version": "1.0",
            "truncation": None,
            "padding": None,
            "added_tokens": added,
            "normalizer": None,
            "pre_tokenizer": pre_tok,
            "post_processor": post,
            "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
            "model": {
                "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": pre in LLAMA3_PRE_IGNORE_MERGES,
                "vocab": {t: i for i, t in enumerate(tokens)},
                "merges": [m.split(" ", 1) for m in merges],
            },
        }
        p = out_dir / "tokenizer.json"
        p.write_text(json.dumps(tj, ensure_ascii=False))
        files.append(p)
    elif model == "llama":
        scores = meta.get_array("tokenizer.ggml.scores", "float", None) or [0.0] * len(tokens)
        if len(scores) != len(tokens):
            raise ConversionError(f"{meta.src}: tokenizer.ggml.scores has {len(scores)} entries for {len(tokens)} tokens.",
                                  hint="The file is corrupt; re-create it.")
        asp = meta.get_bool("tokenizer.ggml.add_space_prefix", None)
        p = out_dir / "tokenizer.model"
        write_sentencepiece(p, list(tokens), [float(s) for s in scores], [int(t) for t in types], special,
                            True if asp is None else bool(asp))
        files.append(p)
        cfg["tokenizer_class"] = "LlamaTokenizer"
    else:
        return []
    p = out_dir / "tokenizer_config.json"
    p.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n")
    files.append(p)
    return files
