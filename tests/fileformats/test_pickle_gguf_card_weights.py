"""fileformats/pickle.py, gguf.py, card.py, weights.py: one home each, used by every caller."""

from __future__ import annotations

import io
import pickle
import struct

import pytest

from batuta_sync.fileformats import FormatError, card, gguf, weights
from batuta_sync.fileformats import pickle as fpickle


def test_pickle_string_constants_and_stream_detection() -> None:
    blob = pickle.dumps({"token": "hf_abc", "b": b"raw"}, protocol=4)
    assert fpickle.is_pickle_stream(blob) and not fpickle.is_pickle_stream(b"{}")
    got = fpickle.string_constants(blob)
    assert "token" in got and "hf_abc" in got and "raw" in got
    assert fpickle.pickle_bearing(fpickle.Source(blob), blob[:64]) is not None


def test_one_archive_member_cap_for_the_pull_sniffer_and_the_secret_scanner() -> None:
    from batuta_sync.publish.secrets import files as sfiles

    assert sfiles.MAX_ARCHIVE_MEMBERS == fpickle.MAX_ARCHIVE_MEMBERS == 100_000


def _gguf(kvs: bytes, n_kv: int, version: int = 3) -> bytes:
    return b"GGUF" + struct.pack("<IQQ", version, 0, n_kv) + kvs


def _kv_str(key: str, value: str) -> bytes:
    k, v = key.encode(), value.encode()
    return struct.pack("<Q", len(k)) + k + struct.pack("<I", 8) + struct.pack("<Q", len(v)) + v


def test_gguf_metadata_only_without_type_sizes() -> None:
    data = _gguf(_kv_str("general.name", "tiny") + _kv_str("tokenizer.chat_template", "{{x}}"), 2)
    info = gguf.parse(io.BytesIO(data), len(data))
    assert info.tensors == () and info.metadata["general.name"] == "tiny"
    assert gguf.string_values(info) == [("general.name", "tiny"), ("tokenizer.chat_template", "{{x}}")]
    with pytest.raises(FormatError) as exc:
        gguf.parse(io.BytesIO(data[:-2]), len(data) - 2)
    assert exc.value.reason == "string-length"
    with pytest.raises(FormatError) as exc:
        bad = _gguf(b"", 0, version=9)
        gguf.parse(io.BytesIO(bad), len(bad))
    assert exc.value.reason == "version"


@pytest.mark.parametrize(
    ("text", "front", "body"),
    [
        ("---\nlicense: mit\n---\n# Title\n", {"license": "mit"}, "# Title\n"),
        ("---\r\nlicense: mit\r\n---\r\nbody", {"license": "mit"}, "body"),
        ("---\n---\n", None, "---\n---\n"),
        ("# no front matter\n", None, "# no front matter\n"),
        ("---\n[1, 2]\n---\nbody", None, "---\n[1, 2]\n---\nbody"),  # not a mapping
        ("---\nkey: [unclosed\n---\nbody", None, "---\nkey: [unclosed\n---\nbody"),  # bad YAML
    ],
)
def test_card_front_matter(text: str, front: dict[str, str] | None, body: str) -> None:
    assert card.parse(text) == (front, body)


def test_card_split_keeps_the_yaml_text() -> None:
    assert card.split("---\na: 1\nb: 2\n---\nrest") == ("a: 1\nb: 2", "rest")
    assert card.split("no") == (None, "no")


def test_publish_card_uses_the_one_parser() -> None:
    from batuta_sync.publish.card import merge_card, split_front_matter

    assert split_front_matter("---\na: 1\n---\nx") == card.parse("---\na: 1\n---\nx")
    assert merge_card("---\na: 1\n---\nbody", "---\nb: 2\n---\n") == "---\na: 1\nb: 2\n---\nbody"
    assert merge_card("---\na: [\n---\nbody", "---\nb: 2\n---\n") == "---\na: [\n---\nbody"


@pytest.mark.parametrize(
    ("path", "fam"),
    [
        ("model.safetensors", "safetensors"),
        ("sub/x.Q4_K_M.gguf", "gguf"),
        ("training_args.bin", "pytorch"),
        ("clf.joblib", "pickle"),
        ("m.keras", "tensorflow"),
        ("model.onnx_data", "onnx"),
        ("rust_model.ot", "rust"),
        ("w.npz", "numpy"),
        ("x.pickle", "pickle"),
        ("config.json", None),
        (".bin", None),
        ("README", None),
    ],
)
def test_weight_family_by_name(path: str, fam: str | None) -> None:
    assert weights.file_family(path) == fam
    assert weights.family(path) == fam


def test_index_files_belong_to_their_family_only_for_selection() -> None:
    assert weights.family("model.safetensors.index.json") == "safetensors"
    assert weights.file_family("model.safetensors.index.json") is None


def test_hub_models_weight_sizes_know_every_family() -> None:
    """hub/models had its own 12-extension table: .npz, .onnx_data, .ot, .keras, .joblib and
    .pickle weights were left out of "weight size per format"."""
    from batuta_sync.hub.models import weight_sizes
    from batuta_sync.types import RepoFile

    files = [RepoFile(path=p, size=10, blob_id="a" * 40) for p in ("a.npz", "b.onnx_data", "c.ot", "d.keras", "e.joblib", "f.pickle", "g.json")]
    assert weight_sizes(files) == {"numpy": 10, "onnx": 10, "pickle": 20, "rust": 10, "tensorflow": 10}


def _zip(members: dict[str, bytes]) -> bytes:
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("blob", "needle"),
    [
        (_zip({"archive/data.pkl": b"\x80\x02N."}), "PyTorch zip checkpoint"),
        (_zip({"a/state.pickle": b"\x80\x02N."}), "containing pickles (a/state.pickle)"),
        (_zip({"x.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '|O', 'fortran_order': False, 'shape': (1,), }"}), "object array"),
        (b"PK\x03\x04" + b"\0" * 40, "cannot be listed"),
        (b"cos\nsystem\n(S'id'\ntR.", "protocol 0/1"),
    ],
)
def test_content_sniffer_reasons(blob: bytes, needle: str) -> None:
    assert needle in (fpickle.pickle_bearing(fpickle.Source(blob), blob[: fpickle.SNIFF_BYTES]) or "")


@pytest.mark.parametrize(
    "blob",
    [_zip({"x.npy": b"\x93NUMPY\x01\x00v\x00{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }"}), b"(lp0\n.", b"hello"],
)
def test_content_sniffer_leaves_data_alone(blob: bytes) -> None:
    assert fpickle.pickle_bearing(fpickle.Source(blob), blob) is None


def test_string_constants_of_concatenated_and_truncated_pickles() -> None:
    two = pickle.dumps("first", protocol=2) + pickle.dumps("second", protocol=2)
    assert fpickle.string_constants(two) == ["first", "second"]
    assert fpickle.string_constants(pickle.dumps("kept", protocol=2) + b"junk") == ["kept"]
    assert fpickle.string_constants(pickle.dumps(["a", "b"], protocol=4)[:-3]) == ["a", "b"]
