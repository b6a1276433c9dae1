"""CLI: ``batuta convert IN OUT --to gguf|safetensors [--quantization Q4_K_M] [--jobs N] [--allow-unsafe] [--json]``
plus llama-quantize's per-tensor controls and gguf-split's split options for GGUF output.

Module level imports stdlib + light batuta modules only; the converter (numpy, gguf) and rich
are imported inside the handler.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from batuta_sync.cli import _common

QUANTIZATIONS = ("F32", "F16", "BF16", "Q8_0", "Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q2_K", "Q3_K_S", "Q3_K_M", "Q3_K_L",
                 "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K")


def _jobs(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"invalid number of jobs: {text!r}")
    if value < 0 or value > 256:
        raise argparse.ArgumentTypeError("must be between 0 (all CPUs) and 256")
    return value


def register(root: Any, hf: Any) -> None:
    """Add ``convert`` to the root sub-parsers."""
    p = _common.command_parser(
        root,
        "convert",
        help="Convert a model between safetensors, GGUF and PyTorch formats.",
        description=(
            "Convert a model: a safetensors model directory (LLaMA/Mistral/Qwen2) to GGUF with K-quants, "
            "a GGUF file back to a safetensors directory, or a PyTorch .bin/.pt checkpoint to safetensors "
            "(needs --allow-unsafe; no pickle code is ever run). ONNX is recognised but not converted."
        ),
    )
    p.add_argument("input", metavar="IN", help="Model directory, .gguf file, or .bin/.pt checkpoint.")
    p.add_argument("output", metavar="OUT", help="Output .gguf file (or directory) / output directory for safetensors.")
    p.add_argument("--to", required=True, choices=("gguf", "safetensors", "onnx"),
                   help="Target format (onnx is recognised but not a conversion target: it reports what is supported).")
    p.add_argument(
        "--quantization",
        dest="quantization",
        type=str.upper,
        choices=QUANTIZATIONS,
        default=None,
        help="GGUF type (default Q4_K_M): " + ", ".join(QUANTIZATIONS) + ".",
    )
    p.add_argument("--jobs", "-j", type=_jobs, default=1, metavar="N",
                   help="Worker processes for quantization (0 = all CPUs; default 1).")
    p.add_argument("--allow-unsafe", action="store_true",
                   help="Allow reading pickle-based PyTorch checkpoints (tensors only, nothing executed).")
    p.add_argument("--json", action="store_true", help="Print the result as JSON on stdout.")
    g = p.add_argument_group("GGUF output (as llama-quantize and gguf-split)")
    g.add_argument("--tensor-type", dest="tensor_types", action="append", default=[], metavar="REGEX=TYPE",
                   help="Type for the tensors whose GGUF name matches REGEX (repeatable; the first match wins).")
    g.add_argument("--output-tensor-type", metavar="TYPE", help="Type of output.weight.")
    g.add_argument("--token-embedding-type", metavar="TYPE", help="Type of token_embd.weight.")
    g.add_argument("--pure", action="store_true", help="No mixture rules: every quantizable tensor gets the base type.")
    g.add_argument("--imatrix", metavar="FILE",
                   help="Importance matrix from llama.cpp's llama-imatrix (GGUF or legacy .dat), as llama-quantize --imatrix.")
    g.add_argument("--allow-requantize", action="store_true",
                   help="GGUF -> GGUF: allow re-quantizing tensors that are already quantized.")
    g.add_argument("--split-max-size", metavar="SIZE",
                   help="Split the output into PREFIX-0000i-of-0000N.gguf shards of at most SIZE (e.g. 2G, 500M).")
    g.add_argument("--split-max-tensors", type=_positive, metavar="N", help="Split the output: at most N tensors per shard.")
    p.set_defaults(handler=handler)


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}")
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive integer")
    return value


def _progress(args: argparse.Namespace) -> tuple[Callable[[int, int], None] | None, Callable[[], None]]:
    """A rich progress bar on a terminal (stderr); nothing when piped, --quiet or --json."""
    if getattr(args, "quiet", False) or args.json or not _common.is_tty(sys.stderr):
        return None, lambda: None
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    bar = Progress(TextColumn("converting"), BarColumn(), MofNCompleteColumn(), TextColumn("tensors"),
                   TimeElapsedColumn(), transient=True)
    task = bar.add_task("convert", total=None)
    bar.start()

    def update(done: int, total: int) -> None:
        bar.update(task, completed=done, total=total)

    return update, bar.stop


def handler(args: argparse.Namespace) -> int:
    from batuta_sync.convert import convert

    jobs = args.jobs or (os.cpu_count() or 1)
    progress, stop = _progress(args)
    try:
        result = convert(Path(args.input), Path(args.output), to=args.to, quantization=args.quantization,
                         jobs=jobs, progress=progress, allow_unsafe=args.allow_unsafe, tensor_types=args.tensor_types,
                         output_tensor_type=args.output_tensor_type, token_embedding_type=args.token_embedding_type,
                         pure=args.pure, allow_requantize=args.allow_requantize, imatrix=args.imatrix,
                         split_max_size=args.split_max_size,
                         split_max_tensors=args.split_max_tensors)
    finally:
        stop()
    if args.json:
        _common.emit_json(result.to_dict())
    else:
        extra = f" ({result.params['tensor_types']})" if "tensor_types" in result.params else ""
        _common.info(args, f"Converted {result.tensor_count} tensors in {result.seconds:.1f} s{extra}.")
        for f in result.files if len(result.files) > 1 and result.params.get("to") == "gguf" else (result.output,):
            print(f)
    return 0
