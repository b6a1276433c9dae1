"""Xet storage for ``batuta hub serve``: the Xet Protocol Specification (v1.1) — content-defined
chunking, merkle hashing, the xorb and shard formats (pure, in ``chunking``/``hashing``/``xorb``/
``shard``) and the CAS service with its token endpoints (``cas``, ``routes``)."""
