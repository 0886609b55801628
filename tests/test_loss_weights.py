"""``loss_weights``, the option every problem has: parsing, the weighted loss's gradient, run ids of unweighted runs."""

import copy
import dataclasses

import pytest
import torch
import torch.nn.functional as F

from heavytail import LinearProblem, RunSpec, make_optimizer
from heavytail.options import ConfigError
from heavytail.problems import LossWeights, make_problem_options, problem_names, register_problem
from heavytail.problems.registry import problem_class
from heavytail.train import train


@pytest.mark.parametrize("name", problem_names())
def test_every_registered_problem_takes_loss_weights_as_a_fraction(name):
    options = make_problem_options(name, {"loss_weights": "1/2"})
    assert options.loss_weights == 0.5
    assert make_problem_options(name).loss_weights == 0.0  # the default: the plain mean cross-entropy
    with pytest.raises(ConfigError, match="loss_weights=-1"):
        make_problem_options(name, {"loss_weights": "-1"})
    assert issubclass(problem_class(name), LossWeights)


def test_a_problem_without_loss_weights_is_refused_at_registration():
    @dataclasses.dataclass(frozen=True)
    class Bare:
        m: int = 3

    with pytest.raises(ConfigError, match="Bare has no loss_weights option; inherit heavytail.problems.LossWeights"):
        register_problem("bare", Bare)


@pytest.mark.parametrize("power", [0.5, 1.0])
def test_weights_are_inverse_powers_of_the_class_frequencies(power):
    problem = LinearProblem(m=5, loss_weights=power).build(0)
    counts = problem.class_counts().double()
    torch.testing.assert_close(problem.class_weights.double(), (counts / counts.sum()) ** -power, rtol=1e-6, atol=0)


def test_the_weighted_mini_batch_gradient_is_the_hand_weighted_mean_over_the_batch():
    """One SGD step on a mini-batch moves the parameters by -lr * grad of sum_i w_{y_i} l_i / sum_i w_{y_i} over
    that batch, with w_k = 1/sqrt(pi_k) and pi_k the frequencies of the whole training set (paper section 4)."""
    problem = LinearProblem(m=5, loss_weights=0.5).build(0)  # n = 160
    model = copy.deepcopy(problem.model)
    counts = torch.bincount(problem.y, minlength=problem.num_classes).double()
    weights = (counts / counts.sum()) ** -0.5
    batch = torch.randperm(problem.num_samples, generator=torch.Generator().manual_seed(3))[:40]  # the loop's first batch, seed 3
    losses = F.cross_entropy(model(problem.x[batch]).double(), problem.y[batch], reduction="none")
    w = weights[problem.y[batch]]
    ((w * losses).sum() / w.sum()).backward()
    lr = 0.5
    train(problem, make_optimizer("gd", problem.model.parameters(), lr), 1, batch_size=40, seed=3)
    for before, after, hand in zip(model.parameters(), problem.model.parameters(), model.parameters()):
        torch.testing.assert_close((before.detach() - after.detach()) / lr, hand.grad.float(), rtol=1e-4, atol=1e-6)


def test_logged_losses_stay_unweighted():
    plain = LinearProblem(m=5).build(0)
    weighted = LinearProblem(m=5, loss_weights=1).build(0)
    a = train(plain, make_optimizer("gd", plain.model.parameters(), 0.1), 0).history
    b = train(weighted, make_optimizer("gd", weighted.model.parameters(), 0.1), 0).history
    assert a.loss[0] == b.loss[0] and (a.class_loss == b.class_loss).all()
    assert b.objective[0] != pytest.approx(b.loss[0], rel=1e-3)  # the reweighted objective is logged beside


# Run ids computed by the code before ``loss_weights`` existed: unweighted runs keep them.
IDS_BEFORE = {
    "1834232f45371c8e": dict(problem="linear", problem_options={"m": 5}, optimizer="gd", lr=0.1, steps=10),
    "579465e82286d1c3": dict(problem="linear", problem_options={"m": 5}, optimizer="adam+m", lr=0.001, steps=150, batch_size=32, seed=2),
    "ff0a517ed5156690": dict(problem="mnist-barcoded", problem_options={"source": "test", "bits": 6, "per_class": 1}, optimizer="gd+m", lr=0.01, steps=50),
}


@pytest.mark.parametrize("run_id", IDS_BEFORE)
def test_unweighted_runs_keep_their_ids(run_id):
    spec = IDS_BEFORE[run_id]
    assert RunSpec(**spec).run_id == run_id
    assert RunSpec(**{**spec, "problem_options": {**spec["problem_options"], "loss_weights": "0"}}).run_id == run_id


def test_the_former_reweight_option_names_the_same_run_as_loss_weights():
    base = dict(problem="linear", optimizer="gd", lr=0.1, steps=10)
    old = RunSpec(**base, problem_options={"m": 5, "reweight": "1/2"})
    new = RunSpec(**base, problem_options={"m": 5, "loss_weights": 0.5})
    assert old.run_id == new.run_id != RunSpec(**base, problem_options={"m": 5}).run_id
    assert new.to_dict()["problem_options"] == {"m": 5, "loss_weights": 0.5}
    with pytest.raises(ConfigError, match="'reweight' and 'loss_weights' are the same option; give one"):
        make_problem_options("linear", {"reweight": 1, "loss_weights": 1})


def test_a_stored_spec_with_reweight_still_builds_its_weighted_problem():
    """Runs stored before the rename keep ``reweight`` in spec.json (and their ids); they load and rebuild."""
    stored = RunSpec.from_dict({"problem": "linear", "optimizer": "gd", "lr": 0.1, "steps": 10, "seed": 0,
                                "problem_options": {"m": 5, "reweight": 0.5}}, normalized=True)  # fmt: skip
    assert stored.run_id == "dc77d0285819e975"  # its id before the rename
    torch.testing.assert_close(stored.build_problem().class_weights, LinearProblem(m=5, loss_weights=0.5).build(0).class_weights)
