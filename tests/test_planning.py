"""Tests for the shared planning module (policy evaluation, VI, PI) against exact oracles:
a hand-solved MDP, closed forms and brute-force enumeration of deterministic policies."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from altmarl import planning

# ---------------------------------------------------------------------------
# small MDPs and oracles
# ---------------------------------------------------------------------------


def random_mdp(seed: int, S: int = 3, A: int = 2, gamma: float = 0.9
               ) -> tuple[np.ndarray, np.ndarray, float]:
    """``P[s, a, s']`` and ``r[s, a]`` of a random MDP."""
    rng = np.random.default_rng(seed)
    P = rng.dirichlet(np.ones(S), size=(S, A))
    r = rng.uniform(-1.0, 1.0, size=(S, A))
    return P, r, gamma


def policy_value(P: np.ndarray, r: np.ndarray, gamma: float, acts: np.ndarray) -> np.ndarray:
    """Oracle: ``V_pi`` as the limit of the discounted series ``sum_t gamma^t P_pi^t r_pi``
    (summed until the tail is below 1e-15; independent of any linear solver)."""
    S = P.shape[0]
    Ppi = P[np.arange(S), acts]
    rpi = r[np.arange(S), acts]
    V = np.zeros(S)
    term = rpi.copy()
    while np.abs(term).max() > 1e-16:
        V += term
        term = gamma * Ppi @ term
    return V


def brute_force(P: np.ndarray, r: np.ndarray, gamma: float) -> tuple[np.ndarray, np.ndarray]:
    """Oracle: the optimal values and the set of optimal deterministic policies, by
    enumerating all ``A^S`` of them (an optimal one is deterministic and stationary)."""
    S, A = r.shape
    vals = {acts: policy_value(P, r, gamma, np.array(acts))
            for acts in itertools.product(range(A), repeat=S)}
    V_star = np.max(np.stack(list(vals.values())), axis=0)
    best = [a for a, v in vals.items() if np.allclose(v, V_star, atol=1e-10)]
    return V_star, np.array(best)


def backup_of(P: np.ndarray, r: np.ndarray, gamma: float) -> planning.Backup:
    return lambda V: r + gamma * P @ V


def hand_mdp() -> tuple[np.ndarray, np.ndarray, float]:
    """Two states, gamma = 0.9. In state 0, action 0 stays (reward 1), action 1 moves to
    state 1 (reward 0); state 1 is absorbing with reward 2 under both actions.
    By hand: V*(1) = 2 / (1 - 0.9) = 20; staying gives V(0) = 1 / 0.1 = 10, moving gives
    V(0) = 0 + 0.9 * 20 = 18, so the optimum moves: V* = (18, 20), Q*(0) = (17.2, 18)."""
    P = np.zeros((2, 2, 2))
    P[0, 0, 0] = 1.0
    P[0, 1, 1] = 1.0
    P[1, :, 1] = 1.0
    r = np.array([[1.0, 0.0], [2.0, 2.0]])
    return P, r, 0.9


# ---------------------------------------------------------------------------
# policy evaluation
# ---------------------------------------------------------------------------


@pytest.mark.parametrize("p, q, gamma", [(0.3, 0.6, 0.9), (0.0, 1.0, 0.5), (0.95, 0.05, 0.99)])
def test_evaluate_dense_equals_the_two_state_closed_form(p: float, q: float, gamma: float) -> None:
    P = np.array([[1 - p, p], [q, 1 - q]])
    r = np.array([1.5, -0.5])
    det = (1 - gamma * (1 - p)) * (1 - gamma * (1 - q)) - gamma**2 * p * q
    closed = np.array([((1 - gamma * (1 - q)) * r[0] + gamma * p * r[1]) / det,
                       (gamma * q * r[0] + (1 - gamma * (1 - p)) * r[1]) / det])
    np.testing.assert_allclose(planning.evaluate_dense(P, r, gamma), closed, rtol=1e-12)


def test_evaluate_dense_occupancy_via_transpose() -> None:
    P, _, gamma = random_mdp(1, S=4, A=1)
    P1 = P[:, 0]
    mu = np.array([0.1, 0.2, 0.3, 0.4])
    d = planning.evaluate_dense(P1.T, mu, gamma)
    series = sum(gamma**t * np.linalg.matrix_power(P1.T, t) @ mu for t in range(2000))
    np.testing.assert_allclose(d, series, rtol=1e-10)
    assert d.sum() == pytest.approx(1 / (1 - gamma))


def test_evaluate_dense_batch_matches_one_by_one_and_broadcasts() -> None:
    rng = np.random.default_rng(3)
    S, B, gamma = 5, 4, 0.8
    P = rng.dirichlet(np.ones(S), size=(B, S))
    r = rng.normal(size=(B, S))
    out = planning.evaluate_dense_batch(P, r, gamma)
    assert out.shape == (B, S)
    for b in range(B):
        np.testing.assert_allclose(out[b], planning.evaluate_dense(P[b], r[b], gamma),
                                   rtol=1e-13, atol=1e-13)
    # one chain, many reward vectors (and the reverse)
    one = planning.evaluate_dense_batch(P[:1], r, gamma)
    for b in range(B):
        np.testing.assert_allclose(one[b], planning.evaluate_dense(P[0], r[b], gamma), rtol=1e-12)
    rev = planning.evaluate_dense_batch(P, r[:1], gamma)
    for b in range(B):
        np.testing.assert_allclose(rev[b], planning.evaluate_dense(P[b], r[0], gamma), rtol=1e-12)


def test_iterative_evaluations_match_the_dense_solve() -> None:
    rng = np.random.default_rng(5)
    S, gamma = 40, 0.95
    P = rng.dirichlet(np.ones(S) * 0.3, size=S)
    r = rng.normal(size=S)
    exact = planning.evaluate_dense(P, r, gamma)
    V = planning.evaluate_scipy_gmres(lambda x: P @ x, r, gamma)
    np.testing.assert_allclose(V, exact, rtol=1e-9, atol=1e-9)
    eps = 1e-10
    V2, res, matvecs = planning.evaluate_gmres(lambda x: P @ x, r, gamma, np.zeros(S), eps)
    true = float(np.abs(r - (V2 - gamma * P @ V2)).max())
    assert true <= eps and res == pytest.approx(true, rel=1e-3, abs=1e-12)
    assert 0 < matvecs <= 2000
    np.testing.assert_allclose(V2, exact, atol=eps / (1 - gamma) * 1.01)
    # a warm start at the solution needs no Krylov step (one residual product)
    _, _, mv = planning.evaluate_gmres(lambda x: P @ x, r, gamma, exact, 1e-8)
    assert mv == 1


def test_a_one_pass_system_replaces_the_matvec_with_the_same_numbers() -> None:
    """``system=`` (``x -> x - gamma P x`` in one pass) is used in place of ``p_matvec``:
    the same iterate, residual and count of products when it computes the same numbers."""
    rng = np.random.default_rng(8)
    S, gamma = 50, 0.9
    P = rng.dirichlet(np.ones(S) * 0.5, size=S)
    r = rng.normal(size=S)
    want = planning.evaluate_gmres(lambda x: P @ x, r, gamma, np.zeros(S), 1e-9)

    def refuse(x: np.ndarray) -> np.ndarray:
        raise AssertionError("p_matvec called although system= was given")

    got = planning.evaluate_gmres(refuse, r, gamma, np.zeros(S), 1e-9,
                                  system=lambda x: x - gamma * (P @ x))
    np.testing.assert_array_equal(got[0], want[0])
    assert got[1] == want[1] and got[2] == want[2] > 1


def test_scipy_gmres_failure_is_reported_with_its_name() -> None:
    rng = np.random.default_rng(6)
    S = 60
    P = rng.dirichlet(np.ones(S), size=S)
    with pytest.raises(RuntimeError, match="my chain: GMRES did not converge"):
        planning.evaluate_scipy_gmres(lambda x: P @ x, rng.normal(size=S), 0.999, restart=2,
                                      maxiter=1, name="my chain")


def test_gmres_solves_to_sup_norm_tolerance() -> None:
    rng = np.random.default_rng(0)
    n = 300
    P = rng.random((n, n))
    P /= P.sum(axis=1, keepdims=True)
    A = np.eye(n) - 0.97 * P
    b = rng.random(n)
    for eps in (1e-3, 1e-9):
        x, res = planning.gmres(lambda v: A @ v, b, np.zeros(n), eps, restart=7,
                                max_matvecs=5000)
        true = float(np.abs(b - A @ x).max())
        assert true <= eps and res == pytest.approx(true, rel=1e-3, abs=1e-12)



def test_gmres_basis_buffer_gives_the_same_numbers_and_is_checked() -> None:
    """A caller's Krylov buffer (reused across solves, dirty from the last one) changes
    nothing; a buffer of the wrong shape or type is refused by name."""
    rng = np.random.default_rng(1)
    n = 200
    P = rng.random((n, n))
    P /= P.sum(axis=1, keepdims=True)
    A = np.eye(n) - 0.95 * P
    buf = np.full((9, n), np.nan)
    for b in (rng.random(n), rng.random(n)):
        want = planning.gmres(lambda v: A @ v, b, np.zeros(n), 1e-10, 8, 5000)
        got = planning.gmres(lambda v: A @ v, b, np.zeros(n), 1e-10, 8, 5000, basis=buf)
        np.testing.assert_array_equal(got[0], want[0])
        assert got[1] == want[1]
    for bad in (np.zeros((8, n)), np.zeros((9, n + 1)), np.zeros((9, n), dtype=np.float32)):
        with pytest.raises(ValueError, match="basis: expected"):
            planning.gmres(lambda v: A @ v, rng.random(n), np.zeros(n), 1e-10, 8, 5000,
                           basis=bad)


# ---------------------------------------------------------------------------
# value iteration and policy iteration
# ---------------------------------------------------------------------------


def test_hand_solved_mdp() -> None:
    P, r, gamma = hand_mdp()
    backup = backup_of(P, r, gamma)
    vi = planning.value_iteration(backup, np.zeros((2, 2)), np.zeros(2), 1e-12, 10_000)
    assert vi.converged
    np.testing.assert_allclose(vi.v, [18.0, 20.0], atol=1e-10)
    np.testing.assert_allclose(vi.q[0], [17.2, 18.0], atol=1e-10)

    def evaluate(acts: np.ndarray) -> np.ndarray:
        return planning.evaluate_dense(P[np.arange(2), acts], r[np.arange(2), acts], gamma)

    pi = planning.policy_iteration(evaluate, backup, np.zeros(2, dtype=np.int64), 10)
    assert pi.converged and pi.actions is not None
    assert pi.actions[0] == 1  # move to the absorbing state
    np.testing.assert_allclose(pi.v, [18.0, 20.0], rtol=1e-14)
    assert pi.iterations == 2  # evaluate "stay", improve once, evaluate "move", stop


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("stop_on", ["q", "v"])
def test_value_iteration_reaches_the_brute_force_optimum(seed: int, stop_on: str) -> None:
    P, r, gamma = random_mdp(seed)
    V_star, best = brute_force(P, r, gamma)
    tol = 1e-10
    res = planning.value_iteration(backup_of(P, r, gamma), np.zeros_like(r), np.zeros(3), tol,
                                   10_000, stop_on=stop_on)
    assert res.converged and res.residual <= tol and res.history[-1] == res.residual
    assert res.iterations == len(res.history)
    # ||V_t - V*|| <= gamma / (1 - gamma) ||V_t - V_{t-1}|| (and the Q test bounds the V test)
    np.testing.assert_allclose(res.v, V_star, atol=2 * tol * gamma / (1 - gamma) + 1e-12)
    greedy = res.q.argmax(axis=-1)
    assert any((greedy == b).all() for b in best)
    # a gamma-contraction: the successive differences shrink at least by gamma (the
    # asymptotic rate is exactly gamma here; 1e-13 covers the round-off of the differences)
    h = np.array(res.history)
    assert (h[1:] <= gamma * h[:-1] + 1e-13).all()


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("scale", ["best", "current"])
def test_policy_iteration_is_the_brute_force_optimum(seed: int, scale: str) -> None:
    P, r, gamma = random_mdp(seed)
    V_star, best = brute_force(P, r, gamma)
    S = r.shape[0]
    calls = []

    def evaluate(acts: np.ndarray) -> np.ndarray:
        calls.append(acts.copy())
        return planning.evaluate_dense(P[np.arange(S), acts], r[np.arange(S), acts], gamma)

    res = planning.policy_iteration(evaluate, backup_of(P, r, gamma),
                                    np.zeros(S, dtype=np.int64), 50, scale=scale)
    assert res.converged and res.actions is not None
    assert any((res.actions == b).all() for b in best)
    np.testing.assert_allclose(res.v, V_star, atol=1e-12)
    # policy evaluation equals the discounted series of the returned policy
    np.testing.assert_allclose(res.v, policy_value(P, r, gamma, res.actions), atol=1e-12)
    # every evaluation is a strict improvement: no policy is evaluated twice
    assert res.iterations == len(calls) <= 2**S
    assert len({c.tobytes() for c in calls}) == len(calls)
    # PI and VI agree
    vi = planning.value_iteration(backup_of(P, r, gamma), np.zeros_like(r), np.zeros(S), 1e-12,
                                  10_000)
    np.testing.assert_allclose(vi.v, res.v, atol=1e-10)


@pytest.mark.parametrize("seed", range(4))
def test_inexact_policy_iteration_reaches_the_optimum(seed: int) -> None:
    P, r, gamma = random_mdp(seed, S=4, A=3, gamma=0.95)
    V_star, best = brute_force(P, r, gamma)
    S = r.shape[0]
    backup = backup_of(P, r, gamma)
    seen_eps: list[float] = []

    def evaluate(acts: np.ndarray, x0: np.ndarray, eps: float) -> np.ndarray:
        seen_eps.append(eps)
        V, res, _ = planning.evaluate_gmres(lambda x: P[np.arange(S), acts] @ x,
                                            r[np.arange(S), acts], gamma, x0, eps)
        assert res <= eps
        return V

    tol = 1e-9
    bounds: list[float] = []
    res = planning.inexact_policy_iteration(backup, evaluate, backup(np.zeros(S)), np.zeros(S),
                                            gamma, tol, 100, callback=bounds.append)
    assert res.converged and res.history == bounds and bounds[-1] <= tol
    assert res.iterations == len(seen_eps) == len(bounds) - 1
    assert all(b <= a for a, b in zip(seen_eps, seen_eps[1:], strict=False))  # never loosens
    # residual of the returned Q is at most the bound; its greedy policy is optimal
    Q = res.q
    assert np.abs(backup(Q.max(axis=-1)) - Q).max() <= tol * (1 + 1e-6)
    np.testing.assert_allclose(Q.max(axis=-1), V_star, atol=tol / (1 - gamma))
    assert any((Q.argmax(axis=-1) == b).all() for b in best)


def test_budgets_and_bad_arguments() -> None:
    P, r, gamma = random_mdp(0)
    q0 = np.zeros_like(r)
    res = planning.value_iteration(backup_of(P, r, gamma), q0, np.zeros(3), 1e-9, 0)
    assert res.q is q0 and res.iterations == 0 and res.residual == np.inf and not res.converged
    res = planning.value_iteration(backup_of(P, r, gamma), q0, np.zeros(3), 1e-9, 3)
    assert not res.converged and res.iterations == 3 and len(res.history) == 3

    P_h, r_h, g_h = hand_mdp()

    def evaluate(acts: np.ndarray) -> np.ndarray:
        return planning.evaluate_dense(P_h[np.arange(2), acts], r_h[np.arange(2), acts], g_h)

    pi = planning.policy_iteration(evaluate, backup_of(P_h, r_h, g_h),
                                   np.zeros(2, dtype=np.int64), 1)
    assert not pi.converged and pi.actions is not None and pi.actions[0] == 1
    with pytest.raises(ValueError, match="stop_on"):
        planning.value_iteration(backup_of(P, r, gamma), q0, np.zeros(3), 1e-9, 3, stop_on="x")
    with pytest.raises(ValueError, match="scale"):
        planning.policy_iteration(evaluate, backup_of(P_h, r_h, g_h),
                                  np.zeros(2, dtype=np.int64), 3, scale="x")
