"""Numba kernels of the subsample draws (SPEC 3), bound to NumPy's own C samplers.

NumPy exports the C function behind every ``Generator.hypergeometric`` call,
``random_hypergeometric(bitgen_t *, good, bad, sample)``, from its
``numpy.random._generator`` extension. This module binds that symbol for Numba and draws
:func:`altmarl.sampling.multivariate_hypergeometric` with one call of it per draw, in the
order of the NumPy array calls (colours outer, rows inner), on the generator's bit
generator: the same numbers and the same generator state afterwards, without NumPy's
per-call broadcasting and input checks (about 4x cheaper at 125 rows), and with the GIL
released. Importing this module imports Numba; :mod:`altmarl.sampling` does so on first
use and checks the kernel against the NumPy calls before it trusts it.
"""

from __future__ import annotations

import ctypes
from typing import Any

import llvmlite.binding as llvm
import numba
import numpy as np
import numpy.random._generator as npgen
from numba import types

llvm.add_symbol(
    "random_hypergeometric",
    ctypes.cast(ctypes.CDLL(npgen.__file__).random_hypergeometric, ctypes.c_void_p).value,
)
#: ``int64_t random_hypergeometric(bitgen_t *state, int64_t good, int64_t bad, int64_t n)``
random_hypergeometric = types.ExternalFunction(
    "random_hypergeometric", types.int64(types.uintp, types.int64, types.int64, types.int64)
)


@numba.njit(cache=True, nogil=True, boundscheck=False)
def hypergeometric_rows(state: Any, flat: Any, left0: Any, out: Any, limit: int) -> bool:
    """``out[r]`` ~ MultivariateHypergeometric(``flat[r]``, ``left0[r]``) for every row
    of the ``(rows, C)`` colours (``C >= 1``), drawn colour by colour as
    ``Hypergeometric(flat[r, c], remaining - flat[r, c], left)`` with the bit generator at
    address ``state`` (``rng.bit_generator.ctypes.bit_generator.value``; the caller holds
    its lock). Returns ``False``, before drawing anything, when a count is negative, a
    row's total reaches ``limit`` (:data:`altmarl.sampling.HYPERGEOM_LIMIT`, inside NumPy's
    domain) or ``left0[r]`` is outside ``[0, total]``."""
    rows, C = flat.shape
    rem = np.empty(rows, dtype=np.int64)
    left = np.empty(rows, dtype=np.int64)
    for r in range(rows):
        tot = 0
        for c in range(C):
            v = flat[r, c]
            if v < 0 or v >= limit:
                return False
            tot += v
            if tot >= limit:
                return False
        if left0[r] < 0 or left0[r] > tot:
            return False
        rem[r] = tot
        left[r] = left0[r]
    for c in range(C - 1):
        for r in range(rows):
            good = flat[r, c]
            bad = rem[r] - good
            v = random_hypergeometric(state, good, bad, left[r])
            out[r, c] = v
            left[r] -= v
            rem[r] = bad
    for r in range(rows):
        out[r, C - 1] = left[r]
    return True
