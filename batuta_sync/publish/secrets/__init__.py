"""Pre-push secret scanner (pure: bytes and text in, findings out; reads only local files).

It scans **every byte that is uploaded** (docs/security.md, reference SEC-1..SEC-9, issue #13):

* :mod:`.rules` — the rules as data: 28 content formats, the high-confidence prefixed tokens, file names;
* :mod:`.text` — the text engine (all rules, encoded runs, JSON strings, notebooks);
* :mod:`.raw` — the raw scan of every byte (ASCII, UTF-16, UTF-32; binary payloads included), two-stage
  for ≥ 500 MB/s per core on tensor data (tests/bench/bench_secrets.py);
* :mod:`.formats` — safetensors metadata, pickle strings (never unpickled), binary strings;
* :mod:`.files` — files, archives (zip/tar) and compressed streams (gzip/bz2/xz/zstd) with bomb-safe
  limits; a limit reached is a ``scan-incomplete`` finding, never a silent skip;
* :mod:`.allow` — suppression by fingerprint.

Findings show ``file[:line]``, the rule and a *redacted* value (first characters + ``…``) with a
fingerprint ``sha256(rule|path|secret)``; the secret itself never leaves the scanner.
"""

from __future__ import annotations

from batuta_sync.publish.secrets.allow import ALLOW_FILE, Allowlist, filter_allowed
from batuta_sync.publish.secrets.files import (
    MAX_ARCHIVE_DEPTH,
    MAX_ARCHIVE_MEMBERS,
    MAX_DECOMPRESSED,
    MAX_RATIO,
    MAX_TEXT_BYTES,
    format_findings,
    scan_bytes,
    scan_file,
    scan_tree,
)
from batuta_sync.publish.secrets.formats import (
    binary_strings,
    is_pickle_bytes,
    pickle_strings,
    safetensors_metadata,
)
from batuta_sync.publish.secrets.raw import RawHit, mask_path, scan_name, scan_raw
from batuta_sync.publish.secrets.rules import (
    HIGH_CONFIDENCE_IDS,
    INCOMPLETE_RULE,
    PRIVATE_KEY_RULE,
    RULE_IDS,
    RULES,
    Finding,
    Rule,
    filename_rule,
    fingerprint,
    redact_value,
    shannon_entropy,
)
from batuta_sync.publish.secrets.text import MAX_DECODE_DEPTH, scan_json_text, scan_text

#: Part of every scan-cache key: bump it whenever a file could get different findings.
SCANNER_VERSION = "2"

__all__ = [
    "ALLOW_FILE",
    "HIGH_CONFIDENCE_IDS",
    "INCOMPLETE_RULE",
    "MAX_ARCHIVE_DEPTH",
    "MAX_ARCHIVE_MEMBERS",
    "MAX_DECODE_DEPTH",
    "MAX_DECOMPRESSED",
    "MAX_RATIO",
    "MAX_TEXT_BYTES",
    "PRIVATE_KEY_RULE",
    "RULES",
    "RULE_IDS",
    "SCANNER_VERSION",
    "Allowlist",
    "Finding",
    "RawHit",
    "Rule",
    "binary_strings",
    "filename_rule",
    "filter_allowed",
    "fingerprint",
    "format_findings",
    "is_pickle_bytes",
    "mask_path",
    "pickle_strings",
    "redact_value",
    "safetensors_metadata",
    "scan_bytes",
    "scan_file",
    "scan_json_text",
    "scan_name",
    "scan_raw",
    "scan_text",
    "scan_tree",
    "shannon_entropy",
]
