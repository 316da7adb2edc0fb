"""Policy files of any kind, for checkpoints and run directories (SPEC 10, 11).

* neural policies (:class:`~altmarl.generative.neural.NeuralGlobalPolicy`,
  :class:`~altmarl.generative.neural_local.NeuralLocalPolicy`): ``.pt`` files read with
  ``torch.load(weights_only=True)`` (no pickle), JSON metadata with the game's fingerprint;
* tabular policies (:class:`altmarl.GlobalPolicy`, :class:`altmarl.LocalPolicy`): ``.npz``
  files (format of :mod:`altmarl.policies`);
* :class:`~altmarl.generative.policies.UniformLocalPolicy` on a game with discrete states:
  written as the uniform :class:`altmarl.LocalPolicy` table (the same law).

:func:`save_policy` picks the suffix, :func:`load_policy` reads any of them back and checks
the game (a file made for another game is refused).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from altmarl._validate import check_choice
from altmarl.generative.policies import UniformLocalPolicy

#: suffixes of the two file families
NEURAL_SUFFIX, TABULAR_SUFFIX = ".pt", ".npz"


def policy_suffix(policy: Any) -> str:
    """``".pt"`` for neural policies, ``".npz"`` for tabular ones; ``ValueError`` for a
    policy that cannot be written (e.g. a hand-written function)."""
    from altmarl.policies import GlobalPolicy, LocalPolicy

    if isinstance(policy, GlobalPolicy | LocalPolicy | UniformLocalPolicy):
        return TABULAR_SUFFIX
    kind = type(policy).__name__
    if kind in ("NeuralGlobalPolicy", "NeuralLocalPolicy"):
        return NEURAL_SUFFIX
    raise ValueError(f"{kind}: this policy cannot be written to a file (neural and tabular "
                     "policies can)")


def _writable(policy: Any, game: Any) -> Any:
    """``policy`` as the object that writes its file: a ``UniformLocalPolicy`` becomes the
    uniform :class:`altmarl.LocalPolicy` table of ``game`` (the same law)."""
    from altmarl.policies import LocalPolicy

    if isinstance(policy, UniformLocalPolicy):
        if game.n_sl is None or game.n_sg is None:
            raise ValueError("UniformLocalPolicy: only games with discrete states can write it "
                             "as a table; start from NeuralLocalPolicy.for_game(game, "
                             "greedy=False), the same law")
        table = np.full((game.n_sl, game.n_sg, game.n_al), 1.0 / game.n_al)
        return LocalPolicy(table, {"kind": "uniform"}, game)
    return policy


def save_policy(policy: Any, stem: str | os.PathLike[str], game: Any) -> Path:
    """Write ``policy`` to ``stem`` + its suffix (:func:`policy_suffix`); returns the path."""
    path = Path(f"{os.fspath(stem)}{policy_suffix(policy)}")
    out: Path = _writable(policy, game).save(path, game)
    return out


def policy_bytes(policy: Any, game: Any) -> tuple[str, bytes]:
    """``(suffix, contents)`` of the file :func:`save_policy` writes: tabular policies are
    encoded in memory; neural ones go through a temporary file (``torch.save``)."""
    suffix = policy_suffix(policy)
    pol = _writable(policy, game)
    if suffix == TABULAR_SUFFIX:
        return suffix, pol.to_bytes(game)
    import tempfile

    with tempfile.TemporaryDirectory(prefix="altmarl-policy-") as d:
        path = save_policy(pol, Path(d) / "policy", game)
        return suffix, path.read_bytes()


def load_policy(path: str | os.PathLike[str], player: str, game: Any = None) -> Any:
    """Read a file of :func:`save_policy` for ``player`` (``"global"`` or ``"local"``),
    checked against ``game`` when given."""
    check_choice("player", player, ["global", "local"])
    p = Path(path)
    if p.suffix == NEURAL_SUFFIX:
        if player == "global":
            from altmarl.generative.neural import NeuralGlobalPolicy

            return NeuralGlobalPolicy.load(p, game)
        from altmarl.generative.neural_local import NeuralLocalPolicy

        return NeuralLocalPolicy.load(p, game)
    if p.suffix == TABULAR_SUFFIX:
        from altmarl.policies import GlobalPolicy, LocalPolicy

        return (GlobalPolicy if player == "global" else LocalPolicy).load(p, game)
    raise ValueError(f"{p}: expected a policy file ending in {NEURAL_SUFFIX} or "
                     f"{TABULAR_SUFFIX}")


__all__ = ["NEURAL_SUFFIX", "TABULAR_SUFFIX", "load_policy", "policy_bytes", "policy_suffix",
           "save_policy"]
