"""Closed-form per-class blocks against autograd, Hutchinson against the closed form, the paper's W = 0 formulas."""

import json

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heavytail import LinearProblem
from heavytail.cli import main
from heavytail.curvature import (
    block_dominance,
    class_groups,
    correct_class_probability,
    hessian_entries,
    model_block_traces,
    softmax_blocks,
    spearman,
)
from heavytail.curvature.softmax_blocks import probabilities
from heavytail.data.synthetic import natural_groups


def _tiny(seed=0, n=40, d=5, c=4, binary=False):
    g = torch.Generator().manual_seed(seed)
    x = (torch.rand(n, d, generator=g) < 0.5).double() if binary else torch.randn(n, d, generator=g, dtype=torch.float64) + 0.5
    y = torch.randint(0, c, (n,), generator=g)
    weight = torch.randn(c, d, generator=g, dtype=torch.float64)
    bias = torch.randn(c, generator=g, dtype=torch.float64)
    return x, y, weight, bias


def _exact(x, y, weight, bias):
    """Gradient rows and diagonal Hessian blocks of the mean cross-entropy, by autograd on the flat parameters."""
    c, d = weight.shape

    def loss(flat):
        return F.cross_entropy(x @ flat[: c * d].reshape(c, d).T + flat[c * d :], y)

    flat = torch.cat([weight.reshape(-1), bias])
    grad = torch.autograd.functional.jacobian(loss, flat)
    hess = torch.autograd.functional.hessian(loss, flat)
    return grad, hess


def test_closed_form_blocks_equal_autograd_gradient_and_hessian():
    x, y, weight, bias = _tiny()
    c, d = weight.shape
    grad, hess = _exact(x, y, weight, bias)
    stats = softmax_blocks(x, y, weight, bias, chunk_size=7)  # chunking must not change anything
    grad_rows = grad[: c * d].reshape(c, d)
    traces = [torch.trace(hess[k * d : (k + 1) * d, k * d : (k + 1) * d]) for k in range(c)]
    bias_curv = torch.diagonal(hess[c * d :, c * d :])
    np.testing.assert_allclose(stats.grad_norm, grad_rows.norm(dim=1).numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats.hessian_trace, torch.stack(traces).numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats.bias_grad, grad[c * d :].numpy(), rtol=1e-5)
    np.testing.assert_allclose(stats.bias_hessian, bias_curv.numpy(), rtol=1e-5)
    assert stats.loss == pytest.approx(float(F.cross_entropy(x @ weight.T + bias, y)), rel=1e-10)


def test_hessian_entries_equal_autograd_on_chosen_classes_and_coordinates():
    x, y, weight, bias = _tiny(seed=1)
    d = weight.shape[1]
    _, hess = _exact(x, y, weight, bias)
    classes, coords = [0, 2, 3], [1, 4]
    entries = hessian_entries(x, probabilities(x, weight, bias), classes, coords)
    index = [k * d + a for k in classes for a in coords]
    np.testing.assert_allclose(entries, hess[index][:, index].numpy(), rtol=1e-5, atol=1e-12)
    summary = block_dominance(entries, len(classes))
    assert summary["ratio"] == pytest.approx(summary["diagonal_mean_abs"] / summary["off_diagonal_mean_abs"])


def test_paper_code_trace_variant_sums_x_instead_of_x_squared():
    x, y, weight, bias = _tiny(seed=2, binary=True)  # x in {0, 1}: x = x², so both variants agree
    np.testing.assert_allclose(
        softmax_blocks(x, y, weight, bias, trace="paper-code").hessian_trace, softmax_blocks(x, y, weight, bias).hessian_trace
    )
    x, y, weight, bias = _tiny(seed=2)
    assert not np.allclose(softmax_blocks(x, y, weight, bias, trace="paper-code").hessian_trace, softmax_blocks(x, y, weight, bias).hessian_trace)


def test_at_zero_weights_blocks_are_identical_and_gradients_follow_class_frequency():
    problem = LinearProblem(m=5, init="zero").build(0)
    x, y, c = problem.x.double(), problem.y, problem.num_classes
    stats = softmax_blocks(x, y, problem.model.weight.double(), problem.model.bias.double())
    # eq. 6: every diagonal block is (1/c)(1 - 1/c) H̄, so every trace is (1/c)(1 - 1/c) mean ||x||²
    expected_trace = (1 / c) * (1 - 1 / c) * float((x * x).sum(1).mean())
    np.testing.assert_allclose(stats.hessian_trace, expected_trace, rtol=1e-10)
    # eq. 5: ∇_{w_k} L = x̄ / c − π_k x̄_k
    counts = problem.class_counts().double()
    pi = counts / counts.sum()
    class_means = torch.stack([x[y == k].mean(0) for k in range(c)])
    expected_grad = (x.mean(0) / c - pi[:, None] * class_means).norm(dim=1)
    np.testing.assert_allclose(stats.grad_norm, expected_grad.numpy(), rtol=1e-10)
    frequent = (pi >= 2 / c).numpy()  # where π_k x̄_k outweighs x̄ / c: those classes have the large gradients
    assert frequent.sum() >= 2 and stats.grad_norm[frequent].min() > 2 * stats.grad_norm[~frequent].max()


def test_hutchinson_block_traces_lie_within_three_standard_errors_of_the_closed_form():
    problem = LinearProblem(m=4, d=12).build(0)  # n = 64, c = 15
    exact = softmax_blocks(problem.x, problem.y, problem.model.weight, problem.model.bias)
    estimate = model_block_traces(problem.model, problem.x, problem.y, ["weight", "bias"], probes=200, seed=0)
    w = estimate["weight"]
    assert w.probes == 200 and np.all(w.standard_error > 0)
    assert np.all(np.abs(w.mean - exact.hessian_trace) < 3 * w.standard_error)
    assert np.all(w.standard_error < 0.25 * exact.hessian_trace)  # the check is informative, not vacuous
    b = estimate["bias"]
    assert np.all(np.abs(b.mean - exact.bias_hessian) < 3 * b.standard_error)


def test_spearman_uses_average_ranks_for_ties():
    a, b = [1.0, 2.0, 2.0, 3.0, 10.0], [5.0, 1.0, 2.0, 4.0, 3.0]
    ranks_a, ranks_b = np.array([0, 1.5, 1.5, 3, 4]), np.array([4, 0, 1, 3, 2])
    assert spearman(a, b) == pytest.approx(np.corrcoef(ranks_a, ranks_b)[0, 1])
    assert spearman(np.exp(a), b) == pytest.approx(spearman(a, b))  # invariant to monotone transforms
    assert np.isnan(spearman([1, 1, 1], [1, 2, 3]))


def test_natural_groups_recover_the_construction_and_equal_mass_groups_hold_equal_mass():
    counts = LinearProblem(m=7).build(0).class_counts().numpy()
    np.testing.assert_array_equal(class_groups(counts, "natural"), natural_groups(7).numpy())
    groups = class_groups(counts, "equal-mass", num_groups=7)  # m = 7 natural groups have equal mass too
    np.testing.assert_array_equal(groups, natural_groups(7).numpy())


def test_correct_class_probability_quantiles_per_group():
    probs = torch.tensor([[0.9, 0.1], [0.5, 0.5], [0.2, 0.8], [0.4, 0.6]])
    y = torch.tensor([0, 0, 1, 1])
    out = correct_class_probability(probs, y, np.array([0, 1]))
    assert out["median"] == pytest.approx([0.7, 0.7])
    assert out["q05"][0] == pytest.approx(0.5 + 0.05 * 0.4)


def test_snapshots_are_kept_loadable_and_not_part_of_the_run_id(tmp_path):
    from heavytail import RunSpec, Store, make_optimizer, run
    from heavytail.train import train

    spec = RunSpec(problem="linear", problem_options={"m": 5}, optimizer="adam+m", lr=1e-2, steps=6)
    store = Store(tmp_path)
    record = run(spec, store, snapshots=[0, 3])
    assert record.run_id == spec.run_id and record.snapshot_steps == [0, 3]
    state = torch.load(record.path / "snapshots" / "step-3.pt", weights_only=True)
    problem = spec.build_problem()  # the same three steps by hand
    train(problem, make_optimizer("adam+m", problem.model.parameters(), 1e-2), 3)
    torch.testing.assert_close(state["weight"], problem.model.weight.detach())
    assert run(spec, store, snapshots=[3]).skipped  # kept already: reused
    again = run(spec, store, snapshots=[6])  # missing: recomputed, keeping the old ones
    assert not again.skipped and again.snapshot_steps == [0, 3, 6]
    torch.testing.assert_close(again.snapshot(3)["weight"], state["weight"])


def test_curvature_command_prints_the_issue_json_shape(tmp_path, capsys):
    assert main(["run", "linear", "--optimizer", "gd", "--lr", "0.1", "--steps", "4", "-p", "m=4", "--snapshots", "0,4", "--results", str(tmp_path), "--json"]) == 0
    run_id = json.loads(capsys.readouterr().out)["run_id"]
    assert main(["curvature", run_id[:6], "--steps", "0,4", "--results", str(tmp_path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert list(report) == ["steps"] and list(report["steps"]) == ["0", "4"]
    entry = report["steps"]["4"]
    assert set(entry) == {"grad_norm", "hessian_trace", "class_counts", "spearman"}
    assert len(entry["grad_norm"]) == len(entry["hessian_trace"]) == 15
    assert entry["class_counts"] == LinearProblem(m=4).build(0).class_counts().tolist()
    assert set(entry["spearman"]) == {"grad_trace", "grad_count", "trace_count"}
    assert main(["curvature", run_id, "--steps", "2", "--results", str(tmp_path)]) == 2
    assert "no snapshot at step 2" in capsys.readouterr().err


def test_path_analysis_shows_block_dominance_and_the_flip(tmp_path):
    from heavytail import RunSpec, run
    from heavytail.curvature.path import analyse_path

    spec = RunSpec(problem="linear", problem_options={"m": 5}, optimizer="adam+m", lr=1e-2, steps=20)
    record = run(spec, tmp_path, snapshots=[0, 5, 20])
    steps, matrices = analyse_path(record, spec.build_problem(), [0, 5, 20], structure_at=[0, 20])
    assert list(steps) == ["0", "5", "20"] and list(matrices) == ["0", "20"]
    for t in ("0", "20"):  # E11: same-class blocks dominate cross-class ones
        assert steps[t]["hessian_structure"]["ratio"] > 5
    last = steps["20"]
    assert last["spearman"]["trace_count"] > 0.5 and last["flipped"]["spearman"]["trace_count"] < -0.5  # E10
    probs = last["correct_class_probability"]
    assert len(probs["median"]) == 5 and all(lo <= mid <= hi for lo, mid, hi in zip(probs["q05"], probs["median"], probs["q95"]))


@pytest.mark.slow
def test_grad_hessian_study_writes_its_figures_and_summary(tmp_path):
    from heavytail.curvature.path import grad_hessian_study
    from heavytail.store import Store

    params = {
        "optimizer": "gd", "lr": 0.1, "steps": 10, "lr_reason": "test", "problem_options": {"m": 4},
        "checkpoints": (0, 10), "structure_at": (10,), "correlation_steps": (0, 10), "title": "test",
    }
    summary = grad_hessian_study(params, store=Store(tmp_path), out=tmp_path / "out", device="cpu", progress=False)
    assert list(summary["steps"]) == ["0", "10"] and len(summary["figures"]) == 6
    assert all((tmp_path / "out" / name).exists() for name in ("per-class.png", "correlation.png", "structure.png"))


@pytest.mark.parametrize("batch_size", [None, 16])
def test_the_loop_calls_the_snapshot_hook_at_the_chosen_iterates_only(batch_size):
    from heavytail import make_optimizer
    from heavytail.train import train

    problem = LinearProblem(m=4).build(0)  # n = 64: 4 steps an epoch at batch size 16
    seen = []

    def hook(step):
        seen.append((step, problem.model.weight.detach().clone()))

    opt = make_optimizer("gd", problem.model.parameters(), 0.5)
    train(problem, opt, 6, batch_size=batch_size, snapshot_steps=[0, 5, 6], on_snapshot=hook)
    assert [s for s, _ in seen] == [0, 5, 6]
    fresh = LinearProblem(m=4).build(0)
    torch.testing.assert_close(seen[0][1], fresh.model.weight)  # t = 0 is the initial iterate
    train(fresh, make_optimizer("gd", fresh.model.parameters(), 0.5), 5, batch_size=batch_size)
    torch.testing.assert_close(seen[1][1], fresh.model.weight.detach())  # t = 5 is the iterate after 5 steps
