"""Theory: closed-form flows against an ODE solver and descent, and the weighted quadratic's criteria (paper.md §6.3, §6.4)."""

import math

import numpy as np
import pytest

from heavytail.theory.flows import (
    FlowSetup,
    descend,
    first_time_below,
    gradient_flow_loss,
    gradient_flow_time,
    integrate,
    sign_flow_loss,
    sign_flow_time,
)
from heavytail.theory.quadratic import QuadraticSetup, simulate_all

SMALL = FlowSetup(num_classes=20, horizon=400.0, sign_horizon=5.0, ode_points=800)


def test_closed_form_gradient_flow_matches_the_ode_solver_for_every_class():
    times, losses = integrate(SMALL, "gradient")
    pi = SMALL.frequencies()
    for k in range(SMALL.num_classes):
        np.testing.assert_allclose(losses[:, k], gradient_flow_loss(times, pi[k], SMALL.num_classes), rtol=1e-6)


def test_closed_form_sign_flow_matches_the_ode_solver_and_sign_descent():
    times, losses = integrate(SMALL, "sign")
    expected = sign_flow_loss(times, SMALL.num_classes)
    np.testing.assert_allclose(losses, np.repeat(expected[:, None], SMALL.num_classes, axis=1), rtol=1e-9)
    steps, discrete = descend(SMALL, "sign")  # each step moves the margin by exactly 2α: exact at t = α·steps
    np.testing.assert_allclose(discrete[:, 0], sign_flow_loss(steps, SMALL.num_classes), rtol=1e-9)


def test_gradient_flow_times_scale_like_one_over_pi_and_gradient_descent_tracks_them():
    c, pi = SMALL.num_classes, SMALL.frequencies()
    level = 0.5 * math.log(c)
    predicted = np.array([gradient_flow_time(level, p, c) for p in pi])
    np.testing.assert_allclose(predicted * pi, predicted[0] * pi[0], rtol=1e-12)  # ℓ_k depends on π_k t only
    times, losses = descend(SMALL, "gradient")
    reached = np.array([first_time_below(times, losses[:, k], level) for k in range(c)])
    np.testing.assert_allclose(reached, predicted, rtol=0.05)
    assert gradient_flow_loss(1e6, pi[0], c) * pi[0] * 1e6 == pytest.approx(1 - 1 / c, rel=1e-3)  # Θ(1/(π_k t)) constant
    assert sign_flow_time(level, c) == pytest.approx(0.5 * math.log((c - 1) / math.expm1(level)))


def test_weighted_quadratic_meets_the_figures_criteria():
    setup = QuadraticSetup()
    assert [len(m) for m in setup.groups().members()] == [1, 1, 3, 6, 13, 26, 56, 118, 249, 527]
    paths = simulate_all(setup)
    for path in paths.values():
        assert path.loss[0] == pytest.approx(1.0)
    gd, sign, adam = paths["gd"].group_loss, paths["sign"].group_loss, paths["adam"].group_loss
    assert gd[50, -1] >= 0.9 and gd[50, 0] < 1e-6  # GD fits the frequent coordinates only
    assert np.allclose(sign[2:], sign[2:, :1]) and sign[2:].max() <= 0.16 + 1e-9  # sign: every group alike
    assert adam[5:].max() <= 0.25 and np.all(np.abs(adam[50] - 0.003) < 0.001)


def test_weighted_quadratic_preset_reports_each_methods_final_group_losses(tmp_path, capsys):
    import json

    from heavytail.cli import main
    from heavytail.presets import get_preset
    from heavytail.theory.studies import weighted_quadratic_study

    assert get_preset("weighted-quadratic").compute is weighted_quadratic_study
    assert main(["reproduce", "weighted-quadratic", "--results", str(tmp_path), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    methods = summary["methods"]
    assert set(methods) == {"gd", "adam", "sign"} and all(len(m["group_loss_final"]) == 10 for m in methods.values())
    assert methods["gd"]["group_loss_final"][-1] > 0.9 > methods["adam"]["group_loss_final"][-1]
    assert all(path.endswith((".png", ".pdf")) for path in summary["figures"])


@pytest.mark.slow
def test_continuous_time_preset_reports_predicted_and_simulated_times(tmp_path, capsys):
    import json

    from heavytail.cli import main

    assert main(["reproduce", "continuous-time", "--results", str(tmp_path), "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["classes"]["0.5"]
    assert len(rows) == 100
    for row in rows:
        gf, sf = row["gradient_flow"], row["sign_flow"]
        assert gf["ode"] == pytest.approx(gf["predicted"], rel=1e-3) and gf["descent"] == pytest.approx(gf["predicted"], rel=0.01)
        assert sf["ode"] == pytest.approx(sf["predicted"], rel=1e-3)
