"""Split GGUF output and input (llama.cpp's ``gguf-split`` format): shard layout and keys, limits,
round trip to safetensors, llama.cpp loading the set, and damaged or hostile sets."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import gguf
import numpy as np
import pytest

from batuta_sync._fs import PathEscapeError
from batuta_sync.cli import main
from batuta_sync.convert import convert
from batuta_sync.convert.split import (
    SplitOptions,
    first_shards,
    open_gguf,
    parse_size,
    plan_shards,
    split_gguf,
    write_maybe_split,
)
from batuta_sync.errors import ConversionError

from . import _llamacpp


def _fields(p: Path) -> dict[str, Any]:
    return {k: f.contents() for k, f in gguf.GGUFReader(p).fields.items() if not k.startswith("GGUF.")}


@pytest.mark.parametrize(("text", "n"), [
    ("2G", 2 * 10**9), ("500M", 5 * 10**8), ("49GB", 49 * 10**9), ("1.5GiB", 3 * 2**29), ("100", 100),
    ("64k", 64_000), ("3 TB", 3 * 10**12), (4096, 4096), ("10B", 10),
])
def test_parse_size(text: str | int, n: int) -> None:
    assert parse_size(text) == n


@pytest.mark.parametrize("bad", ["", "lots", "-5", "0", "2X", 0, "1e9"])
def test_parse_size_rejects(bad: str | int) -> None:
    with pytest.raises(ConversionError, match="split-max-size"):
        parse_size(bad)


def test_options_validation_and_memo() -> None:
    assert not SplitOptions.parse().active and SplitOptions.parse().memo_params() == {}
    assert SplitOptions.parse("1K", 3).memo_params() == {"split_max_size": "1000", "split_max_tensors": "3"}
    for bad in (0, -1, True, "3"):
        with pytest.raises(ConversionError, match="split-max-tensors"):
            SplitOptions.parse(None, bad)  # type: ignore[arg-type]


def test_plan_shards() -> None:
    sizes = [10, 10, 30, 5, 5, 50]
    assert plan_shards(sizes, SplitOptions(max_tensors=2)) == [[0, 1], [2, 3], [4, 5]]
    assert plan_shards(sizes, SplitOptions(max_size=25)) == [[0, 1], [2], [3, 4], [5]]  # a too-big tensor: alone
    assert plan_shards(sizes, SplitOptions(max_size=40, max_tensors=2)) == [[0, 1], [2, 3], [4], [5]]
    assert plan_shards([], SplitOptions(max_tensors=1)) == [[]]
    with pytest.raises(ConversionError, match="at most 99999"):
        plan_shards([1] * 100_000, SplitOptions(max_tensors=1))


def test_first_shards() -> None:
    names = ["a.gguf", "m-00001-of-00003.gguf", "m-00002-of-00003.gguf", "m-00003-of-00003.gguf", "x-00002-of-00002.gguf"]
    assert [p.name for p in first_shards(Path(n) for n in names)] == ["a.gguf", "m-00001-of-00003.gguf"]


@pytest.fixture(scope="module")
def single(models: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> Path:
    return convert(models["odd"], tmp_path_factory.mktemp("split") / "one.gguf", to="gguf", quantization="F32").output


def test_split_output_layout_and_keys(models: dict[str, Path], single: Path, tmp_path: Path) -> None:
    res = convert(models["odd"], tmp_path / "o" / "m.gguf", to="gguf", quantization="F32", split_max_tensors=10)
    whole = gguf.GGUFReader(single)
    n_tensors = len(whole.tensors)
    n = -(-n_tensors // 10)
    assert [p.name for p in res.files] == [f"m-{i:05d}-of-{n:05d}.gguf" for i in range(1, n + 1)]
    assert res.output == res.files[0] and res.params["split_max_tensors"] == "10"
    assert sorted(p.name for p in (tmp_path / "o").iterdir()) == sorted(p.name for p in res.files)  # nothing else left
    meta = _fields(single)
    names, data = [], []
    for i, p in enumerate(res.files):
        f = _fields(p)
        assert (f["split.no"], f["split.count"], f["split.tensors.count"]) == (i, n, n_tensors)
        r = gguf.GGUFReader(p)
        assert r.fields["split.no"].types[0] == gguf.GGUFValueType.UINT16
        assert r.fields["split.tensors.count"].types[0] == gguf.GGUFValueType.INT32
        if i == 0:
            assert {k: v for k, v in f.items() if not k.startswith("split.")} == meta  # all metadata, exactly
        else:
            assert set(f) == {"split.no", "split.count", "split.tensors.count"}
        assert len(r.tensors) <= 10
        names += [t.name for t in r.tensors]
        data += [np.asarray(t.data).tobytes() for t in r.tensors]
    assert names == [t.name for t in whole.tensors]
    assert data == [np.asarray(t.data).tobytes() for t in whole.tensors]


def test_split_by_size_keeps_shards_under_the_limit(models: dict[str, Path], tmp_path: Path) -> None:
    res = convert(models["gqa"], tmp_path / "s.gguf", to="gguf", quantization="Q4_K_M", split_max_size="200K")
    assert len(res.files) > 2
    for p in res.files:
        r = gguf.GGUFReader(p)
        data = sum(-(-int(t.n_bytes) // 32) * 32 for t in r.tensors)
        assert data <= 200_000 or len(r.tensors) == 1


def test_split_round_trips_to_safetensors_exactly(models: dict[str, Path], tmp_path: Path) -> None:
    """safetensors (F32) -> split F32 GGUF -> safetensors: the weights come back bit for bit."""
    from batuta_sync.convert.hf_to_gguf import find_weights

    res = convert(models["odd"], tmp_path / "m.gguf", to="gguf", quantization="F32", split_max_size="100K")
    assert len(res.files) > 2
    back = convert(res.files[2], tmp_path / "back", to="safetensors")  # any shard names the set
    orig = {k: r.raw().tobytes() for k, r in find_weights(models["odd"]).items()}
    again = {k: r.raw().tobytes() for k, r in find_weights(back.output).items()}
    assert again == orig
    # a directory holding the shards counts as one model
    d = convert(tmp_path, tmp_path / "back2", to="safetensors")
    assert d.tensor_count == back.tensor_count


@pytest.mark.llamacpp
def test_llama_cpp_loads_the_split_set(models: dict[str, Path], tmp_path: Path) -> None:
    one = convert(models["gqa"], tmp_path / "one.gguf", to="gguf", quantization="Q3_K_S").output
    res = convert(models["gqa"], tmp_path / "sp.gguf", to="gguf", quantization="Q3_K_S", split_max_tensors=4)
    assert len(res.files) == 6
    tokens = [1, 7, 3, 11]
    assert np.array_equal(_llamacpp.last_logits(res.files[0], tokens), _llamacpp.last_logits(one, tokens))


def test_split_input_to_split_output(models: dict[str, Path], tmp_path: Path) -> None:
    f16 = convert(models["gqa"], tmp_path / "a" / "f.gguf", to="gguf", quantization="F16", split_max_tensors=7)
    q = convert(f16.files[0], tmp_path / "b" / "q.gguf", to="gguf", quantization="Q4_K_M", split_max_tensors=9)
    direct = convert(models["gqa"], tmp_path / "c" / "d.gguf", to="gguf", quantization="Q4_K_M").output
    got = [np.asarray(t.data).tobytes() for p in q.files for t in gguf.GGUFReader(p).tensors]
    assert got == [np.asarray(t.data).tobytes() for t in gguf.GGUFReader(direct).tensors]
    assert _fields(q.files[0])["split.count"] == 3 and _fields(q.files[0])["general.file_type"] == 15


@pytest.fixture()
def shards(single: Path, tmp_path: Path) -> list[Path]:
    (tmp_path / "set").mkdir()
    out = split_gguf(single, tmp_path / "set" / "s.gguf", SplitOptions(max_tensors=20))  # 39 tensors: 20 + 19
    assert [p.name for p in out] == ["s-00001-of-00002.gguf", "s-00002-of-00002.gguf"]
    return out


def test_missing_shard(shards: list[Path]) -> None:
    shards[1].unlink()
    with pytest.raises(ConversionError, match=r"Shard s-00002-of-00002\.gguf of the split model s is missing"):
        open_gguf(shards[0])


def test_renamed_shard_and_wrong_numbering(shards: list[Path], tmp_path: Path) -> None:
    os.replace(shards[0], tmp_path / "renamed.gguf")
    with pytest.raises(ConversionError, match="its name is not PREFIX"):
        open_gguf(tmp_path / "renamed.gguf")
    os.replace(tmp_path / "renamed.gguf", shards[0])
    tmp = tmp_path / "t"  # two shards swapped: the numbers inside disagree with the names
    os.replace(shards[0], tmp)
    os.replace(shards[1], shards[0])
    os.replace(tmp, shards[1])
    for p in shards:  # any shard names the set, and the first one is checked too
        with pytest.raises(ConversionError, match="says it is shard 1 of 2; its name says 0 of 2"):
            open_gguf(p)


def _rewrite_second(shards: list[Path], total: int, take: slice) -> None:
    """Replace shard 2 by one holding tensors ``take`` of shard 1, claiming ``total`` tensors in the set."""
    from batuta_sync.convert.split import (
        SPLIT_COUNT,
        SPLIT_NO,
        SPLIT_TENSORS,
        TensorInfo,
        kv_bytes,
        write_gguf_file,
    )

    ts = open_gguf(shards[0]).readers[0].tensors[take]
    infos = [TensorInfo(t.name, tuple(int(d) for d in t.shape), int(t.tensor_type), int(t.n_bytes)) for t in ts]
    kvs = [kv_bytes(SPLIT_NO, 2, 1), kv_bytes(SPLIT_COUNT, 2, 2), kv_bytes(SPLIT_TENSORS, 5, total)]

    def fill(fd: int, i: int, off: int) -> None:
        os.pwrite(fd, np.asarray(ts[i].data).tobytes(), off)

    write_gguf_file(shards[1], kvs, infos, 32, fill)


def test_duplicate_tensor_across_shards(shards: list[Path]) -> None:
    _rewrite_second(shards, 39, slice(0, 19))
    with pytest.raises(ConversionError, match=r"Tensor \S+ appears in more than one shard of s"):
        open_gguf(shards[0])


def test_tensor_count_disagrees_with_the_metadata(shards: list[Path]) -> None:
    _rewrite_second(shards, 39, slice(0, 0))  # a truncated set: 20 tensors, the keys say 39
    with pytest.raises(ConversionError, match="has 20 tensors; its metadata says 39"):
        open_gguf(shards[0])

def test_shard_symlink_out_of_the_directory_is_refused(shards: list[Path], tmp_path: Path) -> None:
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    os.replace(shards[1], outside / shards[1].name)
    shards[1].symlink_to(outside / shards[1].name)
    with pytest.raises(PathEscapeError):
        open_gguf(shards[0])


def test_failed_conversion_leaves_no_shards(tmp_path: Path) -> None:
    def boom(path: Path) -> tuple[int, dict[str, str]]:
        path.write_bytes(b"partial")
        raise ConversionError("boom")

    with pytest.raises(ConversionError, match="boom"):
        write_maybe_split(tmp_path / "o" / "m.gguf", SplitOptions(max_tensors=1), boom)
    assert list((tmp_path / "o").iterdir()) == []


def test_cli_prints_every_shard(models: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["convert", str(models["gqa"]), str(tmp_path / "c.gguf"), "--to", "gguf", "--quantization", "Q8_0",
                 "--split-max-tensors", "10"]) == 0
    out = capsys.readouterr().out.split()
    assert [Path(p).name for p in out] == ["c-00001-of-00003.gguf", "c-00002-of-00003.gguf", "c-00003-of-00003.gguf"]
    assert main(["convert", str(models["gqa"]), str(tmp_path / "d.gguf"), "--to", "gguf", "--split-max-tensors", "0"]) == 64  # usage
    assert "must be a positive integer" in capsys.readouterr().err
    assert main(["convert", str(models["gqa"]), str(tmp_path / "d.gguf"), "--to", "gguf", "--split-max-tensors", "x"]) == 64
    assert "not a number" in capsys.readouterr().err
    assert main(["convert", str(models["gqa"]), str(tmp_path / "d.gguf"), "--to", "gguf", "--split-max-size", "big"]) == 15


def test_a_failure_mid_split_leaves_no_shards(single: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import batuta_sync.convert.split as sp

    real = sp.write_gguf_file
    calls = []

    def flaky(path: Path, *a: Any) -> None:
        calls.append(path)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real(path, *a)

    monkeypatch.setattr(sp, "write_gguf_file", flaky)
    (tmp_path / "o").mkdir()
    with pytest.raises(OSError):
        split_gguf(single, tmp_path / "o" / "m.gguf", SplitOptions(max_tensors=10))
    assert list((tmp_path / "o").iterdir()) == []


def test_split_keys_of_the_wrong_type(single: Path, tmp_path: Path) -> None:
    import struct

    from batuta_sync.convert.split import TensorInfo, write_gguf_file

    k = b"split.count"
    bad = struct.pack("<Q", len(k)) + k + struct.pack("<IQ", 8, 3) + b"two"  # a string where a u16 belongs
    write_gguf_file(tmp_path / "b-00001-of-00002.gguf", [bad], [TensorInfo("a.weight", (32,), 0, 128)], 32,
                    lambda fd, i, off: None)
    with pytest.raises(ConversionError, match=r"split\.count is not an integer"):
        open_gguf(tmp_path / "b-00001-of-00002.gguf")


def test_gguf_input_into_a_directory_is_named_after_the_model(models: dict[str, Path], tmp_path: Path) -> None:
    from batuta_sync.convert.split import model_stem

    assert model_stem(Path("m-00002-of-00003.gguf")) == "m" and model_stem(Path("x.gguf")) == "x"
    sp = convert(models["gqa"], tmp_path / "in" / "tiny.gguf", to="gguf", quantization="F16", split_max_tensors=10)
    (tmp_path / "out").mkdir()
    res = convert(sp.files[1], tmp_path / "out", to="gguf", quantization="Q8_0")
    assert res.output == tmp_path / "out" / "tiny-Q8_0.gguf"
