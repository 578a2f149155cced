"""The demo's learning check: a run that failed to learn is named, never taken as a baseline."""

from __future__ import annotations

from studio.demo.health import check_learning


def test_a_run_that_learned_passes():
    c = check_learning("raw", [9.9, 4.0, 2.5, 2.1, 2.0, 1.9], gain=0.40, gain_ci_low=0.33)
    assert c.learned and c.problems == []
    assert c.first_loss == 9.9 and abs(c.last_loss - 2.0) < 1e-9


def test_held_out_at_base_level_is_a_failure_even_when_the_loss_fell():
    c = check_learning("raw", [9.9, 4.0, 2.5, 2.1], gain=0.033, gain_ci_low=0.01)
    assert not c.learned and len(c.problems) == 1 and "at base level" in c.problems[0]
    # the demo's seed-1 raw run: 5.7% vs base 0%, significant, beside a curated run at 46%
    c = check_learning("raw", [11.4, 3.0, 2.4, 2.36], gain=0.057, gain_ci_low=0.03)
    assert not c.learned and "+0.057 vs base" in c.problems[0]
    c = check_learning("raw", [9.9, 2.0], gain=0.2, gain_ci_low=-0.01)  # big but not significant
    assert not c.learned and "CI low -0.010" in c.problems[0]


def test_a_loss_that_does_not_fall_is_a_failure():
    c = check_learning("curated", [3.0, 2.9, 3.1, 2.8, 2.9], gain=0.30, gain_ci_low=0.2)
    assert not c.learned and "did not fall" in c.problems[0]
    both = check_learning("raw", [3.0, 3.0, 3.0], gain=0.0, gain_ci_low=-0.02)
    assert not both.learned and len(both.problems) == 2
    assert not check_learning("raw", []).learned  # nothing logged: no evidence it learned
