"""Pure readers of the file formats batuta meets, with no policy.

Each module parses one format and says what is wrong with a :class:`FormatError`
(``reason``, ``detail``); callers (``safety``, ``publish/validate``, ``publish/secrets``,
``pull``, ``convert``) map that to their own verdicts and errors.  Stdlib only; nothing of
batuta is imported but ``errors`` (an import-linter contract in ``pyproject.toml``).

* :mod:`.safetensors` -- the one header parser (strict | lenient), one size limit, one dtype table.
* :mod:`.gguf` -- the one GGUF header / key-value reader.
* :mod:`.pickle` -- pickle sniffing and string constants (``pickletools``; never unpickles).
* :mod:`.card` -- README front matter split and parse.
* :mod:`.weights` -- the weight-file family by file name.

The test server (``batuta_sync.server``) keeps independent parsers on purpose: it is a peer.
"""

from __future__ import annotations

from batuta_sync.fileformats._base import FormatError

__all__ = ["FormatError"]
