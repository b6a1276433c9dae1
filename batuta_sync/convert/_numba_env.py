"""Import numba without SciPy's BLAS bindings (imported for its side effect, before ``numba``).

When ``numba.np.arraymath`` is first imported -- at the first kernel compile or cache load -- numba
probes for SciPy's BLAS (``scipy.linalg.cython_blas``) to support ``np.dot`` / ``np.linalg`` in
compiled code.  Our kernels use neither, and the probe imports ``scipy.linalg``: about 0.2 s of CPU
and ~20 MB of RSS per process, a third of numba's whole start-up cost.  So SciPy is hidden while
numba and ``numba.np.arraymath`` are imported (``import scipy`` raises ImportError for that moment)
and visible again right after; numba then reports no BLAS for the rest of the process.

Nothing is hidden when SciPy is already imported (the probe costs nothing then) or when
``BATUTA_NUMBA_BLAS=1`` is set -- for a process that imports batuta first and then runs its own numba
code calling ``np.dot``/``np.linalg``.
"""

from __future__ import annotations

import importlib
import os
import sys

_ENV = "BATUTA_NUMBA_BLAS"


def import_numba() -> None:
    """Import numba (and numba.np.arraymath) with SciPy hidden, unless SciPy is loaded or the opt-out is set."""
    if "scipy" in sys.modules or "numba.np.arraymath" in sys.modules or os.environ.get(_ENV) == "1":
        importlib.import_module("numba")
        return
    sys.modules["scipy"] = None  # type: ignore[assignment]  # "import scipy..." raises ImportError now
    try:
        importlib.import_module("numba.np.arraymath")  # its _HAVE_BLAS probe runs here
    except Exception:  # a numba that needs SciPy at import after all: imported the ordinary way below
        pass
    finally:
        if "scipy" in sys.modules and sys.modules["scipy"] is None:
            del sys.modules["scipy"]
    importlib.import_module("numba.np.arraymath")  # a no-op when the import above worked


import_numba()
