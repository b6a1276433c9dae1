"""The conversion entry points: ``convert()`` (stable, used by the declarative core) and ``FormatConverter``."""

from __future__ import annotations

import errno
import json
import shutil
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batuta_sync.convert.archs import supported_gguf, supported_hf
from batuta_sync.convert.formats import GGUFQuantization, ModelFormat, Runtime, detect_format
from batuta_sync.errors import ConversionError, DiskFullError, UnsafeFileError

if TYPE_CHECKING:
    from batuta_sync.convert.split import SplitOptions

# Bump whenever the bytes a conversion produces change (it is part of memo keys in hf.lock).
CONVERTER_VERSION = "3"  # 3: tokenizer.ggml.pre from llama.cpp's hash table; 2: the 70B attn_v rule, llama.cpp's key set

TARGETS = ("gguf", "safetensors")
SUPPORTED = (
    f"safetensors model directory ({', '.join(supported_hf())}) -> gguf "
    f"({', '.join(q.value for q in GGUFQuantization)}); gguf -> gguf (re-quantization); "
    f"gguf ({', '.join(supported_gguf())}) -> safetensors; "
    "PyTorch .bin/.pt -> safetensors or gguf (with --allow-unsafe)"
)
Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class ConversionResult:
    output: Path
    files: tuple[Path, ...]
    tensor_count: int
    params: dict[str, str]
    seconds: float

    def to_dict(self) -> dict[str, object]:
        return {
            "output": str(self.output),
            "files": [str(f) for f in self.files],
            "tensor_count": self.tensor_count,
            "params": dict(self.params),
            "seconds": round(self.seconds, 3),
        }


def _unsupported(what: str) -> ConversionError:
    return ConversionError(f"{what} is not supported.", hint=f"Supported conversions: {SUPPORTED}.")


def _gguf_path(src: Path, dst: Path, quant: GGUFQuantization) -> Path:
    if dst.suffix.lower() == ".gguf":
        return dst
    if dst.exists() and not dst.is_dir():
        raise ConversionError(f"{dst} exists and is not a .gguf path or a directory.", hint="Pass OUT as file.gguf or a directory.")
    return dst / f"{src.resolve().name}-{quant.value}.gguf"


def _split_options(max_size: int | str | None, max_tensors: int | None, if_larger: int | str | None) -> SplitOptions:
    from batuta_sync.convert.split import SplitOptions

    opts = SplitOptions.parse(max_size, max_tensors)
    if if_larger is not None and not opts.active:
        opts = SplitOptions(SplitOptions.parse(if_larger).max_size, None, single_if_fits=True)
    return opts


def convert(
    src: Path,
    dst: Path,
    *,
    to: str,
    quantization: str | None = None,
    jobs: int = 1,
    progress: Progress | None = None,
    allow_unsafe: bool = False,
    tensor_types: Sequence[str] = (),
    output_tensor_type: str | None = None,
    token_embedding_type: str | None = None,
    pure: bool = False,
    allow_requantize: bool = False,
    split_max_size: int | str | None = None,
    split_max_tensors: int | None = None,
    imatrix: str | Path | None = None,
    split_if_larger: int | str | None = None,
) -> ConversionResult:
    """Convert the model at ``src`` into format ``to`` at ``dst``.

    ``src`` is a model directory (config.json + safetensors (+ index) + tokenizer files), a
    ``.gguf`` file, or (with ``allow_unsafe``) a PyTorch ``.bin``/``.pt`` file or directory.
    ``dst`` is the output ``.gguf`` path (or a directory to put it in) for ``to="gguf"``, and the
    output directory for ``to="safetensors"``.  Outputs appear atomically.

    GGUF output only: ``tensor_types`` ("REGEX=TYPE"), ``output_tensor_type``, ``token_embedding_type``,
    ``pure`` and (GGUF -> GGUF) ``allow_requantize`` are llama-quantize's per-tensor controls
    (:class:`~batuta_sync.convert.quantize.QuantOptions`); ``split_max_size`` / ``split_max_tensors``
    write llama.cpp's split format (:mod:`batuta_sync.convert.split`); ``imatrix`` is an importance
    matrix file (:mod:`batuta_sync.convert.imatrix`), in the parameters by its SHA-256.
    ``split_if_larger`` (without split options): one GGUF file when it is at most that many bytes,
    else the split format with that much tensor data per shard (publishing past the Hub's limit).
    """
    from batuta_sync.convert.quantize import QuantOptions

    qopts = QuantOptions.parse(tensor_types=tensor_types, output_tensor_type=output_tensor_type,
                               token_embedding_type=token_embedding_type, pure=pure, allow_requantize=allow_requantize,
                               imatrix=str(imatrix) if imatrix is not None else None)
    sopts = _split_options(split_max_size, split_max_tensors, split_if_larger)
    src, dst = Path(src), Path(dst)
    target = str(to).strip().lower()
    if target == "onnx":
        raise _unsupported("Converting to ONNX")
    if target not in TARGETS:
        raise ConversionError(f"Unknown target format {to!r}.", hint="Use --to gguf or --to safetensors.")
    jobs = max(1, int(jobs))
    fmt = detect_format(src)
    started = time.perf_counter()
    try:
        if fmt is ModelFormat.ONNX:
            raise _unsupported(f"Converting from ONNX ({src})")
        if fmt is ModelFormat.UNKNOWN:
            raise ConversionError(f"{src} is not a recognised model (no safetensors, GGUF or PyTorch weights).",
                                  hint=f"Supported conversions: {SUPPORTED}.")
        if fmt is ModelFormat.PYTORCH:
            if not allow_unsafe:
                raise UnsafeFileError(
                    f"{src} is a pickle-based PyTorch checkpoint; converting it needs --allow-unsafe.",
                    hint="batuta never runs pickle code (an allow-listed loader rebuilds tensors only), but only "
                    "pass --allow-unsafe for files you trust.",
                )
            if target == "safetensors":
                files, count, params = _pytorch_to_safetensors(src, dst)
                return ConversionResult(dst, tuple(files), count, params, time.perf_counter() - started)
            dst.parent.mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryDirectory(prefix=".batuta-st-", dir=dst.parent) as tmp:
                stage = Path(tmp) / (src.stem if src.is_file() else src.name)
                _pytorch_to_safetensors(src, stage)
                res = convert(stage, _gguf_path(src, dst, GGUFQuantization.parse(quantization)), to="gguf",
                              quantization=quantization, jobs=jobs, progress=progress, tensor_types=tensor_types,
                              output_tensor_type=output_tensor_type, token_embedding_type=token_embedding_type,
                              pure=pure, split_max_size=split_max_size, split_max_tensors=split_max_tensors,
                              imatrix=imatrix)
            return ConversionResult(res.output, res.files, res.tensor_count, {**res.params, "source": "pytorch"},
                                    time.perf_counter() - started)
        if target == "gguf":
            from batuta_sync.convert.split import model_stem, write_maybe_split

            quant = GGUFQuantization.parse(quantization)
            if fmt is ModelFormat.GGUF:
                from batuta_sync.convert.requantize import requantize_gguf

                gguf_in = _single_gguf(src)
                out = _gguf_path(gguf_in.parent / model_stem(gguf_in), dst, quant)
                files, count, params = write_maybe_split(
                    out, sopts, lambda tmp: requantize_gguf(gguf_in, tmp, quant, qopts, jobs=jobs, progress=progress))
            else:
                model_dir = src if src.is_dir() else src.parent
                out = _gguf_path(model_dir, dst, quant)
                from batuta_sync.convert.hf_to_gguf import write_gguf

                files, count, params = write_maybe_split(
                    out, sopts, lambda tmp: write_gguf(model_dir, tmp, quant, jobs=jobs, progress=progress, options=qopts))
            params = {"to": "gguf", "converter_version": CONVERTER_VERSION, **params, **qopts.memo_params(),
                      **sopts.memo_params()}
            return ConversionResult(files[0], tuple(files), count, params, time.perf_counter() - started)
        # target == "safetensors"
        if fmt is ModelFormat.SAFETENSORS:
            raise ConversionError(f"{src} is already safetensors.", hint=f"Supported conversions: {SUPPORTED}.")
        gguf_file = _single_gguf(src)
        if quantization is not None:
            raise ConversionError("--quantization applies to --to gguf only.", hint="Drop --quantization.")
        gguf_only = [k.replace("_", "-").replace("tensor-types", "tensor-type")
                     for k in (*qopts.memo_params(), *sopts.memo_params())]
        if gguf_only:
            raise ConversionError(f"--{', --'.join(gguf_only)} appl{'ies' if len(gguf_only) == 1 else 'y'} to "
                                  "--to gguf only.", hint="Drop them, or convert to GGUF.")
        from batuta_sync.convert.gguf_to_hf import write_hf

        files, count, params = write_hf(gguf_file, dst, progress=progress)
        params = {"to": "safetensors", "converter_version": CONVERTER_VERSION, **params}
        return ConversionResult(dst, tuple(files), count, params, time.perf_counter() - started)
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise DiskFullError(f"Disk full while writing {dst}.") from None
        raise ConversionError(f"Conversion failed: {e.strerror or e} ({e.filename or dst}).") from None


def _single_gguf(src: Path) -> Path:
    """The GGUF file to read: ``src`` itself, or the one GGUF (or first shard of one split set) in a directory."""
    if not src.is_dir():
        return src
    from batuta_sync.convert.split import first_shards

    found = first_shards(sorted(src.glob("*.gguf")))
    if len(found) != 1:
        raise ConversionError(f"{src} holds {len(found)} .gguf files (a split set counts as one); pass the one to convert.")
    return found[0]


def _pytorch_to_safetensors(src: Path, dst: Path) -> tuple[list[Path], int, dict[str, str]]:
    from batuta_sync.convert.pickle_safe import PICKLE_NAMES, convert_checkpoint

    if src.is_file():
        out = dst if dst.suffix == ".safetensors" else dst / "model.safetensors"
        out.parent.mkdir(parents=True, exist_ok=True)
        count = convert_checkpoint(src, out)
        return [out], count, {"to": "safetensors", "source": "pytorch", "converter_version": CONVERTER_VERSION}
    bins = sorted(p for p in src.iterdir() if p.is_file() and p.suffix in PICKLE_NAMES)
    dst.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    total = 0
    rename: dict[str, str] = {}
    for b in bins:
        name = b.name
        for old, new in (("pytorch_model", "model"),):
            name = name.replace(old, new)
        name = name.rsplit(".", 1)[0] + ".safetensors"
        rename[b.name] = name
        total += convert_checkpoint(b, dst / name)
        files.append(dst / name)
    index = src / "pytorch_model.bin.index.json"
    if index.is_file():
        data = json.loads(index.read_text())
        data["weight_map"] = {k: rename.get(v, v) for k, v in (data.get("weight_map") or {}).items()}
        out = dst / "model.safetensors.index.json"
        out.write_text(json.dumps(data, indent=2) + "\n")
        files.append(out)
    for p in src.iterdir():
        if p.is_file() and p.suffix in (".json", ".model", ".txt", ".jinja", ".md") and p.name != index.name:
            shutil.copy2(p, dst / p.name)
            files.append(dst / p.name)
    return files, total, {"to": "safetensors", "source": "pytorch", "converter_version": CONVERTER_VERSION}


class FormatConverter:
    """Object form of the converter (spec: ``FormatConverter.to_gguf / to_safetensors / auto_convert``)."""

    def __init__(self, *, jobs: int = 1, progress: Progress | None = None, allow_unsafe: bool = False) -> None:
        self.jobs = jobs
        self.progress = progress
        self.allow_unsafe = allow_unsafe

    detect_format = staticmethod(detect_format)

    def to_gguf(self, src: Path, dst: Path, quantization: str | GGUFQuantization | None = None) -> ConversionResult:
        q = GGUFQuantization.parse(quantization).value
        return convert(src, dst, to="gguf", quantization=q, jobs=self.jobs, progress=self.progress,
                       allow_unsafe=self.allow_unsafe)

    def to_safetensors(self, src: Path, dst: Path) -> ConversionResult:
        return convert(src, dst, to="safetensors", jobs=self.jobs, progress=self.progress, allow_unsafe=self.allow_unsafe)

    def auto_convert(self, src: Path, dst: Path, runtime: str | Runtime,
                     quantization: str | GGUFQuantization | None = None) -> ConversionResult:
        """Convert ``src`` into the format ``runtime`` loads; a no-op result if it already is in it."""
        rt = Runtime.parse(runtime)
        want = rt.preferred_format
        have = detect_format(Path(src))
        if have is want:
            return ConversionResult(Path(src), (), 0, {"skipped": f"already {want.value}", "runtime": rt.value}, 0.0)
        if want is ModelFormat.GGUF:
            return self.to_gguf(src, dst, quantization)
        if want is ModelFormat.SAFETENSORS:
            return self.to_safetensors(src, dst)
        raise _unsupported(f"Converting to {want.value} for {rt.value}")
