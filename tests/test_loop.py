"""The training loop: exact full-batch gradients (chunked or not), logging, divergence, mini-batches, reweighting."""

import copy

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from heavytail import LinearProblem, RunSpec, make_optimizer, run
from heavytail.train import History, train


def _histories_close(a: History, b: History, rtol: float) -> None:
    np.testing.assert_array_equal(a.step, b.step)
    np.testing.assert_array_equal(a.exact, b.exact)
    np.testing.assert_array_equal(a.class_counts, b.class_counts)
    np.testing.assert_allclose(a.loss, b.loss, rtol=rtol)
    np.testing.assert_allclose(a.objective, b.objective, rtol=rtol)
    np.testing.assert_allclose(a.class_loss, b.class_loss, rtol=rtol)


def _histories_equal(a: History, b: History) -> None:
    for name in ("step", "exact", "loss", "objective", "class_loss", "class_accuracy", "class_counts"):
        assert np.array_equal(getattr(a, name), getattr(b, name), equal_nan=name != "step" and name != "exact"), name


def _reference_gradient(problem, weights=None):
    """Gradient of the (weighted) mean cross-entropy in float64, by autograd on the whole batch."""
    weight = problem.model.weight.detach().double().requires_grad_()
    bias = problem.model.bias.detach().double().requires_grad_()
    losses = F.cross_entropy(problem.x.double() @ weight.T + bias, problem.y, reduction="none")
    if weights is None:
        objective = losses.mean()
    else:
        w = weights[problem.y]
        objective = (w * losses).sum() / w.sum()
    objective.backward()
    return weight.grad, bias.grad


@pytest.mark.parametrize("chunk_size", [None, 160, 64, 50, 7])
@pytest.mark.parametrize("reweight", [0.0, 1.0])
def test_one_gd_step_follows_the_full_batch_gradient_for_any_chunking(chunk_size, reweight):
    problem = LinearProblem(m=5, loss_weights=reweight).build(0)  # n = 160
    weights = None if reweight == 0 else problem.class_weights.double()
    grad_w, grad_b = _reference_gradient(problem, weights)
    start_w, start_b = problem.model.weight.detach().double(), problem.model.bias.detach().double()
    lr = 0.5
    train(problem, make_optimizer("gd", problem.model.parameters(), lr), 1, chunk_size=chunk_size)
    # the step moved the parameters by exactly -lr * gradient
    torch.testing.assert_close((start_w - problem.model.weight.detach().double()) / lr, grad_w, rtol=1e-4, atol=1e-7)
    torch.testing.assert_close((start_b - problem.model.bias.detach().double()) / lr, grad_b, rtol=1e-4, atol=1e-7)


@pytest.mark.parametrize("optimizer", ["gd", "adam+m"])
def test_chunked_and_unchunked_histories_agree(optimizer):
    def history(chunk_size):
        problem = LinearProblem(m=6).build(1)  # n = 384
        opt = make_optimizer(optimizer, problem.model.parameters(), 1e-2)
        return train(problem, opt, 4, chunk_size=chunk_size).history

    full = history(384)
    for chunk_size in (128, 100):  # equal and unequal chunks
        _histories_close(history(chunk_size), full, rtol=1e-5)


def test_rows_are_the_losses_of_the_iterates_of_gradient_descent():
    """Row t is the loss at the iterate after t steps: checked against GD done by hand in float64."""
    problem = LinearProblem(m=5).build(0)
    x, y = problem.x.double(), problem.y
    weight = problem.model.weight.detach().double().clone().requires_grad_()
    bias = problem.model.bias.detach().double().clone().requires_grad_()
    lr, steps = 0.2, 3
    history = train(problem, make_optimizer("gd", problem.model.parameters(), lr), steps).history
    expected = []
    for _ in range(steps + 1):
        loss = F.cross_entropy(x @ weight.T + bias, y)
        expected.append(loss.item())
        weight.grad = bias.grad = None
        loss.backward()
        with torch.no_grad():
            weight -= lr * weight.grad
            bias -= lr * bias.grad
    np.testing.assert_array_equal(history.step, np.arange(steps + 1))
    assert history.exact.all()
    np.testing.assert_allclose(history.loss, expected, rtol=1e-5)
    assert np.all(np.diff(history.loss) < 0)


def test_zero_steps_logs_the_initial_iterate_only():
    problem = LinearProblem(m=4).build(0)
    before = problem.model.weight.detach().clone()
    result = train(problem, make_optimizer("gd", problem.model.parameters(), 0.1), 0)
    assert result.steps_done == 0 and not result.diverged
    np.testing.assert_array_equal(result.history.step, [0])
    assert torch.equal(problem.model.weight, before)


@pytest.mark.parametrize("batch_size", [None, 16])
def test_two_runs_are_bit_identical(batch_size):
    def once():
        problem = LinearProblem(m=5).build(3)
        opt = make_optimizer("adam+m", problem.model.parameters(), 1e-2)
        return train(problem, opt, 7, batch_size=batch_size, seed=3).history

    _histories_equal(once(), once())


def test_two_runs_of_one_spec_are_bit_identical(tmp_path):
    spec = RunSpec(problem_options={"m": 5}, optimizer="sign+m", lr=1e-2, steps=5, batch_size=40)
    first = run(spec, tmp_path / "a").history
    second = run(spec, tmp_path / "b").history
    _histories_equal(first, second)
    other_seed = run(RunSpec(**{**spec.to_dict(), "seed": 1}), tmp_path / "c").history
    assert not np.array_equal(first.loss, other_seed.loss)


@pytest.mark.parametrize("optimizer", ["gd", "sign"])
def test_huge_step_size_marks_the_run_diverged_and_keeps_its_rows(optimizer):
    problem = LinearProblem(m=4).build(0)
    # 1e38 overflows float32 logits after one step (a step of 1e30 still leaves a finite loss ~1e31)
    result = train(problem, make_optimizer(optimizer, problem.model.parameters(), 1e38), 6)
    history = result.history
    assert result.diverged
    assert result.steps_done == 1 < 6
    np.testing.assert_array_equal(history.step, [0, 1])
    assert np.isfinite(history.loss[0]) and not np.isfinite(history.loss[1])
    assert history.class_loss.shape == (2, 15)


def test_huge_step_size_in_mini_batch_mode_is_diverged():
    problem = LinearProblem(m=4).build(0)
    result = train(problem, make_optimizer("gd", problem.model.parameters(), 1e38), 20, batch_size=16)
    assert result.diverged and result.steps_done < 20
    assert result.history.step[0] == 0 and result.history.exact[0] and np.isfinite(result.history.loss[0])
    assert not np.isfinite(result.history.loss[-1])


def test_diverged_run_is_stored_as_diverged(tmp_path):
    spec = RunSpec(problem_options={"m": 4}, optimizer="gd", lr=1e38, steps=6)
    record = run(spec, tmp_path)
    assert record.status == "diverged"
    assert record.result["steps_done"] == 1
    assert len(record.history.step) == 2 and np.isfinite(record.result["initial_loss"])
    assert record.result["final_loss"] is None  # NaN is stored as JSON null
    assert run(spec, tmp_path).skipped  # a diverged run is final: not recomputed


def _manual_sgd(problem, lr, steps, batch_size, seed):
    """SGD done by hand with the loop's documented shuffling: one randperm per epoch from a seeded generator."""
    model = copy.deepcopy(problem.model)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    n, done, epoch_rows = problem.num_samples, 0, []
    while done < steps:
        order = torch.randperm(n, generator=generator)
        loss_sum, seen = 0.0, torch.zeros(problem.num_classes)
        for lo in range(0, n, batch_size):
            if done == steps:
                break
            index = order[lo : lo + batch_size]
            losses = F.cross_entropy(model(problem.x[index]), problem.y[index], reduction="none")
            loss_sum += losses.sum().item()
            seen += torch.bincount(problem.y[index], minlength=problem.num_classes)
            optimizer.zero_grad()
            losses.mean().backward()
            optimizer.step()
            done += 1
        epoch_rows.append((done, loss_sum / seen.sum().item(), seen))
    return model, epoch_rows


@pytest.mark.parametrize(
    ("batch_size", "steps", "expected_steps"),
    [(16, 10, [0, 4, 8, 10, 10]), (16, 8, [0, 4, 8, 8]), (24, 4, [0, 3, 4, 4]), (64, 2, [0, 1, 2, 2])],
)
def test_mini_batch_rows(batch_size, steps, expected_steps):
    problem = LinearProblem(m=4).build(0)  # n = 64
    initial_model = copy.deepcopy(problem.model)
    lr, seed = 0.1, 5
    model, epoch_rows = _manual_sgd(problem, lr, steps, batch_size, seed)
    optimizer = make_optimizer("gd", problem.model.parameters(), lr)
    result = train(problem, optimizer, steps, batch_size=batch_size, seed=seed)
    history = result.history
    assert result.steps_done == steps and not result.diverged
    # an exact row at step 0, one accumulated row per (possibly partial) epoch, an exact final row
    np.testing.assert_array_equal(history.step, expected_steps)
    np.testing.assert_array_equal(history.exact, [True] + [False] * (len(expected_steps) - 2) + [True])
    # exact rows are full passes at the initial and the final iterate
    with torch.no_grad():
        initial = F.cross_entropy(initial_model(problem.x), problem.y).item()
        final = F.cross_entropy(model(problem.x), problem.y).item()
    assert history.loss[0] == pytest.approx(initial, rel=1e-6)
    assert history.loss[-1] == pytest.approx(final, rel=1e-5)
    torch.testing.assert_close(problem.model.weight, model.weight, rtol=1e-5, atol=1e-6)
    # each epoch row accumulates the losses of that epoch's batches, each at the iterate it was taken at
    for row, (done, loss, seen) in enumerate(epoch_rows, start=1):
        assert history.step[row] == done
        assert history.loss[row] == pytest.approx(loss, rel=1e-5)
        assert np.array_equal(np.isnan(history.class_loss[row]), (seen == 0).numpy())


def test_mini_batch_full_epochs_see_every_sample_once():
    problem = LinearProblem(m=4).build(0)
    history = train(problem, make_optimizer("gd", problem.model.parameters(), 0.1), 8, batch_size=16).history
    # rows 1 and 2 are full epochs: every class is present, so no NaN
    assert not np.isnan(history.class_loss[1:3]).any()


@pytest.mark.parametrize("power", [1.0, 0.5])
def test_reweighted_objective_at_step_zero(power):
    problem = LinearProblem(m=5, loss_weights=power).build(0)
    x, y = problem.x.double(), problem.y
    n = len(y)
    counts = torch.bincount(y).double()
    w = (counts / n) ** -power  # w_k = 1 / pi_k^p
    with torch.no_grad():
        losses = F.cross_entropy(x @ problem.model.weight.double().T + problem.model.bias.double(), y, reduction="none")
    history = train(problem, make_optimizer("gd", problem.model.parameters(), 0.1), 2).history
    expected = float((w[y] * losses).sum() / w[y].sum())
    assert history.objective[0] == pytest.approx(expected, rel=1e-6)
    assert history.loss[0] == pytest.approx(float(losses.mean()), rel=1e-6)  # the plain loss is still logged
    assert history.objective[0] != pytest.approx(history.loss[0], rel=1e-3)
    if power == 1.0:
        # with w_k = 1/pi_k every class weighs the same: the objective is the plain mean of class losses
        assert history.objective[0] == pytest.approx(float(history.class_loss[0].astype(np.float64).mean()), rel=1e-6)
