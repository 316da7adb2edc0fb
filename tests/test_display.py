"""Notebook displays (altmarl.display and the ``_repr_html_`` of games, policies and
results): the numbers they show are the objects' own, text is escaped, tables are bounded,
and the HTML is well formed."""

from __future__ import annotations

import json
from html.parser import HTMLParser

import numpy as np
import pytest

import altmarl as am
from altmarl.display import MAX_ROWS, fmt, html_table
from altmarl.evaluation import ValueEstimate
from altmarl.exact import ExactSolver, NashGapCertificate, estimate_nash_gap, nash_gap_certificate

VOID = {"br", "hr", "img"}


class TagChecker(HTMLParser):
    """Collects the text and checks that every tag is closed in order."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in VOID:
            self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        assert self.stack and self.stack[-1] == tag, (self.stack, tag)
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def shown(html: str) -> str:
    """The visible text of ``html`` after checking it is well formed."""
    p = TagChecker()
    p.feed(html)
    p.close()
    assert not p.stack, f"unclosed tags {p.stack}"
    return " ".join(p.text)


@pytest.fixture(scope="module")
def small() -> am.TabularGame:
    return am.envs.make("random", n_sg=2, n_ag=2, n_sl=2, n_al=2, n=4, gamma=0.85, seed=2)


def test_fmt() -> None:
    assert fmt(None) == "\u2014"
    assert fmt(True) == "yes" and fmt(False) == "no"
    assert fmt(np.int64(7)) == "7"
    assert fmt(1 / 3) == "0.3333" and fmt(np.float64(12345.678)) == "1.235e+04"
    assert fmt(float("nan")) == "nan"
    assert fmt((0.25, 0.5)) == "[0.25, 0.5]"
    assert fmt([1, 2.5]) == "1, 2.5"


def test_html_table_escapes_and_bounds() -> None:
    out = html_table("<b>title</b>", [("a&b", "<script>x</script>")],
                     columns=["i"], records=[[i] for i in range(MAX_ROWS + 5)], note="n<1")
    text = shown(out)
    assert "<script>" not in out and "&lt;script&gt;" in out
    assert "<b>title</b>" in text and "a&b" in text and "n<1" in text
    assert f"{MAX_ROWS - 1}" in text and f" {MAX_ROWS} " not in f" {text} "
    assert "\u2026 5 more" in text


def test_game_displays(small: am.TabularGame) -> None:
    text = shown(small._repr_html_())
    assert "TabularGame" in text and small.fingerprint() in text
    assert "0.85" in text and "2, 2" in text
    fleet = am.envs.make("fleet")
    text = shown(fleet._repr_html_())
    assert "GenerativeGame" in text and str(fleet.n) in text and fleet.observe.kind in text


def test_policy_displays(small: am.TabularGame) -> None:
    pi_l = am.LocalPolicy.deterministic(small, np.array([[1, 0], [0, 1]]))
    text = shown(pi_l._repr_html_())
    assert "LocalPolicy" in text and "2 x 2 x 2" in text
    assert text.count("(1.00)") == 4 and "1 (1.00)" in text  # greedy actions shown
    pi_g = am.GlobalPolicy.constant(small, 2, 1)
    text = shown(pi_g._repr_html_())
    # |H_2| = 3 observations, all mapped to a_g = 1
    assert "2 x 3 x 2" in text and text.count("100%") == 2 and text.count("0%") == 4
    big = am.LocalPolicy.uniform(am.envs.make("random", n_sl=20, n_sg=20, n=40))
    assert "s_l" not in shown(big._repr_html_())  # no 400-cell table


def test_result_displays(small: am.TabularGame) -> None:
    res = am.alternating_marl(small, k=2, seed=0, sweeps=2, m=5, local_solver="induced-vi",
                              eval_rollouts=20, eval_horizon=20, progress=False)
    text = shown(res._repr_html_())
    assert fmt(res.value.mean) in text and fmt(res.value.stderr) in text
    assert f"{res.accepted} of {len(res.history)}" in text
    assert all(r.decision in text for r in res.history)
    ev = am.evaluate(small, res.pi_g, res.pi_l, rollouts=30, horizon=20, seed=1)
    text = shown(ev._repr_html_())
    assert fmt(ev.mean) in text and fmt(ev.ci95) in text and "30 x 20" in text
    est = ValueEstimate(1.5, 0.25, np.zeros(7))
    assert "7 rollouts" in shown(est._repr_html_())
    assert "exact" in shown(ValueEstimate(2.0)._repr_html_())


def test_nash_gap_displays(small: am.TabularGame) -> None:
    pi_l = am.LocalPolicy.uniform(small)
    pi_g = am.GlobalPolicy.constant(small, 2, 1)
    exact = ExactSolver(small, 2).nash_gap(pi_g, pi_l, refine_local=False)
    text = shown(exact._repr_html_())
    assert f"{exact.gap_g_full:.6g}" in text and "n = 4, k = 2" in text
    cert = nash_gap_certificate(small, pi_g, pi_l)
    assert isinstance(cert, NashGapCertificate) and isinstance(cert, dict)
    assert json.loads(json.dumps(cert)) == dict(cert)  # still the plain JSON object
    text = shown(cert._repr_html_())
    assert fmt(cert["nash_gap"]) in text and ("exact" if cert["exact"] else "lower") in text
    est = estimate_nash_gap(small, pi_g, pi_l, rollouts=20, horizon=20, seed=0, learn=False,
                            extra_local={"uniform": pi_l})
    text = shown(est._repr_html_())
    assert fmt(est.nash_gap_lower_bound) in text and "20 x 20" in text
