"""The one random-stream module (SPEC 9): every random draw of altmarl flows from one user
seed through these helpers.

* :func:`as_seed_sequence` — an ``int`` / ``None`` / ``SeedSequence`` as a ``SeedSequence``;
* :func:`child` — the child ``key`` of a seed, a pure function of the seed's entropy and
  spawn key (unlike ``SeedSequence.spawn`` it has no side effect, so the same seed always
  gives the same children: common random numbers across calls, independence of the number
  of workers);
* :func:`int_seed` — one 32-bit integer drawn from a ``SeedSequence``;
* :func:`derive_seed` — a 64-bit integer seed of the child ``key`` of an integer root;
* :func:`tie_seed` — the seed of G-LEARN's tie-breaking stream (SPEC 4);
* :func:`check_generator` — the samplers' check that a stream is a ``Generator``.

The sampling primitives of the count simulator live in :mod:`altmarl.sampling` (subsamples:
multivariate hypergeometric, sequential, weighted) and :mod:`altmarl.simulate` (categorical
rows).
"""

from __future__ import annotations

import numpy as np

SeedLike = int | np.integer | np.random.SeedSequence | None


def as_seed_sequence(seed: SeedLike) -> np.random.SeedSequence:
    """``seed`` as a ``SeedSequence`` (an int or ``None`` is wrapped)."""
    if isinstance(seed, np.random.SeedSequence):
        return seed
    return np.random.SeedSequence(None if seed is None else int(seed))


def child(seed: SeedLike, *key: int) -> np.random.SeedSequence:
    """Child ``key`` of ``seed``: ``SeedSequence(entropy, spawn_key=spawn_key + key)``.

    Distinct keys give independent streams; the result depends only on ``seed`` and
    ``key`` (no hidden spawn counter).
    """
    ss = as_seed_sequence(seed)
    return np.random.SeedSequence(ss.entropy,
                                  spawn_key=tuple(ss.spawn_key) + tuple(int(x) for x in key))


def int_seed(ss: np.random.SeedSequence) -> int:
    """One 32-bit integer seed drawn from ``ss`` (``ss.generate_state(1)[0]``)."""
    return int(ss.generate_state(1)[0])


def derive_seed(root: int, *key: int) -> int:
    """A 64-bit seed from ``SeedSequence(root, spawn_key=key)`` (independent streams for
    distinct keys)."""
    st = np.random.SeedSequence(int(root), spawn_key=tuple(int(x) for x in key)).generate_state(
        2, np.uint32)
    return (int(st[0]) << 32) | int(st[1])


def check_generator(rng: object, field: str = "rng") -> np.random.Generator:
    """``rng`` itself if it is a ``numpy.random.Generator``; a clear ``TypeError`` naming
    ``field`` otherwise (a legacy ``RandomState`` has neither ``bit_generator`` nor the
    array-valued calls the samplers rely on)."""
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"{field}: expected a numpy.random.Generator "
                        f"(np.random.default_rng(seed)), got {type(rng).__name__}")
    return rng


def tie_seed(seed: int) -> int:
    """Seed of the tie-breaking stream of a learner seeded with ``seed`` (the third child of
    ``SeedSequence(seed)``; SPEC 4's "documented seeded rule")."""
    return int(np.random.SeedSequence(seed).spawn(3)[2].generate_state(1)[0])


def rng(seed: SeedLike, *key: int) -> np.random.Generator:
    """A ``numpy.random.Generator`` on :func:`child` ``(seed, *key)`` (or on ``seed`` itself
    when no key is given)."""
    return np.random.default_rng(child(seed, *key) if key else as_seed_sequence(seed))
