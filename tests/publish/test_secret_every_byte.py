"""Issue #13 point 7: the secret scan covers every byte that is uploaded.

One test (or parametrised family) per class the old scanner missed: compressed files (gzip, bz2, xz, zstd),
UTF-16/UTF-32 text, archive limits (a finding, never a silent skip), a token used as a file or directory
name, tokens inside binary payloads (safetensors tensor bytes, GGUF tensor data, any binary), text whose
first bytes mimic a binary magic; plus the allow-list for the new findings and the chunked engine's
boundaries.  Every token is generated at run time (no real-looking literal is committed).
"""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import random
import string
import struct
import sys
import tarfile
import types
import zipfile
from pathlib import Path
from typing import Any

import pytest

from batuta_sync.publish.secrets import (
    HIGH_CONFIDENCE_IDS,
    INCOMPLETE_RULE,
    Allowlist,
    Finding,
    filter_allowed,
    scan_bytes,
    scan_file,
    scan_raw,
    scan_text,
)
from batuta_sync.publish.secrets import files as sfiles
from batuta_sync.publish.secrets import raw as sraw
from tests.publish.fixtures import safetensors_bytes
from tests.publish.secret_corpus import ALNUM, hexs, pem, rand

_AWS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"


def tokens() -> dict[str, str]:
    """One fresh token per high-confidence rule (shapes of the public rule tests, random bodies)."""
    return {
        "huggingface-access-token": "hf_" + rand(34),
        "huggingface-org-token": "api_org_" + rand(34, string.ascii_letters),
        "openai-api-key": "sk-proj-" + rand(60, ALNUM + "_-") + "T3BlbkFJ" + rand(20),
        "anthropic-api-key": "sk-ant-api03-" + rand(93, ALNUM + "_-") + "AA",
        "aws-access-key-id": "AKIA" + rand(16, _AWS),
        "aws-bedrock-api-key": "ABSKQmVkcm9ja0FQSUtleS" + rand(110, ALNUM + "+/"),
        "github-pat": "ghp_" + rand(36),
        "github-fine-grained-pat": "github_pat_" + rand(82, ALNUM + "_"),
        "github-app-token": "ghs_" + rand(36),
        "gitlab-pat": "glpat-" + rand(20),
        "slack-token": f"xoxb-{rand(12, string.digits)}-{rand(12, string.digits)}-{rand(24)}",
        "gcp-api-key": "AIza" + rand(35),
        "pypi-upload-token": "pypi-AgEIcHlwaS5vcmc" + rand(70),
        "npm-access-token": "npm_" + rand(36),
        "putty-private-key": "PuTTY-User-Key-File-3: ssh-ed25519",
        "replicate-api-token": "r8_" + rand(37),
        "groq-api-key": "gsk_" + rand(52),
        "stripe-secret-key": "sk_live_" + rand(24),
        "databricks-token": "dapi" + hexs(32),
        "private-key": pem("OPENSSH"),
    }


TOKENS = tokens()


class _ZstdError(Exception):
    """Stands in for zstandard.ZstdError."""


def _noise(n: int, seed: int = 1) -> bytes:
    return random.Random(seed).randbytes(n)


def _rules(findings: list[Finding]) -> set[str]:
    return {f.rule for f in findings}


def _assert_hidden(findings: list[Finding], *secrets: str) -> None:
    shown = "\n".join(str(f) + json.dumps(f.to_json()) for f in findings)
    for s in secrets:
        assert s not in shown and s[8:30] not in shown


def test_every_high_confidence_rule_has_a_token() -> None:
    assert set(TOKENS) == set(HIGH_CONFIDENCE_IDS)


# ----------------------------------------------------------------------------------------- binary payloads


@pytest.mark.parametrize("rule", sorted(TOKENS))
def test_token_embedded_in_random_bytes(rule: str) -> None:
    # arbitrary bytes on both sides: a word character before the token and after it must not hide it
    tok = TOKENS[rule]
    data = _noise(40_000) + b"Q" + tok.encode() + b"7" + _noise(40_000, 2)
    findings = scan_bytes(data, "blob.bin")
    assert rule in _rules(findings), [str(f) for f in findings]
    _assert_hidden(findings, tok)


def test_token_in_safetensors_tensor_bytes(tmp_path: Path) -> None:
    from batuta_sync.publish.validate import validate_safetensors

    tok = TOKENS["huggingface-access-token"]
    data = bytearray(safetensors_bytes({"w": ("F16", [64, 1024])}, {"format": "pt"}))
    (n,) = struct.unpack("<Q", data[:8])
    at = 8 + n + 70_001  # an odd offset deep inside the tensor data
    data[at : at + len(tok)] = tok.encode()
    f = tmp_path / "model.safetensors"
    f.write_bytes(bytes(data))
    validate_safetensors(f)  # still a valid file: only the scan can stop it
    [finding] = scan_file(f, "model.safetensors")
    assert finding.rule == "huggingface-access-token" and finding.location == f"bytes@{at}"
    _assert_hidden([finding], tok)


def test_token_in_gguf_tensor_data(tmp_path: Path) -> None:
    import gguf
    import numpy as np

    tok = TOKENS["github-pat"]
    blob = bytearray(_noise(32 * 1024))
    blob[10_001 : 10_001 + len(tok)] = tok.encode()
    path = tmp_path / "tiny.gguf"
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny")
    w.add_tensor("token_embd.weight", np.frombuffer(bytes(blob), dtype=np.float16).reshape(16, 1024))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    findings = scan_file(path, "tiny.gguf")
    assert _rules(findings) == {"github-pat"} and findings[0].location.startswith("bytes@")


def test_utf16_token_and_private_key_in_tensor_bytes() -> None:
    tok, key = TOKENS["aws-access-key-id"], TOKENS["private-key"]
    data = _noise(50_000) + tok.encode("utf-16-le") + _noise(3000, 3) + key.encode() + _noise(50_000, 4)
    findings = scan_bytes(data, "weights.bin")
    assert {"aws-access-key-id", "private-key"} <= _rules(findings)
    assert any(f.location.startswith("utf-16@") for f in findings)


def test_random_tensor_bytes_have_no_findings() -> None:
    import numpy as np

    rng = np.random.default_rng(5)
    f16 = rng.standard_normal(4 << 20, dtype=np.float32).astype(np.float16).tobytes()  # 8 MiB
    assert scan_raw(f16, binary=True) == []
    assert scan_raw(_noise(8 << 20, 9), binary=True) == []


def test_binary_is_loose_text_keeps_word_boundaries() -> None:
    body = rand(34)
    # in text, "rhf_…" is an identifier (a gitleaks false positive); embedded in binary bytes it is a token
    assert scan_text(f"x = rhf_{body}\n", "a.py") == []
    assert scan_bytes(f"x = rhf_{body}\n".encode(), "a.py") == []
    found = scan_bytes(b"\x00\x01r" + f"hf_{body}".encode() + b"\x02", "a.bin")
    assert _rules(found) == {"huggingface-access-token"}


def test_text_head_on_binary_payload_is_scanned_loose() -> None:
    tok = TOKENS["groq-api-key"]
    data = b"# header line\n" * 700 + _noise(20_000) + b"z" + tok.encode() + b"z" + _noise(100)
    assert "groq-api-key" in _rules(scan_bytes(data, "mixed.dat"))


def test_token_across_chunk_boundaries(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sraw, "CHUNK", 4096)
    for rule in ("huggingface-access-token", "private-key", "anthropic-api-key"):
        tok = TOKENS[rule].encode()
        for enc in ("bytes", "utf-16-le", "utf-32-le"):
            t = tok if enc == "bytes" else TOKENS[rule].encode(enc)
            for cut in (1, len(t) // 2, len(t) - 1):
                data = _noise(4096 * 3 - cut) + t + _noise(5000)
                sc = sraw.RawScanner(binary=True)
                for i in range(0, len(data), 1000):
                    sc.feed(data[i : i + 1000])
                hits = sc.finish()
                assert [h.rule for h in hits] == [rule], (rule, enc, cut)
                assert hits[0].offset in (4096 * 3 - cut, 4096 * 3 - cut + (t.find(b"-----") if rule == "private-key" else 0))


def test_pem_header_flood_in_binary_is_linear_and_clean() -> None:
    data = (b"\x00-----BEGIN RSA PRIVATE KEY-----\x00" + _noise(7)) * 20_000  # no END anywhere
    assert scan_raw(data, binary=True) == []


# ----------------------------------------------------------------------------------------- UTF-16 / UTF-32


@pytest.mark.parametrize("enc", ["utf-16-le", "utf-16-be", "utf-32-le", "utf-32-be"])
@pytest.mark.parametrize("rule", ["huggingface-access-token", "aws-access-key-id", "private-key", "putty-private-key",
                                  "stripe-secret-key"])
def test_wide_text_without_bom(enc: str, rule: str, tmp_path: Path) -> None:
    tok = TOKENS[rule]
    (tmp_path / "notes.txt").write_bytes(f"settings\n  token: {tok}\nend\n".encode(enc))
    findings = scan_file(tmp_path / "notes.txt", "notes.txt")
    assert rule in _rules(findings), [str(f) for f in findings]
    _assert_hidden(findings, tok)


@pytest.mark.parametrize("codec", ["utf-16", "utf-32"])
def test_wide_text_with_bom_gets_every_rule(codec: str) -> None:
    key = "0123456789abcdef" * 2 + "a1b2c3d4"
    text = f"# run config\nwandb_api_key = {key}\n"  # a keyword rule: only the text engine finds it
    [f] = scan_bytes(text.encode(codec), "run.cfg")
    assert f.rule == "wandb-api-key" and f.location == codec and f.line == 2


# ----------------------------------------------------------------------------------------- compressed


@pytest.mark.parametrize("fmt", ["gz", "bz2", "xz", "lzma"])
def test_compressed_files(fmt: str, tmp_path: Path) -> None:
    tok = TOKENS["huggingface-access-token"]
    text = ("log line\n" * 5000 + f"HF_TOKEN={tok}\n").encode()
    comp = {"gz": gzip.compress, "bz2": bz2.compress, "xz": lzma.compress,
            "lzma": lambda b: lzma.compress(b, format=lzma.FORMAT_ALONE)}[fmt](text)
    assert tok.encode() not in comp
    (tmp_path / f"train.log.{fmt}").write_bytes(comp)
    [f] = scan_file(tmp_path / f"train.log.{fmt}", f"train.log.{fmt}")
    assert (f.path, f.rule, f.line) == (f"train.log.{fmt}", "huggingface-access-token", 5001)


def test_compressed_json_is_decoded_by_its_inner_name() -> None:
    tok = TOKENS["github-pat"]
    escaped = "".join(f"\\u{ord(c):04x}" for c in tok)  # invisible unless the JSON string is decoded
    data = gzip.compress(('{"note": "' + escaped + '"}').encode())
    [f] = scan_bytes(data, "adapter_config.json.gz")
    assert f.rule == "github-pat" and f.location == "$.note"


def test_tar_xz_and_nested_gzip_in_zip() -> None:
    t1, t2 = TOKENS["npm-access-token"], TOKENS["gitlab-pat"]
    tbuf = io.BytesIO()
    with tarfile.open(fileobj=tbuf, mode="w:xz") as tf:
        data = f"registry token {t1}\n".encode()
        info = tarfile.TarInfo("pkg/.npmrc.bak")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    zbuf = io.BytesIO()
    with zipfile.ZipFile(zbuf, "w", zipfile.ZIP_DEFLATED) as zf:
        zf.writestr("deps.tar.xz", tbuf.getvalue())
        zf.writestr("logs/run.txt.gz", gzip.compress(f"ok\n{t2}\n".encode()))
    found = {(f.path, f.rule) for f in scan_bytes(zbuf.getvalue(), "bundle.zip")}
    assert ("bundle.zip!deps.tar.xz!pkg/.npmrc.bak", "npm-access-token") in found
    assert ("bundle.zip!logs/run.txt.gz", "gitlab-pat") in found


def test_zstd_without_the_package_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import fails
    data = b"\x28\xb5\x2f\xfd" + _noise(4000)
    findings = scan_bytes(data, "data.jsonl.zst")
    [f] = [f for f in findings if f.rule == INCOMPLETE_RULE]
    assert f.path == "data.jsonl.zst" and "zstandard" in f.redacted


def test_zstd_with_the_package_is_decompressed(monkeypatch: pytest.MonkeyPatch) -> None:
    # a stand-in for the zstandard API batuta uses (ZstdDecompressor().stream_reader): "frames" are the
    # zstd magic followed by a gzip stream, enough to drive the streaming path end to end
    class _Reader(io.RawIOBase):
        def __init__(self, fh: Any) -> None:
            assert fh.read(4) == b"\x28\xb5\x2f\xfd"
            self._g = gzip.GzipFile(fileobj=fh)

        def readable(self) -> bool:
            return True

        def read(self, n: int = -1) -> bytes:  # type: ignore[override]
            return self._g.read(n)

    class _Decompressor:
        def stream_reader(self, fh: Any, read_across_frames: bool = False) -> _Reader:
            assert read_across_frames
            return _Reader(fh)

    fake = types.SimpleNamespace(ZstdDecompressor=_Decompressor, ZstdError=_ZstdError)
    monkeypatch.setitem(sys.modules, "zstandard", fake)
    tok = TOKENS["replicate-api-token"]
    data = b"\x28\xb5\x2f\xfd" + gzip.compress(f"REPLICATE={tok}\n".encode())
    [f] = scan_bytes(data, "env.txt.zst")
    assert (f.rule, f.line) == ("replicate-api-token", 1)


def test_corrupt_compressed_stream_is_a_finding() -> None:
    tok = TOKENS["github-pat"]
    good = gzip.compress(b"x" * 1000)
    data = good[:20] + b"\xff" * 40 + tok.encode() + good[60:]
    findings = scan_bytes(data, "broken.gz")
    assert INCOMPLETE_RULE in _rules(findings)
    assert "github-pat" in _rules(findings)  # the raw bytes of the broken stream were still scanned


def test_decompression_caps_are_findings(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = TOKENS["huggingface-access-token"]
    bomb = gzip.compress(b"\x00" * (3 << 20) + tok.encode())
    monkeypatch.setattr(sfiles, "MAX_DECOMPRESSED", 1 << 20)
    [f] = scan_bytes(bomb, "zeros.bin.gz")
    assert f.rule == INCOMPLETE_RULE and "decompressed bytes" in f.redacted
    monkeypatch.setattr(sfiles, "MAX_DECOMPRESSED", 1 << 40)
    monkeypatch.setattr(sfiles, "RATIO_GRACE", 1 << 16)
    monkeypatch.setattr(sfiles, "MAX_RATIO", 50)
    [f] = scan_bytes(bomb, "zeros.bin.gz")
    assert f.rule == INCOMPLETE_RULE and "ratio" in f.redacted
    monkeypatch.setattr(sfiles, "MAX_RATIO", 100_000)
    assert _rules(scan_bytes(bomb, "zeros.bin.gz")) == {"huggingface-access-token"}


# ----------------------------------------------------------------------------------------- archive limits


def _zip(members: dict[str, bytes], method: int = zipfile.ZIP_DEFLATED) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", method) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buf.getvalue()


def test_zip_member_limit_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfiles, "MAX_ARCHIVE_MEMBERS", 3)
    data = _zip({f"f{i}.txt": b"clean\n" for i in range(5)})
    [f] = scan_bytes(data, "many.zip")
    assert f.rule == INCOMPLETE_RULE and "more than 3 members" in f.redacted


def test_tar_member_limit_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfiles, "MAX_ARCHIVE_MEMBERS", 2)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        for i in range(4):
            info = tarfile.TarInfo(f"f{i}.txt")
            info.size = 6
            tf.addfile(info, io.BytesIO(b"clean\n"))
    [f] = scan_bytes(buf.getvalue(), "many.tar")
    assert f.rule == INCOMPLETE_RULE and "more than 2 members" in f.redacted


def test_nesting_depth_limit_is_a_finding() -> None:
    data = b"clean\n"
    for i in range(sfiles.MAX_ARCHIVE_DEPTH + 1):
        data = _zip({f"layer{i}.zip" if i else "a.txt": data})
    findings = scan_bytes(data, "deep.zip")
    assert [f.rule for f in findings] == [INCOMPLETE_RULE] and "nested more than" in findings[0].redacted


def test_encrypted_member_is_a_finding() -> None:
    data = bytearray(_zip({"secret.txt": b"whatever"}, zipfile.ZIP_STORED))
    data[6] |= 1  # general-purpose flag bit 0 (encrypted) in the local header ...
    cd = data.rfind(b"PK\x01\x02")
    data[cd + 8] |= 1  # ... and in the central directory
    [f] = scan_bytes(bytes(data), "locked.zip")
    assert (f.path, f.rule) == ("locked.zip!secret.txt", INCOMPLETE_RULE) and "encrypted" in f.redacted


def test_zip_member_bomb_is_a_finding(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfiles, "MAX_DECOMPRESSED", 1 << 20)
    data = _zip({"zeros.bin": b"\x00" * (2 << 20)})
    [f] = scan_bytes(data, "bomb.zip")
    assert (f.path, f.rule) == ("bomb.zip!zeros.bin", INCOMPLETE_RULE)


def test_bytes_outside_any_member_are_scanned() -> None:
    tok = TOKENS["gcp-api-key"]
    data = _zip({"a.txt": b"clean\n"}) + b"\x00trailer " + tok.encode() + b"\x00"
    found = scan_bytes(data, "polyglot.zip")
    assert {(f.path, f.rule) for f in found} == {("polyglot.zip", "gcp-api-key")}


def test_unreadable_archives_are_findings() -> None:
    assert _rules(scan_bytes(b"PK\x03\x04" + _noise(300), "junk.zip")) == {INCOMPLETE_RULE}
    assert _rules(scan_bytes(_noise(2000), "junk.tar")) == {INCOMPLETE_RULE}


# ----------------------------------------------------------------------------------------- file names


def test_token_as_file_or_directory_name(tmp_path: Path) -> None:
    t1, t2 = TOKENS["huggingface-access-token"], TOKENS["aws-access-key-id"]
    (tmp_path / "runs" / f"backup_{t2}").mkdir(parents=True)
    (tmp_path / f"{t1}.txt").write_text("clean\n")
    (tmp_path / "runs" / f"backup_{t2}" / "log.txt").write_text("clean\n")
    a = scan_file(tmp_path / f"{t1}.txt", f"{t1}.txt")
    b = scan_file(tmp_path / "runs" / f"backup_{t2}" / "log.txt", f"runs/backup_{t2}/log.txt")
    assert [(f.rule, f.location) for f in a] == [("huggingface-access-token", "name")]
    assert [(f.rule, f.location) for f in b] == [("aws-access-key-id", "name")]
    _assert_hidden(a + b, t1, t2)


def test_token_in_a_credential_file_name_is_redacted_too(tmp_path: Path) -> None:
    tok = TOKENS["github-pat"]
    (tmp_path / f"{tok}.pem").write_text("clean\n")
    findings = scan_file(tmp_path / f"{tok}.pem", f"{tok}.pem")
    assert {f.rule for f in findings} == {"pem-file", "github-pat"}
    _assert_hidden(findings, tok)


def test_token_as_archive_member_name() -> None:
    tok = TOKENS["slack-token"]
    found = scan_bytes(_zip({f"exports/{tok}/data.csv": b"a,b\n1,2\n"}), "export.zip")
    assert [(f.path.split("!")[0], f.rule, f.location) for f in found] == [("export.zip", "slack-token", "name")]


# ----------------------------------------------------------------------------------------- binary-looking heads


@pytest.mark.parametrize(
    "magic",
    [b"GGUF\x03\x00\x00\x00", b"\x80\x04\x95", b"\x89PNG\r\n\x1a\n\x00\x00", b"\x93NUMPY\x01\x00", b"\x00" * 8],
    ids=["gguf", "pickle", "png", "npy", "nul"],
)
def test_text_behind_a_binary_magic_is_scanned(magic: bytes) -> None:
    tok = TOKENS["huggingface-access-token"]
    secret = "Xk9" + rand(20) + "q2Z"
    body = f"\nexport HF_TOKEN={tok}\nDB_PASSWORD={secret}\n".encode()
    findings = scan_bytes(magic + body, "model.bin")
    assert "huggingface-access-token" in _rules(findings)
    assert "generic-secret-assignment" in _rules(findings)  # the text rules ran, not only the raw scan
    _assert_hidden(findings, tok, secret)


@pytest.mark.parametrize("name", ["model.safetensors", "model.gguf"])
def test_text_named_like_weights_on_disk(name: str, tmp_path: Path) -> None:
    secret = "Xk9" + rand(20) + "q2Z"
    head = b"GGUF" if name.endswith(".gguf") else b""
    (tmp_path / name).write_bytes(head + f"\napi_secret = {secret}\n".encode())
    assert "generic-secret-assignment" in _rules(scan_file(tmp_path / name, name))


def test_zip_magic_over_text_still_raw_scanned() -> None:
    tok = TOKENS["npm-access-token"]
    findings = scan_bytes(b"PK\x03\x04 not really a zip\nNPM=" + tok.encode() + b"\n", "notes.txt")
    assert {INCOMPLETE_RULE, "npm-access-token"} <= _rules(findings)


# ----------------------------------------------------------------------------------------- allow-list


def test_allowlist_suppresses_each_new_kind_of_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfiles, "MAX_ARCHIVE_MEMBERS", 1)
    tok, named = TOKENS["github-app-token"], TOKENS["databricks-token"]
    (tmp_path / "two.zip").write_bytes(_zip({"a.txt": b"x", "b.txt": b"y"}))
    (tmp_path / "w.bin").write_bytes(_noise(1000) + tok.encode("utf-16-be") + _noise(1000))
    (tmp_path / f"{named}.md").write_text("clean\n")
    findings = [*scan_file(tmp_path / "two.zip", "two.zip"), *scan_file(tmp_path / "w.bin", "w.bin"),
                *scan_file(tmp_path / f"{named}.md", f"{named}.md")]
    assert [f.rule for f in findings] == [INCOMPLETE_RULE, "github-app-token", "databricks-token"]
    for i in range(3):
        (tmp_path / ".batuta-secrets-allow").write_text(f"{findings[i].fingerprint[:16]}  # reviewed\n")
        kept = filter_allowed(findings, Allowlist.load(tmp_path))
        assert kept == findings[:i] + findings[i + 1 :]
    # a fingerprint is stable across scans (the scan cache and the allow-list depend on it)
    assert scan_file(tmp_path / "w.bin", "w.bin")[0].fingerprint == findings[1].fingerprint


# ----------------------------------------------------------------------------------------- end to end


def test_push_with_hidden_secrets_refused_exit_13_no_writes(hub_env: Any, tmp_path: Path) -> None:
    """`batuta hf push` (a real process) against the local Hub: every class at once, nothing written."""
    import os
    import subprocess

    from tests.publish.fixtures import make_clean_model

    root = make_clean_model(tmp_path / "m")
    toks = [TOKENS["huggingface-access-token"], TOKENS["github-pat"], TOKENS["aws-access-key-id"],
            TOKENS["openai-api-key"]]
    st = bytearray((root / "model.safetensors").read_bytes())
    (n,) = struct.unpack("<Q", st[:8])
    st[8 + n + 999 : 8 + n + 999 + len(toks[0])] = toks[0].encode()
    (root / "model.safetensors").write_bytes(bytes(st))
    (root / "train.log.gz").write_bytes(gzip.compress(f"step 1\nGITHUB_TOKEN={toks[1]}\n".encode()))
    (root / "notes-utf16.txt").write_bytes(f"aws id {toks[2]}\n".encode("utf-16-le"))
    (root / f"run_{toks[3]}.md").write_text("clean\n")
    locked = bytearray(_zip({"creds.txt": b"whatever"}, zipfile.ZIP_STORED))
    locked[6] |= 1
    locked[locked.rfind(b"PK\x01\x02") + 8] |= 1
    (root / "backup.zip").write_bytes(bytes(locked))  # an encrypted member: cannot be scanned
    env = {**os.environ, "HF_ENDPOINT": hub_env.url, "HF_HOME": str(tmp_path / "hf-home"),
           "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    mark = len(hub_env.log.entries)
    proc = subprocess.run([sys.executable, "-m", "batuta_sync", "hf", "push", "model", str(root), "--repo", "org/leak"],
                          capture_output=True, text=True, env=env, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 13, out
    for tok in toks:
        assert tok not in out and tok[6:20] not in out
    for where in ("model.safetensors", "train.log.gz", "notes-utf16.txt", "run_", "backup.zip!creds.txt"):
        assert where in out
    assert "4 credential(s) and 1 place(s) it could not scan fully" in out
    writes = [e for e in hub_env.log.entries[mark:] if e.method in ("POST", "PUT", "DELETE", "PATCH")]
    assert writes == []  # not even the repo creation


# ----------------------------------------------------------------------------------------- edges


def test_compressed_stream_is_found_by_magic_not_name() -> None:
    tok = TOKENS["gcp-api-key"]
    [f] = scan_bytes(gzip.compress(f"key {tok}\n".encode()), "blob.dat")
    assert (f.path, f.rule, f.line) == ("blob.dat", "gcp-api-key", 1)


@pytest.mark.parametrize("where", ["open", "read"])
def test_zstd_errors_are_findings(where: str, monkeypatch: pytest.MonkeyPatch) -> None:
    class _Reader:
        def read(self, n: int = -1) -> bytes:
            raise _ZstdError("bad frame")

    class _Decompressor:
        def stream_reader(self, fh: Any, read_across_frames: bool = False) -> _Reader:
            if where == "open":
                raise _ZstdError("bad header")
            return _Reader()

    fake = types.SimpleNamespace(ZstdDecompressor=_Decompressor, ZstdError=_ZstdError)
    monkeypatch.setitem(sys.modules, "zstandard", fake)
    [f] = scan_bytes(b"\x28\xb5\x2f\xfd" + _noise(100), "x.zst")
    assert f.rule == INCOMPLETE_RULE and "corrupt zstd stream" in f.redacted


def test_nested_zip_too_large_to_buffer_is_a_finding(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tok = TOKENS["github-pat"]
    inner = _zip({"a.txt": b"clean\n" * 100, "b.txt": tok.encode()}, zipfile.ZIP_STORED)
    (tmp_path / "outer.zip").write_bytes(_zip({"inner.zip": inner}, zipfile.ZIP_STORED))
    monkeypatch.setattr(sfiles, "MAX_TEXT_BYTES", 100)
    monkeypatch.setattr(sfiles, "CHUNK", 64)
    found = scan_file(tmp_path / "outer.zip", "outer.zip")
    assert ("outer.zip!inner.zip", INCOMPLETE_RULE) in {(f.path, f.rule) for f in found}
    assert "github-pat" in _rules(found)  # still raw-scanned


def test_archive_members_that_escape_or_fail() -> None:
    tok = TOKENS["github-pat"]
    data = _zip({"dir/": b"", "../evil.txt": tok.encode(), "ok.txt": b"hello world"}, zipfile.ZIP_STORED)
    found = {(f.path, f.rule) for f in scan_bytes(data, "a.zip")}
    assert found == {("a.zip!../evil.txt", "github-pat")}  # read (never extracted), so scanned like any other
    bad = bytearray(data)
    at = bad.find(b"hello world")
    bad[at] ^= 0xFF  # CRC mismatch
    found = {(f.path, f.rule) for f in scan_bytes(bytes(bad), "a.zip")}
    assert ("a.zip!ok.txt", INCOMPLETE_RULE) in found


def test_tar_links_and_escaping_names() -> None:
    tok = TOKENS["huggingface-org-token"]
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        link = tarfile.TarInfo("latest")
        link.type = tarfile.SYMTYPE
        link.linkname = f"runs/{tok}"
        tf.addfile(link)
        t2 = TOKENS["npm-access-token"].encode()
        evil = tarfile.TarInfo("../outside.txt")
        evil.size = len(t2)
        tf.addfile(evil, io.BytesIO(t2))
    found = {(f.path, f.rule, f.location) for f in scan_bytes(buf.getvalue(), "b.tar")}
    assert found == {("b.tar!latest", "huggingface-org-token", "tar-header"),
                     ("b.tar!../outside.txt", "npm-access-token", "")}


def test_large_member_is_windowed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sfiles, "MAX_TEXT_BYTES", 1000)
    monkeypatch.setattr(sfiles, "_WINDOW", 4096)
    monkeypatch.setattr(sfiles, "CHUNK", 512)
    secret = "Xk9" + rand(20) + "q2Z"
    body = ("filler line\n" * 1000 + f"api_secret = {secret}\n" + "more\n" * 100).encode()
    [f] = scan_bytes(_zip({"logs/big.log": body}), "logs.zip")
    assert (f.path, f.rule, f.line) == ("logs.zip!logs/big.log", "generic-secret-assignment", 1001)


def test_weights_in_memory_and_formats() -> None:
    from batuta_sync.publish.secrets import format_findings, safetensors_metadata

    no_meta = safetensors_bytes({"w": ("F32", [4])})
    assert scan_bytes(no_meta, "m.safetensors") == [] and safetensors_metadata(no_meta) is None
    assert safetensors_metadata(b"\x01") is None and safetensors_metadata(struct.pack("<Q", 2) + b"{x") is None
    assert safetensors_metadata(struct.pack("<Q", 2) + b"[]") is None
    secret = "Xk9" + rand(20) + "q2Z"
    [f] = scan_bytes(f"token_secret = {secret}\n".encode(), "fake.safetensors")  # text under a weights name
    assert f.rule == "generic-secret-assignment"
    [g] = scan_bytes(b"\x00\x01\x02" + f" password: {secret} ".encode() * 2, "bin.safetensors")
    assert g.location == "strings"
    assert format_findings([f]) == f"  {f}"


def test_strict_raw_scan_for_text() -> None:
    tok = TOKENS["huggingface-access-token"]
    assert scan_raw(f"x = r{tok}\n".encode(), binary=False) == []
    [h] = scan_raw(f"x = {tok}\n".encode(), binary=False)
    assert (h.rule, h.offset, h.encoding) == ("huggingface-access-token", 4, "bytes")
    assert [h.rule for h in scan_raw(f"x = {tok}\n".encode())] == ["huggingface-access-token"]
