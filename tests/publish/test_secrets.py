"""Secret scanner: 28 formats (TP/FP fixtures), file names, every container location, hygiene, suppression."""

from __future__ import annotations

import base64
import io
import json
import pickle
import pickletools
import struct
import tarfile
import zipfile
from pathlib import Path

import pytest

from batuta_sync.publish.secrets import (
    ALLOW_FILE,
    RULE_IDS,
    Allowlist,
    filename_rule,
    filter_allowed,
    pickle_strings,
    redact_value,
    scan_bytes,
    scan_file,
    scan_text,
    scan_tree,
    shannon_entropy,
)
from tests.publish.fixtures import make_clean_model, safetensors_bytes
from tests.publish.secret_corpus import corpus, hf_token, pem

CORPUS = corpus()


def test_corpus_covers_every_rule() -> None:
    # 28 formats of the reference (Slack token + webhook and PEM + PuTTY are separate rules here)
    assert set(CORPUS) == set(RULE_IDS)
    assert len(RULE_IDS) >= 28


@pytest.mark.parametrize("rule", sorted(CORPUS))
def test_true_positives_detected(rule: str) -> None:
    tps, _ = CORPUS[rule]
    assert len(tps) >= 2
    for text in tps:
        found = {f.rule for f in scan_text(text, "f.txt")}
        assert rule in found, (rule, text[:40])


@pytest.mark.parametrize("rule", sorted(CORPUS))
def test_false_positives_not_flagged(rule: str) -> None:
    _, fps = CORPUS[rule]
    assert len(fps) >= 2
    for text in fps:
        assert scan_text(text, "f.txt") == [], (rule, text)


@pytest.mark.parametrize(
    "text",
    [
        "YOUR_TOKEN_HERE",
        "token = <HF_TOKEN>",
        "HF_TOKEN=${HF_TOKEN}",
        'token = os.environ["HF_TOKEN"]',
        "hf_" + "x" * 34,
        "rhf_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3gH",
        "hf_requiredCharacteristicTypeField",
    ],
)
def test_placeholders_are_not_findings(text: str) -> None:
    assert scan_text(text, "x.py") == []


def test_finding_location_line_and_redaction() -> None:
    tok = hf_token()
    text = "a = 1\nb = 2\nlogin(token='" + tok + "')\n"
    [f] = scan_text(text, "train.py")
    assert (f.path, f.line, f.rule) == ("train.py", 3, "huggingface-access-token")
    assert f.redacted.startswith("hf_") and tok not in str(f) and tok not in json.dumps(f.to_json())
    assert len(f.fingerprint) == 64
    assert redact_value("short") == "s…"


def test_entropy() -> None:
    assert shannon_entropy("") == 0.0
    assert shannon_entropy("aaaa") == 0.0
    assert shannon_entropy("abcd") == 2.0


# ---------------------------------------------------------------------------------------- file names

POSITIVE_NAMES = [
    ".env", "config/.env", ".env.local", ".env.production", "server.pem", "tls.key", "cert.p12", "cert.pfx",
    "store.jks", "app.keystore", "vault.kdbx", "id_rsa", "id_dsa", "id_ecdsa", "id_ed25519", "me.ppk",
    ".netrc", "_netrc", ".git-credentials", ".npmrc", ".pypirc", ".aws/credentials", "credentials.json",
    "my-service-account.json", "deploy-sa.json", "kaggle.json", ".huggingface/token", "x/huggingface/token",
    "infra/terraform.tfstate", ".htpasswd", "ID_RSA",
]
NEGATIVE_NAMES = [
    "keys.py", "tokenizer.json", "special_tokens_map.json", "token_type_ids.npy", "key_points.md",
    "vocab.json", ".env.example", ".env.sample", ".env.template", "tokenizer_config.json", "monkey.txt",
    "config.json", "README.md",
]


@pytest.mark.parametrize("name", POSITIVE_NAMES)
def test_filename_rules_positive(name: str) -> None:
    assert filename_rule(name) is not None


@pytest.mark.parametrize("name", NEGATIVE_NAMES)
def test_filename_rules_negative(name: str) -> None:
    assert filename_rule(name) is None


def test_env_example_is_still_scanned_by_content(tmp_path: Path) -> None:
    (tmp_path / ".env.example").write_text(f"HF_TOKEN={hf_token()}\n")
    findings = scan_file(tmp_path / ".env.example", ".env.example")
    assert [f.rule for f in findings] == ["huggingface-access-token"]


# ---------------------------------------------------------------------------------------- locations


def test_notebook_source_and_outputs_with_locations() -> None:
    t1, t2 = hf_token(), hf_token()
    nb = {
        "cells": [
            {"cell_type": "markdown", "source": ["# Training\n"]},
            {"cell_type": "code", "source": ["import os\n", f'    hf_token = "{t1}"\n'], "outputs": []},
            {"cell_type": "code", "source": ["print(os.environ)\n"],
             "outputs": [{"output_type": "stream", "name": "stdout", "text": [f"HF_TOKEN: {t2}\n"]}]},
        ],
        "metadata": {},
        "nbformat": 4,
    }
    raw = json.dumps(nb, indent=1).encode()
    findings = scan_bytes(raw, "notebook.ipynb")
    locs = {f.location for f in findings}
    assert "cell[1].source" in locs
    assert "cell[2].outputs[0]" in locs
    assert all(t1 not in str(f) and t2 not in str(f) for f in findings)


def test_gitleaks_notebook_todo_line_is_detected() -> None:
    # SEC-6: the JSON-escaped line gitleaks misses
    line = '  "    hf_token = \\"' + hf_token() + '\\"\\n",'
    assert [f.rule for f in scan_text(line, "nb.ipynb")] == ["huggingface-access-token"]


def test_json_escaped_token_found_after_decoding() -> None:
    tok = hf_token()
    escaped = "".join(f"\\u{ord(c):04x}" for c in tok)  # every character escaped: invisible to the raw scan
    raw = ('{"config": {"note": "' + escaped + '"}}').encode()
    [f] = scan_bytes(raw, "adapter_config.json")
    assert f.rule == "huggingface-access-token" and f.location == "$.config.note"


@pytest.mark.parametrize("enc", ["base64", "hex", "percent"])
def test_encoded_tokens(enc: str) -> None:
    tok = hf_token()
    payload = f"token={tok}".encode()
    if enc == "base64":
        text = "blob: " + base64.b64encode(payload).decode()
    elif enc == "hex":
        text = "blob: " + payload.hex()
    else:
        text = "url=" + "".join(f"%{b:02X}" for b in payload)
    [f] = scan_text(text, "notes.txt")
    assert f.rule == "huggingface-access-token" and f.location == f"decoded:{enc}"


def test_yaml_and_card_front_matter() -> None:
    text = f"---\nlicense: mit\nwandb_key: {'0123456789abcdef' * 2 + 'a1b2c3d4'}\n---\n# card\n"
    assert {f.rule for f in scan_text(text, "README.md")} == {"wandb-api-key"}


def test_safetensors_metadata_is_scanned() -> None:
    tok = hf_token()
    data = safetensors_bytes({"w": ("F32", [2, 2])}, {"format": "pt", "trained_with": f"token {tok}"})
    [f] = scan_bytes(data, "model.safetensors")
    assert f.location == "__metadata__" and f.rule == "huggingface-access-token"


def _gguf_with_strings(kvs: dict[str, str]) -> bytes:
    out = io.BytesIO()
    out.write(b"GGUF" + struct.pack("<IQQ", 3, 0, len(kvs)))
    for k, v in kvs.items():
        kb, vb = k.encode(), v.encode()
        out.write(struct.pack("<Q", len(kb)) + kb + struct.pack("<I", 8) + struct.pack("<Q", len(vb)) + vb)
    return out.getvalue()


def test_gguf_string_kvs_are_scanned(tmp_path: Path) -> None:
    tok = hf_token()
    data = _gguf_with_strings({"general.name": "tiny", "general.source.url": f"https://u:{tok}@huggingface.co/x"})
    (tmp_path / "m.gguf").write_bytes(data)
    findings = scan_file(tmp_path / "m.gguf", "m.gguf")
    assert {f.rule for f in findings} == {"huggingface-access-token"}
    assert findings[0].location == "gguf-metadata"
    assert scan_bytes(data, "in-memory.gguf")


def test_pickle_strings_without_unpickling(monkeypatch: pytest.MonkeyPatch) -> None:
    tok = hf_token()
    payload = pickle.dumps({"output_dir": "out", "hub_token": tok, "lr": 1e-4}, protocol=4)

    def boom(*_a: object, **_k: object) -> None:
        raise AssertionError("must not unpickle")

    monkeypatch.setattr(pickle, "loads", boom)
    monkeypatch.setattr(pickle, "load", boom)
    monkeypatch.setattr(pickle, "Unpickler", boom)
    [f] = scan_bytes(payload, "training_args.bin")
    assert f.rule == "huggingface-access-token" and f.location == "pickle"
    assert tok in pickle_strings(payload)
    assert pickle_strings(b"\x80\x04garbage") == []


def test_pickle_protocol0_strings() -> None:
    tok = hf_token()
    payload = pickle.dumps({"k": tok}, protocol=0)
    assert any(tok in s for s in pickle_strings(payload))
    ops = {op.name for op, _a, _p in pickletools.genops(payload)}
    assert "STOP" in ops


def test_zip_members_torch_style_and_env(tmp_path: Path) -> None:
    tok = hf_token()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps({"token": tok}, protocol=2))
        zf.writestr("dir/.env", "A=1\nB=2\nGH=ghp_" + "aB3dE5gH7jK9mN1pQ3sT5vW7yZ9bC1dF3gH5" + "\n")
        # raw tensor storage: no strings pass, but every byte gets the raw token scan (issue #13 point 7)
        zf.writestr("archive/data/0", b"\x00" * 64 + ("noise " + hf_token()).encode())
    (tmp_path / "pytorch_model.bin").write_bytes(buf.getvalue())
    findings = scan_file(tmp_path / "pytorch_model.bin", "pytorch_model.bin")
    paths = {(f.path, f.rule) for f in findings}
    assert ("pytorch_model.bin!archive/data.pkl", "huggingface-access-token") in paths
    assert ("pytorch_model.bin!dir/.env", "dotenv-file") in paths
    env = next(f for f in findings if f.rule == "github-pat")
    assert env.path == "pytorch_model.bin!dir/.env" and env.line == 3
    [storage] = [f for f in findings if f.path.endswith("data/0")]
    assert storage.rule == "huggingface-access-token" and storage.location == "bytes@70"


def test_tar_members(tmp_path: Path) -> None:
    tok = hf_token()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        data = f"x\nHF_TOKEN={tok}\n".encode()
        info = tarfile.TarInfo("pkg/settings.py")
        info.size = len(data)
        tf.addfile(info, io.BytesIO(data))
    [f] = scan_bytes(buf.getvalue(), "bundle.tar.gz")
    assert (f.path, f.line) == ("bundle.tar.gz!pkg/settings.py", 2)


def test_binary_strings() -> None:
    tok = hf_token()
    data = b"\x00\x01\x02" * 100 + f"key material {tok} end".encode() + b"\x00" * 50
    [f] = scan_bytes(data, "blob.dat")
    assert f.location == "strings"


def test_private_key_in_json_service_account() -> None:
    sa = {"type": "service_account", "project_id": "p", "private_key": pem("")}
    rules = {f.rule for f in scan_bytes(json.dumps(sa).encode(), "sa.json")}
    assert {"gcp-service-account", "private-key"} <= rules


def test_clean_model_repo_has_zero_findings(tmp_path: Path) -> None:
    root = make_clean_model(tmp_path / "m", readme="# tiny\n\nA tiny model with a tokenizer, keys and tokens.\n")
    files = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    assert "tokenizer.json" in files and "vocab.json" in files
    assert scan_tree(root, files) == []


@pytest.mark.parametrize(
    "text",
    [
        "a" * (10 * 2**20),  # a single 10 MiB line
        "-----BEGIN RSA PRIVATE KEY-----\n" * 100_000,  # headers without END
        "key=" + "aB3" * (10 * 2**20 // 3),  # assignment followed by 10 MiB of alphanumerics
    ],
    ids=["long-line", "pem-headers", "key-run"],
)
def test_adversarial_inputs_complete(text: str) -> None:
    # linear-time engine: these finish (timings are in tests/bench/bench_push.py)
    findings = scan_text(text, "adv.txt")
    assert all(f.rule != "private-key" for f in findings)


def test_large_text_file_is_windowed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from batuta_sync.publish.secrets import files as secrets

    monkeypatch.setattr(secrets, "MAX_TEXT_BYTES", 1000)
    monkeypatch.setattr(secrets, "_WINDOW", 4096)
    tok = hf_token()
    body = ("filler line\n" * 1000) + f"HF_TOKEN={tok}\n" + ("more\n" * 1000)
    (tmp_path / "big.log").write_text(body)
    [f] = scan_file(tmp_path / "big.log", "big.log")
    assert f.line == 1001


# ---------------------------------------------------------------------------------------- suppression


def test_suppression_by_fingerprint_only(tmp_path: Path) -> None:
    t1, t2 = hf_token(), hf_token()
    (tmp_path / "a.py").write_text(f"x = '{t1}'\ny = '{t2}'\n")
    findings = scan_file(tmp_path / "a.py", "a.py")
    assert len(findings) == 2
    (tmp_path / ALLOW_FILE).write_text(f"# reviewed: test fixture\n{findings[0].fingerprint[:16]}\n")
    allow = Allowlist.load(tmp_path)
    kept = filter_allowed(findings, allow)
    assert kept == [findings[1]]
    assert filter_allowed(findings, Allowlist.load(tmp_path, [findings[1].fingerprint])) == []


def test_allowlist_rejects_non_fingerprints(tmp_path: Path) -> None:
    from batuta_sync.errors import UsageError

    (tmp_path / ALLOW_FILE).write_text("*.py\n")
    with pytest.raises(UsageError):
        Allowlist.load(tmp_path)


def test_project_tiny_model_and_dataset_are_clean(tmp_path: Path) -> None:
    from batuta_sync.publish.manifest import iter_files
    from batuta_sync.publish.validate import validate_folder
    from batuta_sync.tinymodel import write_tiny_dataset, write_tiny_llama

    model = write_tiny_llama(tmp_path / "m")
    files = list(iter_files(model))
    assert scan_tree(model, files) == [] and validate_folder(model, files).format == "safetensors"
    data = write_tiny_dataset(tmp_path / "d")
    assert scan_tree(data, list(iter_files(data))) == []
